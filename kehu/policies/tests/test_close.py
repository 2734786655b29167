"""The monthly close end to end: facts in, results, changes and current values out; re-runs, failures,
concurrency, scoping, overrides, simulation and the results export."""

from __future__ import annotations

import io
from datetime import date
from unittest import mock

import pytest
from django.db import IntegrityError, transaction

from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers.models import Customer
from kehu.customers.services import agreement_create, customer_create
from kehu.metrics.imports import monthly_facts_import
from kehu.policies.close import close_run, month_add
from kehu.policies.exports import close_results_export
from kehu.policies.models import CloseChange, CloseResult, CloseRun, CloseStatus, Override, OverrideStatus
from kehu.policies.packs import pack_install, pack_text
from kehu.policies.services import (
    override_decide,
    override_request,
    override_revoke,
    policy_activate,
    policy_load,
)
from kehu.policies.simulation import policy_simulate
from kehu.testing.factories import UserFactory

OCT, SEP = date(2026, 10, 1), date(2026, 9, 1)


@pytest.fixture
def fuel(people):
    pack_install(acting_user=people.sysadmin, name="fuel-retail")


def _customer(user, unit, name, kind="institution"):
    return customer_create(acting_user=user, name=name, kind=kind, owning_unit=unit,
                           division_code=unit.division_code, duplicate_reason="test")  # fmt: skip


@pytest.fixture
def cast(people, org, fuel):
    """A large, a medium and a small institution in city A; an individual in city B."""
    return {
        "big": _customer(people.alice, org.a1, "济南大通运输有限公司"),
        "mid": _customer(people.alice, org.a1, "济南中兴建材有限公司"),
        "small": _customer(people.alice, org.a1, "济南小红餐饮店"),
        "bobs": _customer(people.bob, org.b1, "王师傅", kind="individual"),
    }


def facts(tmp_path, user, rows, name="facts.csv"):
    path = tmp_path / name
    lines = ["customer_code,month,product,quantity,amount,txn_count"]
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = monthly_facts_import(acting_user=user, path=path, filename=name)
    assert not result.errors, result.errors
    return result


def october(tmp_path, people, cast, *, big_gasoline="5.000"):
    facts(tmp_path, people.head_p, [
        (cast["big"].code, "2026-10", "gasoline", big_gasoline, "40000.00", 10),
        (cast["mid"].code, "2026-10", "diesel", "20.000", "150000.00", 8),
        (cast["small"].code, "2026-10", "gasoline", "1.999", "15000.00", 3),
        (cast["bobs"].code, "2026-10", "gasoline", "0.500", "4000.00", 2),
    ])  # fmt: skip


def result_of(customer, month=OCT) -> CloseResult:
    return CloseResult.objects.get(customer=customer, month=month)


# ---------------------------------------------------------------- the close


def test_close_classifies_every_customer_with_explanations(tmp_path, people, cast):
    october(tmp_path, people, cast)
    run = close_run(acting_user=people.head_p, month=OCT)
    assert run.status == CloseStatus.SUCCEEDED and run.customers == 4
    big, mid, small, bobs = (result_of(cast[k]) for k in ("big", "mid", "small", "bobs"))
    assert big.outputs == {"size": "large", "level": "city", "churn": False}
    assert mid.outputs == {"size": "medium", "level": "county", "churn": False}
    assert small.outputs == {"size": "small", "level": "station", "churn": False}
    assert bobs.outputs == {"size": None, "level": "station", "churn": False}
    assert big.responsible_level == "city"
    assert "gasoline_t" in big.explanation and "5" in big.explanation
    assert big.metrics["gasoline_t"] == "5.000"
    customer = Customer.objects.get(pk=cast["big"].pk)
    assert customer.standing == {"size": "large", "level": "city", "churn": False}
    assert customer.standing_month == OCT and customer.responsible_level == "city"
    assert run.summary["distribution"]["size"] == {"large": 1, "medium": 1, "small": 1, "": 1}
    event = AuditEvent.objects.filter(action="close.run").latest("pk")
    assert event.extra["customers"] == 4 and event.actor_username == "head_p"


def test_just_under_the_bound_is_the_lower_class(tmp_path, people, cast):
    october(tmp_path, people, cast, big_gasoline="4.999")
    close_run(acting_user=people.head_p, month=OCT)
    assert result_of(cast["big"]).outputs["size"] == "medium"
    assert result_of(cast["big"]).outputs["level"] == "county"


