"""Reading policies, the months they apply to, close runs and results — always scoped to the viewer."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from kehu.policies.models import CloseChange, CloseResult, CloseRun, Override, Policy, PolicyActivation


def policy_in_force(*, month: date) -> Policy | None:
    """The version a close of ``month`` uses: the latest activation from that month or earlier."""
    activation = (
        PolicyActivation.objects.filter(valid_from__lte=month.replace(day=1))
        .select_related("policy")
        .order_by("-valid_from")
        .first()
    )
    return activation.policy if activation else None


def policy_list(*, viewer) -> QuerySet[Policy]:
    return Policy.objects.visible_to(viewer).select_related("created_by").order_by("name", "-version")


def activation_list(*, viewer) -> QuerySet[PolicyActivation]:
    return PolicyActivation.objects.visible_to(viewer).select_related("policy", "activated_by")


def close_runs(*, viewer) -> QuerySet[CloseRun]:
    return CloseRun.objects.visible_to(viewer).select_related("policy", "unit", "started_by")


def close_results(*, viewer, month: date) -> QuerySet[CloseResult]:
    return (
        CloseResult.objects.visible_to(viewer)
        .filter(month=month.replace(day=1))
        .select_related("customer", "policy")
        .order_by("customer__code")
    )


def customer_close_history(*, viewer, customer) -> QuerySet[CloseResult]:
    return (
        CloseResult.objects.visible_to(viewer)
        .filter(customer=customer)
        .select_related("policy")
        .order_by("-month")
    )


def close_changes(*, viewer, month: date) -> QuerySet[CloseChange]:
    return (
        CloseChange.objects.visible_to(viewer)
        .filter(month=month.replace(day=1))
        .select_related("customer")
        .order_by("output", "kind", "customer__code")
    )


def override_list(*, viewer) -> QuerySet[Override]:
    return Override.objects.visible_to(viewer).select_related("customer", "requested_by", "decided_by")
