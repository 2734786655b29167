"""Reading the audit trail: search for the audit administrator, and chain verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.models import AuditChainHead, AuditEvent
from kehu.audit.services import GENESIS_HASH, HASHED_FIELDS, event_hash


class AuditAccessDenied(PermissionError):
    pass


def audit_event_search(
    *,
    viewer,
    q: str = "",
    action: str = "",
    username: str = "",
    object_type: str = "",
    outcome: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching the filters, newest first. Only the audit administrator may read the trail."""
    if viewer is None or not viewer.can(Capability.READ_AUDIT):
        raise AuditAccessDenied("Only the audit administrator reads the audit trail.")
    qs = AuditEvent.objects.all()
    if q:
        qs = qs.filter(
            Q(object_repr__icontains=q)
            | Q(actor_username__icontains=q)
            | Q(ip__startswith=q)
            | Q(object_id=q)
        )
    if action:
        qs = qs.filter(action__startswith=action)
    if username:
        qs = qs.filter(actor_username=username)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-seq")


@dataclass
class VerifyResult:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_chain_verify(*, batch_size: int = 5000) -> VerifyResult:
    """Recompute every event's hash and link; report edited, deleted or inserted rows."""
    result = VerifyResult()
    # The head as it was before the scan: events appended while we read must not look like deletions.
    head_before = AuditChainHead.objects.filter(pk=1).first()
    prev_hash, expected_seq = GENESIS_HASH, 1
    last_seq = 0
    qs = AuditEvent.objects.order_by("seq")
    start = 0
    while True:
        batch = list(qs.filter(seq__gt=start)[:batch_size])
        if not batch:
            break
        for ev in batch:
            result.checked += 1
            if ev.seq != expected_seq:
                result.problems.append(
                    _("events #%(a)s..#%(b)s are missing (deleted)") % {"a": expected_seq, "b": ev.seq - 1}
                    if ev.seq > expected_seq
                    else _("event #%(n)s is out of order") % {"n": ev.seq}
                )
            if ev.prev_hash != prev_hash:
                result.problems.append(_("event #%(n)s does not link to the event before it") % {"n": ev.seq})
            fields = {f: getattr(ev, f) for f in HASHED_FIELDS}
            if event_hash(fields) != ev.hash:
                result.problems.append(
                    _("event #%(n)s (%(action)s) was altered after it was written")
                    % {"n": ev.seq, "action": ev.action}
                )
            prev_hash, expected_seq, last_seq = ev.hash, ev.seq + 1, ev.seq
        start = batch[-1].seq
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None and last_seq:
        # Writing the first event creates the head; without it, deleted newest events would go unnoticed.
        result.problems.append(_("the chain head is missing (deleted)"))
    elif head is not None:
        newest_known = head_before.seq if head_before is not None else 0
        if last_seq < newest_known:
            result.problems.append(
                _("the newest events #%(a)s..#%(b)s are missing (deleted)")
                % {"a": last_seq + 1, "b": newest_known}
            )
        elif last_seq > head.seq or (last_seq == head.seq and head.hash != prev_hash):
            result.problems.append(_("the chain head does not match the last event"))
    return result
