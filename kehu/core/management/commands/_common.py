"""Shared by ``kehu import`` and ``kehu export`` (a leading underscore: Django does not list it as a command)."""

from __future__ import annotations

from django.core.management.base import CommandError

from kehu.accounts.roles import Role


def acting_user(username: str | None, capability, *, doing: str):
    """The account a CLI command acts as: ``--as USERNAME``, or the only active system administrator."""
    from kehu.accounts.models import User

    if username:
        user = User.objects.filter(username=username).first()
        if user is None or not user.is_active:
            raise CommandError(f"No active account “{username}”.")
        if not user.can(capability):
            raise CommandError(f"{username} may not {doing} (the role needs the “{capability}” capability).")
        return user
    admins = list(
        User.objects.filter(is_active=True, role_assignments__role=Role.SYSTEM_ADMIN).distinct()[:2]
    )
    if len(admins) != 1:
        found = "no active system administrator" if not admins else "several active system administrators"
        raise CommandError(f"There is {found}; say whom to act as with --as USERNAME.")
    if not admins[0].can(capability):  # pragma: no cover - system administrators hold both capabilities
        raise CommandError(f"{admins[0].username} may not {doing}; use --as USERNAME.")
    return admins[0]
