"""The materialised-path tree: moves, its invariants under random edits, and scoping over it."""

from __future__ import annotations

import itertools

import pytest
from django.http import Http404
from django.utils import translation
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.errors import ServiceError
from kehu.core.scoping import DataScope, get_visible_or_404
from kehu.org.models import MAX_DEPTH, Unit, UnitType, path_segment
from kehu.org.selectors import unit_breadcrumbs, unit_children, unit_list, unit_roots
from kehu.org.services import unit_create, unit_move
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def reload(unit: Unit) -> Unit:
    return Unit.objects.get(pk=unit.pk)


def codes(qs) -> set[str]:
    return {u.code for u in qs}


def walk_up(unit: Unit, by_id: dict[int, Unit]) -> list[Unit]:
    """Ancestors by following parent links, nearest first."""
    chain, current = [], unit
    while current.parent_id is not None:
        current = by_id[current.parent_id]
        assert current.pk != unit.pk and len(chain) <= len(by_id), f"parent links of {unit} form a cycle"
        chain.append(current)
    return chain


def check_invariants() -> None:
    units = {u.pk: u for u in Unit.objects.all()}
    for u in units.values():
        parent = units.get(u.parent_id)
        assert u.path == (parent.path if parent else "") + path_segment(u.pk), u
        assert u.depth == (parent.depth + 1 if parent else 0), u
        ancestors = walk_up(u, units)
        assert [a.pk for a in Unit.objects.ancestors_of(u)] == [a.pk for a in reversed(ancestors)]
        below = {v.pk for v in units.values() if v.pk == u.pk or u in walk_up(v, units)}
        assert set(Unit.objects.subtree_of(u).values_list("pk", flat=True)) == below, u


# ---------------------------------------------------------------- moves


def test_move_carries_the_whole_subtree(people, org):
    deep = unit_create(acting_user=people.sysadmin, code="A1X", name="便利店", unit_type=org.types.station,
                       division_code="370102", parent=org.a1)  # fmt: skip
    moved = unit_move(acting_user=people.sysadmin, unit=reload(org.city_a), new_parent=reload(org.city_b))
    assert moved.parent_id == org.city_b.pk
    city_b = reload(org.city_b)
    assert codes(Unit.objects.subtree_of(city_b)) == {"CB", "B1", "CA", "A1", "A2", "A1X"}
    assert codes(Unit.objects.subtree_of(reload(org.city_a))) == {"CA", "A1", "A2", "A1X"}
    assert [u.code for u in Unit.objects.ancestors_of(reload(deep))] == ["P", "CB", "CA", "A1"]
    assert (reload(org.city_a).depth, reload(org.a1).depth, reload(deep).depth) == (2, 3, 4)
    assert reload(org.a2).path.startswith(city_b.path)
    check_invariants()
    event = AuditEvent.objects.get(action="unit.move")
    assert event.changes == {"parent": [org.province.pk, org.city_b.pk]}
    assert event.extra == {"subtree_size": 4}


def test_move_up_to_become_a_root(people, org):
    moved = unit_move(acting_user=people.sysadmin, unit=reload(org.city_a), new_parent=None)
    assert moved.parent is None and moved.depth == 0 and moved.path == path_segment(moved.pk)
    assert codes(Unit.objects.subtree_of(reload(org.province))) == {"P", "CB", "B1"}
    check_invariants()
    # and back again
    unit_move(acting_user=people.sysadmin, unit=moved, new_parent=reload(org.province))
    check_invariants()
    assert codes(Unit.objects.subtree_of(reload(org.province))) == {"P", "CA", "CB", "A1", "A2", "B1"}


def test_move_a_leaf_sideways(people, org):
    unit_move(acting_user=people.sysadmin, unit=reload(org.a2), new_parent=reload(org.city_b))
    assert codes(Unit.objects.subtree_of(reload(org.city_a))) == {"CA", "A1"}
    assert codes(Unit.objects.subtree_of(reload(org.city_b))) == {"CB", "B1", "A2"}
    check_invariants()


@pytest.mark.parametrize("target", ["city_a", "a1", "a2"])
def test_move_under_itself_or_a_descendant_is_refused(people, org, target):
    before = {u.pk: u.path for u in Unit.objects.all()}
    with pytest.raises(ServiceError) as exc:
        unit_move(
            acting_user=people.sysadmin, unit=reload(org.city_a), new_parent=reload(getattr(org, target))
        )
    assert exc.value.field == "parent"
    assert {u.pk: u.path for u in Unit.objects.all()} == before
    assert not AuditEvent.objects.exists()


