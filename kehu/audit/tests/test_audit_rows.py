"""Every audited action writes its row — who, what, on which object, with what outcome, from where."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.utils import translation

from kehu.accounts.models import User
from kehu.accounts.roles import Role
from kehu.accounts.services import (
    LoginFailed,
    login_check,
    logout_record,
    password_change,
    role_grant,
    role_revoke,
    user_create,
    user_deactivate,
    user_password_reset,
    user_reactivate,
    user_unlock,
    user_update,
)
from kehu.audit.models import AuditEvent, Outcome
from kehu.audit.selectors import audit_chain_verify
from kehu.core.context import request_context
from kehu.core.errors import ServiceError
from kehu.core.scoping import DataScope
from kehu.org.models import Unit
from kehu.org.services import unit_create, unit_delete, unit_move, unit_set_active, unit_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@dataclass
class Case:
    action: str
    run: Callable  # (cast) -> the object the event is about
    actor: str | None  # attribute of `people`; None: no user
    outcome: str = Outcome.SUCCESS
    changes: Callable | None = None  # (cast, obj) -> expected changes (subset check)
    setup: Callable | None = None


class Cast:
    def __init__(self, people, org, password, settings):
        self.people, self.org, self.password, self.settings = people, org, password, settings

    def user(self, name: str) -> User:
        return User.objects.get(pk=getattr(self.people, name).pk)


def _fail(fn):
    try:
        fn()
    except LoginFailed:
        pass


def _lock(c: Cast):
    c.settings.KEHU_LOCKOUT_THRESHOLD = 1
    _fail(lambda: login_check(username="alice", password="Wrong#Pass2026"))
    return c.people.alice


def _change_scope(c: Cast):
    role_grant(acting_user=c.people.secadmin, user=c.user("alice"), role=Role.CUSTOMER_MANAGER,
               scope=DataScope.UNIT)  # fmt: skip
    return c.people.alice


def _new_unit(c: Cast):
    return unit_create(acting_user=c.people.sysadmin, code="A3", name="新站", unit_type=c.org.types.station,
                       division_code="370104", parent=c.org.city_a)  # fmt: skip


def _deactivated_a2(c: Cast):
    unit_set_active(acting_user=c.people.sysadmin, unit=c.org.a2, active=False)


def _delete_a2(c: Cast):
    unit = Unit.objects.get(pk=c.org.a2.pk)
    pk = unit.pk
    unit_delete(acting_user=c.people.sysadmin, unit=unit)
    assert not Unit.objects.filter(pk=pk).exists()
    unit.pk = pk  # Django clears it on delete; the event still names the unit
    return unit


CASES = [
    Case("auth.login", lambda c: login_check(username="alice", password=c.password), "alice"),
    Case("auth.logout", lambda c: (logout_record(acting_user=c.people.alice), c.people.alice)[1], "alice"),
    Case("auth.login_failed",
         lambda c: (_fail(lambda: login_check(username="alice", password="Wrong#Pass2026")), c.people.alice)[1],
         "alice", Outcome.FAILURE),
    Case("auth.lockout", _lock, "alice", Outcome.DENIED),
    Case("role.grant",
         lambda c: (role_grant(acting_user=c.people.secadmin, user=c.user("bob"), role=Role.ANALYST),
                    c.people.bob)[1],
         "secadmin", changes=lambda c, o: {"role": Role.ANALYST, "scope": DataScope.SUBTREE}),
    Case("role.revoke",
         lambda c: (role_revoke(acting_user=c.people.secadmin, user=c.user("bob"), role=Role.CUSTOMER_MANAGER),
                    c.people.bob)[1],
         "secadmin", changes=lambda c, o: {"role": Role.CUSTOMER_MANAGER}),
    Case("role.change_scope", _change_scope, "secadmin",
         changes=lambda c, o: {"role": Role.CUSTOMER_MANAGER, "scope": [DataScope.OWN, DataScope.UNIT]}),
    Case("user.create",
         lambda c: user_create(acting_user=c.people.secadmin, username="zhao", full_name="赵强",
                               password="Temp#Start2026", unit=c.org.a1),
         "secadmin", changes=lambda c, o: {"username": "zhao", "full_name": "赵强", "unit": c.org.a1.pk,
                                           "is_active": True}),
    Case("user.update",
         lambda c: user_update(acting_user=c.people.secadmin, user=c.user("bob"), position="站长助理"),
         "secadmin", changes=lambda c, o: {"position": ["", "站长助理"]}),
    Case("user.deactivate",
         lambda c: user_deactivate(acting_user=c.people.secadmin, user=c.user("bob")),
         "secadmin", changes=lambda c, o: {"is_active": [True, False]}),
    Case("user.reactivate",
         lambda c: user_reactivate(acting_user=c.people.secadmin, user=c.user("bob")),
         "secadmin", changes=lambda c, o: {"is_active": [False, True]},
         setup=lambda c: User.objects.filter(pk=c.people.bob.pk).update(is_active=False)),
    Case("user.unlock", lambda c: user_unlock(acting_user=c.people.secadmin, user=c.user("bob")), "secadmin"),
    Case("user.password_reset",
         lambda c: (user_password_reset(acting_user=c.people.secadmin, user=c.user("bob"),
                                        new_password="Temp#Start2026"), c.people.bob)[1],
         "secadmin"),
    Case("auth.password_change",
         lambda c: (password_change(acting_user=c.user("bob"), old_password=c.password,
                                    new_password="Fresh#Start2027"), c.people.bob)[1],
         "bob"),
    Case("unit.create", _new_unit, "sysadmin",
         changes=lambda c, o: {"code": "A3", "name": "新站", "parent": c.org.city_a.pk, "path": o.path}),
    Case("unit.update",
         lambda c: unit_update(acting_user=c.people.sysadmin, unit=c.org.a2, name="市中心加油站"),
         "sysadmin", changes=lambda c, o: {"name": ["市中加油站", "市中心加油站"]}),
    Case("unit.move",
         lambda c: unit_move(acting_user=c.people.sysadmin, unit=c.org.a2, new_parent=c.org.city_b),
         "sysadmin", changes=lambda c, o: {"parent": [c.org.city_a.pk, c.org.city_b.pk]}),
    Case("unit.deactivate",
         lambda c: unit_set_active(acting_user=c.people.sysadmin, unit=c.org.a2, active=False),
         "sysadmin", changes=lambda c, o: {"is_active": [True, False]}),
    Case("unit.activate",
         lambda c: unit_set_active(acting_user=c.people.sysadmin, unit=Unit.objects.get(pk=c.org.a2.pk),
                                   active=True),
         "sysadmin", changes=lambda c, o: {"is_active": [False, True]}, setup=_deactivated_a2),
    Case("unit.delete", _delete_a2,
         "sysadmin", changes=lambda c, o: {"code": "A2", "name": "市中加油站", "parent": c.org.city_a.pk}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.action for c in CASES])
def test_action_writes_its_audit_row(people, org, password, settings, case):
    cast = Cast(people, org, password, settings)
    if case.setup:
        case.setup(cast)
    start = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    with request_context(ip="203.0.113.7", user_agent="Mozilla/5.0 (pytest)", channel="web"):
        obj = case.run(cast)
    new = list(AuditEvent.objects.filter(seq__gt=start).order_by("seq"))
    matching = [e for e in new if e.action == case.action]
    assert len(matching) == 1, [e.action for e in new]
    event = matching[0]

    actor = getattr(people, case.actor)
    assert event.actor_id == actor.pk
    assert event.actor_username == actor.username
    assert event.outcome == case.outcome
    assert event.object_type == obj._meta.label_lower
    assert event.object_id == str(obj.pk)
    assert event.object_repr
    assert (event.ip, event.user_agent, event.channel) == ("203.0.113.7", "Mozilla/5.0 (pytest)", "web")
    if case.changes:
        expected = case.changes(cast, obj)
        assert {k: event.changes.get(k) for k in expected} == expected
    assert audit_chain_verify().ok


def test_failed_login_of_an_unknown_name_is_audited_without_an_account(people):
    with pytest.raises(LoginFailed):
        login_check(username="mallory", password="Guess#2026")
    event = AuditEvent.objects.get(action="auth.login_failed")
    from kehu.accounts.services import unknown_username_fingerprint

    assert (event.actor_id, event.actor_username, event.object_id) == (
        None,
        unknown_username_fingerprint("mallory"),
        "",
    )
    assert event.outcome == Outcome.FAILURE


def test_audit_row_belongs_to_the_callers_transaction(people):
    """A change rolled back takes its audit row with it, and the chain stays whole."""
    bob = User.objects.get(pk=people.bob.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        user_update(acting_user=people.secadmin, user=bob, phone="13700000000")
        assert AuditEvent.objects.filter(action="user.update").exists()
        raise RuntimeError("boom")
    assert not AuditEvent.objects.filter(action="user.update").exists()
    assert User.objects.get(pk=bob.pk).phone == ""
    user_update(acting_user=people.secadmin, user=User.objects.get(pk=bob.pk), phone="13700000001")
    result = audit_chain_verify()
    assert result.ok and result.checked == 1


def test_refused_actions_write_no_success_row(people, org):
    with pytest.raises(ServiceError):
        unit_delete(acting_user=people.sysadmin, unit=org.a1)  # has people
    with pytest.raises(ServiceError):
        unit_set_active(acting_user=people.sysadmin, unit=org.city_a, active=False)  # active children
    with pytest.raises(ServiceError):
        role_grant(acting_user=people.secadmin, user=people.sysadmin, role=Role.AUDIT_ADMIN)
    with pytest.raises(ServiceError):
        user_update(acting_user=people.auditor, user=people.bob, phone="1")
    assert not AuditEvent.objects.exists()
