"""Signing in and out, changing one's password, choosing the interface language."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from kehu.accounts.middleware import session_started
from kehu.accounts.services import (
    LoginFailed,
    login_check,
    logout_record,
    password_change,
    password_expired,
    user_set_language,
)
from kehu.core.errors import ServiceError
from kehu.web.forms import LanguageForm, LoginForm, PasswordChangeForm, add_service_error
from kehu.web.views.common import safe_next, set_language_cookie

LOGIN_BACKEND = "kehu.accounts.backends.LockoutModelBackend"


def _next_after_login(request) -> str:
    target = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    # Never bounce back to the login or logout page itself.
    if target and target.split("?")[0] in (reverse("login"), reverse("logout")):
        target = None
    return target or reverse("home")


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request):
    next_url = _next_after_login(request)
    if request.method == "GET" and request.user.is_authenticated:
        return redirect(next_url)
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = login_check(
                username=form.cleaned_data["username"], password=form.cleaned_data["password"], channel="web"
            )
        except LoginFailed as exc:
            form.add_error(None, exc.message)
        else:
            login(request, user, backend=LOGIN_BACKEND)  # a new session id: no session fixation
            session_started(request)
            return redirect(next_url)
    return render(request, "web/auth/login.html", {"form": form, "next": next_url})


@require_POST
def logout_view(request):
    response = redirect("login")
    user = request.user
    if user.is_authenticated:
        language = user.language
        logout_record(acting_user=user, reason="user")
        logout(request)
        # The sign-in page keeps the language the person was using.
        set_language_cookie(response, language)
        messages.success(request, _("You have signed out."))
    return response


@sensitive_post_parameters()
@csrf_protect
@never_cache
@login_required
def password_change_view(request):
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            password_change(
                acting_user=request.user,
                old_password=form.cleaned_data["old_password"],
                new_password=form.cleaned_data["new_password"],
            )
        except ServiceError as exc:
            add_service_error(form, exc, form.SERVICE_FIELDS)
        else:
            update_session_auth_hash(request, request.user)  # keep this session signed in
            messages.success(request, _("Your password has been changed."))
            return redirect("home")
    user = request.user
    if user.must_change_password:
        forced = "temporary"
    elif password_expired(user):
        forced = "expired"
    else:
        forced = ""
    return render(
        request,
        "web/auth/password_change.html",
        {
            "form": form,
            "forced": forced,
            "rules": form.rules(),
            "max_age_days": settings.KEHU_PASSWORD_MAX_AGE_DAYS,
        },
    )


@require_POST
def set_language_view(request):
    form = LanguageForm(request.POST)
    fallback = reverse("home") if request.user.is_authenticated else reverse("login")
    response = redirect(safe_next(request, request.POST.get("next")) or fallback)
    if not form.is_valid():
        messages.error(request, _("Unknown language."))
        return response
    language = form.cleaned_data["language"]
    if request.user.is_authenticated:
        try:
            user_set_language(acting_user=request.user, language=language)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return response
    set_language_cookie(response, language)
    return response
