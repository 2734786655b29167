"""Small helpers shared by the web views."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability


def safe_next(request, url: str | None) -> str | None:
    """``url`` if it stays on this site, else None (no open redirects)."""
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):  # fmt: skip
        return url
    return None


def set_language_cookie(response, language: str) -> None:
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


def capability_required(capability: Capability):
    """Signed in and holding ``capability``, else the login page or 403. Services check again."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.can(capability):
                raise PermissionDenied(_("Your roles do not allow this page."))
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"
