"""Organisation services: create, update, (de)activate, delete, unit types — validation and permissions."""

from __future__ import annotations

import pytest
from django.utils import translation

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.org.models import MAX_DEPTH, Unit, UnitType, path_segment
from kehu.org.services import (
    unit_create,
    unit_delete,
    unit_move,
    unit_set_active,
    unit_type_create,
    unit_update,
)
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def reload(unit: Unit) -> Unit:
    return Unit.objects.get(pk=unit.pk)


def create(people, org, **overrides) -> Unit:
    fields = dict(acting_user=people.sysadmin, code="A3", name="经十路加油站", unit_type=org.types.station,
                  division_code="370104", parent=org.city_a)  # fmt: skip
    fields.update(overrides)
    return unit_create(**fields)


# ---------------------------------------------------------------- create


def test_create_places_the_unit_in_the_tree(people, org):
    unit = reload(create(people, org))
    assert unit.parent == org.city_a
    assert unit.path == org.city_a.path + path_segment(unit.pk)
    assert unit.depth == org.city_a.depth + 1 == 2
    assert unit.is_active
    assert unit in Unit.objects.subtree_of(org.city_a)
    assert list(Unit.objects.ancestors_of(unit)) == [org.province, org.city_a]
    event = AuditEvent.objects.get(action="unit.create")
    assert event.changes["path"] == unit.path and event.changes["code"] == "A3"


def test_create_a_root(people, org):
    root = reload(create(people, org, code="GD", name="广东销售公司", division_code="440000", parent=None))
    assert root.parent is None and root.depth == 0 and root.path == path_segment(root.pk)


def test_create_strips_and_keeps_the_code(people, org):
    assert create(people, org, code="  A3 ", name="  站 ").code == "A3"
    assert reload(Unit.objects.get(code="A3")).name == "站"


@pytest.mark.parametrize("code", ["A1", "P", "CB"])
def test_create_refuses_a_taken_code(people, org, code):
    with pytest.raises(ServiceError) as exc:
        create(people, org, code=code)
    assert exc.value.field == "code"
    assert "taken" in exc.value.message and code in exc.value.message
    assert Unit.objects.count() == 6


@pytest.mark.parametrize("code", ["", "   ", "A 3", "X" * 33, "A\t3"])
def test_create_refuses_a_bad_code(people, org, code):
    with pytest.raises(ServiceError) as exc:
        create(people, org, code=code)
    assert exc.value.field == "code"


def test_code_of_32_characters_is_fine(people, org):
    assert create(people, org, code="X" * 32).code == "X" * 32


@pytest.mark.parametrize("division", ["", "3701", "37010a", "3701040", " 370104x"])
def test_create_refuses_a_malformed_division_code(people, org, division):
    with pytest.raises(ServiceError) as exc:
        create(people, org, division_code=division)
    assert exc.value.field == "division_code"
    assert "must be 6 digits" in exc.value.message


@pytest.mark.parametrize("division", ["999999", "370199", "000000"])
def test_create_refuses_an_unknown_division_code(people, org, division):
    with pytest.raises(ServiceError) as exc:
        create(people, org, division_code=division)
    assert exc.value.field == "division_code"
    assert f"“{division}” is not a known GB/T 2260 administrative division code" in exc.value.message


def test_create_accepts_a_padded_division_code(people, org):
    assert create(people, org, division_code=" 370104 ").division_code == "370104"


@pytest.mark.parametrize("name", ["", "   ", None])
def test_create_needs_a_name(people, org, name):
    with pytest.raises(ServiceError) as exc:
        create(people, org, name=name)
    assert exc.value.field == "name"


def test_create_stops_at_the_maximum_depth(people, org):
    parent = org.a1
    while parent.depth + 1 < MAX_DEPTH:
        parent = create(people, org, code=f"D{parent.depth + 1}", name="层", parent=parent)
    assert parent.depth == MAX_DEPTH - 1
    assert len(reload(parent).path) == Unit._meta.get_field("path").max_length
    with pytest.raises(ServiceError) as exc:
        create(people, org, code="TOO_DEEP", name="层", parent=parent)
    assert exc.value.field == "parent"


# ---------------------------------------------------------------- update


