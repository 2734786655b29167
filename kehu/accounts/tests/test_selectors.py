"""user_list: the people list's selector, always inside the viewer's scope."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from kehu.accounts.exports import people_export_csv
from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import Role
from kehu.accounts.selectors import unit_choices, user_list, visible_unit_by_code
from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed
from kehu.core.scoping import DataScope


def names(qs) -> set[str]:
    return {u.username for u in qs}


def test_owner_sees_only_themselves(people):
    assert names(user_list(viewer=people.alice)) == {"alice"}
    assert names(user_list(viewer=people.alice, q="amy")) == set()


def test_peer_branch_sees_nothing_of_city_a(people, org):
    RoleAssignment.objects.create(user=people.bob, role=Role.STATION_MANAGER, scope=DataScope.SUBTREE)
    assert names(user_list(viewer=people.bob)) == {"bob"}
    for filters in ({"q": "alice"}, {"q": "王"}, {"unit": "A1"}, {"unit": "CA"}, {"unit": org.a1},
                    {"role": Role.CUSTOMER_MANAGER, "unit": "A1"}):  # fmt: skip
        assert "alice" not in names(user_list(viewer=people.bob, **filters)), filters
    assert visible_unit_by_code(viewer=people.bob, code="A1") is None
    assert visible_unit_by_code(viewer=people.bob, code="b1") == org.b1


def test_superior_unit_sees_its_subtree(people, org):
    assert names(user_list(viewer=people.head_a)) == {"alice", "amy", "stan", "head_a"}
    assert names(user_list(viewer=people.head_p)) == {"alice", "amy", "bob", "stan", "head_a", "head_p",
                                                      "sysadmin", "secadmin", "auditor"}  # fmt: skip
    assert names(user_list(viewer=people.head_p, unit="CB")) == {"bob"}
    assert {u.code for u in unit_choices(viewer=people.head_a)} == {"P", "CA", "A1", "A2"}


def test_admins_other_than_security_see_only_themselves(people):
    assert names(user_list(viewer=people.sysadmin)) == {"sysadmin"}
    assert names(user_list(viewer=people.auditor)) == {"auditor"}
    assert len(names(user_list(viewer=people.secadmin))) == 9


def test_search_matches_username_name_and_phone(people):
    User.objects.filter(pk=people.alice.pk).update(phone="13912345678")
    viewer = people.secadmin
    assert names(user_list(viewer=viewer, q="ALI")) == {"alice"}
    assert names(user_list(viewer=viewer, q="王丽")) == {"alice"}
    assert names(user_list(viewer=viewer, q="2345")) == {"alice"}


def test_status_and_role_filters(people):
    User.objects.filter(pk=people.bob.pk).update(is_active=False)
    User.objects.filter(pk=people.alice.pk).update(locked_until=timezone.now() + timedelta(minutes=5))
    User.objects.filter(pk=people.alice_peer.pk).update(locked_until=timezone.now() - timedelta(minutes=5))
    viewer = people.secadmin
    assert names(user_list(viewer=viewer, status="inactive")) == {"bob"}
    assert names(user_list(viewer=viewer, status="locked")) == {"alice"}
    assert "bob" not in names(user_list(viewer=viewer, status="active"))
    assert names(user_list(viewer=viewer, role=Role.CUSTOMER_MANAGER)) == {"alice", "amy", "bob"}
    assert names(user_list(viewer=viewer, unit="nope")) == set()


def test_list_loads_roles_and_units_in_a_fixed_number_of_queries(people, django_assert_max_num_queries):
    viewer = User.objects.get(pk=people.secadmin.pk)
    viewer.role_names()
    with django_assert_max_num_queries(2):
        rows = [(u.unit and u.unit.code, sorted(u.role_names())) for u in user_list(viewer=viewer)]
    assert len(rows) == 9


def test_export_is_scoped_and_audited(people):
    data = people_export_csv(viewer=people.head_a, filters={"q": "", "unit": "A1", "ignored": "x"})
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert {r[0] for r in rows[1:]} == {"alice", "amy", "stan"}
    event = AuditEvent.objects.get(action="user.export")
    assert event.actor_username == "head_a"
    assert event.extra == {"count": 3, "filters": {"unit": "A1"}, "format": "csv"}


@pytest.mark.parametrize("who", ["alice", "sysadmin", "auditor"])
def test_export_needs_the_people_capability(people, who):
    with pytest.raises(NotAllowed):
        people_export_csv(viewer=getattr(people, who), filters={})
    assert not AuditEvent.objects.exists()
