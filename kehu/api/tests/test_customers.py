"""The customer archive's API: scoping, masking and audited reveal, writes and their errors, 409 on similar
names, pagination with a capped count, contacts, agreements, imports and jobs, and the OpenAPI schema."""

from __future__ import annotations

import json
from datetime import date
from functools import partial

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.customers.models import Agreement, Contact, Customer, CustomerSubType
from kehu.customers.personal import customer_set_id_number, phone_add
from kehu.customers.selectors import capped_count
from kehu.customers.services import agreement_create, contact_create, customer_create
from kehu.jobs.models import Job, JobStatus
from kehu.jobs.registry import JOB_KINDS
from kehu.jobs.services import _progress_key
from kehu.testing.factories import UserFactory

pytestmark = pytest.mark.django_db

CREDIT = "91350100M000100Y43"
MOBILE = "13812345678"
CONTACT_MOBILE = "13987654321"
ID_CARD = "11010519491231002X"


# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture
def call(client, token_for):
    """Any method as a user with a bearer token; JSON bodies. Returns the response."""

    def _call(method: str, user, path: str, body=None, **params):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token_for(user)}"}
        url = f"/api/v1{path}"
        if method == "get":
            return client.get(url, params, **headers)
        # body "": a request without any body at all
        data = "" if body == "" else json.dumps(body if body is not None else {})
        return getattr(client, method)(url, data, content_type="application/json", **headers)

    return _call


def make(user, unit, name, division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, **kw)  # fmt: skip


@pytest.fixture
def alices(people, org):
    customer = make(people.alice, org.a1, "济南顺达物流有限公司", credit_code=CREDIT, tags=["物流"])
    phone_add(acting_user=people.alice, customer=customer, number=MOBILE, label="办公室")
    customer_set_id_number(acting_user=people.alice, customer=customer, id_number=ID_CARD)
    contact = contact_create(acting_user=people.alice, customer=customer, name="张经理", title="总经理",
                             decision_role="decision_maker", birthday=date(1975, 3, 8))  # fmt: skip
    phone_add(acting_user=people.alice, customer=customer, number=CONTACT_MOBILE, contact=contact)
    agreement_create(acting_user=people.alice, customer=customer, number="GY-2026-001", signing_level="station",
                     start_date=date(2026, 1, 1), signing_unit=org.a1)  # fmt: skip
    return customer


@pytest.fixture
def bobs(people, org):
    return make(people.bob, org.b1, "青岛海运集团", division="370202", kind="institution")


@pytest.fixture
def analyst(org):
    """Sees city A's customers (subtree) but may neither edit them nor see personal data in full."""
    return UserFactory(username="ana", full_name="分析员", unit=org.city_a, roles=[Role.ANALYST])


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [c["code"] for c in response.json()["items"]]


def error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    return response.json()


# ---------------------------------------------------------------- scoping


def test_list_is_scoped(call, people, alices, bobs):
    assert codes(call("get", people.alice, "/customers")) == [alices.code]
    assert codes(call("get", people.bob, "/customers")) == [bobs.code]
    assert codes(call("get", people.head_a, "/customers")) == [alices.code]
    assert codes(call("get", people.head_p, "/customers")) == [alices.code, bobs.code]
    # administrators see no business data
    assert codes(call("get", people.sysadmin, "/customers")) == []


def test_every_endpoint_answers_404_out_of_scope_exactly_like_missing(call, people, alices):
    missing = "37010299999000"
    for method, suffix, body in (
        ("get", "", None), ("patch", "", {"name": "改名"}), ("post", "/reveal", {}),
        ("get", "/contacts", None), ("post", "/contacts", {"name": "李四"}),
        ("get", "/agreements", None),
        ("post", "/agreements", {"number": "X1", "signing_level": "city", "start_date": "2026-02-01"}),
    ):  # fmt: skip
        out_of_scope = call(method, people.bob, f"/customers/{alices.code}{suffix}", body)
        not_there = call(method, people.bob, f"/customers/{missing}{suffix}", body)
        assert out_of_scope.status_code == not_there.status_code == 404, (method, suffix)
        assert out_of_scope.json() == not_there.json() == {"detail": "Not found."}
    alices.refresh_from_db()
    assert alices.name == "济南顺达物流有限公司"
    assert Contact.objects.filter(customer=alices).count() == 1
    assert Agreement.objects.filter(customer=alices).count() == 1
    assert not AuditEvent.objects.filter(action="personal_data.reveal").exists()


