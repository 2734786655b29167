"""The classification API: sales import, policies (list, read, validate, load, activate, simulate), the
close (start, runs, results), a customer's results and overrides. Scoped (owner / peer in another branch
gets 404 / superior unit sees the subtree), refused without the capability (403), in the OpenAPI schema."""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from kehu.jobs.models import Job
from kehu.metrics.models import SalesFact
from kehu.policies.close import close_run
from kehu.policies.models import CloseRun, Override, OverrideStatus, Policy, PolicyActivation
from kehu.policies.packs import pack_text
from kehu.web.tests.test_policy_views import SEP, SIZE_LARGE_GASOLINE, build_world

pytestmark = pytest.mark.django_db
NOT_FOUND = {"detail": "Not found."}


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.KEHU_FACTS_DIR = str(tmp_path / "facts")
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def world(org, people, tmp_path):
    return build_world(org, people, tmp_path)


@pytest.fixture
def call(client, token_for):
    def _call(method: str, user, path: str, body=None, *, files=None, **params):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token_for(user)}"}
        url = f"/api/v1{path}"
        if method == "get":
            return client.get(url, params, **headers)
        if params:
            url += "?" + urlencode(params)
        if files is not None:
            return client.post(url, {**(body or {}), **files}, **headers)
        return client.post(url, json.dumps(body if body is not None else {}), content_type="application/json",
                           **headers)  # fmt: skip

    return _call


def codes(response) -> set[str]:
    return {item["customer"]["code"] for item in response.json()["items"]}


# ---------------------------------------------------------------- end to end


