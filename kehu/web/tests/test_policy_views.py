"""Classification pages, browser-free (Django test client): the fuel pack loaded, monthly facts imported,
the close started from its page, results filtered and exported, the changes, a simulation with an edited
threshold, an override requested on the customer page, approved on the overrides page and seen in the
next close's explanation; policies listed, shown, checked, loaded and activated; scoping and refusals."""

from __future__ import annotations

import csv
import io
from datetime import date
from types import SimpleNamespace

import polars as pl
import pytest
from django.utils import translation

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.customers.services import customer_create
from kehu.metrics.imports import monthly_facts_import
from kehu.policies.close import close_run
from kehu.policies.models import CloseRun, Override, OverrideStatus, Policy, PolicyActivation
from kehu.policies.packs import pack_install, pack_text
from kehu.testing.factories import UserFactory, sign_in

pytestmark = pytest.mark.django_db

AUG, SEP = date(2025, 8, 1), date(2025, 9, 1)
SIZE_LARGE_GASOLINE = "outputs.size.first_match[0].if.any[0].gte"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def facts_dir(settings, tmp_path):
    settings.KEHU_FACTS_DIR = str(tmp_path / "facts")
    settings.MEDIA_ROOT = str(tmp_path / "media")


def build_world(org, people, tmp_path):
    """The fuel pack, three customers (A1 owned by alice, A2, B1 owned by bob), August and September facts
    imported through the metrics service, and head_b, the unit head of city B (a peer in another branch)."""
    pack_install(acting_user=people.sysadmin, name="fuel-retail")

    def make(unit, name, **kw):
        return customer_create(acting_user=people.head_p, name=name, kind="institution", owning_unit=unit,
                               division_code=unit.division_code, duplicate_reason="test", **kw)  # fmt: skip

    a1 = make(org.a1, "历下物流有限公司", lead_manager=people.alice)
    a2 = make(org.a2, "市中运输有限公司")
    b1 = make(org.b1, "市南出租车公司", lead_manager=people.bob)
    rows = [
        (a1.code, "2025-08", "gasoline", "2.000", "16000.00", "4"),
        (a1.code, "2025-09", "gasoline", "5.000", "40000.00", "10"),  # exactly 5 t: large, city
        (a2.code, "2025-09", "gasoline", "1.999", "15000.00", "3"),  # just under 2 t: small, station
        (b1.code, "2025-09", "diesel", "20.000", "150000.00", "8"),  # exactly 20 t: medium, county
    ]
    path = tmp_path / "monthly.csv"
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["customer_code", "month", "product", "quantity", "amount", "txn_count"])
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    result = monthly_facts_import(acting_user=people.head_p, path=path, filename="monthly.csv")
    assert result.ok, result.errors
    head_b = UserFactory(username="head_b", full_name="青岛主任", unit=org.city_b, roles=[Role.UNIT_HEAD])
    return SimpleNamespace(a1=a1, a2=a2, b1=b1, head_b=head_b, people=people, org=org)


@pytest.fixture
def world(org, people, tmp_path):
    return build_world(org, people, tmp_path)


def text(response) -> str:
    return response.content.decode()