def test_update_changes_fields_and_audits_the_difference(people, org):
    unit = unit_update(acting_user=people.sysadmin, unit=reload(org.a2), name="市中心站", code="A2X",
                       division_code="370103")  # fmt: skip
    assert (reload(unit).name, reload(unit).code) == ("市中心站", "A2X")
    event = AuditEvent.objects.get(action="unit.update")
    assert event.changes == {"name": ["市中加油站", "市中心站"], "code": ["A2", "A2X"]}


def test_update_without_a_change_writes_nothing(people, org):
    unit_update(acting_user=people.sysadmin, unit=reload(org.a2), name="市中加油站", code="A2")
    assert not AuditEvent.objects.exists()


def test_update_validates(people, org):
    a2 = reload(org.a2)
    for fields, field in [({"code": "A1"}, "code"), ({"code": "A 2"}, "code"), ({"name": " "}, "name"),
                          ({"division_code": "999999"}, "division_code")]:  # fmt: skip
        with pytest.raises(ServiceError) as exc:
            unit_update(acting_user=people.sysadmin, unit=a2, **fields)
        assert exc.value.field == field
    for fields in ({"parent": org.city_b}, {"path": "0"}, {"depth": 0}, {"is_active": False}):
        with pytest.raises(ServiceError):
            unit_update(acting_user=people.sysadmin, unit=a2, **fields)
    assert reload(org.a2).code == "A2" and reload(org.a2).parent == org.city_a


def test_update_may_keep_its_own_code(people, org):
    unit_update(acting_user=people.sysadmin, unit=reload(org.a2), code="A2", name="新名")
    assert reload(org.a2).name == "新名"


def test_update_with_a_stale_copy_does_not_undo_a_move(people, org):
    """An edit of a copy loaded before its branch moved must not write the old path back."""
    stale_a1 = reload(org.a1)
    unit_move(acting_user=people.sysadmin, unit=reload(org.city_a), new_parent=org.city_b)
    unit_update(acting_user=people.sysadmin, unit=stale_a1, name="历下站")
    a1, city_a = reload(org.a1), reload(org.city_a)
    assert a1.name == "历下站"
    assert a1.path == city_a.path + path_segment(a1.pk)
    assert a1.depth == 3
    assert a1 in Unit.objects.subtree_of(reload(org.city_b))


# ---------------------------------------------------------------- activate / deactivate


def test_deactivate_refused_while_sub_units_are_active(people, org):
    with pytest.raises(ServiceError, match="Deactivate the active sub-units"):
        unit_set_active(acting_user=people.sysadmin, unit=reload(org.city_a), active=False)
    assert reload(org.city_a).is_active
    unit_set_active(acting_user=people.sysadmin, unit=reload(org.a1), active=False)
    unit_set_active(acting_user=people.sysadmin, unit=reload(org.a2), active=False)
    unit_set_active(acting_user=people.sysadmin, unit=reload(org.city_a), active=False)
    assert not reload(org.city_a).is_active
    assert [e.action for e in AuditEvent.objects.order_by("seq")] == ["unit.deactivate"] * 3


def test_reactivate_refused_under_an_inactive_parent(people, org):
    for unit in (org.a1, org.a2, org.city_a):
        unit_set_active(acting_user=people.sysadmin, unit=reload(unit), active=False)
    with pytest.raises(ServiceError, match="Reactivate the parent unit"):
        unit_set_active(acting_user=people.sysadmin, unit=reload(org.a1), active=True)
    assert not reload(org.a1).is_active
    unit_set_active(acting_user=people.sysadmin, unit=reload(org.city_a), active=True)
    unit_set_active(acting_user=people.sysadmin, unit=reload(org.a1), active=True)
    assert reload(org.a1).is_active
    assert AuditEvent.objects.filter(action="unit.activate").count() == 2


def test_setting_the_same_state_is_a_no_op(people, org):
    unit_set_active(acting_user=people.sysadmin, unit=reload(org.a2), active=True)
    assert not AuditEvent.objects.exists()


def test_a_root_can_be_reactivated(people, org):
    root = create(people, org, code="GD", name="广东", division_code="440000", parent=None)
    unit_set_active(acting_user=people.sysadmin, unit=root, active=False)
    unit_set_active(acting_user=people.sysadmin, unit=reload(root), active=True)
    assert reload(root).is_active


# ---------------------------------------------------------------- delete


