"""Reading the audit trail is itself audited: who searched it, for what, and who verified the chain.

Refused attempts (anyone but the audit administrator) are recorded too, with outcome "denied".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from kehu.accounts.roles import Capability
from kehu.audit.models import AuditEvent, Outcome
from kehu.audit.selectors import AuditAccessDenied, VerifyResult, audit_chain_verify, audit_event_search
from kehu.audit.services import audit_record

SEARCH_FILTERS = ("q", "action", "username", "object_type", "outcome", "since", "until")
# A verify that finds thousands of problems stores the first ones; the count says how many there were.
MAX_PROBLEMS_RECORDED = 50


def _jsonable_filters(filters: dict[str, Any]) -> dict[str, Any]:
    used = {}
    for key, value in filters.items():
        if value in (None, ""):
            continue
        used[key] = value.isoformat() if isinstance(value, date | datetime) else value
    return used


def audit_trail_viewed(
    *,
    viewer,
    action: str,
    filters: dict[str, Any],
    outcome: str = Outcome.SUCCESS,
    result: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record that ``viewer`` read the trail (``audit.search``, ``audit.view``) or verified it (``audit.verify``)."""
    extra: dict[str, Any] = {"filters": _jsonable_filters(filters)}
    if result is not None:
        extra["result"] = result
    with transaction.atomic():
        return audit_record(actor=viewer, action=action, object_type="audit.auditevent", extra=extra,
                            outcome=outcome)  # fmt: skip


def _check(viewer, action: str, filters: dict[str, Any]) -> None:
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        raise AuditAccessDenied("Only the audit administrator reads the audit trail.")
    if not viewer.can(Capability.READ_AUDIT):
        audit_trail_viewed(viewer=viewer, action=action, filters=filters, outcome=Outcome.DENIED)
        raise AuditAccessDenied("Only the audit administrator reads the audit trail.")


def audit_trail_search(
    *, viewer, filters: dict[str, Any], page: int | str = 1, upto: int | None = None
) -> tuple[QuerySet[AuditEvent], int]:
    """Search the trail (newest first) and record the search; returns (events, upto).

    ``upto`` pins the newest event shown: the first page leaves it empty and gets it back, later pages
    pass it on so that rows written meanwhile (this very search's own, for one) never shift the pages.
    Raises AuditAccessDenied for anyone but the audit administrator, after recording the refused attempt.
    """
    used = {k: v for k, v in filters.items() if k in SEARCH_FILTERS}
    _check(viewer, "audit.search", {**used, "page": page})
    events = audit_event_search(viewer=viewer, **used)
    recorded = audit_trail_viewed(viewer=viewer, action="audit.search", filters={**used, "page": page})
    upto = min(upto, recorded.seq - 1) if upto is not None else recorded.seq - 1
    return events.filter(seq__lte=upto), upto


def audit_trail_event(*, viewer, seq: int) -> AuditEvent:
    """One event, recorded as viewed. Raises AuditEvent.DoesNotExist or AuditAccessDenied."""
    _check(viewer, "audit.view", {"seq": seq})
    event = audit_event_search(viewer=viewer).get(seq=seq)
    audit_trail_viewed(viewer=viewer, action="audit.view", filters={"seq": seq})
    return event


def audit_trail_verify(*, viewer) -> VerifyResult:
    """Recompute the whole hash chain and record the check with its result."""
    _check(viewer, "audit.verify", {})
    result = audit_chain_verify()
    audit_trail_viewed(
        viewer=viewer, action="audit.verify", filters={},
        outcome=Outcome.SUCCESS,
        result={"ok": result.ok, "checked": result.checked, "problem_count": len(result.problems),
                "problems": result.problems[:MAX_PROBLEMS_RECORDED]},
    )  # fmt: skip
    return result
