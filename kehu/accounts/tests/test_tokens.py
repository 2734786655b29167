"""API bearer tokens: issue, authenticate, and every way a token stops working."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone, translation

from kehu.accounts.models import ApiToken, User
from kehu.accounts.services import (
    LoginFailed,
    api_token_issue,
    api_token_user,
    api_tokens_revoke,
    user_deactivate,
)
from kehu.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def test_issue_and_authenticate(people, password, settings):
    settings.KEHU_API_TOKEN_HOURS = 12
    before = timezone.now()
    raw, token = api_token_issue(username="alice", password=password)
    assert len(raw) >= 40
    assert token.user == people.alice
    assert before + timedelta(hours=12) <= token.expires_at <= timezone.now() + timedelta(hours=12)
    user = api_token_user(raw)
    assert user == people.alice
    assert user.unit == people.alice.unit
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_only_the_digest_is_stored(people, password):
    raw, token = api_token_issue(username="alice", password=password)
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert stored["digest"] == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {str(v) for v in stored.values()}
    assert stored["prefix"] == raw[:8] and len(stored["prefix"]) < len(raw)
    event = AuditEvent.objects.get(action="auth.token_issue")
    assert event.object_id == str(token.pk) and event.actor_id == people.alice.pk
    assert raw not in event.object_repr + str(event.changes) + str(event.extra)
    assert stored["digest"] not in str(event.changes) + str(event.extra)


def test_tokens_are_distinct(people, password):
    raws = {api_token_issue(username="alice", password=password)[0] for _ in range(5)}
    assert len(raws) == 5


@pytest.mark.parametrize("raw", ["", "nonsense", "x" * 43])
def test_unknown_token_is_nobody(people, raw):
    assert api_token_user(raw) is None


def test_a_digest_is_not_a_token(people, password):
    raw, token = api_token_issue(username="alice", password=password)
    assert api_token_user(token.digest) is None
    assert api_token_user(raw[:8]) is None


def test_expired_token_is_nobody(people, password):
    raw, token = api_token_issue(username="alice", password=password)
    with mock.patch("django.utils.timezone.now", return_value=token.expires_at - timedelta(seconds=1)):
        assert api_token_user(raw) == people.alice
    with mock.patch("django.utils.timezone.now", return_value=token.expires_at):
        assert api_token_user(raw) is None


def test_revoked_token_is_nobody(people, password):
    raw, _ = api_token_issue(username="alice", password=password)
    other, _ = api_token_issue(username="bob", password=password)
    assert api_tokens_revoke(people.alice) == 1
    assert api_token_user(raw) is None
    assert api_token_user(other) == people.bob


def test_inactive_user_token_is_nobody(people, password):
    raw, _ = api_token_issue(username="alice", password=password)
    User.objects.filter(pk=people.alice.pk).update(is_active=False)
    assert api_token_user(raw) is None


def test_deactivation_revokes(people, password):
    raw, token = api_token_issue(username="alice", password=password)
    user_deactivate(acting_user=people.secadmin, user=User.objects.get(pk=people.alice.pk))
    token.refresh_from_db()
    assert token.revoked_at is not None
    # even if the account were switched back on directly, the token stays dead
    User.objects.filter(pk=people.alice.pk).update(is_active=True)
    assert api_token_user(raw) is None


def test_locked_user_token_is_nobody(people, password):
    raw, _ = api_token_issue(username="alice", password=password)
    User.objects.filter(pk=people.alice.pk).update(locked_until=timezone.now() + timedelta(minutes=5))
    assert api_token_user(raw) is None
    User.objects.filter(pk=people.alice.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert api_token_user(raw) == people.alice


def test_issue_needs_the_right_password_and_counts_failures(people, password, settings):
    settings.KEHU_LOCKOUT_THRESHOLD = 2
    with pytest.raises(LoginFailed) as exc:
        api_token_issue(username="alice", password="Wrong#Pass2026")
    assert exc.value.code == "invalid"
    with pytest.raises(LoginFailed) as exc:
        api_token_issue(username="alice", password="Wrong#Pass2026")
    assert exc.value.code == "locked"
    with pytest.raises(LoginFailed) as exc:
        api_token_issue(username="alice", password=password)
    assert exc.value.code == "locked"
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.filter(action="auth.login_failed", extra__channel="api").count() == 3


def test_issue_refused_while_the_password_must_be_changed(people, password):
    User.objects.filter(pk=people.alice.pk).update(must_change_password=True)
    with pytest.raises(LoginFailed) as exc:
        api_token_issue(username="alice", password=password)
    assert exc.value.code == "password_change_required"
    assert not ApiToken.objects.exists()