def test_superior_units_see_the_detail(call, people, alices, bobs):
    assert call("get", people.head_a, f"/customers/{alices.code}").status_code == 200
    assert call("get", people.head_p, f"/customers/{alices.code}").status_code == 200
    assert call("get", people.head_p, f"/customers/{bobs.code}").status_code == 200
    assert call("get", people.head_a, f"/customers/{bobs.code}").status_code == 404


def test_unauthenticated_is_401(client, alices):
    assert client.get("/api/v1/customers").status_code == 401
    assert client.get(f"/api/v1/customers/{alices.code}").status_code == 401


# ---------------------------------------------------------------- detail, masking, reveal


def test_detail_has_profile_contacts_and_agreements_with_personal_data_masked(call, people, org, alices):
    response = call("get", people.head_a, f"/customers/{alices.code}")
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == alices.code == "37010200001000"
    assert body["name"] == "济南顺达物流有限公司"
    assert body["owning_unit"] == {"id": org.a1.pk, "code": "A1", "name": "历下加油站"}
    assert body["lead_manager"] == {"username": "alice", "full_name": "王丽"}
    assert body["backup_manager"] is None
    assert body["credit_code"] == CREDIT and body["tags"] == ["物流"]
    assert body["id_number"] == "110***********002X"
    assert [(p["label"], p["number"]) for p in body["phones"]] == [
        ("办公室", "138****5678"),
        ("", "139****4321"),
    ]
    assert body["contacts"] == [
        {
            "id": alices.contacts.get().pk,
            "name": "张经理",
            "title": "总经理",
            "decision_role": "decision_maker",
        }
    ]
    assert body["contacts_count"] == 1 and body["agreements_count"] == 1
    assert body["agreements"][0]["number"] == "GY-2026-001"
    assert body["agreements"][0]["end_date"] is None
    assert body["created_by"]["username"] == "alice" and body["parent_code"] is None
    for secret in (MOBILE, CONTACT_MOBILE, ID_CARD, MOBILE[-8:], ID_CARD[6:14]):
        assert secret not in response.content.decode(), secret


def test_contact_list_masks_the_contacts_phones(call, people, alices):
    response = call("get", people.alice, f"/customers/{alices.code}/contacts")
    body = response.json()
    assert body["count"] == 1
    [contact] = body["items"]
    assert contact["name"] == "张经理" and contact["birthday"] == "1975-03-08"
    assert [p["number"] for p in contact["phones"]] == ["139****4321"]
    assert CONTACT_MOBILE not in response.content.decode()


