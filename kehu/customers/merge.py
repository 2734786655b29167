"""Merging two records that turn out to be one customer.

``customer_merge`` keeps one record (and its code) and removes the other: the removed record's
contacts, agreements, phones and photos move over, its branches become the kept record's branches
(their codes stay as they are), its profile fills the kept record's empty fields and its tags join
the kept record's. The removed code is never handed out again: the division counters only grow.

Everything that points at a customer must move before the removed record is deleted, or deleting it
would take that data along. Each such relation is registered here with ``register_merge_relation``;
later apps (visits, sales facts, complaints…) register theirs in their ``AppConfig.ready``:

    from kehu.customers.merge import register_merge_relation
    register_merge_relation(Visit, "customer")

A relation nobody registered is not guessed at: when the removed record still has rows in it, the
merge is refused, so no data is ever lost silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import AuditEntry, audit_record_many, diff, snapshot
from kehu.core.errors import NotAllowed, ServiceError, require
from kehu.customers.duplicates import name_key
from kehu.customers.models import (
    Agreement,
    Contact,
    Customer,
    CustomerPhone,
    CustomerPhoto,
    RetiredCustomerCode,
)
from kehu.customers.search import customer_search_tokens

# Profile fields the removed record fills when the kept record has them empty (notes are appended).
FILLABLE = (
    "short_name", "sub_type", "credit_code", "legal_representative", "id_number", "address",
    "payment_profile", "business_scope", "floor_area", "lead_manager", "backup_manager", "notes",
)  # fmt: skip


@dataclass(frozen=True)
class MergeRelation:
    """A foreign key to Customer whose rows move from the removed record to the kept one.

    ``check(keep=, remove=)`` runs (both rows locked) before anything moves; it raises ServiceError
    when the rows cannot move as they are (two agreements with one number)."""

    model: type[models.Model]
    field: str
    check: Callable[..., None] | None = None
    # ``move(keep=, remove=) -> int`` for rows that cannot simply be re-pointed (a month's sales fact of
    # both customers is summed into one); None: an UPDATE of the foreign key.
    move: Callable[..., int] | None = None

    @property
    def key(self) -> str:
        """The name under which the audit trail counts the moved rows."""
        label = self.model._meta.label_lower
        return label if self.field == "customer" else f"{label}.{self.field}"


_RELATIONS: dict[tuple[str, str], MergeRelation] = {}


def register_merge_relation(
    model: type[models.Model], field: str = "customer", *, check=None, move=None
) -> None:
    """Make ``customer_merge`` move ``model`` rows whose ``field`` points at the removed customer."""
    target = model._meta.get_field(field)
    if not (target.many_to_one and target.related_model is Customer):
        raise TypeError(f"{model.__name__}.{field} is not a foreign key to Customer.")
    _RELATIONS[(model._meta.label_lower, field)] = MergeRelation(model, field, check, move)


def merge_relations() -> list[MergeRelation]:
    return list(_RELATIONS.values())


def _check_agreement_numbers(*, keep: Customer, remove: Customer) -> None:
    # Agreement numbers are unique per customer: two agreements with one number would be one too many.
    taken = set(Agreement.objects.filter(customer=keep).values_list("number", flat=True))
    clash = sorted(
        taken.intersection(Agreement.objects.filter(customer=remove).values_list("number", flat=True))
    )
    if clash:
        raise ServiceError(
            _(
                "Both customers have an agreement numbered %(numbers)s; renumber or remove one of each "
                "before merging."
            )
            % {"numbers": "、".join(clash)},
            field="remove",
            code="agreement_clash",
        )


register_merge_relation(Contact)
register_merge_relation(Agreement, check=_check_agreement_numbers)
register_merge_relation(CustomerPhone)
register_merge_relation(CustomerPhoto)


# ---------------------------------------------------------------- the merge


def _out_of_scope() -> NotAllowed:
    # The same words whether the record is missing or someone else's: existence never leaks.
    return NotAllowed(_("No such customer, or it is outside your scope."))


def _unregistered_rows(remove: Customer) -> list[str]:
    """Relations to Customer that nobody registered and that still hold rows of ``remove``."""
    found = []
    for rel in Customer._meta.related_objects:
        model, field = rel.related_model, rel.field.name
        if model is Customer and field == "parent":
            continue  # branches: moved by customer_merge itself
        if (model._meta.label_lower, field) in _RELATIONS:
            continue
        if model._base_manager.filter(**{field: remove.pk}).exists():
            found.append(str(model._meta.verbose_name_plural))
    return found


def _fill_profile(keep: Customer, remove: Customer) -> tuple[list[str], list[str]]:
    """Copy the removed record's profile into the kept record's empty fields: (filled, tags added)."""
    filled = []
    for name in FILLABLE:
        field = Customer._meta.get_field(name)
        mine, theirs = getattr(keep, field.attname), getattr(remove, field.attname)
        if theirs in (None, "") or mine == theirs:
            continue
        if name == "notes" and mine:
            keep.notes = f"{mine}\n\n[{remove.code}] {theirs}"
            filled.append(name)
            continue
        if mine not in (None, ""):
            continue
        if name in ("lead_manager", "backup_manager"):
            other = keep.backup_manager_id if name == "lead_manager" else keep.lead_manager_id
            manager = getattr(remove, name)
            if theirs == other or not manager.is_active:
                continue  # the lead and the backup are two people, and both still work here
        setattr(keep, field.attname, theirs)
        if name == "id_number":
            keep.id_number_index = remove.id_number_index
        filled.append(name)
    if keep.latitude is None and keep.longitude is None and remove.latitude is not None:
        keep.latitude, keep.longitude = remove.latitude, remove.longitude
        filled += ["latitude", "longitude"]
    added = [t for t in remove.tags or () if t not in (keep.tags or [])]
    if added:
        keep.tags = [*(keep.tags or []), *added]
    return filled, added


def customer_merge(*, acting_user, keep: Customer, remove: Customer, reason: str) -> Customer:
    """Merge ``remove`` into ``keep``: one customer, ``keep``'s code. Returns the kept record.

    Needs Capability.MANAGE_CUSTOMERS and both records (and the removed one's branches) within the
    acting user's scope. Refused: no reason; a record with itself; a head office into its own branch;
    a head office with branches into a branch; agreements with the same number on both records.
    One ``customer.merge`` event on the kept record holds the reason, the removed record's snapshot
    (``merged_from``: its code) and what moved; ``customer.merged_into`` on the removed record points
    at the kept one, so both histories tell the story.
    """
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow merging customers."))
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(_("Say why these two records are one customer."), field="reason")
    if keep.pk == remove.pk:
        raise ServiceError(_("A customer cannot be merged with itself."), field="remove")
    with transaction.atomic():
        # Both rows locked, lower id first: two merges of the same pair cannot deadlock.
        rows = {
            c.pk: c
            for c in Customer.objects.select_for_update().filter(pk__in=[keep.pk, remove.pk]).order_by("pk")
        }
        visible = set(
            Customer.objects.visible_to(acting_user).filter(pk__in=list(rows)).values_list("pk", flat=True)
        )
        if len(visible) != 2:
            raise _out_of_scope()
        keep, remove = rows[keep.pk], rows[remove.pk]
        if keep.parent_id == remove.pk:
            raise ServiceError(
                _(
                    "%(remove)s is the head office of %(keep)s: a head office cannot be merged into its own "
                    "branch. Keep the head office and merge the branch into it."
                )
                % {"remove": remove, "keep": keep},
                field="remove",
            )
        branches = list(Customer.objects.select_for_update().filter(parent_id=remove.pk).order_by("pk"))
        if branches and keep.parent_id is not None:
            raise ServiceError(
                _(
                    "%(remove)s has branches and %(keep)s is itself a branch; a branch cannot have branches. "
                    "Merge into a head office."
                )
                % {"remove": remove, "keep": keep},
                field="keep",
            )
        seen = set(
            Customer.objects.visible_to(acting_user)
            .filter(pk__in=[b.pk for b in branches])
            .values_list("pk", flat=True)
        )
        if len(seen) != len(branches):
            raise NotAllowed(
                _("%(n)d branch(es) of %(code)s are outside your scope; someone who covers them must merge.")
                % {"n": len(branches) - len(seen), "code": remove.code}
            )
        for relation in merge_relations():
            if relation.check is not None:
                relation.check(keep=keep, remove=remove)
        stranded = _unregistered_rows(remove)
        if stranded:
            raise ServiceError(
                _("%(code)s still has %(what)s, which a merge cannot move yet; nothing was merged.")
                % {"code": remove.code, "what": ", ".join(stranded)}
            )

        before, removed = snapshot(keep), snapshot(remove)
        remove_pk, remove_code, remove_repr = remove.pk, remove.code, str(remove)
        moved: dict[str, int] = {}
        for relation in merge_relations():
            try:
                with transaction.atomic():
                    if relation.move is not None:
                        moved[relation.key] = relation.move(keep=keep, remove=remove)
                    else:
                        moved[relation.key] = relation.model._base_manager.filter(
                            **{relation.field: remove_pk}
                        ).update(**{relation.field: keep.pk})
            except IntegrityError:
                raise ServiceError(
                    _("The %(what)s of the two customers clash; nothing was merged.")
                    % {"what": relation.model._meta.verbose_name_plural}
                ) from None
        now = timezone.now()
        Customer.objects.filter(pk__in=[b.pk for b in branches]).update(
            parent=keep, updated_by=acting_user, updated_at=now
        )
        moved["branches"] = len(branches)

        filled, tags_added = _fill_profile(keep, remove)
        # Gone before the kept record takes its credit code over (unique among customers).
        Customer.objects.filter(pk=remove_pk).delete()
        RetiredCustomerCode.objects.create(code=remove.code, reason=f"merged into {keep.code}")
        keep.name_key = name_key(keep.name)
        keep.search_tokens = customer_search_tokens(
            name=keep.name, short_name=keep.short_name, tags=keep.tags
        )
        keep.updated_by, keep.updated_at = acting_user, now
        keep.save()

        changes = diff(before, snapshot(keep))
        for noise in ("updated_at", "updated_by"):
            changes.pop(noise, None)
        entries = [
            AuditEntry(
                action="customer.merge",
                obj=keep,
                changes=changes,
                extra={
                    "merged_from": remove_code,
                    "merged_from_id": remove_pk,
                    "reason": reason,
                    "moved": moved,
                    "filled": filled,
                    "tags_added": tags_added,
                    "removed": removed,
                },
            ),
            AuditEntry(
                action="customer.merged_into",
                object_type=Customer._meta.label_lower,
                object_id=remove_pk,
                object_repr=remove_repr,
                extra={"merged_into": keep.code, "merged_into_id": keep.pk, "reason": reason},
            ),
        ]
        entries += [
            AuditEntry(
                action="customer.update",
                obj=branch,
                changes={"parent": [remove_pk, keep.pk]},
                extra={"merge": {"from": remove_code, "into": keep.code}},
            )
            for branch in branches
        ]
        audit_record_many(actor=acting_user, entries=entries)
    return keep