def test_root_under_its_own_descendant_is_refused(people, org):
    with pytest.raises(ServiceError):
        unit_move(acting_user=people.sysadmin, unit=reload(org.province), new_parent=reload(org.b1))


def test_move_to_the_same_parent_is_a_no_op(people, org):
    before = {u.pk: (u.path, u.depth, u.updated_at) for u in Unit.objects.all()}
    unit_move(acting_user=people.sysadmin, unit=reload(org.city_a), new_parent=reload(org.province))
    unit_move(acting_user=people.sysadmin, unit=reload(org.province), new_parent=None)
    assert {u.pk: (u.path, u.depth, u.updated_at) for u in Unit.objects.all()} == before
    assert not AuditEvent.objects.exists()


def test_move_uses_the_database_state_not_a_stale_copy(people, org):
    stale_a1 = reload(org.a1)
    unit_move(acting_user=people.sysadmin, unit=reload(org.city_a), new_parent=reload(org.city_b))
    unit_move(acting_user=people.sysadmin, unit=stale_a1, new_parent=reload(org.a2))
    check_invariants()
    assert [u.code for u in Unit.objects.ancestors_of(reload(org.a1))] == ["P", "CB", "CA", "A2"]


def test_move_refused_when_the_subtree_would_be_too_deep(people, org):
    parent = org.a2
    while parent.depth + 1 < MAX_DEPTH:
        parent = unit_create(acting_user=people.sysadmin, code=f"D{parent.depth + 1}", name="层",
                             unit_type=org.types.station, division_code="370102", parent=parent)  # fmt: skip
    with pytest.raises(ServiceError) as exc:
        unit_move(acting_user=people.sysadmin, unit=reload(org.city_b), new_parent=parent)
    assert exc.value.field == "parent"
    # a single leaf still fits at the last level
    unit_move(acting_user=people.sysadmin, unit=reload(org.b1), new_parent=Unit.objects.get(code="D28"))
    assert reload(org.b1).depth == MAX_DEPTH - 1
    check_invariants()


def test_is_descendant_of_is_not_fooled_by_similar_ids(people, org):
    # fixed-width segments: unit 1's path is never a string prefix of unit 10's unless it is its ancestor
    for u in Unit.objects.all():
        for v in Unit.objects.all():
            assert v.is_descendant_of(u) == (u.pk in v.ancestor_ids())


# ---------------------------------------------------------------- property: random edits keep the tree sound

serial = itertools.count()

ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 30)),
        st.tuples(st.just("move"), st.integers(0, 30), st.integers(-1, 30)),
    ),
    min_size=1,
    max_size=14,
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])  # fmt: skip
@given(steps=ops)
def test_random_creates_and_moves_keep_the_invariants(db, steps):
    run = next(serial)
    admin = UserFactory(username=f"sys{run}", roles=[Role.SYSTEM_ADMIN])
    kind, _ = UnitType.objects.get_or_create(code="node", defaults={"name": "节点"})
    units = [
        unit_create(acting_user=admin, code=f"R{run}", name="根", unit_type=kind, division_code="370000")
    ]
    for step in steps:
        if step[0] == "create":
            parent = units[step[1] % len(units)]
            units.append(unit_create(acting_user=admin, code=f"N{run}-{len(units)}", name="节点", unit_type=kind,
                                     division_code="370000", parent=reload(parent)))  # fmt: skip
        else:
            unit = reload(units[step[1] % len(units)])
            target = None if step[2] < 0 else reload(units[step[2] % len(units)])
            refused = target is not None and (target.pk == unit.pk or target.path.startswith(unit.path))
            try:
                unit_move(acting_user=admin, unit=unit, new_parent=target)
            except ServiceError:
                assert refused
            else:
                assert not refused
                assert reload(unit).parent_id == (target.pk if target else None)
    check_invariants()


# ---------------------------------------------------------------- scoping over the tree


def person(org, unit, *grants, username=None):
    return UserFactory(username=username or f"p{next(serial)}", unit=unit, roles=list(grants))


def usernames(viewer) -> set[str]:
    return set(User.objects.visible_to(viewer).values_list("username", flat=True))


def unit_codes(viewer) -> set[str]:
    return codes(Unit.objects.visible_to(viewer))