def test_reveal_gives_full_values_and_is_audited(call, people, alices):
    response = call("post", people.alice, f"/customers/{alices.code}/reveal", {"reason": "回访核对"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id_number"] == ID_CARD
    assert [p["number"] for p in body["phones"]] == [MOBILE, CONTACT_MOBILE]
    event = AuditEvent.objects.get(action="personal_data.reveal")
    assert event.actor_username == "alice" and event.channel == "api"
    assert event.object_id == str(alices.pk) and event.extra["reason"] == "回访核对"
    # without a body: no reason, still audited
    assert call("post", people.head_a, f"/customers/{alices.code}/reveal", "").status_code == 200
    assert AuditEvent.objects.filter(action="personal_data.reveal").count() == 2


def test_reveal_without_the_capability_is_403_and_reveals_nothing(call, people, analyst, alices):
    assert call("get", analyst, f"/customers/{alices.code}").status_code == 200  # may read, masked
    response = call("post", analyst, f"/customers/{alices.code}/reveal", {"reason": "curious"})
    body = error(response, 403)
    assert body["code"] == "not_allowed" and "personal data" in body["detail"]
    assert MOBILE not in response.content.decode() and ID_CARD not in response.content.decode()
    assert not AuditEvent.objects.filter(action="personal_data.reveal").exists()


# ---------------------------------------------------------------- create


def test_create_assigns_a_code_and_is_audited(call, people, org):
    CustomerSubType.objects.create(code="freight", name="货运", kind="institution")
    payload = {
        "name": "历城运输有限公司", "kind": "institution", "owning_unit": "A1", "division_code": "370102",
        "sub_type": "freight", "phones": ["0531-8888 6666"], "address": "济南市历下区", "status": "registered",
        "latitude": "36.651200", "longitude": 117.12, "floor_area": 120.5, "tags": ["重点"],
    }  # fmt: skip
    response = call("post", people.alice, "/customers", payload)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"] == "37010200001000"
    assert body["sub_type"] == {"code": "freight", "name": "货运"}
    assert body["lead_manager"]["username"] == "alice"  # a customer manager leads what they add
    assert body["status"] == "registered" and body["latitude"] == 36.6512 and body["floor_area"] == 120.5
    assert [p["number"] for p in body["phones"]] == ["053*****6666"]
    event = AuditEvent.objects.get(action="customer.create")
    assert event.channel == "api" and event.actor_username == "alice"
    assert AuditEvent.objects.filter(action="customer.phone_add", object_id=event.object_id).exists()


def test_create_a_branch_with_a_given_manager(call, people, org, alices):
    response = call("post", people.head_a, "/customers", {
        "name": "顺达物流二分公司", "kind": "institution", "owning_unit": "A2", "division_code": "370103",
        "parent": alices.code, "lead_manager": "amy", "backup_manager": "alice",
    })  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"] == "37010200001001" and body["parent_code"] == alices.code
    assert (body["lead_manager"]["username"], body["backup_manager"]["username"]) == ("amy", "alice")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"kind": "company"}, "kind", "institution or individual"),
        ({"name": "  "}, "name", "name is required"),
        ({"credit_code": "91350100M000100Y44"}, "credit_code", "credit code"),
        ({"owning_unit": "NOPE"}, "owning_unit", "“NOPE”"),
        ({"owning_unit": "B1"}, "owning_unit", "within your scope"),  # exists, but not alice's
        ({"division_code": "379999"}, "division_code", "Division code"),
        ({"phones": ["12345"]}, "phone", "Phone"),
        ({"sub_type": "spaceship"}, "sub_type", "spaceship"),
        ({"lead_manager": "bob"}, "lead_manager", "“bob”"),
        ({"status": "happy"}, "status", "happy"),
        ({"payment_profile": "gold"}, "payment_profile", "gold"),
        ({"latitude": 91}, "latitude", "between"),
        ({"code": "37010200001001"}, "code", "branch"),
        ({"parent": "37020200001000"}, "parent", "within your scope"),
    ],
)
def test_create_errors_name_the_field_and_change_nothing(call, people, org, bobs, change, field, words):
    payload = {
        "name": "新客户",
        "kind": "individual",
        "owning_unit": "A1",
        "division_code": "370102",
        **change,
    }
    written = AuditEvent.objects.filter(action__startswith="customer.")
    before = written.count()
    body = error(call("post", people.alice, "/customers", payload))
    assert body["field"] == field, body
    assert words in body["detail"], body
    assert body["code"]
    assert Customer.objects.filter(owning_unit=org.a1).count() == 0
    assert written.count() == before


def test_create_duplicate_credit_code_names_the_holder_only_if_visible(call, people, alices):
    payload = {"name": "另一家", "kind": "institution", "owning_unit": "B1", "division_code": "370202",
               "credit_code": CREDIT}  # fmt: skip
    hidden = error(call("post", people.bob, "/customers", payload))
    assert hidden["field"] == "credit_code" and hidden["code"] == "duplicate"
    assert alices.name not in hidden["detail"] and "another unit" in hidden["detail"]
    seen = error(call("post", people.head_p, "/customers", payload))
    assert alices.code in seen["detail"]


def test_create_refuses_unknown_fields_and_bad_types(call, people):
    base = {"name": "新客户", "kind": "individual", "owning_unit": "A1", "division_code": "370102"}
    assert call("post", people.alice, "/customers", {**base, "colour": "red"}).status_code == 422
    assert call("post", people.alice, "/customers", {**base, "latitude": "north"}).status_code == 422
    assert call("post", people.alice, "/customers", {"name": "缺字段"}).status_code == 422
    assert not Customer.objects.exists()


