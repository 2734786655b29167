"""Close results, changes and overrides follow a customer into a merge.

Months both records were closed for keep the kept record's results (the removed record's are dropped:
the next close of those months classifies the merged customer on the summed sales); other months move.
An open override of an output the kept record has one for too is revoked; the others move.
"""

from __future__ import annotations

from django.utils import timezone

from kehu.policies.models import CloseChange, CloseResult, Override, OverrideStatus

OPEN = (OverrideStatus.PENDING, OverrideStatus.APPROVED)


def _by_month(model, *, keep, remove, key: tuple[str, ...]) -> int:
    taken = set(model.objects.filter(customer=keep).values_list(*key))
    rows = list(model.objects.filter(customer=remove).values_list("pk", *key))
    clash = [pk for pk, *k in rows if tuple(k) in taken]
    model.objects.filter(pk__in=clash).delete()
    return model.objects.filter(customer=remove).update(customer=keep)


def close_results_move(*, keep, remove) -> int:
    return _by_month(CloseResult, keep=keep, remove=remove, key=("month",))


def close_changes_move(*, keep, remove) -> int:
    return _by_month(CloseChange, keep=keep, remove=remove, key=("month", "output"))


def overrides_move(*, keep, remove) -> int:
    taken = set(Override.objects.filter(customer=keep, status__in=OPEN).values_list("output", flat=True))
    Override.objects.filter(customer=remove, status__in=OPEN, output__in=taken).update(
        status=OverrideStatus.REVOKED, revoked_at=timezone.now()
    )
    return Override.objects.filter(customer=remove).update(customer=keep)
