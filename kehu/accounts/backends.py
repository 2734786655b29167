"""Authentication backend: Django's model backend, minus locked accounts."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend


class LockoutModelBackend(ModelBackend):
    """Refuses a locked account even with the right password; the lockout itself is set by accounts.services."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not user.is_locked()