def test_create_needs_the_capability(call, analyst):
    body = {"name": "新客户", "kind": "individual", "owning_unit": "A1", "division_code": "370102"}
    assert error(call("post", analyst, "/customers", body), 403)["code"] == "not_allowed"
    assert not Customer.objects.exists()


def test_similar_name_is_409_with_visible_candidates_then_a_reason_goes_through(call, people, alices):
    payload = {"name": "济南顺达物流（有限公司）", "kind": "institution", "owning_unit": "A1",
               "division_code": "370102"}  # fmt: skip
    body = error(call("post", people.alice, "/customers", payload), 409)
    assert body["code"] == "similar_name" and body["field"] == "name"
    assert body["candidates"] == [{"code": alices.code, "name": alices.name}]
    assert body["hidden"] == 0
    assert Customer.objects.count() == 1

    response = call("post", people.alice, "/customers", {**payload, "duplicate_reason": "另一个法人，同名"})
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="customer.create", object_id=str(Customer.objects.latest("pk").pk))
    assert event.extra["duplicate_reason"] == "另一个法人，同名"
    assert event.extra["similar_to"] == [alices.code]


def test_similar_name_in_another_branch_is_counted_but_not_named(call, people, alices):
    payload = {"name": "济南顺达物流", "kind": "institution", "owning_unit": "B1", "division_code": "370202"}
    body = error(call("post", people.bob, "/customers", payload), 409)
    assert body["candidates"] == [] and body["hidden"] == 1
    assert alices.name not in body["detail"] and alices.code not in body["detail"]


# ---------------------------------------------------------------- update


def test_update_changes_only_what_is_sent_and_is_audited(call, people, alices):
    response = call(
        "patch", people.alice, f"/customers/{alices.code}", {"short_name": "顺达", "status": "active"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["short_name"], body["status"]) == ("顺达", "active")
    assert body["name"] == "济南顺达物流有限公司" and body["credit_code"] == CREDIT
    event = AuditEvent.objects.get(action="customer.update")
    assert event.changes["status"] == ["prospect", "active"] and event.channel == "api"
    assert event.actor_username == "alice"
    # managers by username (the unit head sees the station's people); null clears one
    assigned = call("patch", people.head_a, f"/customers/{alices.code}", {"backup_manager": "amy"})
    assert assigned.json()["backup_manager"] == {"username": "amy", "full_name": "李敏"}
    cleared = call("patch", people.head_a, f"/customers/{alices.code}", {"backup_manager": None})
    assert cleared.json()["backup_manager"] is None
    assert Customer.objects.get(pk=alices.pk).backup_manager_id is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "happy"}, "status"),
        ({"name": ""}, "name"),
        ({"owning_unit": "B1"}, "owning_unit"),
        ({"owning_unit": None}, "owning_unit"),
        ({"credit_code": "123"}, "credit_code"),
        ({"lead_manager": "head_a"}, "lead_manager"),  # not visible to alice
        ({"longitude": 181}, "longitude"),
        ({"sub_type": "nope"}, "sub_type"),
    ],
)
def test_update_errors_name_the_field_and_change_nothing(call, people, alices, change, field):
    body = error(call("patch", people.alice, f"/customers/{alices.code}", change))
    assert body["field"] == field, body
    fresh = Customer.objects.get(pk=alices.pk)
    assert (fresh.name, fresh.status, fresh.owning_unit_id, fresh.credit_code) == (
        alices.name, alices.status, alices.owning_unit_id, alices.credit_code
    )  # fmt: skip
    assert not AuditEvent.objects.filter(action="customer.update").exists()


def test_update_cannot_change_the_code_and_needs_the_capability(call, people, analyst, alices):
    assert (
        call("patch", people.alice, f"/customers/{alices.code}", {"code": "37010200009000"}).status_code
        == 422
    )
    assert (
        error(call("patch", analyst, f"/customers/{alices.code}", {"name": "改"}), 403)["code"]
        == "not_allowed"
    )
    assert Customer.objects.get(pk=alices.pk).code == alices.code


