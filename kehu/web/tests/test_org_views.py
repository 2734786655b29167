"""The organisation tree browser and unit pages: scoping, and the system administrator's changes."""

from __future__ import annotations

import re

import pytest

from kehu.audit.models import AuditEvent
from kehu.core.divisions import division_name
from kehu.org.models import Unit
from kehu.web.selectors import org_tree_level


def unit_codes(response) -> set[str]:
    return set(re.findall(r'data-unit="([^"]+)"', response.content.decode()))


def audited(action: str, unit: Unit | int) -> bool:
    pk = unit.pk if isinstance(unit, Unit) else unit
    return AuditEvent.objects.filter(action=action, object_type="org.unit", object_id=str(pk)).exists()


# ---------------------------------------------------------------- scoping


def test_peer_in_another_branch_sees_nothing_of_city_a(login, people, org):
    client = login(people.bob)
    tree = client.get("/org/")
    assert tree.status_code == 200
    assert {"P", "CB"} <= unit_codes(tree)
    assert not unit_codes(tree) & {"CA", "A1", "A2"}

    partial = client.get(f"/org/tree/{org.province.pk}/", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert unit_codes(partial) == {"CB"}
    assert client.get(f"/org/tree/{org.city_a.pk}/").status_code == 404
    for unit in (org.city_a, org.a1, org.a2):
        assert client.get(f"/org/units/{unit.pk}/").status_code == 404
    for q in ("A", "济南", "370102", "历下"):
        assert not unit_codes(client.get("/org/", {"q": q})) & {"CA", "A1", "A2"}, q
    # Province detail lists city B as its only sub-unit.
    detail = client.get(f"/org/units/{org.province.pk}/")
    assert unit_codes(detail) == {"CB"}


def test_unit_head_sees_their_subtree(login, people, org):
    client = login(people.head_a)
    partial = client.get(f"/org/tree/{org.city_a.pk}/", HTTP_HX_REQUEST="true")
    assert unit_codes(partial) == {"A1", "A2"}
    assert "<html" not in partial.content.decode()
    results = client.get("/org/", {"q": "A"})
    assert {"A1", "A2"} <= unit_codes(results)
    assert "B1" not in unit_codes(results)
    detail = client.get(f"/org/units/{org.a1.pk}/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert {"alice", "amy", "stan"} <= set(re.findall(r'data-person="([^"]+)"', body))
    assert "370102" in body and division_name("370102") in body
    assert 'data-testid="unit-manage"' not in body  # no change forms without MANAGE_UNITS
    assert client.get(f"/org/units/{org.b1.pk}/").status_code == 404


def test_counts_never_reveal_hidden_units(people, org):
    # alice sees her own station and the units above it, not her sibling station A2.
    level = org_tree_level(viewer=people.alice, parent=org.province)
    assert [u.code for u in level] == ["CA"]
    assert level[0].child_count == 1
    head = org_tree_level(viewer=people.head_a, parent=org.province)
    assert [(u.code, u.child_count) for u in head] == [("CA", 2)]


def test_search_htmx_returns_the_results_fragment(login, people):
    client = login(people.head_a)
    response = client.get("/org/", {"q": "A1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert unit_codes(response) == {"A1"}


def test_org_pages_need_view_org(login, people, client):
    assert client.get("/org/")["Location"].startswith("/login/")
    login(people.auditor)  # the audit administrator has no business with the tree
    assert client.get("/org/").status_code == 403


# ---------------------------------------------------------------- changes by the system administrator


@pytest.fixture
def admin_client(login, people):
    return login(people.sysadmin)


def test_sysadmin_creates_a_sub_unit(admin_client, org):
    page = admin_client.get(f"/org/units/{org.city_a.pk}/add/")
    assert page.status_code == 200
    assert page.context["form"].initial["division_code"] == "370100"
    response = admin_client.post(
        f"/org/units/{org.city_a.pk}/add/",
        {"code": "A3", "name": "槐荫加油站", "unit_type": org.types.station.pk, "division_code": "370104"},
    )
    assert response.status_code == 302
    unit = Unit.objects.get(code="A3")
    assert response["Location"] == f"/org/units/{unit.pk}/"
    assert unit.parent == org.city_a
    assert audited("unit.create", unit)


def test_sysadmin_creates_a_top_level_unit(admin_client, org):
    response = admin_client.post(
        "/org/units/add/", {"code": "Q", "name": "河北销售公司", "unit_type": org.types.province.pk,
                            "division_code": "130000"},
    )  # fmt: skip
    assert response.status_code == 302
    assert Unit.objects.get(code="Q").parent is None


def test_create_errors_show_next_to_the_field(admin_client, org):
    url = f"/org/units/{org.city_a.pk}/add/"
    data = {"code": "A3", "name": "x", "unit_type": org.types.station.pk, "division_code": "999999"}
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["division_code"]
    assert 'class="field field-error"' in response.content.decode()
    response = admin_client.post(url, {**data, "code": "A1", "division_code": "370104"})
    assert list(response.context["form"].errors) == ["code"]
    assert not Unit.objects.filter(code="A3").exists()


def test_sysadmin_edits_a_unit(admin_client, org):
    response = admin_client.post(
        f"/org/units/{org.a2.pk}/edit/",
        {"code": "A2", "name": "市中区加油站", "unit_type": org.types.station.pk, "division_code": "370103"},
    )
    assert response.status_code == 302
    org.a2.refresh_from_db()
    assert org.a2.name == "市中区加油站"
    assert audited("unit.update", org.a2)


def test_sysadmin_moves_a_unit(admin_client, org):
    response = admin_client.post(f"/org/units/{org.a2.pk}/move/", {"new_parent_code": "CB"})
    assert response.status_code == 302
    org.a2.refresh_from_db()
    assert org.a2.parent == org.city_b
    assert org.a2.path.startswith(org.city_b.path)
    assert audited("unit.move", org.a2)


def test_move_errors(admin_client, org):
    url = f"/org/units/{org.city_a.pk}/move/"
    response = admin_client.post(url, {"new_parent_code": "A1"})  # under its own sub-unit
    assert response.status_code == 200
    assert "new_parent_code" in response.context["form"].errors
    response = admin_client.post(url, {"new_parent_code": "NOPE"})
    assert "new_parent_code" in response.context["form"].errors
    response = admin_client.post(url, {"new_parent_code": ""})
    assert "new_parent_code" in response.context["form"].errors
    org.city_a.refresh_from_db()
    assert org.city_a.parent == org.province


def test_move_to_top_level(admin_client, org):
    response = admin_client.post(f"/org/units/{org.city_b.pk}/move/", {"to_top": "on"})
    assert response.status_code == 302
    org.city_b.refresh_from_db()
    assert org.city_b.parent is None


def test_sysadmin_deactivates_and_reactivates(admin_client, org):
    url = f"/org/units/{org.a2.pk}/active/"
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, {"active": "0"})
    assert response.status_code == 302
    org.a2.refresh_from_db()
    assert not org.a2.is_active
    assert audited("unit.deactivate", org.a2)
    detail = admin_client.get(f"/org/units/{org.a2.pk}/")
    assert 'name="active" value="1"' in detail.content.decode()
    admin_client.post(url, {"active": "1"})
    org.a2.refresh_from_db()
    assert org.a2.is_active
    assert audited("unit.activate", org.a2)


def test_deactivating_a_unit_with_active_sub_units_shows_the_error(admin_client, org):
    response = admin_client.post(f"/org/units/{org.city_a.pk}/active/", {"active": "0"}, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and org.city_a.name in messages[0]
    org.city_a.refresh_from_db()
    assert org.city_a.is_active


def test_sysadmin_deletes_an_empty_unit_but_not_one_with_people(admin_client, org):
    empty = Unit.objects.create(
        code="TMP", name="临时", unit_type=org.types.station, division_code="370102", parent=org.city_b,
        path=org.city_b.path + "99999999", depth=2,
    )  # fmt: skip
    assert admin_client.get(f"/org/units/{empty.pk}/delete/").status_code == 200
    response = admin_client.post(f"/org/units/{empty.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == f"/org/units/{org.city_b.pk}/"
    assert not Unit.objects.filter(pk=empty.pk).exists()
    assert audited("unit.delete", empty.pk)

    response = admin_client.post(f"/org/units/{org.a1.pk}/delete/")  # alice works there
    assert response.status_code == 302 and response["Location"] == f"/org/units/{org.a1.pk}/"
    assert Unit.objects.filter(pk=org.a1.pk).exists()


def test_sysadmin_sees_the_change_forms(admin_client, org):
    body = admin_client.get(f"/org/units/{org.a1.pk}/").content.decode()
    assert 'data-testid="unit-manage"' in body
    for name in ("add", "edit", "move", "delete"):
        assert f'href="/org/units/{org.a1.pk}/{name}/"' in body


# ---------------------------------------------------------------- not allowed


@pytest.mark.parametrize("who", ["alice", "head_a", "secadmin"])
def test_others_may_not_change_the_tree(login, people, org, who):
    client = login(getattr(people, who))
    data = {"code": "A3", "name": "x", "unit_type": org.types.station.pk, "division_code": "370104"}
    response = client.post(f"/org/units/{org.a1.pk}/add/", data)
    assert response.status_code == 403
    assert 'data-testid="forbidden"' in response.content.decode()
    assert client.get(f"/org/units/{org.a1.pk}/add/").status_code == 403
    assert client.post(f"/org/units/{org.a1.pk}/move/", {"new_parent_code": "CB"}).status_code == 403
    assert client.post(f"/org/units/{org.a1.pk}/active/", {"active": "0"}).status_code == 403
    assert client.post(f"/org/units/{org.a1.pk}/delete/").status_code == 403
    assert not Unit.objects.filter(code="A3").exists()
    org.a1.refresh_from_db()
    assert org.a1.is_active and org.a1.parent == org.city_a


def test_sysadmin_changes_through_the_service_check_nothing_leaks(admin_client, org):
    assert admin_client.get("/org/units/999999/").status_code == 404
    assert admin_client.post("/org/units/999999/add/", {}).status_code == 404


def test_people_counts_only_for_roles_that_may_view_people(login, people, org):
    """The system administrator sees no people (三员): the tree must not show him misleading zeros."""
    sysadmin_page = login(people.sysadmin).get("/org/").content.decode()
    assert 'class="counts muted"' in sysadmin_page and " · " not in _counts(sysadmin_page)
    head_page = login(people.head_p).get("/org/").content.decode()
    assert " · " in _counts(head_page)


def _counts(page: str) -> str:
    return " ".join(re.findall(r'<span class="counts muted">(.*?)</span>', page, flags=re.S))