def test_close_results_simulation_and_override_end_to_end(call, world, django_capture_on_commit_callbacks):
    people = world.people
    with django_capture_on_commit_callbacks(execute=True):
        started = call("post", people.head_p, "/close", {"month": "2025-09"})
    assert started.status_code == 202 and started.json()["kind"] == "monthly_close"
    job = Job.objects.get(pk=started.json()["id"])
    assert job.status == "succeeded", job.error
    run_id = job.result["run"]
    run = call("get", people.head_p, f"/close/runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["customers"] == 3 and run["policy"] == "fuel-retail v1"
    assert run["summary"]["distribution"]["size"] == {"large": 1, "medium": 1, "small": 1}

    results = call("get", people.head_p, "/close/2025-09/results")
    assert results.status_code == 200 and results.json()["count"] == 3
    by_code = {r["customer"]["code"]: r for r in results.json()["items"]}
    assert by_code[world.a1.code]["outputs"] == {"size": "large", "level": "city", "churn": False}
    assert by_code[world.a1.code]["responsible_level"] == "city"
    assert "gasoline_t 5.000 ≥ 5" in by_code[world.a1.code]["explanation"]
    assert codes(call("get", people.head_p, "/close/2025-09/results", output="size", value="small")) == {
        world.a2.code
    }
    assert codes(call("get", people.head_p, "/close/2025-09/results", output="churn", value="false")) == {
        world.a1.code, world.a2.code, world.b1.code}  # fmt: skip
    assert codes(call("get", people.head_p, "/close/2025-09/results", q="市南")) == {world.b1.code}
    unknown = call("get", people.head_p, "/close/2025-09/results", output="grade", value="gold")
    assert unknown.status_code == 400 and unknown.json()["field"] == "output"
    assert call("get", people.head_p, "/close/2025-13/results").status_code == 400

    simulated = call("post", people.head_p, "/policies/simulate",
                     {"month": "2025-09", "edits": {SIZE_LARGE_GASOLINE: "6"}})  # fmt: skip
    body = simulated.json()
    assert simulated.status_code == 200, body
    assert body["changed_count"] == 1 and body["customers"] == 3
    assert body["distribution"]["size"]["large"] == {"now": 1, "draft": 0}
    assert body["moves"]["size"] == [{"now": "large", "draft": "medium", "customers": 1}]
    assert body["changed"][0]["customer"]["code"] == world.a1.code
    assert body["changed"][0]["draft"]["size"] == "medium" and body["changed"][0]["now"]["size"] == "large"
    both = call("post", people.head_p, "/policies/simulate", {"month": "2025-09", "draft": "x", "edits": {}})
    assert both.status_code == 400
    invalid = call("post", people.head_p, "/policies/simulate", {"month": "2025-09", "draft": "policy: x\n"})
    assert invalid.status_code == 400 and invalid.json()["problems"]

    requested = call("post", people.station_mgr_a1, "/overrides",
                     {"customer_code": world.a1.code, "output": "level", "value": "province", "reason": "特殊客户"})  # fmt: skip
    assert requested.status_code == 201, requested.json()
    override_id = requested.json()["id"]
    assert requested.json()["status"] == "pending"
    too_low = call("post", people.head_a, f"/overrides/{override_id}/approve", {"note": ""})
    assert too_low.status_code == 403
    approved = call("post", people.head_p, f"/overrides/{override_id}/approve", {"note": "同意"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["decided_by"]["username"] == "head_p"

    close_run(acting_user=people.head_p, month=SEP)
    history = call("get", people.alice, f"/customers/{world.a1.code}/results")
    assert history.status_code == 200
    latest = history.json()["items"][0]
    assert latest["outputs"]["level"] == "province" and latest["responsible_level"] == "province"
    assert f"override #{override_id} approved by head_p" in latest["explanation"]

    revoked = call("post", people.head_p, f"/overrides/{override_id}/revoke", {"note": "到期"})
    assert revoked.json()["status"] == "revoked" and revoked.json()["revoked_by"]["username"] == "head_p"
    again = call("post", people.head_p, f"/overrides/{override_id}/revoke", {})
    assert again.status_code == 400


def test_sales_import_through_the_api(call, world, django_capture_on_commit_callbacks):
    people = world.people
    content = ("txn_id,customer_code,date,product,quantity,amount\n"
               f"X1,{world.a1.code},2025-10-02,diesel,1.5,9000.00\n").encode()  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = call("post", people.head_a, "/sales/import", {"kind": "transactions", "source": "pos"},
                        files={"file": SimpleUploadedFile("t.csv", content)})  # fmt: skip
    assert response.status_code == 202, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "succeeded" and job.result["new"] == 1
    assert SalesFact.objects.filter(source="pos", quantity_milli=1500).exists()
    wrong = call("post", people.head_a, "/sales/import", {"kind": "orders"},
                 files={"file": SimpleUploadedFile("t.csv", content)})  # fmt: skip
    assert wrong.status_code == 400 and wrong.json()["field"] == "kind"
    refused = call("post", people.alice, "/sales/import", {"kind": "transactions"},
                   files={"file": SimpleUploadedFile("t.csv", content)})  # fmt: skip
    assert refused.status_code == 403


def test_policies_read_validate_load_and_activate(call, world):
    people = world.people
    listed = call("get", people.alice, "/policies")
    assert listed.status_code == 200
    assert listed.json()["items"][0] | {"created_at": None} == {
        "name": "fuel-retail", "version": 1, "title": "中国石油 客户分类与分级", "comment": Policy.objects.get().comment,
        "created_by": {"username": "sysadmin", "full_name": "系统管理员"}, "created_at": None,
        "applies_from": ["2000-01"]}  # fmt: skip
    one = call("get", people.alice, "/policies/fuel-retail/1").json()
    assert one["products"] == ["gasoline", "diesel", "card"]
    assert [o["name"] for o in one["outputs"]] == ["size", "level", "churn"]
    assert one["outputs"][0]["values"][0] == {"value": "large", "label": "大型"}
    assert {"path": SIZE_LARGE_GASOLINE, "value": "5"} in one["thresholds"]
    assert call("get", people.alice, "/policies/fuel-retail/9").json() == NOT_FOUND

    broken = pack_text("fuel-retail").replace("gasoline_t, gte: 5}", "gasolin_t, gte: 5}", 1)
    checked = call("post", people.alice, "/policies/validate", {"text": broken})
    assert checked.status_code == 200 and checked.json()["valid"] is False
    problem = checked.json()["problems"][0]
    assert problem["line"] == next(n for n, s in enumerate(broken.splitlines(), 1) if "gasolin_t" in s)
    assert "gasolin_t" in problem["message"] and problem["path"].startswith("outputs.size")
    assert call("post", people.alice, "/policies/validate", {"text": pack_text("fuel-retail")}).json()[
        "valid"
    ]

    assert call("post", people.alice, "/policies", {"text": pack_text("fuel-retail")}).status_code == 403
    refused = call("post", people.head_p, "/policies", {"text": broken})
    assert refused.status_code == 400 and refused.json()["problems"] and Policy.objects.count() == 1
    same = call("post", people.head_p, "/policies", {"text": pack_text("fuel-retail")})
    assert same.status_code == 200 and same.json()["created"] is False
    draft = pack_text("fuel-retail").replace("gasoline_t, gte: 5}", "gasoline_t, gte: 6}", 1)
    loaded = call("post", people.head_p, "/policies", {"text": draft, "comment": "6 t"})
    assert loaded.status_code == 201 and loaded.json()["version"] == 2 and loaded.json()["applies_from"] == []
    assert loaded.json()["created_by"]["username"] == "head_p"

    assert (
        call("post", people.alice, "/policies/fuel-retail/2/activate", {"valid_from": "2025-10"}).status_code
        == 403
    )
    bad = call("post", people.head_p, "/policies/fuel-retail/2/activate", {"valid_from": "Oct"})
    assert bad.status_code == 400 and bad.json()["field"] == "valid_from"
    done = call("post", people.head_p, "/policies/fuel-retail/2/activate", {"valid_from": "2025-10"})
    assert done.json() == {"name": "fuel-retail", "version": 2, "valid_from": "2025-10", "comment": ""}
    assert PolicyActivation.objects.get(valid_from=date(2025, 10, 1)).policy.version == 2


# ---------------------------------------------------------------- scoping


def test_results_runs_and_overrides_are_scoped(call, world):
    people, org = world.people, world.org
    close_run(acting_user=people.head_a, month=SEP, unit=org.city_a)
    close_run(acting_user=world.head_b, month=SEP, unit=org.city_b)
    run_a = CloseRun.objects.get(unit=org.city_a)
    override = Override.objects.create(customer=world.a1, output="level", value="province", reason="r",
                                       approval_depth=0, requested_by=people.station_mgr_a1)  # fmt: skip

    # The owner: her customer's results and override.
    assert codes(call("get", people.alice, "/close/2025-09/results")) == {world.a1.code}
    assert call("get", people.alice, f"/customers/{world.a1.code}/results").json()["count"] == 1
    assert [o["id"] for o in call("get", people.alice, "/overrides").json()["items"]] == [override.pk]

    # A peer in another branch: nothing of city A, 404 like missing.
    assert codes(call("get", people.bob, "/close/2025-09/results")) == {world.b1.code}
    assert call("get", people.bob, f"/customers/{world.a1.code}/results").json() == NOT_FOUND
    assert call("get", people.bob, "/overrides").json()["items"] == []
    assert call("post", people.bob, f"/overrides/{override.pk}/revoke", {}).json() == NOT_FOUND
    assert call("get", world.head_b, f"/close/runs/{run_a.pk}").json() == NOT_FOUND
    assert [r["id"] for r in call("get", world.head_b, "/close/runs").json()["items"]] == [
        CloseRun.objects.get(unit=org.city_b).pk]  # fmt: skip
    assert call("post", world.head_b, f"/overrides/{override.pk}/approve", {}).json() == NOT_FOUND
    assert Override.objects.get().status == OverrideStatus.PENDING

    # The superior unit sees the subtree.
    assert codes(call("get", people.head_p, "/close/2025-09/results")) == {
        world.a1.code,
        world.a2.code,
        world.b1.code,
    }
    assert call("get", people.head_p, "/close/runs").json()["count"] == 2
    assert call("get", people.head_a, f"/close/runs/{run_a.pk}").json()["unit"] == {
        "code": "CA",
        "name": "济南分公司",
    }
    assert codes(call("get", people.head_a, "/close/2025-09/results")) == {world.a1.code, world.a2.code}


def test_capability_refusals(call, world):
    people = world.people
    alice = people.alice  # a customer manager: reads her results, does nothing else here
    assert call("post", alice, "/close", {"month": "2025-09"}).status_code == 403  # RUN_CLOSE
    assert call("get", alice, "/close/runs").status_code == 403
    assert call("post", alice, "/policies/simulate", {"month": "2025-09", "edits": {}}).status_code == 403
    assert call("post", alice, "/overrides", {"customer_code": world.a1.code, "output": "level",
                                              "value": "province", "reason": "r"}).status_code == 403  # fmt: skip
    override = Override.objects.create(customer=world.a1, output="level", value="province", reason="r",
                                       approval_depth=0, requested_by=people.head_a)  # fmt: skip
    assert call("post", people.station_mgr_a1, f"/overrides/{override.pk}/approve", {}).status_code == 403
    assert call("post", people.station_mgr_a1, f"/overrides/{override.pk}/refuse", {}).status_code == 403
    assert (
        call("post", people.head_a, f"/overrides/{override.pk}/approve", {}).status_code == 403
    )  # own request
    refused = call("post", people.head_p, f"/overrides/{override.pk}/refuse", {"note": "no"})
    assert refused.json()["status"] == "refused"
    no_unit = call("post", people.head_a, "/close", {"month": "2025-09", "unit_code": "B1"})
    assert no_unit.status_code == 400 and no_unit.json()["field"] == "unit_code"
    assert not CloseRun.objects.exists()


def test_the_endpoints_are_in_the_openapi_schema(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/sales/import", "/api/v1/policies", "/api/v1/policies/validate", "/api/v1/policies/simulate",
                 "/api/v1/policies/{name}/{version}", "/api/v1/policies/{name}/{version}/activate", "/api/v1/close",
                 "/api/v1/close/runs", "/api/v1/close/runs/{run_id}", "/api/v1/close/{month}/results",
                 "/api/v1/customers/{code}/results", "/api/v1/overrides", "/api/v1/overrides/{override_id}/approve",
                 "/api/v1/overrides/{override_id}/refuse", "/api/v1/overrides/{override_id}/revoke"):  # fmt: skip
        assert path in paths, path
        for operation in paths[path].values():
            assert operation["summary"] and operation["description"], path


def test_results_filter_on_a_value_that_does_not_apply(call, world, org, people):
    from kehu.customers.services import customer_create

    person = customer_create(acting_user=people.head_p, name="张三", kind="individual", owning_unit=org.a1,
                             division_code=org.a1.division_code, duplicate_reason="test")  # fmt: skip
    close_run(acting_user=people.head_p, month=SEP)
    no_size = call("get", people.head_p, "/close/2025-09/results", output="size", value="")
    assert codes(no_size) == {person.code}  # individuals have no size (null in the results)
    assert no_size.json()["items"][0]["outputs"]["size"] is None
    stations = call("get", people.head_p, "/close/2025-09/results", output="level", value="station")
    assert codes(stations) == {person.code, world.a2.code}
