"""Shared by ``kehu import`` and ``kehu export`` (a leading underscore: Django does not list it as a command)."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from kehu.accounts.roles import Role


def acting_user(username: str | None, capability, *, doing: str):
    """The account a CLI command acts as: ``--as USERNAME``, or the only active system administrator.

    ``doing`` is a translated verb phrase completing “USERNAME may not …”, e.g. ``_("import %(what)s")``.
    """
    from kehu.accounts.models import User

    if username:
        user = User.objects.filter(username=username).first()
        if user is None or not user.is_active:
            raise CommandError(_("No active account “%(username)s”.") % {"username": username})
        if not user.can(capability):
            raise CommandError(
                _("%(username)s may not %(doing)s (the role needs the “%(capability)s” capability).")
                % {"username": username, "doing": doing, "capability": capability}
            )
        return user
    admins = list(
        User.objects.filter(is_active=True, role_assignments__role=Role.SYSTEM_ADMIN).distinct()[:2]
    )
    if not admins:
        raise CommandError(
            _("There is no active system administrator; say whom to act as with --as USERNAME.")
        )
    if len(admins) > 1:
        raise CommandError(
            _("There are several active system administrators; say whom to act as with --as USERNAME.")
        )
    if not admins[0].can(capability):  # pragma: no cover - system administrators hold both capabilities
        raise CommandError(
            _("%(username)s may not %(doing)s; use --as USERNAME.")
            % {"username": admins[0].username, "doing": doing}
        )
    return admins[0]