def test_rerun_gives_identical_results_and_no_duplicate_changes(tmp_path, people, cast):
    facts(
        tmp_path, people.head_p, [(cast["big"].code, "2026-09", "gasoline", "2.500", "20000", 5)], "sep.csv"
    )
    close_run(acting_user=people.head_p, month=SEP)
    october(tmp_path, people, cast)
    first = close_run(acting_user=people.head_p, month=OCT)
    rows = {
        r.customer_id: (r.outputs, r.explanation, r.metrics) for r in CloseResult.objects.filter(month=OCT)
    }
    changes = sorted(
        CloseChange.objects.filter(month=OCT).values_list("customer_id", "output", "before", "after", "kind")
    )
    assert (cast["big"].pk, "size", "medium", "large", "upgrade") in changes
    assert (cast["big"].pk, "level", "county", "city", "upgrade") in changes
    second = close_run(acting_user=people.head_p, month=OCT)
    assert second.pk != first.pk
    again = {
        r.customer_id: (r.outputs, r.explanation, r.metrics) for r in CloseResult.objects.filter(month=OCT)
    }
    assert again == rows
    assert (
        sorted(
            CloseChange.objects.filter(month=OCT).values_list(
                "customer_id", "output", "before", "after", "kind"
            )
        )
        == changes
    )
    assert second.summary["standing_updated"] == 0  # nothing differs the second time


def test_the_first_close_ever_records_no_changes(tmp_path, people, cast):
    october(tmp_path, people, cast)
    run = close_run(acting_user=people.head_p, month=OCT)
    assert run.changes == 0 and not CloseChange.objects.exists()


def test_a_failed_close_leaves_the_previous_results_untouched(tmp_path, people, cast):
    october(tmp_path, people, cast)
    close_run(acting_user=people.head_p, month=OCT)
    before = list(CloseResult.objects.filter(month=OCT).order_by("pk").values_list("pk", "outputs"))
    with mock.patch("kehu.policies.close._update_standing", side_effect=RuntimeError("disk full")):
        with pytest.raises(RuntimeError):
            close_run(acting_user=people.head_p, month=OCT)
    assert list(CloseResult.objects.filter(month=OCT).order_by("pk").values_list("pk", "outputs")) == before
    failed = CloseRun.objects.latest("pk")
    assert failed.status == CloseStatus.FAILED and failed.error
    assert AuditEvent.objects.filter(action="close.run", outcome="failure").exists()


def test_two_closes_of_one_month_cannot_run_at_once(people, cast):
    from kehu.policies.selectors import policy_in_force

    CloseRun.objects.create(month=OCT, policy=policy_in_force(month=OCT), started_by=people.head_a)
    with pytest.raises(ServiceError) as caught:
        close_run(acting_user=people.head_p, month=OCT)
    assert caught.value.code == "close_running" and "head_a" in caught.value.message
    with pytest.raises(IntegrityError), transaction.atomic():
        CloseRun.objects.create(month=OCT, policy=policy_in_force(month=OCT), started_by=people.head_p)
    # another month is free
    assert close_run(acting_user=people.head_p, month=SEP).status == CloseStatus.SUCCEEDED


def test_a_run_abandoned_hours_ago_does_not_block(people, cast):
    from django.utils import timezone

    from kehu.policies.selectors import policy_in_force

    stale = CloseRun.objects.create(month=OCT, policy=policy_in_force(month=OCT), started_by=people.head_a)
    CloseRun.objects.filter(pk=stale.pk).update(started_at=timezone.now() - timezone.timedelta(hours=3))
    assert close_run(acting_user=people.head_p, month=OCT).status == CloseStatus.SUCCEEDED
    assert CloseRun.objects.get(pk=stale.pk).status == CloseStatus.FAILED


def test_refusals(people, cast):
    with pytest.raises(NotAllowed):
        close_run(acting_user=people.alice, month=OCT)
    with pytest.raises(ServiceError, match="not begun"):
        close_run(acting_user=people.head_p, month=date(2099, 1, 1))


def test_no_policy_no_close(people, org):
    with pytest.raises(ServiceError, match="No policy applies"):
        close_run(acting_user=people.head_p, month=OCT)


# ---------------------------------------------------------------- scoping


def test_a_city_head_closes_only_their_subtree_and_totals_stay_deployment_wide(tmp_path, people, org, cast):
    october(tmp_path, people, cast)
    run = close_run(acting_user=people.head_a, month=OCT)
    assert run.customers == 3
    assert not CloseResult.objects.filter(customer=cast["bobs"]).exists()
    close_run(acting_user=people.head_p, month=OCT, unit=org.city_b)
    assert CloseResult.objects.filter(month=OCT).count() == 4


