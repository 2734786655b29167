"""How API callers prove who they are: a bearer token, or the signed-in web session (for the docs page).

Both resolve to an active, unlocked ``accounts.User``; handlers read it from ``request.auth`` and pass it
on as ``viewer`` / ``acting_user``. ``request.user`` is set too, so anything reading the Django user sees
the token's owner.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone, translation
from ninja.security import APIKeyCookie, HttpBearer

from kehu.accounts.models import User
from kehu.accounts.services import api_token_user, password_expired


def _attach(request, user: User) -> User:
    request.user = user
    # API answers (error messages) come in the caller's own language, as the web does.
    if user.language in dict(settings.LANGUAGES):
        translation.activate(user.language)
        request.LANGUAGE_CODE = translation.get_language()
    return user


class BearerTokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``, a token from ``POST /api/v1/auth/token``."""

    def authenticate(self, request, token: str) -> User | None:
        user = api_token_user(token.strip())
        if user is None:
            return None
        return _attach(request, user)


class KehuSessionAuth(APIKeyCookie):
    """The Django session of a signed-in web user, with Django's CSRF check on unsafe methods.

    Without a session cookie this scheme simply does not apply (no CSRF error for token callers). A
    session whose password must be changed, or whose account is locked, does not reach the API, just as
    such a user cannot obtain a token.
    """

    param_name: str = settings.SESSION_COOKIE_NAME

    def _get_key(self, request) -> str | None:
        if not request.COOKIES.get(self.param_name):
            return None
        return super()._get_key(request)

    def authenticate(self, request, key: str | None) -> User | None:
        if not key:
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        if user.is_locked(timezone.now()) or password_expired(user):
            return None
        return _attach(request, user)


bearer_auth = BearerTokenAuth()
session_auth = KehuSessionAuth()
# Every endpoint requires one of these unless it says otherwise (only the token endpoint does).
default_auth = [bearer_auth, session_auth]
