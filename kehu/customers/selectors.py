"""Reads of the customer archive: the searchable, filterable list and the pieces of a customer's page.

Everything starts from ``Customer.objects.visible_to(viewer)``; callers never see a row outside the
viewer's scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import IntegerField, Q, QuerySet, Value

from kehu.core.scoping import path_range_q, scope_q
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
SEARCH_COUNT_CAP = 1_000
# A subtree holding more customers than this is "wide": see kehu.core.scoping._Unindexed.
WIDE_SUBTREE = 20_000
# For a search whose words match very many customers, walking a larger subtree through the path index
# still beats walking the list order until enough matches turn up.
WIDE_SUBTREE_SEARCH = 50_000


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


def customer_search(
    *, viewer, filters: CustomerFilters | None = None, path_index: bool | None = None, **kwargs
) -> QuerySet[Customer]:
    """The customers ``viewer`` may see that match the search box and the filters, in list order.

    ``path_index``: whether subtrees are reached through the path index; None decides by their size
    (for fetching pages in list order). Counting without an order is always faster through the index.
    """
    f = filters or CustomerFilters(**kwargs)
    viewer_unit = getattr(viewer, "unit", None) if getattr(viewer, "unit_id", None) else None
    limit = WIDE_SUBTREE_SEARCH if f.q.strip() else WIDE_SUBTREE
    use_index = (lambda unit: not _is_wide(unit, limit)) if path_index is None else (lambda unit: path_index)
    qs = Customer.objects.visible_to(viewer, path_index=use_index(viewer_unit))
    if f.q.strip():
        qs = qs.filter(search_q(f.q))
    if f.within is not None:
        low, high = f.within.subtree_path_range()
        qs = qs.filter(path_range_q("unit_path", low, high, path_index=use_index(f.within)))
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


def _is_wide(unit, limit: int | None = None) -> bool:
    """Whether a subtree holds so many customers that SQLite should not reach them through the path index.

    PostgreSQL's planner knows the distribution of paths and decides well by itself.
    """
    if unit is None or connection.vendor != "sqlite":
        return False
    limit = WIDE_SUBTREE if limit is None else limit
    low, high = unit.subtree_path_range()
    return (
        Customer.objects.filter(unit_path__gte=low, unit_path__lt=high).order_by()[: limit + 1].count()
        > limit
    )


def operations_scope_q(user) -> Q:
    """The customers a deployment operation (sales import, monthly close, results export) acts on for
    ``user``: what they may see — and every customer for the system administrator, who runs these
    operations from the console without seeing any customer (they answer counts only)."""
    from kehu.accounts.roles import Role

    if user is not None and Role.SYSTEM_ADMIN in user.role_names():
        return Q()
    return scope_q(Customer, user)


def capped_count(qs: QuerySet, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many rows, counting no further than ``cap``: (count, more_than_cap).

    Counting a million matching rows costs more than fetching a page of them; "10,000+" is what a
    person needs to know to narrow the search.
    """
    # A constant column: the database can count from an index alone instead of reading every row (Django's
    # own count() of a sliced query would select the primary key, which the path index does not hold).
    limited = qs.order_by().values(one=Value(1, output_field=IntegerField()))[: cap + 1]
    try:
        sql, params = limited.query.get_compiler(using=limited.db).as_sql()
    except EmptyResultSet:  # a filter that can match nothing (a scope without units)
        return 0, False
    with connections[limited.db].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS capped", params)
        n = cursor.fetchone()[0]
    return min(n, cap), n > cap