def download(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def close_by_page(client, month: str, capture, **extra):
    with capture(execute=True):
        response = client.post("/close/", {"month": month, **extra})
    assert response.status_code == 302, text(response)
    return response


# ---------------------------------------------------------------- end to end


def test_close_results_export_changes_and_the_customer_page(
    client, world, django_capture_on_commit_callbacks
):
    people = world.people
    sign_in(client, people.head_p)
    close_by_page(client, "2025-08", django_capture_on_commit_callbacks)
    response = close_by_page(client, "2025-09", django_capture_on_commit_callbacks)
    job_page = text(client.get(response["Location"]))
    assert 'data-testid="close-done"' in job_page and "2025-09 is closed: 3 customers" in job_page

    runs = text(client.get("/close/"))
    assert runs.count("data-run=") == 2 and "fuel-retail v1" in runs

    page = text(client.get("/close/2025-09/"))
    assert "3 customers" in page
    assert 'data-output="size" data-value="large">大型' in page  # the policy's label, 5 t exactly
    assert "gasoline_t 5.000 ≥ 5" in page  # the explanation
    filtered = text(client.get("/close/2025-09/", {"value": "size=large"}))
    assert world.a1.code in filtered and world.a2.code not in filtered and world.b1.code not in filtered
    searched = text(client.get("/close/2025-09/", {"q": "市南"}))
    assert world.b1.code in searched and world.a1.code not in searched
    upgraded = text(client.get("/close/2025-09/", {"change": "upgrade"}))
    assert world.a1.code in upgraded and world.b1.code in upgraded and world.a2.code not in upgraded
    assert client.get("/close/2025-09/", {"value": "nosuch=1"}).status_code == 200  # not a choice: form error

    csv_text = download(client.get("/close/2025-09/export/", {"format": "csv"})).decode()
    frame = pl.read_csv(io.StringIO(csv_text), infer_schema_length=0)
    assert frame.columns == ["customer_code", "size", "level", "churn", "explanation"]
    assert frame.filter(pl.col("customer_code") == world.b1.code).row(0)[1:4] == ("medium", "county", "false")
    only_large = download(
        client.get("/close/2025-09/export/", {"format": "csv", "value": "size=large"})
    ).decode()
    assert only_large.count("\n") == 2 and world.a1.code in only_large
    xlsx = client.get("/close/2025-09/export/", {"format": "xlsx", "change": "any"})
    assert download(xlsx)[:2] == b"PK"
    assert AuditEvent.objects.filter(action="close.export").count() == 3

    changes = text(client.get("/close/2025-09/changes/"))
    assert f'data-code="{world.a1.code}" data-kind="upgrade"' in changes
    assert f'data-code="{world.b1.code}" data-kind="upgrade"' in changes
    assert f'data-code="{world.a2.code}"' not in changes  # small and station in both months

    customer_page = text(client.get(f"/customers/{world.a1.code}/sales/"))
    assert 'data-testid="customer-standing"' in customer_page and "规模: 大型" in customer_page
    assert 'data-testid="responsible-level">Responsible level: city' in customer_page
    assert 'data-testid="sales-charts"' in customer_page and "echarts.min.js" in customer_page
    assert 'data-month="2025-09"' in customer_page and 'data-month="2025-08"' in customer_page
    assert "fuel-retail v1" in customer_page


def test_the_sales_tab_says_not_yet_recorded_without_sales_or_results(client, world, org, people):
    empty = customer_create(acting_user=people.head_p, name="无销售公司", kind="individual", owning_unit=org.a1,
                            division_code=org.a1.division_code, duplicate_reason="test")  # fmt: skip
    sign_in(client, people.head_p)
    page = text(client.get(f"/customers/{empty.code}/sales/"))
    assert 'data-testid="not-recorded"' in page and "close-history" not in page


def test_simulation_with_an_edited_threshold(client, world, django_capture_on_commit_callbacks):
    people = world.people
    close_run(acting_user=people.head_p, month=SEP)
    sign_in(client, people.head_p)
    form = text(client.get("/policies/simulate/", {"month": "2025-09"}))
    assert f'name="edit:{SIZE_LARGE_GASOLINE}" value="5"' in form
    response = client.post("/policies/simulate/", {"month": "2025-09", "mode": "edits",
                                                   f"edit:{SIZE_LARGE_GASOLINE}": "6"})  # fmt: skip
    page = text(response)
    assert response.status_code == 200, page
    assert 'data-testid="chart-size"' in page and "echarts.min.js" in page
    assert 'data-testid="changed-count">1 customer' in page and f'data-code="{world.a1.code}"' in page
    assert "large → <strong>medium</strong>" in page
    exported = client.post("/policies/simulate/", {"month": "2025-09", "mode": "edits", "export": "csv",
                                                   f"edit:{SIZE_LARGE_GASOLINE}": "6"})  # fmt: skip
    frame = pl.read_csv(io.BytesIO(exported.content), infer_schema_length=0)
    assert frame["customer_code"].to_list() == [world.a1.code]
    assert frame.row(0, named=True)["size_draft"] == "medium"
    bad = client.post(
        "/policies/simulate/", {"month": "2025-09", "mode": "draft", "draft": "policy: x\nfoo: 1\n"}
    )
    assert bad.status_code == 400 and 'data-testid="policy-problems"' in text(bad)
    assert Policy.objects.count() == 1  # a simulation stores nothing
    unchanged = client.post("/policies/simulate/", {"month": "2025-09", "mode": "edits"})
    assert unchanged.status_code == 200 and 'data-testid="changed-count">0 customers' in text(unchanged)


def test_override_requested_approved_and_seen_in_the_next_close(client, world):
    people = world.people
    close_run(acting_user=people.head_p, month=SEP)
    sign_in(client, people.station_mgr_a1)
    page = text(client.get(f"/customers/{world.a1.code}/sales/"))
    assert 'data-testid="override-request"' in page
    response = client.post(f"/overrides/request/{world.a1.code}/", {
        "override-output": "level", "override-value": "province", "override-reason": "特殊客户 上级批准",
    })  # fmt: skip
    assert response.status_code == 302
    override = Override.objects.get()
    assert override.status == OverrideStatus.PENDING and override.requested_by == people.station_mgr_a1
    again = client.post(f"/overrides/request/{world.a1.code}/", {
        "override-output": "level", "override-value": "province", "override-reason": "again"})  # fmt: skip
    assert "already has an override" in text(client.get(again["Location"]))
    wrong = client.post(f"/overrides/request/{world.a1.code}/", {
        "override-output": "size", "override-value": "huge", "override-reason": "x"})  # fmt: skip
    assert "is not a value of size" in text(client.get(wrong["Location"]))

    # The requester may not approve (no capability): the service's refusal is a message.
    refused = client.post(f"/overrides/{override.pk}/approve/", {"tab": "pending"}, follow=True)
    assert "You may not approve overrides." in text(refused)
    # head_a (city level) may not approve a province-level override.
    client.logout()
    sign_in(client, people.head_a)
    listed = text(client.get("/overrides/"))
    assert f'data-override="{override.pk}"' in listed and 'data-testid="approve"' in listed
    too_low = client.post(f"/overrides/{override.pk}/approve/", {"tab": "pending"}, follow=True)
    assert "needs approval at province level" in text(too_low)
    client.logout()
    sign_in(client, people.head_p)
    done = client.post(f"/overrides/{override.pk}/approve/", {"tab": "pending", "note": "同意"}, follow=True)
    assert "Override approved" in text(done)
    override.refresh_from_db()
    assert override.status == OverrideStatus.APPROVED and override.decided_by == people.head_p
    assert f'data-override="{override.pk}"' in text(client.get("/overrides/", {"status": "approved"}))

    close_run(acting_user=people.head_p, month=SEP)
    history = text(client.get(f"/customers/{world.a1.code}/sales/"))
    assert f"override #{override.pk} approved by head_p" in history
    results = text(client.get("/close/2025-09/", {"value": "level=province"}))
    assert world.a1.code in results

    revoked = client.post(f"/overrides/{override.pk}/revoke/", {"tab": "approved"}, follow=True)
    assert "Override revoked" in text(revoked)
    assert Override.objects.get().status == OverrideStatus.REVOKED


# ---------------------------------------------------------------- policies


def test_policies_list_show_check_load_and_activate(client, world):
    people = world.people
    sign_in(client, people.alice)  # published rules: anyone signed in reads them
    listed = text(client.get("/policies/"))
    assert 'data-policy="fuel-retail-1"' in listed and "2000-01" in listed
    shown = text(client.get("/policies/fuel-retail/1/"))
    assert 'data-testid="policy-document"' in shown and "first_match" in shown and "规模" in shown
    assert 'data-testid="policy-activate"' not in shown
    assert client.get("/policies/load/").status_code == 403
    assert client.get("/policies/nosuch/1/").status_code == 404
    client.logout()

    sign_in(client, people.head_p)
    broken = pack_text("fuel-retail").replace("gasoline_t, gte: 5}", "gasolin_t, gte: 5}", 1)
    checked = client.post("/policies/load/", {"text": broken, "action": "check"})
    page = text(checked)
    assert checked.status_code == 400 and 'data-testid="policy-problems"' in page and "gasolin_t" in page
    line = next(n for n, s in enumerate(broken.splitlines(), start=1) if "gasolin_t" in s)
    assert f'<td class="num">{line}</td>' in page  # the problem names its line
    assert Policy.objects.count() == 1
    stored = client.post("/policies/load/", {"text": broken, "action": "load"})
    assert stored.status_code == 400 and Policy.objects.count() == 1

    draft = pack_text("fuel-retail").replace("gasoline_t, gte: 5}", "gasoline_t, gte: 6}", 1)
    ok = client.post("/policies/load/", {"text": draft, "action": "check"})
    assert 'data-testid="policy-valid"' in text(ok)
    loaded = client.post("/policies/load/", {"text": draft, "action": "load", "comment": "6 t"})
    assert loaded.status_code == 302 and loaded["Location"] == "/policies/fuel-retail/2/"
    assert Policy.objects.get(version=2).created_by == people.head_p

    bad_month = client.post("/policies/fuel-retail/2/activate/", {"valid_from": "2025-13"})
    assert bad_month.status_code == 400 and "is not a month" in text(bad_month)
    activated = client.post("/policies/fuel-retail/2/activate/", {"valid_from": "2025-10", "comment": "试行"})
    assert activated.status_code == 302
    assert PolicyActivation.objects.get(valid_from=date(2025, 10, 1)).policy.version == 2
    assert "2025-10" in text(client.get("/policies/"))


# ---------------------------------------------------------------- scoping and refusals


def test_results_runs_and_overrides_are_scoped(client, world):
    people = world.people
    close_run(acting_user=people.head_a, month=SEP, unit=world.org.city_a)
    close_run(acting_user=world.head_b, month=SEP, unit=world.org.city_b)
    override = Override.objects.create(customer=world.a1, output="level", value="province", reason="r",
                                       approval_depth=0, requested_by=people.station_mgr_a1)  # fmt: skip

    sign_in(client, people.alice)  # the owner sees her customer only
    page = text(client.get("/close/2025-09/"))
    assert world.a1.code in page and world.a2.code not in page and world.b1.code not in page
    assert f'data-override="{override.pk}"' in text(client.get("/overrides/"))
    assert client.get("/close/").status_code == 403  # no close capability
    assert client.get("/close/2025-09/export/").status_code == 403
    client.logout()

    sign_in(client, people.bob)  # a peer in another branch: nothing of city A
    page = text(client.get("/close/2025-09/"))
    assert world.b1.code in page and world.a1.code not in page
    assert f'data-override="{override.pk}"' not in text(client.get("/overrides/"))
    assert client.get(f"/customers/{world.a1.code}/sales/").status_code == 404
    assert client.post(f"/overrides/{override.pk}/revoke/").status_code == 404
    client.logout()

    sign_in(client, world.head_b)
    runs = text(client.get("/close/"))
    run_a = CloseRun.objects.get(unit=world.org.city_a)
    assert f'data-run="{run_a.pk}"' not in runs and runs.count("data-run=") == 1
    client.logout()

    sign_in(client, people.head_p)  # the province sees the whole subtree
    page = text(client.get("/close/2025-09/"))
    assert all(c.code in page for c in (world.a1, world.a2, world.b1))
    assert text(client.get("/close/")).count("data-run=") == 2


def test_capability_refusals(client, world, tmp_path):
    people = world.people
    sign_in(client, people.alice)
    assert client.get("/policies/simulate/").status_code == 403  # MANAGE_POLICIES
    assert client.post("/policies/fuel-retail/1/activate/", {"valid_from": "2025-01"}).status_code == 403
    assert client.get("/sales/import/").status_code == 403  # IMPORT_SALES
    assert client.post("/close/", {"month": "2025-09"}).status_code == 403  # RUN_CLOSE
    assert client.post(f"/overrides/request/{world.a1.code}/", {}).status_code == 403  # REQUEST_OVERRIDE
    assert 'data-testid="override-request"' not in text(client.get(f"/customers/{world.a1.code}/sales/"))
    client.logout()
    sign_in(client, people.station_mgr_a1)
    override = Override.objects.create(customer=world.a1, output="level", value="province", reason="r",
                                       approval_depth=0, requested_by=people.head_a)  # fmt: skip
    response = client.post(f"/overrides/{override.pk}/approve/", follow=True)  # APPROVE_OVERRIDE
    assert "You may not approve overrides." in text(response)
    assert Override.objects.get().status == OverrideStatus.PENDING
    nav = text(client.get("/"))
    assert 'data-nav="close"' not in nav and 'data-nav="overrides"' not in nav
    client.logout()
    sign_in(client, people.head_p)
    nav = text(client.get("/"))
    assert 'data-nav="close"' in nav and 'data-nav="overrides"' in nav


def test_bad_close_input_is_shown_on_the_form(client, world):
    sign_in(client, world.people.head_p)
    bad_month = client.post("/close/", {"month": "2025-9"})
    assert bad_month.status_code == 400 and "is not a month" in text(bad_month)
    unknown_unit = client.post("/close/", {"month": "2025-09", "unit": "NOPE"})
    assert unknown_unit.status_code == 400 and "No unit with the code" in text(unknown_unit)
    assert CloseRun.objects.count() == 0


def test_the_system_administrator_simulates_and_closes_without_seeing_customers(client, world):
    """The system administrator runs the deployment's operations over every customer, seeing counts only."""
    close_run(acting_user=world.people.sysadmin, month=SEP)
    sign_in(client, world.people.sysadmin)
    assert 'data-run="' in text(client.get("/close/"))
    page = text(client.post("/policies/simulate/", {"month": "2025-09", "mode": "edits",
                                                    f"edit:{SIZE_LARGE_GASOLINE}": "6"}))  # fmt: skip
    assert "over 3 customers — 1 would change" in page
    assert 'data-testid="changed-count">0 customers' in page and world.a1.code not in page
    results = text(client.get("/close/2025-09/"))
    assert 'data-testid="results-count">0 customers' in results and world.a1.code not in results
