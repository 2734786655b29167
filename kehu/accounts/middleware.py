"""Session security (idle and absolute timeouts), the user's language, and forced password changes."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

SESSION_LOGIN_AT = "kehu_login_at"
SESSION_LAST_SEEN = "kehu_last_seen"
# Writing the session on every request costs a database write; a minute's resolution is enough.
LAST_SEEN_RESOLUTION = 60


class SessionSecurityMiddleware:
    """Ends a web session after KEHU_SESSION_IDLE_MINUTES without activity or KEHU_SESSION_MAX_HOURS in all."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and "_auth_user_id" in request.session:
            now = time.time()
            login_at = request.session.get(SESSION_LOGIN_AT)
            last_seen = request.session.get(SESSION_LAST_SEEN, login_at)
            reason = None
            if login_at is None:
                # Not made by our login view (so never stamped): no timeouts would apply. Fail closed.
                reason = "unstamped"
            elif now - last_seen > settings.KEHU_SESSION_IDLE_MINUTES * 60:
                reason = "idle"
            elif now - login_at > settings.KEHU_SESSION_MAX_HOURS * 3600:
                reason = "max_age"
            if reason:
                from kehu.accounts.services import logout_record

                logout_record(acting_user=user, reason=reason)
                logout(request)
                messages.info(request, _("Your session has ended; please sign in again."))
                if request.path.startswith("/api/"):
                    return self.get_response(request)
                login_url = f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}"
                if request.headers.get("HX-Request"):
                    # An htmx fragment request: make the browser load the login page, not swap it in.
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = login_url
                    return response
                return redirect(login_url)
            if now - last_seen >= LAST_SEEN_RESOLUTION:
                request.session[SESSION_LAST_SEEN] = now
        return self.get_response(request)


def session_started(request) -> None:
    """Called right after login: stamps the session for the timeouts above."""
    now = time.time()
    request.session[SESSION_LOGIN_AT] = now
    request.session[SESSION_LAST_SEEN] = now


class UserLanguageMiddleware:
    """The signed-in user's own language; before login, the language cookie; otherwise Simplified Chinese."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            language = user.language
        else:
            language = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) or settings.LANGUAGE_CODE
            if language not in dict(settings.LANGUAGES):
                language = settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", request.LANGUAGE_CODE)
        return response


class PasswordChangeRequiredMiddleware:
    """Sends a user whose password is temporary or older than KEHU_PASSWORD_MAX_AGE_DAYS to change it."""

    EXEMPT_NAMES = ("password_change", "logout", "set_language")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(("/api/", "/" + settings.STATIC_URL.strip("/") + "/"))
        ):
            from kehu.accounts.services import password_expired

            if password_expired(user):
                exempt = {reverse(name) for name in self.EXEMPT_NAMES}
                if request.path not in exempt:
                    return redirect(reverse("password_change"))
        return self.get_response(request)