def test_results_are_seen_within_scope_only(tmp_path, people, cast):
    october(tmp_path, people, cast)
    close_run(acting_user=people.head_p, month=OCT)
    assert CloseResult.objects.visible_to(people.alice).count() == 3  # her customers
    assert CloseResult.objects.visible_to(people.bob).count() == 1  # the peer in another branch: his own only
    assert CloseResult.objects.visible_to(people.head_a).count() == 3  # the superior unit: its subtree
    assert CloseResult.objects.visible_to(people.head_p).count() == 4
    assert CloseResult.objects.visible_to(people.sysadmin).count() == 0  # operations without seeing data


def test_the_system_administrator_closes_every_customer(tmp_path, people, cast):
    october(tmp_path, people, cast)
    run = close_run(acting_user=people.sysadmin, month=OCT)
    assert run.customers == 4


# ---------------------------------------------------------------- overrides


def test_an_approved_override_holds_across_closes_until_revoked(tmp_path, people, org, cast):
    october(tmp_path, people, cast)
    head_p2 = UserFactory(username="head_p2", unit=org.province, roles=[Role.UNIT_HEAD])
    override = override_request(acting_user=people.head_a, customer=cast["small"], output="level", value="city",
                                reason="集团战略客户")  # fmt: skip
    with pytest.raises(NotAllowed):
        override_decide(acting_user=people.head_a, override=override, approve=True)  # not the requester
    close_run(acting_user=people.head_p, month=OCT)
    assert result_of(cast["small"]).outputs["level"] == "station"  # pending: not applied
    override_decide(acting_user=head_p2, override=override, approve=True, note="同意")
    close_run(acting_user=people.head_p, month=OCT)
    small = result_of(cast["small"])
    assert small.outputs["level"] == "city" and small.responsible_level == "city"
    assert "override" in small.explanation
    override_revoke(acting_user=head_p2, override=override)
    close_run(acting_user=people.head_p, month=OCT)
    assert result_of(cast["small"]).outputs["level"] == "station"
    assert Override.objects.get(pk=override.pk).status == OverrideStatus.REVOKED
    actions = set(AuditEvent.objects.filter(action__startswith="override.").values_list("action", flat=True))
    assert actions == {"override.request", "override.approve", "override.revoke"}


def test_override_checks(people, org, cast):
    with pytest.raises(ServiceError, match="no output"):
        override_request(
            acting_user=people.head_a, customer=cast["small"], output="grade", value="x", reason="r"
        )
    with pytest.raises(ServiceError, match="not a value"):
        override_request(
            acting_user=people.head_a, customer=cast["small"], output="level", value="x", reason="r"
        )
    with pytest.raises(ServiceError, match="reason"):
        override_request(
            acting_user=people.head_a, customer=cast["small"], output="level", value="city", reason=" "
        )
    with pytest.raises(ServiceError):  # bob's customer is out of city A's scope
        override_request(
            acting_user=people.head_a, customer=cast["bobs"], output="level", value="city", reason="r"
        )
    override = override_request(acting_user=people.head_a, customer=cast["small"], output="level", value="city",
                                reason="r")  # fmt: skip
    with pytest.raises(ServiceError, match="already has an override"):
        override_request(
            acting_user=people.head_a, customer=cast["small"], output="level", value="county", reason="r"
        )
    head_a2 = UserFactory(username="head_a2", unit=org.city_a, roles=[Role.UNIT_HEAD])
    with pytest.raises(NotAllowed, match="province"):  # "approval from the top"
        override_decide(acting_user=head_a2, override=override, approve=True)
    refused = override_decide(acting_user=head_a2, override=override, approve=False, note="不符合")
    assert refused.status == OverrideStatus.REFUSED


# ---------------------------------------------------------------- agreements


def test_an_agreement_signed_at_province_level_makes_a_province_customer(tmp_path, people, org, cast):
    agreement_create(acting_user=people.alice, customer=cast["small"], number="SD-2026-1", signing_level="province",
                     start_date=date(2026, 10, 31), signing_unit=org.province)  # fmt: skip
    october(tmp_path, people, cast)
    close_run(acting_user=people.head_p, month=OCT)
    assert result_of(cast["small"]).outputs["level"] == "province"


# ---------------------------------------------------------------- simulation and export


