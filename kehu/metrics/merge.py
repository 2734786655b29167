"""Sales facts follow a customer into a merge: the removed record's facts become the kept record's,
and a month's fact of one source and product that both had is summed into one (exact integers)."""

from __future__ import annotations

from django.db.models import F

from kehu.metrics.models import FactMonth, SalesFact


def sales_facts_move(*, keep, remove) -> int:
    kept = {
        (f.source, f.month, f.product_id): f
        for f in SalesFact.objects.select_for_update().filter(customer=keep)
    }
    moved, months = 0, set()
    for fact in SalesFact.objects.select_for_update().filter(customer=remove):
        months.add(fact.month)
        twin = kept.get((fact.source, fact.month, fact.product_id))
        if twin is None:
            SalesFact.objects.filter(pk=fact.pk).update(customer=keep)
        else:
            dates = [d for d in (twin.first_date, fact.first_date) if d]
            last = [d for d in (twin.last_date, fact.last_date) if d]
            SalesFact.objects.filter(pk=twin.pk).update(
                quantity_milli=F("quantity_milli") + fact.quantity_milli,
                amount_fen=F("amount_fen") + fact.amount_fen,
                txn_count=F("txn_count") + fact.txn_count,
                first_date=min(dates) if dates else None,
                last_date=max(last) if last else None,
            )
            SalesFact.objects.filter(pk=fact.pk).delete()
        moved += 1
    # The months' snapshots no longer match the database: the next reader rebuilds them.
    FactMonth.objects.filter(month__in=months).update(version=F("version") + 1)
    return moved