def customer_page(*, viewer, filters: CustomerFilters, page: int = 1, per_page: int = 50):
    """One page of the list and the capped total: (rows, total, more_than_total).

    A search fetches the ordered ids of its first SEARCH_COUNT_CAP matches in one query and takes both
    the page and the count from them; a plain filtered list counts through the path index.
    """
    qs = customer_search(viewer=viewer, filters=filters)
    start = (max(1, page) - 1) * per_page
    related = ("owning_unit", "lead_manager", "backup_manager", "sub_type")
    if filters.q.strip():
        # The matches are found without an order, so that the database takes its search index first (a
        # common term walked in list order costs a row visit per non-matching customer); they are sorted
        # afterwards. Beyond SEARCH_COUNT_CAP matches the page says "more than 1,000": the list shows the
        # first 1,000 found, sorted, and the person narrows the search.
        found = list(
            customer_search(viewer=viewer, filters=filters, path_index=True)
            .order_by()
            .values_list("pk", flat=True)[: SEARCH_COUNT_CAP + 1]
        )
        total, more = min(len(found), SEARCH_COUNT_CAP), len(found) > SEARCH_COUNT_CAP
        ordering = ORDERINGS.get(filters.order, ORDERINGS["code"])
        page_qs = Customer.objects.filter(pk__in=found[:SEARCH_COUNT_CAP]).order_by(*ordering)
        return list(page_qs.select_related(*related)[start : start + per_page]), total, more
    rows = list(qs.select_related(*related)[start : start + per_page])
    total, more = capped_count(
        customer_search(viewer=viewer, filters=filters, path_index=True), cap=COUNT_CAP
    )
    return rows, total, more


# ---------------------------------------------------------------- the customer's page
# (Added for the customer pages: who may be assigned, the counts on the tabs, the history tab.)


def assignable_managers(*, viewer):
    """Active customer managers the viewer may name as lead or backup manager (those in the viewer's scope)."""
    from kehu.accounts.models import User
    from kehu.accounts.roles import Role

    return (
        User.objects.visible_to(viewer)
        .filter(is_active=True, role_assignments__role=Role.CUSTOMER_MANAGER)
        .select_related("unit")
        .distinct()
        .order_by("unit__path", "username")
    )


def visible_customer_by_code(*, viewer, code: str) -> Customer | None:
    """The customer with this code if the viewer may see it; None when missing or out of scope (the same)."""
    code = (code or "").strip()
    if not code:
        return None
    return Customer.objects.visible_to(viewer).filter(code=code).first()


def customer_counts(*, viewer, customer: Customer) -> dict[str, int]:
    """How many contacts, agreements, phones, photos and branches hang on a customer (the tabs, a merge)."""
    from kehu.customers.models import Agreement, Contact, CustomerPhone, CustomerPhoto

    mine = {"customer": customer}
    return {
        "contacts": Contact.objects.visible_to(viewer).filter(**mine).count(),
        "agreements": Agreement.objects.visible_to(viewer).filter(**mine).count(),
        "phones": CustomerPhone.objects.visible_to(viewer).filter(**mine).count(),
        "photos": CustomerPhoto.objects.visible_to(viewer).filter(**mine).count(),
        "branches": Customer.objects.visible_to(viewer).filter(parent=customer).count(),
    }


@dataclass(frozen=True)
class HistoryChange:
    field: str
    label: str
    before: object
    after: object
    single: bool  # a created or deleted record's value: no before/after


@dataclass(frozen=True)
class HistoryEntry:
    event: object  # the AuditEvent
    action: str  # what happened, in the reader's language
    subject: str  # the contact, agreement or photo concerned, if any
    changes: list
    details: list  # (label, value)


HISTORY_LIMIT = 200
CHILD_TYPES = {
    "customers.contact": "contact",
    "customers.agreement": "agreement",
    "customers.customerphoto": "photo",
}
# Bookkeeping columns that say nothing to a reader of the history.
_HISTORY_NOISE = {
    "id", "id_number_index", "number_index", "unit_path", "last_branch", "created_at", "updated_at",
    "created_by", "updated_by", "uploaded_by", "name_key", "search_tokens", "customer",
}  # fmt: skip
# Reads (an unmasking) are not changes of the record: the audit administrator sees them in the trail.
_HISTORY_SKIP_ACTIONS = {"personal_data.reveal"}


