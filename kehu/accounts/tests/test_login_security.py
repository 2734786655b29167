"""Login checks: failure counting, lockout, unlock by time, inactive and unknown accounts, and their audit rows."""

from __future__ import annotations

import itertools
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import authenticate
from django.utils import timezone, translation
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kehu.accounts.models import User
from kehu.accounts.services import LoginFailed, login_check, logout_record, user_unlock
from kehu.audit.models import AuditEvent, Outcome
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db

WRONG = "Wrong#Pass2026"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def lockout(settings):
    settings.KEHU_LOCKOUT_THRESHOLD = 5
    settings.KEHU_LOCKOUT_MINUTES = 30
    return settings


def fail(username: str, password: str = WRONG) -> LoginFailed:
    with pytest.raises(LoginFailed) as exc:
        login_check(username=username, password=password)
    return exc.value


def at(moment):
    """Run the code under test at another time."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


def events(action: str, user: User | None = None):
    qs = AuditEvent.objects.filter(action=action).order_by("seq")
    return list(qs.filter(object_id=str(user.pk)) if user is not None else qs)


# ---------------------------------------------------------------- success


def test_right_password_logs_in_and_is_audited(people, password, lockout):
    user = login_check(username="alice", password=password)
    assert user == people.alice
    user.refresh_from_db()
    assert user.last_login is not None
    [event] = events("auth.login", people.alice)
    assert event.outcome == Outcome.SUCCESS
    assert event.actor_id == people.alice.pk
    assert event.extra["channel"] == "web"


# ---------------------------------------------------------------- lockout


def test_five_consecutive_failures_lock_the_account_for_30_minutes(people, password, lockout):
    now = timezone.now()
    with at(now):
        for i in range(1, 5):
            failure = fail("alice")
            assert failure.code == "invalid"
            assert User.objects.get(pk=people.alice.pk).failed_login_count == i
        failure = fail("alice")
    assert failure.code == "locked"
    assert failure.locked_until == now + timedelta(minutes=30)
    alice = User.objects.get(pk=people.alice.pk)
    assert alice.locked_until == now + timedelta(minutes=30)
    assert alice.is_locked(now + timedelta(minutes=29, seconds=59))
    assert not alice.is_locked(now + timedelta(minutes=30))

    # the right password is refused while locked, and the refusal is audited
    with at(now + timedelta(minutes=29)):
        refused = fail("alice", password)
    assert refused.code == "locked"
    assert events("auth.login_failed", people.alice)[-1].outcome == Outcome.DENIED
    assert events("auth.login_failed", people.alice)[-1].extra["reason"] == "locked"
    assert not events("auth.login", people.alice)

    # the Django backend refuses it too (admin site, test client, anything using authenticate())
    with at(now + timedelta(minutes=29)):
        assert authenticate(username="alice", password=password) is None


def test_after_the_lock_period_the_right_password_works_and_the_counter_is_reset(people, password, lockout):
    now = timezone.now()
    with at(now):
        for _ in range(5):
            fail("alice")
    with at(now + timedelta(minutes=31)):
        assert authenticate(username="alice", password=password) == people.alice
        user = login_check(username="alice", password=password)
    user.refresh_from_db()
    assert user.failed_login_count == 0
    assert user.locked_until is None
    # a fresh start: four more failures do not lock
    for _ in range(4):
        assert fail("alice").code == "invalid"
    assert not User.objects.get(pk=people.alice.pk).is_locked()


def test_wrong_password_while_locked_does_not_extend_the_lock(people, lockout):
    now = timezone.now()
    with at(now):
        for _ in range(5):
            fail("alice")
    with at(now + timedelta(minutes=10)):
        for _ in range(10):
            assert fail("alice").code == "locked"
    assert User.objects.get(pk=people.alice.pk).locked_until == now + timedelta(minutes=30)


def test_a_success_resets_the_counter(people, password, lockout):
    for _ in range(4):
        fail("alice")
    login_check(username="alice", password=password)
    assert User.objects.get(pk=people.alice.pk).failed_login_count == 0
    for _ in range(4):
        assert fail("alice").code == "invalid"
    alice = User.objects.get(pk=people.alice.pk)
    assert not alice.is_locked()
    assert alice.failed_login_count == 4
    assert login_check(username="alice", password=password) == people.alice


@pytest.mark.parametrize("threshold,minutes", [(3, 10), (1, 1), (10, 120)])
def test_threshold_and_duration_are_settings(people, password, settings, threshold, minutes):
    settings.KEHU_LOCKOUT_THRESHOLD = threshold
    settings.KEHU_LOCKOUT_MINUTES = minutes
    now = timezone.now()
    with at(now):
        for _ in range(threshold - 1):
            assert fail("alice").code == "invalid"
        assert fail("alice").code == "locked"
    with at(now + timedelta(minutes=minutes) - timedelta(seconds=1)):
        assert fail("alice", password).code == "locked"
    with at(now + timedelta(minutes=minutes)):
        assert login_check(username="alice", password=password) == people.alice


def test_failures_are_counted_per_account(people, password, lockout):
    for _ in range(4):
        fail("alice")
        fail("amy")
    assert login_check(username="bob", password=password) == people.bob
    assert fail("alice").code == "locked"
    assert fail("amy").code == "locked"
    assert login_check(username="bob", password=password) == people.bob


def test_security_admin_unlocks(people, password, lockout):
    for _ in range(5):
        fail("alice")
    user_unlock(acting_user=people.secadmin, user=User.objects.get(pk=people.alice.pk))
    assert login_check(username="alice", password=password) == people.alice


def test_lockout_audit_rows(people, lockout):
    now = timezone.now()
    with at(now):
        for _ in range(5):
            fail("alice")
    failed = events("auth.login_failed", people.alice)
    assert [e.outcome for e in failed] == [Outcome.FAILURE] * 5
    assert [e.extra["consecutive_failures"] for e in failed] == [1, 2, 3, 4, 5]
    assert all(e.extra["reason"] == "wrong password" for e in failed)
    assert all(e.actor_id == people.alice.pk for e in failed)
    [lock] = events("auth.lockout", people.alice)
    assert lock.outcome == Outcome.DENIED
    assert lock.seq == failed[-1].seq + 1
    assert WRONG not in str(lock.extra) + "".join(str(e.extra) + str(e.changes) for e in failed)


# ---------------------------------------------------------------- unknown and inactive accounts


def test_unknown_username_fails_like_a_wrong_password_and_is_audited(people, lockout):
    wrong_password = fail("alice")
    unknown = fail("nobody")
    # nothing tells an attacker the account does not exist
    assert unknown.code == wrong_password.code == "invalid"
    assert unknown.message == wrong_password.message
    assert not User.objects.filter(username="nobody").exists()
    from kehu.accounts.services import unknown_username_fingerprint

    [event] = [
        e for e in events("auth.login_failed") if e.actor_username == unknown_username_fingerprint("nobody")
    ]
    assert event.actor_id is None
    assert event.outcome == Outcome.FAILURE
    assert event.object_id == ""
    assert WRONG not in str(event.extra)


def test_unknown_username_answers_exactly_like_a_real_account(people, password, lockout, settings):
    """Lockout must not reveal which usernames exist: an unknown name locks after the same failures."""
    real = [fail("alice").code for _ in range(settings.KEHU_LOCKOUT_THRESHOLD + 1)]
    unknown = [fail("nobody").code for _ in range(settings.KEHU_LOCKOUT_THRESHOLD + 1)]
    assert unknown == real == ["invalid"] * (settings.KEHU_LOCKOUT_THRESHOLD - 1) + ["locked", "locked"]
    assert fail("nobody").message.split(":")[0] == fail("alice").message.split(":")[0]
    assert not User.objects.filter(username="nobody").exists()


def test_inactive_user_cannot_log_in(people, password, lockout):
    User.objects.filter(pk=people.alice.pk).update(is_active=False)
    failure = fail("alice", password)
    assert failure.code == "invalid"
    assert failure.message == fail("nobody").message
    event = events("auth.login_failed", people.alice)[-1]
    assert event.outcome == Outcome.DENIED
    assert event.extra["reason"] == "inactive"
    assert authenticate(username="alice", password=password) is None
    assert not events("auth.login", people.alice)


def test_logout_is_audited(people):
    logout_record(acting_user=people.alice, reason="idle")
    [event] = events("auth.logout", people.alice)
    assert event.actor_id == people.alice.pk
    assert event.extra == {"reason": "idle"}


# ---------------------------------------------------------------- property: the counter's edges

counter = itertools.count()


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attempts=st.lists(st.booleans(), min_size=1, max_size=14),
    threshold=st.integers(min_value=1, max_value=5),
)
def test_lock_state_follows_a_simple_model(db, settings, attempts, threshold):
    """True = right password. Locked exactly when `threshold` failures came in a row since the last success."""
    settings.KEHU_LOCKOUT_THRESHOLD = threshold
    settings.KEHU_LOCKOUT_MINUTES = 30
    user = UserFactory(username=f"prop{next(counter)}")
    now = timezone.now()
    count, locked = 0, False
    with at(now):
        for right in attempts:
            if locked:
                expected = "locked"
            elif right:
                count, expected = 0, None
            else:
                count += 1
                if count >= threshold:
                    count, locked, expected = 0, True, "locked"
                else:
                    expected = "invalid"
            try:
                login_check(username=user.username, password="Test#Pass2026" if right else WRONG)
                got = None
            except LoginFailed as exc:
                got = exc.code
            assert got == expected
    user.refresh_from_db()
    assert user.is_locked(now) == locked
    assert user.failed_login_count == count
