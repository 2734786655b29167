"""Hardening found in review: what the trail keeps of failed logins, NUL bytes, the last security admin."""

from __future__ import annotations

import pytest
from django.db import connection

from kehu.accounts.models import RoleAssignment
from kehu.accounts.roles import Role
from kehu.accounts.services import LoginFailed, login_check, password_change, user_deactivate
from kehu.audit.models import AuditEvent
from kehu.audit.selectors import audit_chain_verify
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError
from kehu.testing.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.mark.parametrize("typed", ["wangli", "jn-lx-001.cm1", "Kehu@2026", "pass.word1", "我的 密码"])
def test_unknown_username_is_kept_only_as_a_keyed_fingerprint(typed):
    """A password typed into the username box must never reach the trail; repeated names still match."""
    from kehu.accounts.services import unknown_username_fingerprint

    for _ in range(2):
        with pytest.raises(LoginFailed):
            login_check(username=typed, password="whatever")
    first, second = AuditEvent.objects.filter(action="auth.login_failed").order_by("seq")
    assert first.actor_username == second.actor_username == unknown_username_fingerprint(typed)
    assert typed not in first.actor_username + str(first.extra) + first.object_repr
    assert unknown_username_fingerprint(typed) != unknown_username_fingerprint(typed + "x")


def test_nul_bytes_are_stored_visibly_on_every_database(people):
    audit_record(
        actor=people.alice, action="test.nul", object_repr="a\x00b", changes={"note": ["x\x00", "y"]}
    )
    event = AuditEvent.objects.get(action="test.nul")
    assert event.object_repr == "a\\x00b"
    assert event.changes == {"note": ["x\\x00", "y"]}
    assert audit_chain_verify().ok


def test_wrong_current_password_counts_towards_the_lockout(people, settings):
    settings.KEHU_LOCKOUT_THRESHOLD = 3
    alice = people.alice
    for _ in range(2):
        with pytest.raises(ServiceError) as excinfo:
            password_change(acting_user=alice, old_password="wrong", new_password="New#Pass2026")
        assert excinfo.value.code == "invalid"
    with pytest.raises(ServiceError) as excinfo:
        password_change(acting_user=alice, old_password="wrong", new_password="New#Pass2026")
    assert excinfo.value.code == "locked"
    with pytest.raises(LoginFailed) as failed:
        login_check(username="alice", password=TEST_PASSWORD)
    assert failed.value.code == "locked"
    assert AuditEvent.objects.filter(action="auth.lockout", actor_username="alice").count() == 1


# Sequentially the guard cannot be reached (only a security administrator acts, never on themselves);
# two administrators removing each other at the same moment is the case it exists for.
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are a PostgreSQL matter")
@pytest.mark.django_db(transaction=True)
def test_concurrent_mutual_removal_leaves_one_security_admin(org):
    import threading

    from django.db import connections

    first = UserFactory(username="sec_a", unit=org.province, roles=[Role.SECURITY_ADMIN])
    second = UserFactory(username="sec_b", unit=org.province, roles=[Role.SECURITY_ADMIN])
    barrier = threading.Barrier(2)
    outcomes = []

    def remove(actor, target):
        try:
            barrier.wait()
            user_deactivate(acting_user=actor, user=target)
            outcomes.append("ok")
        except ServiceError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=remove, args=(first, second)),
               threading.Thread(target=remove, args=(second, first))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    active = RoleAssignment.objects.filter(role=Role.SECURITY_ADMIN, user__is_active=True).count()
    assert active == 1


def test_security_admin_cannot_take_over_another_administrator(people, monkeypatch):
    from django.core.management import call_command

    from kehu.accounts.services import user_password_reset
    from kehu.core.errors import NotAllowed

    with pytest.raises(NotAllowed, match="kehu changepassword"):
        user_password_reset(acting_user=people.secadmin, user=people.auditor, new_password="Take#Over2026")
    monkeypatch.setenv("KEHU_ADMIN_PASSWORD", "Server#Reset2026")
    call_command("changepassword", "auditor", "--noinput")
    people.auditor.refresh_from_db()
    assert people.auditor.check_password("Server#Reset2026") and people.auditor.must_change_password
    event = AuditEvent.objects.get(action="user.password_reset", object_id=str(people.auditor.pk))
    assert event.channel == "cli" and event.actor_username == "(operator)"


def test_last_audit_and_system_administrators_stay(people):
    from kehu.accounts.services import role_revoke

    with pytest.raises(ServiceError, match="(?i)last active holder of the role “Audit administrator”"):
        user_deactivate(acting_user=people.secadmin, user=people.auditor)
    with pytest.raises(ServiceError, match="(?i)last active holder of the role “System administrator”"):
        role_revoke(acting_user=people.secadmin, user=people.sysadmin, role=Role.SYSTEM_ADMIN)
    second = UserFactory(username="audit2", unit=people.auditor.unit, roles=[Role.AUDIT_ADMIN])
    user_deactivate(acting_user=people.secadmin, user=people.auditor)  # another one is there now
    people.auditor.refresh_from_db()
    second.refresh_from_db()
    assert not people.auditor.is_active and second.is_active


@pytest.mark.parametrize(
    ("holder", "role"),
    [("auditor", Role.ANALYST), ("secadmin", Role.UNIT_HEAD), ("sysadmin", Role.CUSTOMER_MANAGER),
     ("head_a", Role.SYSTEM_ADMIN), ("alice", Role.AUDIT_ADMIN)],
)  # fmt: skip
def test_administrator_and_business_roles_never_mix(people, holder, role):
    from kehu.accounts.services import role_grant

    user = getattr(people, holder)
    acting = people.secadmin if holder != "secadmin" else UserFactory(roles=[Role.SECURITY_ADMIN])
    with pytest.raises(ServiceError) as excinfo:
        role_grant(acting_user=acting, user=user, role=role)
    assert excinfo.value.code == "separation_of_duties"
    assert not RoleAssignment.objects.filter(user=user, role=role).exists()


def test_a_stale_session_copy_cannot_undo_a_lockout(people, settings):
    from kehu.accounts.models import User

    settings.KEHU_LOCKOUT_THRESHOLD = 3
    stale = User.objects.get(pk=people.alice.pk)  # loaded by a request before the lock
    for _ in range(3):
        with pytest.raises(ServiceError):
            password_change(acting_user=User.objects.get(pk=people.alice.pk), old_password="wrong",
                            new_password="New#Pass2026")  # fmt: skip
    with pytest.raises(ServiceError) as excinfo:
        password_change(acting_user=stale, old_password="still-wrong", new_password="New#Pass2026")
    assert excinfo.value.code == "locked"
    assert User.objects.get(pk=people.alice.pk).is_locked()
    # even the right current password does not help while locked
    with pytest.raises(ServiceError) as excinfo:
        password_change(acting_user=stale, old_password=TEST_PASSWORD, new_password="New#Pass2026")
    assert excinfo.value.code == "locked"


def test_changing_the_password_revokes_api_tokens(people):
    from kehu.accounts.services import api_token_issue, api_token_user

    raw, _token = api_token_issue(username="alice", password=TEST_PASSWORD)
    assert api_token_user(raw) == people.alice
    password_change(acting_user=people.alice, old_password=TEST_PASSWORD, new_password="New#Pass2026")
    assert api_token_user(raw) is None
