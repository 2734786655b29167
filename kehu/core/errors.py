"""Errors raised by services. Views, the API and the CLI turn them into messages, 400s and exit codes."""

from __future__ import annotations


class ServiceError(Exception):
    """Bad input or a rule that forbids the action. ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code

    def __str__(self) -> str:
        return self.message


class NotAllowed(ServiceError):
    """The acting user's roles do not allow this action (403). Out-of-scope objects are 404s, not this."""

    def __init__(self, message: str, *, code: str = "not_allowed"):
        super().__init__(message, code=code)


def require(acting_user, capability, message: str) -> None:
    if acting_user is None or not acting_user.can(capability):
        raise NotAllowed(message)


def require_any(acting_user, *capabilities) -> None:
    """At least one of ``capabilities``, else NotAllowed (403)."""
    from django.utils.translation import gettext as _

    if acting_user is None or not any(acting_user.can(c) for c in capabilities):
        raise NotAllowed(_("Your roles do not allow this."))
