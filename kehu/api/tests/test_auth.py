"""Token issue, bearer authentication, lockout and the audit rows they leave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from kehu.accounts.models import ApiToken, User
from kehu.audit.models import AuditEvent
from kehu.testing.factories import sign_in

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"


def issue(client, username, password):
    return client.post(
        TOKEN_URL, {"username": username, "password": password}, content_type="application/json"
    )


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_token_issue_ok(client, people, password):
    response = issue(client, "alice", password)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"] and body["token_type"] == "Bearer"
    assert body["user"]["username"] == "alice"
    assert body["user"]["unit"]["code"] == "A1"
    expires = timezone.datetime.fromisoformat(body["expires_at"])
    assert timezone.now() + timedelta(hours=settings.KEHU_API_TOKEN_HOURS - 1) < expires
    # only the digest is kept
    token = ApiToken.objects.get(user=people.alice)
    assert body["token"] not in (token.digest, token.prefix)
    me = client.get("/api/v1/me", **bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"


def test_token_issue_needs_no_csrf_even_with_a_session_cookie(people, password):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.cookies[settings.SESSION_COOKIE_NAME] = "whatever"
    assert issue(client, "alice", password).status_code == 200


def test_wrong_password_is_401(client, people):
    response = issue(client, "alice", "Wrong#Pass2026")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid" and body["detail"]
    assert "token" not in body


def test_unknown_user_is_401_like_a_wrong_password(client, people):
    unknown = issue(client, "nobody", "Wrong#Pass2026")
    wrong = issue(client, "alice", "Wrong#Pass2026")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_missing_fields_are_422(client, people):
    response = client.post(TOKEN_URL, {"username": "alice"}, content_type="application/json")
    assert response.status_code == 422


def test_lockout_refuses_even_the_right_password_until_it_expires(client, people, password):
    threshold = settings.KEHU_LOCKOUT_THRESHOLD
    for _ in range(threshold - 1):
        assert issue(client, "alice", "Wrong#Pass2026").status_code == 401
    locked = issue(client, "alice", "Wrong#Pass2026")
    assert locked.status_code == 423
    body = locked.json()
    assert body["code"] == "locked"
    people.alice.refresh_from_db()
    assert people.alice.locked_until is not None
    reported = timezone.datetime.fromisoformat(body["locked_until"])
    assert abs(reported - people.alice.locked_until) < timedelta(seconds=1)
    assert int(locked["Retry-After"]) > 0
    # the message says until when (local time)
    assert timezone.localtime(people.alice.locked_until).strftime("%H:%M") in body["detail"]

    right = issue(client, "alice", password)
    assert right.status_code == 423
    assert "token" not in right.json()
    assert not ApiToken.objects.filter(user=people.alice).exists()

    User.objects.filter(pk=people.alice.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    again = issue(client, "alice", password)
    assert again.status_code == 200
    assert again.json()["token"]


def test_password_change_required_is_403(client, people, password):
    User.objects.filter(pk=people.alice.pk).update(must_change_password=True)
    response = issue(client, "alice", password)
    assert response.status_code == 403
    assert response.json()["code"] == "password_change_required"
    assert not ApiToken.objects.filter(user=people.alice).exists()


def test_deactivated_users_token_is_refused(client, people, token_for):
    raw = token_for(people.alice)
    assert client.get("/api/v1/me", **bearer(raw)).status_code == 200
    User.objects.filter(pk=people.alice.pk).update(is_active=False)  # even without revoking the token
    response = client.get("/api/v1/me", **bearer(raw))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_deactivated_user_gets_no_token(client, people, password):
    User.objects.filter(pk=people.alice.pk).update(is_active=False)
    assert issue(client, "alice", password).status_code == 401


def test_expired_token_is_refused(client, people, token_for):
    raw = token_for(people.alice)
    ApiToken.objects.filter(user=people.alice).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/me", **bearer(raw)).status_code == 401


def test_revoked_token_is_refused(client, people, token_for):
    raw = token_for(people.alice)
    ApiToken.objects.filter(user=people.alice).update(revoked_at=timezone.now())
    assert client.get("/api/v1/me", **bearer(raw)).status_code == 401


def test_locked_users_token_is_refused(client, people, token_for):
    raw = token_for(people.alice)
    User.objects.filter(pk=people.alice.pk).update(locked_until=timezone.now() + timedelta(minutes=5))
    assert client.get("/api/v1/me", **bearer(raw)).status_code == 401


@pytest.mark.parametrize(
    "path", ["/api/v1/me", "/api/v1/units", "/api/v1/units/1", "/api/v1/users", "/api/v1/users/1"]
)
def test_every_endpoint_but_token_requires_authentication(client, people, path):
    assert client.get(path).status_code == 401
    assert client.get(path, **bearer("not-a-token")).status_code == 401
    assert client.get(path, HTTP_AUTHORIZATION="Basic YWxpY2U6eA==").status_code == 401


def test_session_auth_works_for_a_signed_in_user(client, people):
    sign_in(client, people.alice)
    response = client.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_session_auth_refused_while_password_change_is_required(client, people):
    User.objects.filter(pk=people.alice.pk).update(must_change_password=True)
    sign_in(client, people.alice)
    assert client.get("/api/v1/me").status_code == 401


def test_token_issue_and_failures_are_audited_with_channel_api(client, people, password):
    issue(client, "alice", "Wrong#Pass2026")
    failed = AuditEvent.objects.filter(action="auth.login_failed", actor_username="alice").get()
    assert failed.channel == "api"
    assert failed.extra["channel"] == "api"

    response = issue(client, "alice", password)
    token = ApiToken.objects.get(user=people.alice)
    issued = AuditEvent.objects.get(action="auth.token_issue")
    assert issued.channel == "api"
    assert issued.actor_id == people.alice.pk
    assert issued.object_id == str(token.pk)
    assert response.json()["token"] not in str(issued.object_repr)
    assert issued.ip == "127.0.0.1"


def test_token_revoke_signs_the_client_out(client, people, password):
    raw = issue(client, "alice", password).json()["token"]
    assert client.get("/api/v1/me", **bearer(raw)).status_code == 200
    response = client.delete(TOKEN_URL, **bearer(raw))
    assert response.status_code == 204
    assert client.get("/api/v1/me", **bearer(raw)).status_code == 401
    assert client.delete(TOKEN_URL, **bearer(raw)).status_code == 401
    assert AuditEvent.objects.filter(action="auth.token_revoke", actor_username="alice").count() == 1