class TestScopes:
    def test_own_scope(self, people, org):
        assert usernames(people.alice) == {"alice"}
        # units: one's own unit and the chain above it, never a sibling
        assert unit_codes(people.alice) == {"P", "CA", "A1"}

    def test_unit_scope(self, people, org):
        viewer = person(org, org.city_a, (Role.ANALYST, DataScope.UNIT), username="ana")
        assert usernames(viewer) == {"ana", "head_a"}
        assert unit_codes(viewer) == {"P", "CA"}

    def test_subtree_scope(self, people, org):
        assert usernames(people.head_a) == {"head_a", "alice", "amy", "stan"}
        assert unit_codes(people.head_a) == {"P", "CA", "A1", "A2"}
        assert usernames(people.station_mgr_a1) == {"alice", "amy", "stan"}
        assert unit_codes(people.head_p) == {"P", "CA", "CB", "A1", "A2", "B1"}

    def test_all_scope(self, people, org):
        viewer = person(org, org.b1, (Role.ANALYST, DataScope.ALL), username="ana")
        assert usernames(viewer) == set(User.objects.values_list("username", flat=True))
        assert unit_codes(viewer) == {"P", "CA", "CB", "A1", "A2", "B1"}

    def test_union_of_roles(self, people, org):
        viewer = person(org, org.a1, (Role.CUSTOMER_MANAGER, DataScope.OWN), username="cm")
        assert usernames(viewer) == {"cm"}
        RoleAssignment.objects.create(user=viewer, role=Role.ANALYST, scope=DataScope.UNIT)
        viewer.forget_roles()
        assert usernames(viewer) == {"cm", "alice", "amy", "stan"}
        RoleAssignment.objects.create(user=viewer, role=Role.MARKET_MANAGER, scope=DataScope.SUBTREE)
        viewer.forget_roles()
        assert usernames(viewer) == {"cm", "alice", "amy", "stan"}
        viewer.unit = org.city_b
        viewer.save()
        assert usernames(viewer) == {"cm", "bob"}
        assert unit_codes(viewer) == {"P", "CB", "B1"}

    def test_no_unit_with_subtree_scope_sees_only_self(self, people, org):
        nomad = person(org, None, (Role.UNIT_HEAD, DataScope.SUBTREE), username="nomad")
        RoleAssignment.objects.create(user=nomad, role=Role.ANALYST, scope=DataScope.UNIT)
        nomad.forget_roles()
        assert usernames(nomad) == {"nomad"}
        assert unit_codes(nomad) == set()

    def test_administrators(self, people, org):
        everybody = set(User.objects.values_list("username", flat=True))
        every_unit = {"P", "CA", "CB", "A1", "A2", "B1"}
        assert usernames(people.secadmin) == everybody
        assert unit_codes(people.secadmin) == every_unit
        assert unit_codes(people.sysadmin) == every_unit
        assert usernames(people.sysadmin) == {"sysadmin"}
        assert usernames(people.auditor) == {"auditor"}
        assert unit_codes(people.auditor) == {"P"}

    def test_inactive_sees_nothing(self, people, org):
        people.head_p.is_active = False
        assert usernames(people.head_p) == set() and unit_codes(people.head_p) == set()

    def test_scope_follows_a_move(self, people, org):
        unit_move(acting_user=people.sysadmin, unit=reload(org.a2), new_parent=reload(org.city_b))
        head_a = User.objects.get(pk=people.head_a.pk)
        assert unit_codes(head_a) == {"P", "CA", "A1"}
        bob = User.objects.get(pk=people.bob.pk)
        viewer = person(org, org.city_b, (Role.UNIT_HEAD, DataScope.SUBTREE), username="head_b")
        assert unit_codes(viewer) == {"P", "CB", "B1", "A2"}
        assert "bob" in usernames(viewer) and usernames(bob) == {"bob"}

    def test_out_of_scope_person_is_404(self, people, org):
        with pytest.raises(Http404):
            get_visible_or_404(User, people.bob, pk=people.alice.pk)
        with pytest.raises(Http404):
            get_visible_or_404(User, people.head_a, pk=people.bob.pk)
        assert get_visible_or_404(User, people.head_a, pk=people.alice.pk) == people.alice
        assert get_visible_or_404(User, people.alice, pk=people.alice.pk) == people.alice

    def test_selectors_go_through_scope(self, people, org):
        assert codes(unit_list(viewer=people.bob)) == {"P", "CB", "B1"}
        assert codes(unit_list(viewer=people.head_p, within=org.city_a)) == {"CA", "A1", "A2"}
        assert codes(unit_list(viewer=people.bob, within=org.city_a)) == set()
        assert [u.code for u in unit_roots(viewer=people.head_a)] == ["P"]
        assert codes(unit_children(viewer=people.head_a, parent=org.province)) == {"CA"}
        assert [u.code for u in unit_breadcrumbs(viewer=people.alice, unit=org.a1)] == ["P", "CA", "A1"]