def test_moving_a_customer_out_of_ones_scope_is_refused(call, people, org, alices):
    # Station B1 lies in city B: head_a cannot even name it.
    body = error(call("patch", people.head_a, f"/customers/{alices.code}", {"owning_unit": "B1"}))
    assert body["field"] == "owning_unit"
    # alice sees her own records only: giving up the lead would put the customer out of her sight
    response = call("patch", people.alice, f"/customers/{alices.code}", {"lead_manager": None})
    assert error(response, 403)["code"] == "not_allowed"
    assert Customer.objects.get(pk=alices.pk).lead_manager_id == people.alice.pk


# ---------------------------------------------------------------- list: filters, order, pagination


@pytest.fixture
def several(people, org):
    a = make(people.alice, org.a1, "中国石化济南站", tags=["加油"])
    b = make(
        people.head_a,
        org.a2,
        "市中出租车队",
        division="370103",
        kind="institution",
        lead_manager=people.alice,
    )
    c = make(people.alice, org.a1, "王小明", kind="individual", status="active")
    d = make(people.bob, org.b1, "青岛港务", division="370202")
    return a, b, c, d


def test_list_filters(call, people, org, several):
    a, b, c, d = several
    head_p = people.head_p
    assert codes(call("get", head_p, "/customers", q="zgsh")) == [a.code]
    assert codes(call("get", head_p, "/customers", q="出租")) == [b.code]
    assert codes(call("get", head_p, "/customers", q=b.code[:11])) == [b.code]
    assert codes(call("get", head_p, "/customers", within="CA")) == [a.code, c.code, b.code]
    assert codes(call("get", head_p, "/customers", within="A2")) == [b.code]
    assert codes(call("get", head_p, "/customers", kind="individual")) == [c.code]
    assert codes(call("get", head_p, "/customers", status="active")) == [c.code]
    assert codes(call("get", head_p, "/customers", manager="bob")) == [d.code]
    assert codes(call("get", head_p, "/customers", tag="加油")) == [a.code]
    assert codes(call("get", head_p, "/customers", order="-code")) == sorted([a.code, b.code, c.code, d.code],
                                                                           reverse=True)  # fmt: skip
    # filters never widen the scope
    assert codes(call("get", people.alice, "/customers", within="A1")) == [a.code, c.code]
    assert codes(call("get", people.alice, "/customers", q="青岛")) == []


def test_list_filter_errors(call, people, org, several):
    assert error(call("get", people.head_a, "/customers", kind="company"))["field"] == "kind"
    assert error(call("get", people.head_a, "/customers", status="happy"))["field"] == "status"
    assert error(call("get", people.head_a, "/customers", order="colour"))["field"] == "order"
    assert error(call("get", people.head_a, "/customers", sub_type="nope"))["field"] == "sub_type"
    # a unit or a manager out of scope is 404, like a missing one
    out_of_scope = call("get", people.head_a, "/customers", within="B1")
    missing = call("get", people.head_a, "/customers", within="NOPE")
    assert out_of_scope.status_code == missing.status_code == 404
    assert call("get", people.head_a, "/customers", manager="bob").status_code == 404


def test_list_pagination(call, people, several):
    everything = codes(call("get", people.head_p, "/customers"))
    body = call("get", people.head_p, "/customers", limit=2, offset=1).json()
    assert [c["code"] for c in body["items"]] == everything[1:3]
    assert (body["count"], body["count_capped"]) == (4, False)
    assert call("get", people.head_p, "/customers", limit=501).status_code == 422
    assert call("get", people.head_p, "/customers", offset=-1).status_code == 422
    item = body["items"][0]
    assert {"code", "name", "kind", "status", "owning_unit", "lead_manager", "tags"} <= item.keys()
    assert not {"phones", "id_number", "credit_code"} & item.keys()


def test_list_count_is_capped(call, people, several, monkeypatch):
    # The real cap is 10,000; the API must pass the flag on whatever the cap.
    monkeypatch.setattr("kehu.api.routers.customers.capped_count", partial(capped_count, cap=2))
    body = call("get", people.head_p, "/customers", limit=10).json()
    assert (body["count"], body["count_capped"]) == (2, True)
    assert len(body["items"]) == 4  # the page itself is not cut by the cap
    assert call("get", people.bob, "/customers").json()["count_capped"] is False


# ---------------------------------------------------------------- contacts and agreements