def test_simulation_with_an_edited_threshold_writes_nothing(tmp_path, people, cast):
    october(tmp_path, people, cast)
    close_run(acting_user=people.head_p, month=OCT)
    results_before = CloseResult.objects.count()
    draft = pack_text("fuel-retail").replace("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, gte: 6}")
    simulation = policy_simulate(acting_user=people.head_p, month=OCT, draft_text=draft)
    assert simulation.customers == 4
    assert simulation.distribution["size"]["large"] == {"now": 1, "draft": 0}
    assert ("large", "medium", 1) in simulation.moves["size"]
    assert simulation.changed["customer_id"].to_list() == [cast["big"].pk]
    assert CloseResult.objects.count() == results_before
    assert AuditEvent.objects.filter(action="policy.simulate").exists()


def test_results_export_has_one_column_per_output(tmp_path, people, cast):
    october(tmp_path, people, cast)
    close_run(acting_user=people.head_p, month=OCT)
    out = io.BytesIO()
    count = close_results_export(acting_user=people.head_a, fmt="csv", out=out, month=OCT)
    lines = out.getvalue().decode().splitlines()
    assert count == 3 and lines[0] == "customer_code,size,level,churn,explanation"
    row = next(line for line in lines if line.startswith(cast["big"].code))
    assert row.startswith(f"{cast['big'].code},large,city,false,")
    out = io.BytesIO()
    close_results_export(acting_user=people.head_p, fmt="xlsx", out=out, month=OCT)
    assert out.getvalue()[:2] == b"PK"
    with pytest.raises(ServiceError, match="not been closed"):
        close_results_export(acting_user=people.head_p, fmt="csv", out=io.BytesIO(), month=SEP)


def test_a_policy_version_activated_later_applies_from_its_month(tmp_path, people, cast):
    october(tmp_path, people, cast)
    draft = pack_text("fuel-retail").replace("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, gte: 6}")
    policy, created = policy_load(acting_user=people.head_p, text=draft, comment="stricter")
    assert created and policy.version == 2
    assert policy_load(acting_user=people.head_p, text=draft)[1] is False  # the same text: nothing new
    policy_activate(acting_user=people.head_p, name="fuel-retail", version=2, valid_from=OCT)
    close_run(acting_user=people.head_p, month=SEP)
    assert CloseRun.objects.get(month=SEP).policy.version == 1
    close_run(acting_user=people.head_p, month=OCT)
    assert result_of(cast["big"]).outputs["size"] == "medium"
    assert result_of(cast["big"]).policy.version == 2
    assert month_add(OCT, -10) == date(2025, 12, 1)


# ---------------------------------------------------------------- merging


def test_a_merge_sums_the_sales_and_moves_results_and_overrides(tmp_path, people, cast):
    from kehu.customers.merge import customer_merge
    from kehu.metrics.models import SalesFact

    facts(tmp_path, people.head_p, [
        (cast["mid"].code, "2026-10", "gasoline", "3.000", "24000.00", 4),
        (cast["small"].code, "2026-10", "gasoline", "2.000", "16000.00", 2),
        (cast["small"].code, "2026-09", "diesel", "1.500", "12000.00", 1),
    ])  # fmt: skip
    close_run(acting_user=people.head_p, month=OCT)
    override_request(
        acting_user=people.head_a, customer=cast["small"], output="level", value="city", reason="r"
    )
    customer_merge(acting_user=people.alice, keep=cast["mid"], remove=cast["small"], reason="同一客户")
    gasoline = SalesFact.objects.get(customer=cast["mid"], month=OCT, product__code="gasoline")
    assert gasoline.quantity_milli == 5000 and gasoline.amount_fen == 4_000_000 and gasoline.txn_count == 6
    assert SalesFact.objects.filter(customer=cast["mid"], month=SEP).count() == 1
    assert CloseResult.objects.filter(customer=cast["mid"], month=OCT).count() == 1
    assert Override.objects.get(customer=cast["mid"]).status == OverrideStatus.PENDING
    close_run(acting_user=people.head_p, month=OCT)  # the snapshot is rebuilt: 5 t is large
    assert result_of(cast["mid"]).outputs["size"] == "large"


def test_everyone_signed_in_reads_the_policies(people, fuel):
    from kehu.policies.selectors import activation_list, policy_list

    for user in (people.alice, people.bob, people.auditor):
        assert [p.name for p in policy_list(viewer=user)] == ["fuel-retail"]
        assert activation_list(viewer=user).count() == 1
