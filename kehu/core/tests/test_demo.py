"""``kehu demo``: the demo province loads completely, consistently and idempotently."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import translation

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import ADMIN_ROLES, ManagerGrade, Role
from kehu.accounts.services import bootstrap_security_admin, login_check, password_expired
from kehu.audit.models import AuditEvent
from kehu.core.demo import DEMO_PASSWORD, DEMO_URL, LOGIN_TABLE, demo_load, demo_plan
from kehu.core.divisions import is_known_division
from kehu.org.models import Unit, UnitType, path_segment

pytestmark = pytest.mark.django_db


def table_counts() -> dict[str, int]:
    return {
        "unit_types": UnitType.objects.count(),
        "units": Unit.objects.count(),
        "users": User.objects.count(),
        "roles": RoleAssignment.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_plan_is_deterministic_and_unique():
    units, people = demo_plan()
    assert (units, people) == demo_plan()
    assert len({u.code for u in units}) == len(units)
    assert len({p.username for p in people}) == len(people)
    for unit in units:
        assert is_known_division(unit.division_code), unit
    assert {p.username for p in people} >= {name for _role, name in LOGIN_TABLE}


def test_demo_loads_a_complete_province():
    result = demo_load()
    assert result.changed and result.seconds > 0

    by_type = Counter(Unit.objects.values_list("unit_type__code", flat=True))
    assert by_type["province"] == 1
    assert by_type["city"] >= 5
    assert by_type["station"] >= 80
    for city in Unit.objects.filter(unit_type__code="city"):
        assert 2 <= city.children.count() <= 4, city
        assert city.people.filter(role_assignments__role=Role.UNIT_HEAD).count() == 1
        assert city.people.filter(role_assignments__role=Role.MARKET_MANAGER, position="市场经理").exists()
        assert city.people.filter(role_assignments__role=Role.ANALYST).exists()
    for area in Unit.objects.filter(unit_type__code="area"):
        assert area.people.filter(role_assignments__role=Role.AREA_MANAGER).count() == 1
        assert area.children.exists()
    for station in Unit.objects.filter(unit_type__code="station").prefetch_related(
        "people__role_assignments"
    ):
        roles = Counter(a.role for p in station.people.all() for a in p.role_assignments.all())
        assert roles[Role.STATION_MANAGER] == 1, station
        assert 1 <= roles[Role.CUSTOMER_MANAGER] <= 3, station
        assert station.name.endswith("加油站")

    # Every role is held by an active account; customer managers carry all four grades.
    held = set(RoleAssignment.objects.filter(user__is_active=True).values_list("role", flat=True))
    assert held == set(Role.values)
    grades = set(
        User.objects.filter(role_assignments__role=Role.CUSTOMER_MANAGER).values_list(
            "manager_grade", flat=True
        )
    )
    assert grades == set(ManagerGrade.values)
    assert set(
        User.objects.filter(role_assignments__role=Role.CUSTOMER_MANAGER).values_list("position", flat=True)
    ) == {"客户经理"}

    # The three administrators are three different accounts, each holding only their own role.
    admins = {role: list(User.objects.filter(role_assignments__role=role)) for role in ADMIN_ROLES}
    assert [u.username for u in admins[Role.SYSTEM_ADMIN]] == ["sysadmin"]
    assert [u.username for u in admins[Role.SECURITY_ADMIN]] == ["secadmin"]
    assert [u.username for u in admins[Role.AUDIT_ADMIN]] == ["auditor"]
    for users in admins.values():
        assert users[0].role_names() == {r for r in ADMIN_ROLES if users[0] in admins[r]}
        assert len(users[0].role_names()) == 1

    # Division codes are real, and a station's code lies in its city's.
    for unit in Unit.objects.select_related("parent__parent"):
        assert is_known_division(unit.division_code), unit
        if unit.unit_type.code == "station":
            assert unit.division_code[:4] == unit.parent.parent.division_code[:4]

    # Materialised paths exactly as the org services write them.
    units = {u.pk: u for u in Unit.objects.all()}
    for unit in units.values():
        parent = units.get(unit.parent_id)
        assert unit.path == (parent.path if parent else "") + path_segment(unit.pk)
        assert unit.depth == (parent.depth + 1 if parent else 0)

    # People came through the services: audited, one role grant each; the password step is audited once.
    users = User.objects.count()
    assert AuditEvent.objects.filter(action="user.create").count() == users
    assert AuditEvent.objects.filter(action="role.grant").count() == users
    assert AuditEvent.objects.filter(action="unit.create").count() == Unit.objects.count()
    assert AuditEvent.objects.filter(action="demo.load").count() == 1
    # One hash for everyone (hashed once), no forced change at first login.
    assert User.objects.values("password").distinct().count() == 1
    assert not User.objects.filter(must_change_password=True).exists()


def test_every_printed_login_works():
    result = demo_load()
    assert [x.username for x in result.logins] == [name for _role, name in LOGIN_TABLE]
    assert {x.role for x in result.logins} == set(Role.values)
    for login in result.logins:
        user = User.objects.get(username=login.username)
        assert user.has_role(login.role)
        assert user.check_password(DEMO_PASSWORD)
        assert not password_expired(user)
        assert user.full_name == login.full_name
        assert login_check(username=login.username, password=DEMO_PASSWORD).pk == user.pk


def test_running_twice_changes_nothing():
    quiet = io.StringIO()
    call_command("demo", "--quiet", stdout=quiet)
    assert quiet.getvalue() == ""
    before = table_counts()
    hashes = dict(User.objects.values_list("username", "password"))
    out = io.StringIO()
    with translation.override("en"):  # the output is asserted in English, the source language
        call_command("demo", stdout=out)
    assert table_counts() == before
    assert dict(User.objects.values_list("username", "password")) == hashes
    text = out.getvalue()
    assert "nothing changed" in text
    for _role, username in LOGIN_TABLE:
        assert username in text
    assert DEMO_PASSWORD in text and DEMO_URL in text


def test_loads_next_to_an_existing_security_admin():
    """A deployment that already ran `kehu createsuperuser`: that administrator creates the demo people."""
    first = bootstrap_security_admin(username="admin0", full_name="首任管理员", password="Fi#rst2026x")
    result = demo_load()
    assert User.objects.get(username="secadmin").has_role(Role.SECURITY_ADMIN)
    created_by_first = AuditEvent.objects.filter(action="user.create", actor_id=first.pk).values_list(
        "object_repr", flat=True
    )
    assert any("secadmin" in r for r in created_by_first)
    assert {x.username for x in result.logins} >= {"secadmin", "sysadmin", "auditor"}
    # The existing account keeps its own password and its forced change.
    first.refresh_from_db()
    assert first.must_change_password and not first.check_password(DEMO_PASSWORD)