def test_contacts_create_and_update(call, people, alices):
    url = f"/customers/{alices.code}/contacts"
    response = call("post", people.alice, url, {"name": "李采购", "decision_role": "influencer",
                                                "important_dates": [{"label": "入职", "date": "2020-05-01"}]})  # fmt: skip
    assert response.status_code == 201, response.content
    contact_id = response.json()["id"]
    assert AuditEvent.objects.filter(action="contact.create", object_id=str(contact_id)).exists()
    assert error(call("post", people.alice, url, {"name": " "}))["field"] == "name"
    assert (
        error(call("post", people.alice, url, {"name": "王", "decision_role": "boss"}))["field"]
        == "decision_role"
    )
    assert call("post", people.alice, url, {"name": "王", "birthday": "yesterday"}).status_code == 422
    assert {c["name"] for c in call("get", people.head_a, url).json()["items"]} == {"张经理", "李采购"}

    changed = call("patch", people.alice, f"{url}/{contact_id}", {"title": "采购部长"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["title"] == "采购部长" and changed.json()["decision_role"] == "influencer"
    assert AuditEvent.objects.get(action="contact.update").changes["title"] == ["", "采购部长"]
    assert error(call("patch", people.alice, f"{url}/{contact_id}", {"decision_role": "boss"}))["field"] == (
        "decision_role"
    )  # fmt: skip
    assert call("patch", people.bob, f"{url}/{contact_id}", {"title": "x"}).status_code == 404


def test_a_contact_is_only_reached_through_its_own_customer(call, people, org, alices):
    other = make(people.alice, org.a1, "另一客户")
    contact_id = alices.contacts.get().pk
    assert (
        call(
            "patch", people.alice, f"/customers/{other.code}/contacts/{contact_id}", {"title": "x"}
        ).status_code
        == 404
    )
    agreement_id = alices.agreements.get().pk
    response = call(
        "patch", people.alice, f"/customers/{other.code}/agreements/{agreement_id}", {"parties": "x"}
    )
    assert response.status_code == 404


def test_agreements_create_and_update(call, people, org, alices):
    url = f"/customers/{alices.code}/agreements"
    response = call("post", people.alice, url, {"number": "KJ-2026-07", "signing_level": "city",
                                                "agreement_type": "framework", "signing_unit": "CA",
                                                "start_date": "2026-03-01", "end_date": "2027-02-28"})  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["signing_unit"] == {"id": org.city_a.pk, "code": "CA", "name": "济南分公司"}
    assert body["has_attachment"] is False and body["end_date"] == "2027-02-28"
    assert AuditEvent.objects.filter(action="agreement.create", object_id=str(body["id"])).exists()

    listed = call("get", people.head_a, url).json()
    assert [a["number"] for a in listed["items"]] == ["KJ-2026-07", "GY-2026-001"]  # newest first

    bad = {"number": "X", "signing_level": "city", "start_date": "2026-03-01"}
    assert error(call("post", people.alice, url, {**bad, "end_date": "2026-01-01"}))["field"] == "end_date"
    assert (
        error(call("post", people.alice, url, {**bad, "signing_level": "planet"}))["field"] == "signing_level"
    )
    assert error(call("post", people.alice, url, {**bad, "number": "GY-2026-001"}))["field"] == "number"
    assert error(call("post", people.alice, url, {**bad, "signing_unit": "B1"}))["field"] == "signing_unit"
    assert error(call("post", people.alice, url, {**bad, "status": "maybe"}))["field"] == "status"

    changed = call(
        "patch", people.alice, f"{url}/{body['id']}", {"status": "ended", "end_date": "2026-06-30"}
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["status"], changed.json()["end_date"]) == ("ended", "2026-06-30")
    assert AuditEvent.objects.get(action="agreement.update").changes["status"] == ["active", "ended"]
    assert error(call("patch", people.alice, f"{url}/{body['id']}", {"end_date": "2025-01-01"}))["field"] == (
        "end_date"
    )  # fmt: skip


def test_contacts_and_agreements_need_the_capability(call, analyst, alices):
    assert call("get", analyst, f"/customers/{alices.code}/contacts").status_code == 200
    assert error(call("post", analyst, f"/customers/{alices.code}/contacts", {"name": "王"}), 403)
    body = {"number": "X", "signing_level": "city", "start_date": "2026-03-01"}
    assert error(call("post", analyst, f"/customers/{alices.code}/agreements", body), 403)


# ---------------------------------------------------------------- import and jobs


def upload(client, token, filename: str, content: bytes, **fields):
    return client.post(
        "/api/v1/customers/import",
        {"file": SimpleUploadedFile(filename, content), **fields},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


CUSTOMERS_CSV = (
    "code,name,kind,unit_code,division_code,credit_code,phone,address\n"
    ",济南历山商贸有限公司,institution,A1,370102,,13700001111,济南市历山路1号\n"
).encode()


def test_import_input_errors(client, token_for, people, analyst):
    token = token_for(people.alice)
    assert error(upload(client, token, "c.csv", CUSTOMERS_CSV, kind="units"))["field"] == "kind"
    assert error(upload(client, token, "c.txt", CUSTOMERS_CSV, kind="customers"))["field"] == "file"
    assert error(upload(client, token_for(analyst), "c.csv", CUSTOMERS_CSV), 403)["code"] == "not_allowed"
    no_file = client.post("/api/v1/customers/import", {"kind": "customers"},
                          HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert no_file.status_code == 422
    assert not Job.objects.exists()


def test_import_refuses_a_file_over_the_size_limit(client, token_for, people, settings):
    settings.KEHU_MAX_UPLOAD_MB = 1
    big = CUSTOMERS_CSV + b"x" * (1024 * 1024)
    body = error(upload(client, token_for(people.alice), "big.csv", big, kind="customers"))
    assert (body["field"], body["code"]) == ("file", "too_large")
    assert "KEHU_MAX_UPLOAD_MB" in body["detail"]
    assert not Job.objects.exists()


def submit(client, token, filename, content, django_capture_on_commit_callbacks, **fields) -> dict:
    """Upload, let the job run (no broker in tests: in-process after commit), return the submission."""
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, token, filename, content, **fields)
    assert response.status_code == 202, response.content
    return response.json()


@pytest.mark.parametrize("dry_run", [True, False])
def test_import_submits_a_job_that_runs_as_the_uploader(client, token_for, people, api_get,
                                                        django_capture_on_commit_callbacks, dry_run):  # fmt: skip
    assert {"customers_import", "contacts_import", "agreements_import"} <= set(JOB_KINDS)
    submitted = submit(client, token_for(people.alice), "客户.csv", CUSTOMERS_CSV, django_capture_on_commit_callbacks,
                       kind="customers", dry_run=str(dry_run).lower(), reason="年度导入")  # fmt: skip
    assert submitted["kind"] == "customers_import" and submitted["input_name"] == "客户.csv"
    assert submitted["params"] == {"dry_run": dry_run, "reason": "年度导入"}
    job = api_get(people.alice, f"/jobs/{submitted['id']}").json()
    assert job["status"] == JobStatus.SUCCEEDED, job
    assert (job["result"]["ok"], job["result"]["dry_run"], job["result"]["created"]) == (True, dry_run, 1)
    created = Customer.objects.filter(name="济南历山商贸有限公司").first()
    assert (created is None) is dry_run
    if created is not None:
        assert created.lead_manager_id == people.alice.pk  # acted as the uploader
        assert AuditEvent.objects.filter(action="customer.create", actor_username="alice",
                                         object_id=str(created.pk)).exists()  # fmt: skip
    assert AuditEvent.objects.filter(action="job.submit", actor_username="alice").exists()


def test_a_failed_import_lists_its_row_errors_and_changes_nothing(client, token_for, people, api_get,
                                                                  django_capture_on_commit_callbacks):  # fmt: skip
    bad = CUSTOMERS_CSV + ",第二家商贸,company,A1,370102,,,\n".encode()
    submitted = submit(client, token_for(people.alice), "bad.csv", bad, django_capture_on_commit_callbacks,
                       kind="customers")  # fmt: skip
    job = api_get(people.alice, f"/jobs/{submitted['id']}").json()
    assert job["status"] == JobStatus.FAILED and job["error"]
    assert [(e["row"], e["field"], e["value"]) for e in job["result"]["errors"]] == [(3, "kind", "company")]
    assert not Customer.objects.exists()


def test_contacts_and_agreements_import_as_their_own_job_kinds(client, token_for, people, api_get, alices,
                                                               django_capture_on_commit_callbacks):  # fmt: skip
    token = token_for(people.alice)
    contacts = f"customer_code,name,title\n{alices.code},周会计,财务\n".encode()
    submitted = submit(
        client, token, "contacts.csv", contacts, django_capture_on_commit_callbacks, kind="contacts"
    )
    assert submitted["kind"] == "contacts_import"
    assert api_get(people.alice, f"/jobs/{submitted['id']}").json()["status"] == JobStatus.SUCCEEDED
    assert alices.contacts.filter(name="周会计", title="财务").exists()

    agreements = (
        "customer_code,number,signing_level,start_date,end_date\n"
        f"{alices.code},GY-2027-001,station,2027-01-01,\n"
    ).encode()
    submitted = submit(client, token, "agreements.csv", agreements, django_capture_on_commit_callbacks,
                       kind="agreements")  # fmt: skip
    assert submitted["kind"] == "agreements_import"
    assert api_get(people.alice, f"/jobs/{submitted['id']}").json()["status"] == JobStatus.SUCCEEDED
    assert alices.agreements.get(number="GY-2027-001").end_date is None


def test_an_import_cannot_reach_customers_out_of_scope(client, token_for, people, api_get, alices,
                                                       django_capture_on_commit_callbacks):  # fmt: skip
    contacts = f"customer_code,name\n{alices.code},偷看者\n".encode()
    submitted = submit(client, token_for(people.bob), "c.csv", contacts, django_capture_on_commit_callbacks,
                       kind="contacts")  # fmt: skip
    job = api_get(people.bob, f"/jobs/{submitted['id']}").json()
    assert job["status"] == JobStatus.FAILED
    assert job["result"]["errors"][0]["field"] == "customer_code"
    assert not alices.contacts.filter(name="偷看者").exists()
    assert api_get(people.alice, f"/jobs/{submitted['id']}").status_code == 404


def test_a_job_is_visible_to_its_starter_only(api_get, people):
    job = Job.objects.create(kind="customers_import", created_by=people.alice, input_name="c.csv",
                             params={"dry_run": True}, status=JobStatus.FAILED, error="2 problems",
                             result={"ok": False, "errors": [{"row": 2, "field": "kind"}]})  # fmt: skip
    body = api_get(people.alice, f"/jobs/{job.pk}").json()
    assert body["status"] == "failed" and body["error"] == "2 problems"
    assert body["result"]["errors"] == [{"row": 2, "field": "kind"}]
    # progress is what the running job last reported to the cache
    cache.set(_progress_key(job.pk), (300, 1200))
    assert api_get(people.alice, f"/jobs/{job.pk}").json()["done"] == 300
    cache.delete(_progress_key(job.pk))
    assert (api_get(people.alice, f"/jobs/{job.pk}").json()["total"]) == 0
    for other in (people.head_p, people.alice_peer, people.sysadmin):
        assert api_get(other, f"/jobs/{job.pk}").status_code == 404
    assert api_get(people.alice, "/jobs/999999").status_code == 404


# ---------------------------------------------------------------- schema


def test_openapi_lists_the_customer_endpoints(client):
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    paths = schema["paths"]
    expected = {
        "/api/v1/customers": {"get", "post"},
        "/api/v1/customers/import": {"post"},
        "/api/v1/customers/{code}": {"get", "patch"},
        "/api/v1/customers/{code}/reveal": {"post"},
        "/api/v1/customers/{code}/contacts": {"get", "post"},
        "/api/v1/customers/{code}/contacts/{contact_id}": {"patch", "delete"},
        "/api/v1/customers/{code}/agreements": {"get", "post"},
        "/api/v1/customers/{code}/agreements/{agreement_id}": {"patch", "delete"},
        "/api/v1/jobs/{job_id}": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert set(paths[path]) == methods, path
        for op in paths[path].values():
            assert op["summary"] and op["description"] and op["security"], path
    components = schema["components"]["schemas"]
    assert {"count", "count_capped", "items"} <= set(components["PagedCustomerListItem"]["properties"])
    assert {"candidates", "hidden"} <= set(components["SimilarNamesError"]["properties"])
    assert "409" in paths["/api/v1/customers"]["post"]["responses"]
    assert "multipart/form-data" in paths["/api/v1/customers/import"]["post"]["requestBody"]["content"]