def _action_labels() -> dict[str, str]:
    from django.utils.translation import gettext as _

    return {
        "customer.create": _("Customer created"),
        "customer.update": _("Profile changed"),
        "customer.phone_add": _("Phone added"),
        "customer.phone_remove": _("Phone removed"),
        "customer.id_number_set": _("ID card number changed"),
        "customer.merge": _("Another record merged into this one"),
        "customer.merged_into": _("Merged into another record"),
        "customer.import": _("Imported"),
        "contact.create": _("Contact added"),
        "contact.update": _("Contact changed"),
        "contact.delete": _("Contact removed"),
        "agreement.create": _("Agreement added"),
        "agreement.update": _("Agreement changed"),
        "agreement.attach": _("Agreement file attached"),
        "agreement.delete": _("Agreement removed"),
        "photo.add": _("Photo added"),
        "photo.delete": _("Photo removed"),
    }


def _detail_labels() -> dict[str, str]:
    from django.utils.translation import gettext as _

    return {
        "phone": _("phone"), "phones": _("phones"), "label": _("label"), "id_number": _("ID card number"),
        "reason": _("reason"), "duplicate_reason": _("reason given for a similar name"),
        "similar_to": _("similar to"), "filename": _("file"), "merged_from": _("merged from"),
        "merged_into": _("merged into"), "moved": _("moved"), "format": _("format"),
        "filled": _("fields filled in"), "tags_added": _("tags added"),
    }  # fmt: skip


