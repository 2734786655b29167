"""Writes to the customer archive. Every write is audited and re-checked against the writer's scope.

Customer ids are handed out under row locks: the division's counter (``DivisionSequence``) for a new
customer, the head office's ``last_branch`` for a branch. Counters only grow, so a code is never
handed out twice, even after its customer was deleted; the unique constraint on ``code`` is the last
line of defence against any path that bypasses the counters.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability, Role
from kehu.audit.services import audit_record, diff, snapshot
from kehu.core.divisions import division_code_error
from kehu.core.errors import NotAllowed, ServiceError, require
from kehu.customers.codes import MAX_BRANCH, MAX_SEQUENCE, format_code, parse_code
from kehu.customers.creditcode import credit_code_error, normalise
from kehu.customers.duplicates import SimilarNamesFound, name_key, similar_customers
from kehu.customers.models import (
    Agreement,
    AgreementStatus,
    Contact,
    Customer,
    CustomerKind,
    CustomerStatus,
    DecisionRole,
    DivisionSequence,
    PaymentProfile,
    SigningLevel,
)
from kehu.customers.personal import phone_add
from kehu.customers.search import customer_search_tokens
from kehu.org.models import Unit

CUSTOMER_EDITABLE = (
    "name", "short_name", "kind", "sub_type", "credit_code", "legal_representative", "address", "latitude",
    "longitude", "payment_profile", "business_scope", "floor_area", "status", "owning_unit", "lead_manager",
    "backup_manager", "tags", "notes", "division_code",
)  # fmt: skip


# ---------------------------------------------------------------- codes


def _next_sequence(division_code: str) -> int:
    """The next free sequence in a division; call inside a transaction (the counter row stays locked)."""
    DivisionSequence.objects.get_or_create(division_code=division_code)
    counter = DivisionSequence.objects.select_for_update().get(pk=division_code)
    if counter.last_sequence >= MAX_SEQUENCE:
        raise ServiceError(
            _("Division %(d)s has used all %(n)d customer numbers.")
            % {"d": division_code, "n": MAX_SEQUENCE},
            field="division_code",
        )
    counter.last_sequence += 1
    counter.save(update_fields=["last_sequence"])
    return counter.last_sequence


def _next_branch(parent: Customer) -> int:
    head = Customer.objects.select_for_update().get(pk=parent.pk)
    if head.last_branch >= MAX_BRANCH:
        raise ServiceError(_("%(c)s has used all %(n)d branch numbers.") % {"c": head.code, "n": MAX_BRANCH})
    head.last_branch += 1
    Customer.objects.filter(pk=head.pk).update(last_branch=head.last_branch)
    return head.last_branch


def _claim_given_code(code: str, parent: Customer | None) -> str:
    """Check a code supplied by the user (or an import) and move the counters past it."""
    try:
        parsed = parse_code(code)
    except ValueError as exc:
        raise ServiceError(str(exc), field="code") from None
    error = division_code_error(parsed.division)
    if error:
        raise ServiceError(_("Customer code: digits 1 to 6 %(e)s.") % {"e": error}, field="code")
    if parsed.branch == 0:
        if parent is not None:
            raise ServiceError(_("A branch's code ends in 001 to 999, not 000."), field="code")
        DivisionSequence.objects.get_or_create(division_code=parsed.division)
        counter = DivisionSequence.objects.select_for_update().get(pk=parsed.division)
        if parsed.sequence > counter.last_sequence:
            counter.last_sequence = parsed.sequence
            counter.save(update_fields=["last_sequence"])
    else:
        if parent is None:
            raise ServiceError(_("A code ending in 001 to 999 belongs to a branch: name its head office."),
                               field="code")  # fmt: skip
        head = Customer.objects.select_for_update().get(pk=parent.pk)
        if not head.code.startswith(parsed.head):
            raise ServiceError(
                _("A branch's code starts with its head office's first 11 digits (%(h)s).")
                % {"h": head.code[:11]},
                field="code",
            )
        if parsed.branch > head.last_branch:
            Customer.objects.filter(pk=head.pk).update(last_branch=parsed.branch)
    return str(parsed)


# ---------------------------------------------------------------- checks


def _clean_credit_code(value: str) -> str:
    value = normalise(value)
    if value:
        error = credit_code_error(value)
        if error:
            raise ServiceError(_("Unified social credit code: %(e)s.") % {"e": error}, field="credit_code")
    return value


def _check_credit_code_free(acting_user, credit_code: str, exclude_pk: int | None = None) -> None:
    """Same credit code = same organisation: refuse, naming the record only if the user may see it."""
    if not credit_code:
        return
    existing = Customer.objects.filter(credit_code=credit_code).exclude(pk=exclude_pk).first()
    if existing is None:
        return
    if Customer.objects.visible_to(acting_user).filter(pk=existing.pk).exists():
        raise ServiceError(
            _("This credit code belongs to %(name)s (%(code)s), already in the archive.")
            % {"name": existing.name, "code": existing.code},
            field="credit_code", code="duplicate",
        )  # fmt: skip
    raise ServiceError(_("This credit code is already registered by another unit."), field="credit_code",
                       code="duplicate")  # fmt: skip


def _check_manager(acting_user, manager, field: str) -> None:
    if manager is None:
        return
    from kehu.accounts.models import User

    if not manager.is_active or not manager.has_role(Role.CUSTOMER_MANAGER):
        raise ServiceError(_("%(u)s is not an active customer manager.") % {"u": manager}, field=field)
    if not User.objects.visible_to(acting_user).filter(pk=manager.pk).exists():
        raise ServiceError(_("%(u)s is not a customer manager you may assign.") % {"u": manager}, field=field)


def _check_fields(acting_user, fields: dict) -> None:
    if "name" in fields and not (fields["name"] or "").strip():
        raise ServiceError(_("A customer name is required."), field="name")
    if "kind" in fields and fields["kind"] not in CustomerKind.values:
        raise ServiceError(_("The kind is institution or individual."), field="kind")
    if fields.get("status") and fields["status"] not in CustomerStatus.values:
        raise ServiceError(_("Unknown status “%(s)s”.") % {"s": fields["status"]}, field="status")
    if fields.get("payment_profile") and fields["payment_profile"] not in PaymentProfile.values:
        raise ServiceError(_("Unknown payment profile “%(p)s”.") % {"p": fields["payment_profile"]},
                           field="payment_profile")  # fmt: skip
    if "division_code" in fields:
        error = division_code_error(fields["division_code"])
        if error:
            raise ServiceError(_("Division code %(e)s.") % {"e": error}, field="division_code")
    for name, low, high in (("latitude", -90, 90), ("longitude", -180, 180)):
        value = fields.get(name)
        if value is not None and not (Decimal(low) <= Decimal(value) <= Decimal(high)):
            raise ServiceError(_("%(f)s must lie between %(a)s and %(b)s.") % {"f": name, "a": low, "b": high},
                               field=name)  # fmt: skip
    if "owning_unit" in fields:
        unit = fields["owning_unit"]
        if unit is None or not unit.is_active:
            raise ServiceError(_("Choose an active owning unit."), field="owning_unit")
        if not Unit.objects.visible_to(acting_user).filter(pk=unit.pk).exists():
            raise ServiceError(_("Choose an owning unit within your scope."), field="owning_unit")
    _check_manager(acting_user, fields.get("lead_manager"), "lead_manager")
    _check_manager(acting_user, fields.get("backup_manager"), "backup_manager")
    lead, backup = fields.get("lead_manager"), fields.get("backup_manager")
    if lead is not None and backup is not None and lead.pk == backup.pk:
        raise ServiceError(_("The lead and the backup manager must be two people."), field="backup_manager")
    tags = fields.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ServiceError(_("Tags are a list of words."), field="tags")


def _recheck_visible(acting_user, customer: Customer) -> None:
    # NetBox's rule: what you just wrote must still be yours to see, else nothing is written.
    if not Customer.objects.visible_to(acting_user).filter(pk=customer.pk).exists():
        raise NotAllowed(_("The customer would fall outside your scope; ask someone who covers that unit."))


# ---------------------------------------------------------------- customers


def _refresh_search_fields(customer: Customer) -> None:
    """Keep the duplicate key and the search tokens in step with the names and tags."""
    customer.name_key = name_key(customer.name)
    customer.search_tokens = customer_search_tokens(
        name=customer.name, short_name=customer.short_name, tags=customer.tags
    )


def customer_create(
    *,
    acting_user,
    name: str,
    kind: str,
    owning_unit: Unit,
    division_code: str,
    code: str = "",
    parent: Customer | None = None,
    phones: tuple[str, ...] | list[str] = (),
    duplicate_reason: str = "",
    **fields,
) -> Customer:
    """Add a customer. ``code`` empty: the next free id is assigned; given: it is checked and reserved.

    A customer manager creating a customer becomes its lead manager unless another is named.
    Same credit code or phone as an existing customer: refused. A name like an existing customer's:
    ``SimilarNamesFound`` unless ``duplicate_reason`` says why this is another customer (audited).
    """
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow adding customers."))
    unknown = set(fields) - set(CUSTOMER_EDITABLE)
    if unknown:
        raise ServiceError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    fields.update(name=(name or "").strip(), kind=kind, owning_unit=owning_unit, division_code=division_code)
    if fields.get("lead_manager") is None and acting_user.has_role(Role.CUSTOMER_MANAGER):
        fields["lead_manager"] = acting_user
    fields["credit_code"] = _clean_credit_code(fields.get("credit_code", ""))
    _check_fields(acting_user, fields)
    if parent is not None:
        if parent.parent_id is not None:
            raise ServiceError(_("A branch cannot have branches: choose the head office."), field="parent")
        if not Customer.objects.visible_to(acting_user).filter(pk=parent.pk).exists():
            raise ServiceError(_("Choose a head office within your scope."), field="parent")
    similar = similar_customers(viewer=acting_user, name=fields["name"])
    duplicate_reason = (duplicate_reason or "").strip()
    if similar and not duplicate_reason:
        raise SimilarNamesFound(similar)
    try:
        with transaction.atomic():
            _check_credit_code_free(acting_user, fields["credit_code"])
            if code:
                code = _claim_given_code(code.strip(), parent)
            elif parent is not None:
                code = parent.code[:11] + f"{_next_branch(parent):03d}"
            else:
                code = format_code(division_code, _next_sequence(division_code))
            customer = Customer(code=code, parent=parent, unit_path=owning_unit.path, created_by=acting_user,
                                updated_by=acting_user, **fields)  # fmt: skip
            _refresh_search_fields(customer)
            customer.save()
            _recheck_visible(acting_user, customer)
            extra = {"duplicate_reason": duplicate_reason, "similar_to": similar.codes} if similar else None
            audit_record(
                actor=acting_user,
                action="customer.create",
                obj=customer,
                changes=snapshot(customer),
                extra=extra,
            )
            for number in phones:
                if (number or "").strip():
                    phone_add(acting_user=acting_user, customer=customer, number=number)
    except IntegrityError:
        if Customer.objects.filter(code=code).exists():
            raise ServiceError(_("The customer code %(c)s is taken.") % {"c": code}, field="code") from None
        _check_credit_code_free(acting_user, fields["credit_code"])
        raise
    return customer


def customer_update(*, acting_user, customer: Customer, **fields) -> Customer:
    """Change a customer's profile. The code never changes; moving it out of one's scope is refused."""
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow editing customers."))
    unknown = set(fields) - set(CUSTOMER_EDITABLE)
    if unknown:
        raise ServiceError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    if "credit_code" in fields:
        fields["credit_code"] = _clean_credit_code(fields["credit_code"])
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
    _check_fields(acting_user, fields)
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        _recheck_visible(acting_user, customer)
        if "credit_code" in fields:
            _check_credit_code_free(acting_user, fields["credit_code"], exclude_pk=customer.pk)
        before = snapshot(customer)
        for name, value in fields.items():
            setattr(customer, name, value)
        if "owning_unit" in fields:
            customer.unit_path = customer.owning_unit.path
        customer.updated_by = acting_user
        customer.updated_at = timezone.now()
        changes = diff(before, snapshot(customer))
        for noise in ("updated_at", "updated_by", "unit_path"):
            changes.pop(noise, None)
        if changes:
            _refresh_search_fields(customer)
            customer.save()
            _recheck_visible(acting_user, customer)
            audit_record(actor=acting_user, action="customer.update", obj=customer, changes=changes)
    return customer


# ---------------------------------------------------------------- contacts and agreements


def _require_customer(acting_user, customer: Customer) -> None:
    require(acting_user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow editing customers."))
    _recheck_visible(acting_user, customer)


def contact_create(*, acting_user, customer: Customer, name: str, title: str = "", decision_role: str = "",
                   birthday: date | None = None, preferences: str = "", relations: str = "", notes: str = "",
                   important_dates: list | None = None) -> Contact:  # fmt: skip
    _require_customer(acting_user, customer)
    if not (name or "").strip():
        raise ServiceError(_("A contact needs a name."), field="name")
    if decision_role and decision_role not in DecisionRole.values:
        raise ServiceError(
            _("Unknown role in decisions “%(r)s”.") % {"r": decision_role}, field="decision_role"
        )
    with transaction.atomic():
        contact = Contact.objects.create(
            customer=customer, name=name.strip(), title=title, decision_role=decision_role, birthday=birthday,
            preferences=preferences, relations=relations, notes=notes, important_dates=important_dates or [],
        )  # fmt: skip
        audit_record(actor=acting_user, action="contact.create", obj=contact, changes=snapshot(contact),
                     extra={"customer": customer.code})  # fmt: skip
    return contact


def agreement_create(*, acting_user, customer: Customer, number: str, signing_level: str, start_date: date,
                     end_date: date | None = None, agreement_type: str = "supply", signing_unit: Unit | None = None,
                     parties: str = "", status: str = AgreementStatus.ACTIVE) -> Agreement:  # fmt: skip
    _require_customer(acting_user, customer)
    number = (number or "").strip()
    if not number:
        raise ServiceError(_("An agreement needs a number."), field="number")
    if signing_level not in SigningLevel.values:
        raise ServiceError(
            _("The signing level is province, city, county or station."), field="signing_level"
        )
    if status not in AgreementStatus.values:
        raise ServiceError(_("Unknown agreement status “%(s)s”.") % {"s": status}, field="status")
    if end_date is not None and end_date < start_date:
        raise ServiceError(_("The agreement cannot end before it starts."), field="end_date")
    if Agreement.objects.filter(customer=customer, number=number).exists():
        raise ServiceError(_("This customer already has an agreement numbered %(n)s.") % {"n": number},
                           field="number")  # fmt: skip
    with transaction.atomic():
        agreement = Agreement.objects.create(
            customer=customer, number=number, agreement_type=agreement_type, signing_unit=signing_unit,
            signing_level=signing_level, parties=parties, start_date=start_date, end_date=end_date, status=status,
        )  # fmt: skip
        audit_record(actor=acting_user, action="agreement.create", obj=agreement, changes=snapshot(agreement),
                     extra={"customer": customer.code})  # fmt: skip
    return agreement
