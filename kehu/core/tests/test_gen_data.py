"""``kehu gen-data``: seeded synthetic organisations for benchmarks."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.divisions import is_known_division
from kehu.core.errors import ServiceError
from kehu.core.gendata import generate_org, level_sizes, level_types
from kehu.org.models import Unit, path_segment


@pytest.mark.parametrize("depth", [2, 3, 5, 7])
def test_level_sizes_add_up_and_grow(depth):
    for units in range(depth, 400, 7):
        sizes = level_sizes(units, depth)
        assert len(sizes) == depth and sizes[0] == 1 and sum(sizes) == units
        assert all(a <= b for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    assert level_sizes(20000, 5) == [1, 12, 135, 1572, 18280]
    assert len(level_types(depth)) == depth


def test_level_sizes_refuses_impossible_shapes():
    with pytest.raises(ServiceError):
        level_sizes(3, 5)
    with pytest.raises(ServiceError):
        level_sizes(100, 1)


@pytest.mark.django_db
def test_small_run_counts_paths_and_audit():
    result = generate_org(units=300, people_per_leaf=1.5, seed=3, prefix="T")
    units = {u.pk: u for u in Unit.objects.filter(code__startswith="T-")}
    assert len(units) == result.units == 300
    assert sum(result.level_sizes) == 300
    leaves = [u for u in units.values() if u.depth == 4]
    assert len(leaves) == result.level_sizes[-1]
    non_leaves = [u for u in units.values() if u.depth < 4]
    children = {u.parent_id for u in units.values()}
    assert all(u.pk in children for u in non_leaves)  # every leaf sits on the last level
    assert not any(u.pk in children for u in leaves)
    for unit in units.values():
        parent = units.get(unit.parent_id)
        assert unit.path == (parent.path if parent else "") + path_segment(unit.pk)
        assert unit.depth == (parent.depth + 1 if parent else 0)
        assert is_known_division(unit.division_code), unit
        assert unit.unit_type.rank == unit.depth

    users = User.objects.filter(username__startswith="t-")
    expected_cms = int(len(leaves) * 1.5)
    assert users.count() == result.users == len(non_leaves) + expected_cms
    assert RoleAssignment.objects.filter(user__in=users).count() == result.role_assignments == result.users
    assert RoleAssignment.objects.filter(user__in=users, role=Role.UNIT_HEAD).count() == len(non_leaves)
    assert (
        RoleAssignment.objects.filter(user__in=users, role=Role.CUSTOMER_MANAGER, scope="own").count()
        == expected_cms
    )
    assert users.values("password").distinct().count() == 1
    assert users.first().check_password("Kehu@2026")

    event = AuditEvent.objects.get(action="gen_data.run")
    assert event.extra["units"] == 300 and event.extra["seed"] == 3 and event.extra["users"] == result.users

    # A city head sees exactly their subtree through the one scoping point.
    head = User.objects.get(username="t-1-000000.1")
    city = head.unit
    assert Unit.objects.visible_to(head).filter(depth__gte=1).count() == Unit.objects.subtree_of(city).count()


@pytest.mark.django_db
def test_same_seed_same_data_other_seed_other_data():
    def snapshot(prefix):
        units = [
            (u.code.removeprefix(prefix), u.name, u.division_code, u.depth)
            for u in Unit.objects.filter(code__startswith=f"{prefix}-").order_by("code")
        ]
        people = [
            (u.username.removeprefix(prefix.lower()), u.full_name, u.phone, u.manager_grade)
            for u in User.objects.filter(username__startswith=f"{prefix.lower()}-").order_by("username")
        ]
        return units, people

    generate_org(units=120, people_per_leaf=1.0, seed=7, prefix="A")
    generate_org(units=120, people_per_leaf=1.0, seed=7, prefix="B")
    generate_org(units=120, people_per_leaf=1.0, seed=8, prefix="C")
    assert snapshot("A") == snapshot("B")
    assert snapshot("A")[0] != snapshot("C")[0]
    assert [u[0] for u in snapshot("A")[0]] == [u[0] for u in snapshot("C")[0]]  # same shape


@pytest.mark.django_db
def test_refuses_a_second_run_with_the_same_prefix():
    generate_org(units=30, people_per_leaf=1.0, seed=1, prefix="R")
    with pytest.raises(ServiceError, match="R-"):
        generate_org(units=30, people_per_leaf=1.0, seed=2, prefix="R")
    with pytest.raises(CommandError, match="--prefix"):
        call_command("gen_data", "--units", "30", "--prefix", "R", stdout=io.StringIO())
    assert Unit.objects.filter(code__startswith="R-").count() == 30
    assert AuditEvent.objects.filter(action="gen_data.run").count() == 1


@pytest.mark.django_db
def test_command_prints_counts():
    out = io.StringIO()
    with translation.override("en"):  # the output is asserted in English, the source language
        call_command("gen_data", "--units", "50", "--depth", "3", "--people-per-unit", "2", "--prefix", "C",
                     "--seed", "5", stdout=out)  # fmt: skip
    text = out.getvalue()
    assert "Generated 50 units" in text and "seed 5" in text
    assert Unit.objects.filter(code__startswith="C-").count() == 50
    assert set(Unit.objects.filter(code__startswith="C-").values_list("unit_type__code", flat=True)) == {
        "province", "city", "station",
    }  # fmt: skip


@pytest.mark.django_db
def test_bad_options_are_refused():
    with pytest.raises(CommandError):
        call_command("gen_data", "--units", "10", "--prefix", "bad prefix", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("gen_data", "--units", "10", "--people-per-unit", "-1", stdout=io.StringIO())
    assert not Unit.objects.exists()