class _Resolver:
    """Turns audited ids and choice values into names the reader knows, within the reader's scope."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.units: dict = {}
        self.users: dict = {}
        self.sub_types: dict = {}
        self.customers: dict = {}

    def prepare(self, events) -> None:
        from kehu.accounts.models import User
        from kehu.customers.models import CustomerSubType
        from kehu.org.models import Unit

        wanted: dict[str, set] = {"unit": set(), "user": set(), "sub_type": set(), "customer": set()}
        kinds = {"owning_unit": "unit", "signing_unit": "unit", "lead_manager": "user", "backup_manager": "user",
                 "sub_type": "sub_type", "parent": "customer"}  # fmt: skip
        for event in events:
            for name, value in (event.changes or {}).items():
                kind = kinds.get(name)
                if kind is None:
                    continue
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, int):
                        wanted[kind].add(v)
        if wanted["unit"]:
            self.units = {u.pk: f"{u.name} ({u.code})" for u in Unit.objects.visible_to(self.viewer)
                          .filter(pk__in=wanted["unit"])}  # fmt: skip
        if wanted["user"]:
            # The managers are named on the customer's page already; the people pages stay scoped.
            self.users = {u.pk: str(u) for u in User.objects.filter(pk__in=wanted["user"])}
        if wanted["sub_type"]:
            self.sub_types = {s.pk: s.name for s in CustomerSubType.objects.filter(pk__in=wanted["sub_type"])}
        if wanted["customer"]:
            self.customers = {c.pk: str(c) for c in Customer.objects.visible_to(self.viewer)
                              .filter(pk__in=wanted["customer"])}  # fmt: skip

    def value(self, model, name: str, value):
        if value is None or value == "" or value == []:
            return ""
        table = {"owning_unit": self.units, "signing_unit": self.units, "lead_manager": self.users,
                 "backup_manager": self.users, "sub_type": self.sub_types, "parent": self.customers}.get(name)  # fmt: skip
        if table is not None and isinstance(value, int):
            return table.get(value, f"#{value}")
        if model is not None:
            try:
                field = model._meta.get_field(name)
            except Exception:  # noqa: BLE001 - a field removed since the event was written
                field = None
            if field is not None and field.choices and isinstance(value, str):
                return dict(field.flatchoices).get(value, value)
        if isinstance(value, bool):
            from django.utils.translation import gettext as _

            return _("yes") if value else _("no")
        if isinstance(value, list):
            return "、".join(
                f"{v.get('date', '')} {v.get('label', '')}".strip() if isinstance(v, dict) else str(v)
                for v in value
            )
        return value


# Details kept for the audit administrator (ids, whole snapshots) rather than for this page.
_DETAILS_HIDDEN = {
    "customer",
    "contact",
    "bytes",
    "removed",
    "merged_from_id",
    "merged_into_id",
    "merge",
    "similar_to",
}


def _model_plural(label: str) -> str:
    from django.apps import apps
    from django.utils.translation import gettext as _

    if label == "branches":
        return _("branches")
    try:
        return str(apps.get_model(label.split(".")[0], label.split(".")[1])._meta.verbose_name_plural)
    except (LookupError, IndexError, ValueError):
        return label


def _field_label(model, name: str) -> str:
    if model is not None:
        try:
            return str(model._meta.get_field(name).verbose_name)
        except Exception:  # noqa: BLE001 - a field removed since the event was written
            pass
    return name.replace("_", " ")


def _merged_refs(events) -> tuple[set[int], set[str]]:
    """Records merged into this one, from the ``customer.merge`` events: ids, and codes where no id was kept."""
    ids: set[int] = set()
    codes: set[str] = set()
    for event in events:
        extra = event.extra or {}
        if event.action != "customer.merge" and "merged_from" not in extra:
            continue
        found = extra.get("merged_from_id")
        if found is None and isinstance(extra.get("removed"), dict):
            found = extra["removed"].get("id")
        if isinstance(found, int):
            ids.add(found)
        elif isinstance(extra.get("merged_from"), str) and len(extra["merged_from"]) == 14:
            codes.add(extra["merged_from"])
    return ids, codes


def customer_history(
    *, viewer, customer: Customer, limit: int = HISTORY_LIMIT
) -> tuple[list[HistoryEntry], bool]:
    """The changes of one customer and of its contacts, agreements, photos and phones, newest first, as the
    audit trail recorded them (masked values stay masked); with the records merged into it.

    This is the business view of one record's trail for anyone who may see the customer; the trail as a
    whole stays with the audit administrator. Returns (entries, more_than_limit).
    """
    from django.apps import apps
    from django.db.models import Q

    from kehu.audit.models import AuditEvent
    from kehu.customers.models import Agreement, Contact, CustomerPhoto
    from kehu.customers.personal import _visible

    _visible(viewer, customer)
    customer_ids = {customer.pk}
    own = list(AuditEvent.objects.filter(object_type="customers.customer", object_id=str(customer.pk))
               .only("action", "extra"))  # fmt: skip
    # Records merged into this one (and records merged into those), by id or by code.
    frontier = own
    for _depth in range(5):
        new_ids, codes = _merged_refs(frontier)
        new_ids -= customer_ids
        if codes:
            # Only a code was recorded: the removed record's own creation event says which id it had.
            created = AuditEvent.objects.filter(object_type="customers.customer", action="customer.create")
            for code in codes:
                new_ids |= {int(e.object_id) for e in created.filter(changes__code=code).only("object_id")
                            if e.object_id.isdigit()} - customer_ids  # fmt: skip
        if not new_ids:
            break
        customer_ids |= new_ids
        frontier = list(AuditEvent.objects.filter(object_type="customers.customer",
                                                  object_id__in=[str(i) for i in new_ids])
                        .only("action", "extra"))  # fmt: skip
    codes_of = [customer.code] + [
        c for c in Customer.objects.filter(pk__in=customer_ids - {customer.pk}).values_list("code", flat=True)
    ]
    children: dict[str, set[str]] = {
        "customers.contact": {
            str(pk) for pk in Contact.objects.filter(customer=customer).values_list("pk", flat=True)
        },
        "customers.agreement": {
            str(pk) for pk in Agreement.objects.filter(customer=customer).values_list("pk", flat=True)
        },  # fmt: skip
        "customers.customerphoto": {
            str(pk) for pk in CustomerPhoto.objects.filter(customer=customer).values_list("pk", flat=True)
        },  # fmt: skip
    }
    # Children deleted since: their removal event names the customer; their earlier events follow by id.
    for object_type, short in CHILD_TYPES.items():
        gone = AuditEvent.objects.filter(action=f"{short}.delete", object_type=object_type,
                                         extra__customer__in=codes_of).values_list("object_id", flat=True)  # fmt: skip
        children[object_type] |= set(gone)
    where = Q(object_type="customers.customer", object_id__in=[str(i) for i in customer_ids])
    for object_type, ids in children.items():
        if ids:
            where |= Q(object_type=object_type, object_id__in=sorted(ids))
    events = list(AuditEvent.objects.filter(where).exclude(action__in=_HISTORY_SKIP_ACTIONS)
                  .order_by("-seq")[: limit + 1])  # fmt: skip
    more = len(events) > limit
    events = events[:limit]

    resolver = _Resolver(viewer)
    resolver.prepare(events)
    actions, detail_labels = _action_labels(), _detail_labels()
    entries = []
    for event in events:
        try:
            model = apps.get_model(event.object_type) if event.object_type else None
        except (LookupError, ValueError):
            model = None
        changes = []
        for name, value in sorted((event.changes or {}).items()):
            if name in _HISTORY_NOISE:
                continue
            pair = isinstance(value, list) and len(value) == 2 and event.action.endswith((".update", ".attach",
                                                                                           ".merge"))  # fmt: skip
            before, after = value if pair else (None, value)
            before, after = resolver.value(model, name, before), resolver.value(model, name, after)
            if not pair and after == "":
                continue  # an empty field of a new record says nothing
            changes.append(HistoryChange(name, _field_label(model, name), before, after, single=not pair))
        details = []
        for key, value in (event.extra or {}).items():
            if key in _DETAILS_HIDDEN or value in (None, "", [], {}):
                continue
            if key == "moved" and isinstance(value, dict):
                value = "、".join(f"{_model_plural(k)} {n}" for k, n in value.items() if n)
            elif key == "filled" and isinstance(value, list):
                value = "、".join(_field_label(Customer, f) for f in value)
            elif isinstance(value, list):
                value = "、".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = "、".join(f"{k}: {v}" for k, v in value.items())
            if value not in ("", None):
                details.append((detail_labels.get(key, key.replace("_", " ")), value))
        subject = event.object_repr if event.object_type in CHILD_TYPES else ""
        if event.object_type == "customers.customer" and event.object_id != str(customer.pk):
            subject = event.object_repr  # an event of a record merged into this one
        entries.append(HistoryEntry(event=event, action=actions.get(event.action, event.action), subject=subject,
                                    changes=changes, details=details))  # fmt: skip
    return entries, more


def customer_contacts(*, viewer, customer: Customer):
    """The customer's contacts, decision makers first, with their phones (read them masked)."""
    from django.db.models import Case, IntegerField, Value, When

    from kehu.customers.models import Contact, DecisionRole

    first = Case(When(decision_role=DecisionRole.DECISION_MAKER, then=Value(0)), default=Value(1),
                 output_field=IntegerField())  # fmt: skip
    return (
        Contact.objects.visible_to(viewer)
        .filter(customer=customer)
        .prefetch_related("phones")
        .order_by(first, "name", "pk")
    )


def customer_agreements(*, viewer, customer: Customer):
    from kehu.customers.models import Agreement

    return (
        Agreement.objects.visible_to(viewer)
        .filter(customer=customer)
        .select_related("signing_unit")
        .order_by("-start_date", "-pk")
    )


def customer_photos(*, viewer, customer: Customer):
    from kehu.customers.models import CustomerPhoto

    return (
        CustomerPhoto.objects.visible_to(viewer)
        .filter(customer=customer)
        .select_related("uploaded_by")
        .order_by("-created_at", "-pk")
    )


def customer_branches(*, viewer, customer: Customer):
    """The branches of a head office that the viewer may see, in code order."""
    return (
        Customer.objects.visible_to(viewer)
        .filter(parent=customer)
        .select_related("owning_unit")
        .order_by("code")
    )