def test_delete_an_empty_leaf(people, org):
    unit = create(people, org)
    unit_delete(acting_user=people.sysadmin, unit=reload(unit))
    assert not Unit.objects.filter(code="A3").exists()
    event = AuditEvent.objects.get(action="unit.delete")
    assert event.changes["code"] == "A3"


def test_delete_refused_while_people_belong_to_it(people, org):
    with pytest.raises(ServiceError) as exc:
        unit_delete(acting_user=people.sysadmin, unit=reload(org.a1))
    assert "only deactivated" in exc.value.message
    assert "users" in exc.value.message
    assert Unit.objects.filter(pk=org.a1.pk).exists()
    assert not AuditEvent.objects.exists()


def test_delete_refused_while_it_has_sub_units(people, org):
    with pytest.raises(ServiceError) as exc:
        unit_delete(acting_user=people.sysadmin, unit=reload(org.city_b))
    assert "sub-units" in exc.value.message and "only deactivated" in exc.value.message
    assert Unit.objects.filter(pk=org.city_b.pk).exists()


def test_delete_refusal_keeps_the_transaction_usable(people, org):
    with pytest.raises(ServiceError):
        unit_delete(acting_user=people.sysadmin, unit=reload(org.a1))
    unit_delete(acting_user=people.sysadmin, unit=reload(org.a2))
    assert not Unit.objects.filter(pk=org.a2.pk).exists()


# ---------------------------------------------------------------- unit types


def test_unit_type_create(people, org):
    t = unit_type_create(acting_user=people.sysadmin, code="area", name="片区", name_en="Area", rank=2)
    assert UnitType.objects.get(code="area") == t
    assert AuditEvent.objects.get(action="unit_type.create").changes["name"] == "片区"
    with pytest.raises(ServiceError) as exc:
        unit_type_create(acting_user=people.sysadmin, code="area", name="又一个")
    assert exc.value.field == "code"


# ---------------------------------------------------------------- who may change the tree


@pytest.mark.parametrize("actor", ["secadmin", "auditor", "head_p", "head_a", "alice", "station_mgr_a1"])
def test_only_manage_units_changes_the_tree(people, org, actor):
    acting = getattr(people, actor)
    calls = [
        lambda: create(people, org, acting_user=acting),
        lambda: unit_update(acting_user=acting, unit=reload(org.a2), name="x"),
        lambda: unit_move(acting_user=acting, unit=reload(org.a2), new_parent=org.city_b),
        lambda: unit_set_active(acting_user=acting, unit=reload(org.a2), active=False),
        lambda: unit_delete(acting_user=acting, unit=reload(org.a2)),
        lambda: unit_type_create(acting_user=acting, code="area", name="片区"),
    ]
    for call in calls:
        with pytest.raises(NotAllowed):
            call()
    a2 = reload(org.a2)
    assert (a2.name, a2.parent_id, a2.is_active) == ("市中加油站", org.city_a.pk, True)
    assert not AuditEvent.objects.exists()


def test_inactive_system_administrator_changes_nothing(people, org):
    people.sysadmin.is_active = False
    with pytest.raises(NotAllowed):
        create(people, org)


def test_a_second_system_administrator_may(org, people):
    other = UserFactory(username="sys2", unit=org.province, roles=[Role.SYSTEM_ADMIN])
    assert create(people, org, acting_user=other).code == "A3"


def test_no_active_unit_is_created_or_moved_under_an_inactive_parent(people, org):
    from kehu.org.services import unit_create, unit_move, unit_set_active

    sysadmin = people.sysadmin
    unit_set_active(acting_user=sysadmin, unit=org.b1, active=False)
    unit_set_active(acting_user=sysadmin, unit=org.city_b, active=False)
    org.city_b.refresh_from_db()
    with pytest.raises(ServiceError, match="inactive") as excinfo:
        unit_create(acting_user=sysadmin, code="NEW", name="新站", unit_type=org.types.station,
                    division_code="370202", parent=org.city_b)  # fmt: skip
    assert excinfo.value.field == "parent"
    with pytest.raises(ServiceError, match="inactive"):
        unit_move(acting_user=sysadmin, unit=org.a2, new_parent=org.city_b)
    org.a2.refresh_from_db()
    assert org.a2.parent_id == org.city_a.pk
