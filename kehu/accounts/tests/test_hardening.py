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


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("wangli", "wangli"),
        ("jn-lx-001.cm1", "jn-lx-001.cm1"),
        ("Kehu@2026", "(hidden: not a username)"),  # a password typed into the username box
        ("我的 密码", "(hidden: not a username)"),
    ],
)
def test_unknown_username_is_kept_only_when_it_looks_like_one(typed, kept):
    with pytest.raises(LoginFailed):
        login_check(username=typed, password="whatever")
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.actor_username == kept
    assert "Kehu@2026" not in str(event.extra) + event.actor_username


def test_nul_bytes_are_stored_visibly_on_every_database(people):
    audit_record(actor=people.alice, action="test.nul", object_repr="a\x00b", changes={"note": ["x\x00", "y"]})
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
