"""/me, units and users: fields, scoping (the peer in another branch sees nothing), pagination, errors."""

from __future__ import annotations

import pytest

from kehu.accounts.models import User
from kehu.accounts.roles import Role
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET_KEYS = {"password", "failed_login_count", "locked_until", "must_change_password", "api_tokens",
               "digest", "token", "last_login", "password_changed_at"}  # fmt: skip


def codes(response):
    assert response.status_code == 200, response.content
    return [u["code"] for u in response.json()["items"]]


def usernames(response):
    assert response.status_code == 200, response.content
    return {u["username"] for u in response.json()["items"]}


# ---------------------------------------------------------------- /me


def test_me(api_get, people):
    body = api_get(people.head_a, "/me").json()
    assert body["id"] == people.head_a.pk
    assert body["username"] == "head_a"
    assert body["full_name"] == "刘主任"
    assert body["unit"] == {"id": people.head_a.unit_id, "code": "CA", "name": "济南分公司"}
    assert body["roles"] == [{"role": "unit_head", "scope": "subtree"}]
    assert "view_people" in body["capabilities"] and "manage_users" not in body["capabilities"]
    assert body["language"] == people.alice.language
    assert {"position", "manager_grade"} <= body.keys()
    assert not SECRET_KEYS & body.keys()


# ---------------------------------------------------------------- units


def test_units_list_peer_in_another_branch_sees_nothing_of_city_a(api_get, people, org):
    seen = codes(api_get(people.bob, "/units"))
    assert seen == ["P", "CB", "B1"]  # own unit and the chain above it, in tree order
    assert not {"CA", "A1", "A2"} & set(seen)


def test_units_within_an_out_of_scope_unit_is_404(api_get, people, org):
    response = api_get(people.bob, "/units", within=org.city_a.pk)
    missing = api_get(people.bob, "/units", within=999999)
    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content


def test_units_head_sees_subtree(api_get, people, org):
    assert codes(api_get(people.head_a, "/units")) == ["P", "CA", "A1", "A2"]
    assert codes(api_get(people.head_a, "/units", within=org.city_a.pk)) == ["CA", "A1", "A2"]
    assert codes(api_get(people.head_a, "/units", type="station")) == ["A1", "A2"]
    assert codes(api_get(people.head_a, "/units", q="市中")) == ["A2"]


def test_units_active_filter(api_get, people, org):
    org.a2.is_active = False
    org.a2.save(update_fields=["is_active"])
    assert codes(api_get(people.head_a, "/units", active="false")) == ["A2"]
    assert "A2" not in codes(api_get(people.head_a, "/units", active="true"))


def test_units_pagination(api_get, people, org):
    body = api_get(people.sysadmin, "/units", limit=2, offset=1).json()
    assert body["count"] == 6
    assert [u["code"] for u in body["items"]] == ["CA", "A1"]
    assert api_get(people.sysadmin, "/units", limit=501).status_code == 422
    assert api_get(people.sysadmin, "/units", limit=0).status_code == 422


def test_units_list_fields(api_get, people, org):
    item = api_get(people.head_a, "/units", within=org.a1.pk).json()["items"][0]
    assert item == {
        "id": org.a1.pk, "code": "A1", "name": "历下加油站",
        "unit_type": {"code": "station", "name": "加油站"},
        "parent_id": org.city_a.pk, "division_code": "370102", "is_active": True, "depth": 2,
    }  # fmt: skip


def test_unit_detail(api_get, people, org):
    body = api_get(people.head_a, f"/units/{org.city_a.pk}").json()
    assert body["parent_id"] == org.province.pk
    assert body["ancestors"] == [{"id": org.province.pk, "code": "P", "name": "山东销售公司"}]
    assert body["children_count"] == 2
    province = api_get(people.bob, f"/units/{org.province.pk}").json()
    assert province["parent_id"] is None and province["ancestors"] == []
    assert province["children_count"] == 1  # only city B is visible to bob


def test_unit_detail_out_of_scope_is_identical_to_missing(api_get, people, org):
    User.objects.filter(pk=people.bob.pk).update(language="en")  # answers come in the caller's language
    out_of_scope = api_get(people.bob, f"/units/{org.a1.pk}")
    missing = api_get(people.bob, "/units/999999")
    assert out_of_scope.status_code == missing.status_code == 404
    assert out_of_scope.content == missing.content
    assert out_of_scope.json() == {"detail": "Not found."}
    assert api_get(people.head_a, f"/units/{org.a1.pk}").status_code == 200


# ---------------------------------------------------------------- users


def test_users_list_scoping(api_get, people, org):
    # A customer manager has no people list (as on the web); a station manager in city B sees city B only.
    assert api_get(people.bob, "/users").status_code == 403
    b_manager = UserFactory(username="bsm", unit=org.b1, roles=[Role.STATION_MANAGER])
    assert usernames(api_get(b_manager, "/users")) == {"bob", "bsm"}
    head_a_sees = usernames(api_get(people.head_a, "/users"))
    assert head_a_sees == {"alice", "amy", "stan", "head_a"}
    everyone = set(User.objects.values_list("username", flat=True))
    assert usernames(api_get(people.secadmin, "/users", limit=500)) == everyone
    assert api_get(people.secadmin, "/users").json()["count"] == len(everyone)


def test_users_list_filters(api_get, people, org):
    assert usernames(api_get(people.secadmin, "/users", unit=org.city_a.pk)) == {
        "alice",
        "amy",
        "stan",
        "head_a",
    }
    assert usernames(api_get(people.secadmin, "/users", role="station_manager")) == {"stan"}
    assert usernames(api_get(people.secadmin, "/users", q="王")) == {"alice"}
    User.objects.filter(pk=people.alice_peer.pk).update(is_active=False)
    assert usernames(api_get(people.secadmin, "/users", active="false")) == {"amy"}
    assert "amy" not in usernames(api_get(people.secadmin, "/users", active="true"))


def test_users_list_unknown_role_is_400_with_field(api_get, people):
    response = api_get(people.secadmin, "/users", role="emperor")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "role" and body["detail"]


def test_users_list_unit_out_of_scope_is_404(api_get, people, org):
    b_manager = UserFactory(username="bsm", unit=org.b1, roles=[Role.STATION_MANAGER])
    assert api_get(b_manager, "/users", unit=org.city_a.pk).status_code == 404


def test_audit_administrator_has_no_organisation_or_people_lists(api_get, people, org):
    assert api_get(people.auditor, "/units").status_code == 403
    assert api_get(people.auditor, f"/units/{org.province.pk}").status_code == 403
    assert api_get(people.auditor, "/users").status_code == 403
    assert api_get(people.auditor, "/me").status_code == 200


def test_user_detail_scoping(api_get, people):
    out_of_scope = api_get(people.bob, f"/users/{people.alice.pk}")
    missing = api_get(people.bob, "/users/999999")
    assert out_of_scope.status_code == missing.status_code == 404
    assert out_of_scope.content == missing.content
    assert api_get(people.head_a, f"/users/{people.alice.pk}").status_code == 200
    assert api_get(people.bob, f"/users/{people.bob.pk}").status_code == 200


def test_user_json_has_no_secrets(api_get, people):
    body = api_get(people.secadmin, f"/users/{people.alice.pk}").json()
    assert body["username"] == "alice"
    assert body["unit"]["code"] == "A1"
    assert body["roles"] == [{"role": "customer_manager", "scope": "own"}]
    assert not SECRET_KEYS & body.keys()
    assert people.alice.password not in str(body)
    for item in api_get(people.secadmin, "/users").json()["items"]:
        assert not SECRET_KEYS & item.keys()
