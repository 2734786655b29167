"""Signing in and out, forced password changes, the language switch and session timeouts."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.translation import gettext, override

from kehu.audit.models import AuditEvent
from kehu.testing.factories import TEST_PASSWORD, UserFactory

NEW_PASSWORD = "Fresh#Words2027"


def html_lang(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.content.decode())
    assert match, "no <html lang>"
    return match.group(1)


@pytest.fixture
def english(client):
    """An anonymous visitor who chose English, so messages can be compared with the English source."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


# ---------------------------------------------------------------- login


def test_login_page_renders_with_language_switch(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="username"' in body and 'name="password"' in body
    assert 'data-testid="switch-language"' in body
    assert html_lang(response) == "zh-CN"


def test_login_success_changes_session_id_and_is_audited(client, people):
    before = client.session.session_key  # an anonymous session exists before signing in
    response = client.post("/login/", {"username": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    session = client.session
    assert session["_auth_user_id"] == str(people.alice.pk)
    assert "kehu_login_at" in session and "kehu_last_seen" in session
    assert AuditEvent.objects.filter(action="auth.login", actor_username="alice").exists()
    assert client.get("/").status_code == 200


def test_login_redirects_to_safe_next_only(client, people):
    response = client.post("/login/?next=/org/", {"username": "alice", "password": TEST_PASSWORD})
    assert response["Location"] == "/org/"
    client.post("/logout/")
    response = client.post(
        "/login/", {"username": "alice", "password": TEST_PASSWORD, "next": "https://evil.example/x"}
    )
    assert response["Location"] == "/"


def test_signed_in_user_visiting_login_goes_home(login, people):
    client = login(people.alice)
    response = client.get("/login/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_login_failure_shows_message(english, people):
    response = english.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "The username or password is not correct." in response.content.decode()
    assert "_auth_user_id" not in english.session
    # An unknown user gets the very same message.
    response = english.post("/login/", {"username": "nobody", "password": "wrong"})
    assert "The username or password is not correct." in response.content.decode()


def test_lockout_message_shows_until_when(english, people):
    for _ in range(settings.KEHU_LOCKOUT_THRESHOLD):
        response = english.post("/login/", {"username": "alice", "password": "wrong"})
    people.alice.refresh_from_db()
    assert people.alice.locked_until is not None
    until = timezone.localtime(people.alice.locked_until).strftime("%H:%M")
    body = response.content.decode()
    assert "locked until" in body and until in body
    # The right password does not get in while locked.
    response = english.post("/login/", {"username": "alice", "password": TEST_PASSWORD})
    assert "locked until" in response.content.decode()
    assert "_auth_user_id" not in english.session


def test_inactive_user_cannot_sign_in(english, people):
    people.alice.is_active = False
    people.alice.save()
    response = english.post("/login/", {"username": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in english.session


def test_anonymous_pages_redirect_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


# ---------------------------------------------------------------- logout


def test_logout_is_post_only_and_audited(login, people):
    client = login(people.alice)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    event = AuditEvent.objects.filter(action="auth.logout", actor_username="alice").get()
    assert event.extra["reason"] == "user"
    assert client.get("/").status_code == 302


def test_logout_keeps_the_users_language_on_the_login_page(login, people):
    people.alice.language = "en"
    people.alice.save()
    client = login(people.alice)
    client.post("/logout/")
    assert html_lang(client.get("/login/")) == "en"


# ---------------------------------------------------------------- password change


def test_forced_password_change_then_home(login, people):
    people.alice.must_change_password = True
    people.alice.save()
    client = login(people.alice)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/password/"
    assert client.get("/org/")["Location"] == "/password/"
    page = client.get("/password/")
    assert page.status_code == 200
    assert 'data-testid="password-forced"' in page.content.decode()
    # The password rules are shown.
    from django.contrib.auth.password_validation import password_validators_help_texts

    with override(people.alice.language):
        for rule in password_validators_help_texts():
            assert str(rule) in page.content.decode()

    response = client.post(
        "/password/",
        {"old_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    # The session survives the change.
    assert client.get("/").status_code == 200
    people.alice.refresh_from_db()
    assert not people.alice.must_change_password and people.alice.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="auth.password_change", actor_username="alice").exists()


def test_expired_password_is_forced_too(login, people):
    people.alice.password_changed_at = timezone.now() - timedelta(
        days=settings.KEHU_PASSWORD_MAX_AGE_DAYS + 1
    )
    people.alice.save()
    client = login(people.alice)
    assert client.get("/")["Location"] == "/password/"
    assert 'data-testid="password-forced"' in client.get("/password/").content.decode()


def test_password_change_errors_next_to_fields(login, people):
    client = login(people.alice)
    page = client.get("/password/")
    assert 'data-testid="password-forced"' not in page.content.decode()

    def post(old, new, again):
        return client.post(
            "/password/", {"old_password": old, "new_password": new, "new_password_confirm": again}
        )

    response = post("wrong-old", NEW_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 200
    assert response.context["form"].errors["old_password"]
    response = post(TEST_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")
    assert response.context["form"].errors["new_password_confirm"]
    response = post(TEST_PASSWORD, "short", "short")
    assert response.context["form"].errors["new_password"]
    people.alice.refresh_from_db()
    assert people.alice.check_password(TEST_PASSWORD)


# ---------------------------------------------------------------- language


def test_language_switch_signed_in_persists(login, people):
    people.alice.language = "zh-hans"
    people.alice.save(update_fields=["language"])
    client = login(people.alice)
    assert html_lang(client.get("/")) == "zh-CN"
    response = client.post("/language/", {"language": "en", "next": "/org/"})
    assert response.status_code == 302 and response["Location"] == "/org/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    people.alice.refresh_from_db()
    assert people.alice.language == "en"
    page = client.get("/")
    assert html_lang(page) == "en"
    with override("en"):
        assert gettext("Sign out") in page.content.decode()
    assert AuditEvent.objects.filter(action="user.set_language", actor_username="alice").exists()
    client.post("/language/", {"language": "zh-hans", "next": "/"})
    assert html_lang(client.get("/")) == "zh-CN"


def test_language_switch_anonymous_sets_cookie(client, db):
    response = client.post("/language/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    page = client.get("/login/")
    assert html_lang(page) == "en"
    assert "Sign in" in page.content.decode()


def test_language_switch_rejects_unknown_language_and_unsafe_next(client, db):
    response = client.post("/language/", {"language": "fr", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert client.get("/language/").status_code == 405


# ---------------------------------------------------------------- session security


def _age_session(client, **stamps):
    session = client.session
    for key, value in stamps.items():
        session[key] = value
    session.save()


def test_idle_session_is_logged_out(login, people):
    client = login(people.alice)
    idle = (settings.KEHU_SESSION_IDLE_MINUTES + 1) * 60
    _age_session(client, kehu_last_seen=time.time() - idle)
    response = client.get("/org/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Forg%2F"
    assert client.get("/").status_code == 302
    event = AuditEvent.objects.filter(action="auth.logout", actor_username="alice").get()
    assert event.extra["reason"] == "idle"


def test_idle_htmx_request_redirects_the_whole_page(login, people):
    client = login(people.alice)
    _age_session(client, kehu_last_seen=time.time() - (settings.KEHU_SESSION_IDLE_MINUTES + 1) * 60)
    response = client.get("/org/", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/login/?next=")


def test_session_older_than_the_absolute_limit_is_logged_out(login, people):
    client = login(people.alice)
    now = time.time()
    _age_session(
        client, kehu_login_at=now - (settings.KEHU_SESSION_MAX_HOURS * 3600 + 60), kehu_last_seen=now
    )
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    event = AuditEvent.objects.filter(action="auth.logout", actor_username="alice").get()
    assert event.extra["reason"] == "max_age"


def test_recent_activity_keeps_the_session(login, people):
    client = login(people.alice)
    _age_session(client, kehu_last_seen=time.time() - 60)
    assert client.get("/").status_code == 200


def test_deactivated_user_is_logged_out_on_next_request(login, people):
    client = login(people.alice)
    assert client.get("/").status_code == 200
    people.alice.is_active = False
    people.alice.save(update_fields=["is_active"])
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_deactivation_by_security_admin_ends_the_session(login, people, client):
    from kehu.accounts.services import user_deactivate

    login(people.alice)
    user_deactivate(acting_user=people.secadmin, user=people.alice, reason="left")
    assert client.get("/").status_code == 302


def test_user_without_unit_or_role_can_sign_in(client, db):
    user = UserFactory(username="nounit", roles=[])
    response = client.post("/login/", {"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_a_session_without_timeout_stamps_is_ended(client, people):
    """A session not made by the login view would escape the timeouts: it is ended instead."""
    client.force_login(people.alice)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert (
        AuditEvent.objects.filter(action="auth.logout", actor_username="alice").get().extra["reason"]
        == "unstamped"
    )
