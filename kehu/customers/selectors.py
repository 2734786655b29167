"""Reads of the customer archive: the searchable, filterable list and the pieces of a customer's page.

Everything starts from ``Customer.objects.visible_to(viewer)``; callers never see a row outside the
viewer's scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from kehu.customers.models import Customer
from kehu.customers.search import search_q, tag_q

# Sort keys a list may ask for; each ends in a unique column so that pages never overlap.
ORDERINGS = {
    "code": ("code",),
    "-code": ("-code",),
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "-updated": ("-updated_at", "id"),
    "updated": ("updated_at", "id"),
}
COUNT_CAP = 10_000


@dataclass(frozen=True)
class CustomerFilters:
    q: str = ""
    within: object | None = None  # an org.Unit: its subtree
    kind: str = ""
    sub_type: object | None = None
    status: str = ""
    manager: object | None = None  # an accounts.User: lead or backup
    tag: str = ""
    order: str = "code"

    def describe(self) -> dict:
        """The filter as plain values, for the audit trail of an export."""
        return {
            "q": self.q,
            "within": getattr(self.within, "code", None),
            "kind": self.kind,
            "sub_type": getattr(self.sub_type, "code", None),
            "status": self.status,
            "manager": getattr(self.manager, "username", None),
            "tag": self.tag,
            "order": self.order,
        }


def customer_search(*, viewer, filters: CustomerFilters | None = None, **kwargs) -> QuerySet[Customer]:
    """The customers ``viewer`` may see that match the search box and the filters, in list order."""
    f = filters or CustomerFilters(**kwargs)
    qs = Customer.objects.visible_to(viewer)
    if f.q.strip():
        qs = qs.filter(search_q(f.q))
    if f.within is not None:
        low, high = f.within.subtree_path_range()
        qs = qs.filter(unit_path__gte=low, unit_path__lt=high)
    if f.kind:
        qs = qs.filter(kind=f.kind)
    if f.sub_type is not None:
        qs = qs.filter(sub_type=f.sub_type)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.manager is not None:
        qs = qs.filter(Q(lead_manager=f.manager) | Q(backup_manager=f.manager))
    if f.tag.strip():
        qs = qs.filter(tag_q(f.tag))
    return qs.order_by(*ORDERINGS.get(f.order, ORDERINGS["code"]))


def capped_count(qs: QuerySet, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many rows, counting no further than ``cap``: (count, more_than_cap).

    Counting a million matching rows costs more than fetching a page of them; "10,000+" is what a
    person needs to know to narrow the search.
    """
    n = qs.order_by()[: cap + 1].count()
    return min(n, cap), n > cap


def customer_page(*, viewer, filters: CustomerFilters, page: int = 1, per_page: int = 50):
    """One page of the list and the capped total: (rows, total, more_than_total)."""
    qs = customer_search(viewer=viewer, filters=filters)
    page = max(1, page)
    rows = list(
        qs.select_related("owning_unit", "lead_manager", "backup_manager", "sub_type")[
            (page - 1) * per_page : page * per_page
        ]
    )
    total, more = capped_count(qs)
    return rows, total, more
