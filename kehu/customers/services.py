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
    RetiredCustomerCode,
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
    if RetiredCustomerCode.objects.filter(code=str(parsed)).exists():
        raise ServiceError(
            _("The customer code %(c)s belonged to a customer that was merged away; codes are never reused.")
            % {"c": parsed},
            field="code",
        )
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


# ---------------------------------------------------------------- contacts, agreements and photos: changes
# (Added for the customer pages: edit and delete contacts and agreements, agreement attachments, photos.)

CONTACT_EDITABLE = (
    "name", "title", "decision_role", "birthday", "important_dates", "preferences", "relations", "notes",
)  # fmt: skip
AGREEMENT_EDITABLE = (
    "number", "agreement_type", "signing_unit", "signing_level", "parties", "start_date", "end_date", "status",
)  # fmt: skip
ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024
PHOTO_MAX_BYTES = 10 * 1024 * 1024
# What an agreement's attachment may be, by file extension, and how its first bytes must look.
_ZIP, _OLE = (b"PK\x03\x04",), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
ATTACHMENT_TYPES: dict[str, tuple[str, tuple[bytes, ...] | None]] = {
    "pdf": ("application/pdf", (b"%PDF-",)),
    "ofd": ("application/ofd", _ZIP),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP),
    "doc": ("application/msword", _OLE),
    "xls": ("application/vnd.ms-excel", _OLE),
    "jpg": ("image/jpeg", None),  # images are opened with Pillow instead
    "jpeg": ("image/jpeg", None),
    "png": ("image/png", None),
    "webp": ("image/webp", None),
}
PHOTO_FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def _check_important_dates(value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ServiceError(
            _("Important dates are a list of dates with what they are."), field="important_dates"
        )
    for i, item in enumerate(value, start=1):
        if isinstance(item, dict):
            when = str(item.get("date", ""))
            try:
                date.fromisoformat(when)
            except ValueError:
                raise ServiceError(
                    _("Important date %(n)d: “%(d)s” is not a date written as YYYY-MM-DD.")
                    % {"n": i, "d": when},
                    field="important_dates",
                ) from None
        elif not isinstance(item, str):
            raise ServiceError(_("Important date %(n)d is neither a date nor a note.") % {"n": i},
                               field="important_dates")  # fmt: skip
    return value


def contact_update(*, acting_user, contact: Contact, **fields) -> Contact:
    """Change a contact; only the fields given. Audited with before and after values."""
    _require_customer(acting_user, contact.customer)
    unknown = set(fields) - set(CONTACT_EDITABLE)
    if unknown:
        raise ServiceError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
        if not fields["name"]:
            raise ServiceError(_("A contact needs a name."), field="name")
    role = fields.get("decision_role")
    if role and role not in DecisionRole.values:
        raise ServiceError(_("Unknown role in decisions “%(r)s”.") % {"r": role}, field="decision_role")
    if "important_dates" in fields:
        fields["important_dates"] = _check_important_dates(fields["important_dates"])
    for name in ("title", "decision_role", "preferences", "relations", "notes"):
        if name in fields and fields[name] is None:
            fields[name] = ""
    with transaction.atomic():
        contact = Contact.objects.select_for_update().select_related("customer").get(pk=contact.pk)
        before = snapshot(contact)
        for name, value in fields.items():
            setattr(contact, name, value)
        changes = diff(before, snapshot(contact))
        if changes:
            contact.save()
            audit_record(actor=acting_user, action="contact.update", obj=contact, changes=changes,
                         extra={"customer": contact.customer.code})  # fmt: skip
    return contact


def contact_delete(*, acting_user, contact: Contact) -> None:
    """Remove a contact and its phones. The trail keeps what it held (phones masked)."""
    from kehu.core.crypto import mask_phone

    customer = contact.customer
    _require_customer(acting_user, customer)
    with transaction.atomic():
        pk, label = contact.pk, str(contact)
        before = snapshot(contact)
        phones = [mask_phone(p.number) for p in contact.phones.order_by("pk")]
        contact.delete()
        audit_record(actor=acting_user, action="contact.delete", object_type="customers.contact", object_id=pk,
                     object_repr=label, changes=before,
                     extra={"customer": customer.code, "phones": phones})  # fmt: skip


def _file_size(upload) -> int:
    size = getattr(upload, "size", None)
    if size is None:
        upload.seek(0, 2)
        size = upload.tell()
    upload.seek(0)
    return size


def _image_format(upload, max_bytes: int, field: str) -> str:
    """The Pillow format name of an uploaded image (JPEG, PNG or WEBP), or ServiceError saying why not."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    size = _file_size(upload)
    if size == 0:
        raise ServiceError(_("The file is empty."), field=field)
    if size > max_bytes:
        raise ServiceError(_("The file is %(size)s; the limit is %(max)s.") % {"size": _mb(size), "max": _mb(max_bytes)},
                           field=field)  # fmt: skip
    try:
        with warnings.catch_warnings():
            # A tiny file that unpacks to an enormous picture (a "decompression bomb") is refused, not decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload) as image:
                fmt = image.format
                image.verify()
            upload.seek(0)
            with Image.open(upload) as image:
                image.load()  # verify() does not decode; a truncated file fails here
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            SyntaxError, ValueError):  # fmt: skip
        raise ServiceError(_("This is not a readable JPEG, PNG or WebP image."), field=field) from None
    finally:
        upload.seek(0)
    if fmt not in PHOTO_FORMATS:
        raise ServiceError(_("Photos are JPEG, PNG or WebP images, not %(f)s.") % {"f": fmt}, field=field)
    return fmt


def attachment_error(upload, filename: str) -> str | None:
    """Why an agreement attachment is refused, or None. Checks the size, the extension and the first bytes."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in ATTACHMENT_TYPES:
        return _("Attach a PDF, OFD, Word, Excel or image file (.%(ext)s is not accepted).") % {
            "ext": ext or "?"
        }
    size = _file_size(upload)
    if size == 0:
        return _("The file is empty.")
    if size > ATTACHMENT_MAX_BYTES:
        return _("The file is %(size)s; the limit is %(max)s.") % {
            "size": _mb(size),
            "max": _mb(ATTACHMENT_MAX_BYTES),
        }
    magic = ATTACHMENT_TYPES[ext][1]
    if magic is None:
        try:
            _image_format(upload, ATTACHMENT_MAX_BYTES, "attachment")
        except ServiceError as exc:
            return exc.message
        return None
    head = upload.read(16)
    upload.seek(0)
    if not any(head.startswith(m) for m in magic):
        return _("The file's content is not a .%(ext)s file.") % {"ext": ext}
    return None


def _store_attachment(agreement: Agreement, upload, filename: str) -> str:
    """Save the upload under a random name (never the user's) and return the stored name."""
    import uuid

    from django.core.files import File

    ext = filename.rsplit(".", 1)[-1].lower()
    agreement.attachment.save(f"{uuid.uuid4().hex}.{ext}", File(upload), save=False)
    return agreement.attachment.name


def _delete_file_after_commit(storage, name: str) -> None:
    if name:
        transaction.on_commit(lambda: storage.delete(name))


def _check_agreement_fields(acting_user, customer: Customer, fields: dict, exclude_pk: int | None) -> None:
    if "number" in fields:
        fields["number"] = (fields["number"] or "").strip()
        if not fields["number"]:
            raise ServiceError(_("An agreement needs a number."), field="number")
        if (
            Agreement.objects.filter(customer=customer, number=fields["number"])
            .exclude(pk=exclude_pk)
            .exists()
        ):
            raise ServiceError(
                _("This customer already has an agreement numbered %(n)s.") % {"n": fields["number"]},
                field="number",
            )
    if "agreement_type" in fields:
        fields["agreement_type"] = (fields["agreement_type"] or "").strip() or "supply"
    if "signing_level" in fields and fields["signing_level"] not in SigningLevel.values:
        raise ServiceError(
            _("The signing level is province, city, county or station."), field="signing_level"
        )
    if "status" in fields and fields["status"] not in AgreementStatus.values:
        raise ServiceError(_("Unknown agreement status “%(s)s”.") % {"s": fields["status"]}, field="status")
    unit = fields.get("signing_unit")
    if unit is not None and not Unit.objects.visible_to(acting_user).filter(pk=unit.pk).exists():
        raise ServiceError(_("Choose a signing unit within your scope."), field="signing_unit")
    if "parties" in fields and fields["parties"] is None:
        fields["parties"] = ""


def agreement_add(*, acting_user, customer: Customer, attachment=None, attachment_name: str = "",
                  **fields) -> Agreement:  # fmt: skip
    """``agreement_create`` with an optional attachment (a file object), all or nothing."""
    _require_customer(acting_user, customer)
    _check_agreement_fields(acting_user, customer, fields, exclude_pk=None)
    if attachment is not None:
        attachment_name = attachment_name or getattr(attachment, "name", "") or ""
        error = attachment_error(attachment, attachment_name)
        if error:
            raise ServiceError(error, field="attachment")
    stored = ""
    try:
        with transaction.atomic():
            agreement = agreement_create(acting_user=acting_user, customer=customer, **fields)
            if attachment is not None:
                stored = _store_attachment(agreement, attachment, attachment_name)
                agreement.save(update_fields=["attachment"])
                audit_record(actor=acting_user, action="agreement.attach", obj=agreement,
                             changes={"attachment": ["", stored]},
                             extra={"customer": customer.code, "filename": attachment_name,
                                    "bytes": _file_size(attachment)})  # fmt: skip
    except Exception:
        if stored:
            Agreement._meta.get_field("attachment").storage.delete(stored)
        raise
    return agreement


def agreement_update(*, acting_user, agreement: Agreement, attachment=None, attachment_name: str = "",
                     remove_attachment: bool = False, **fields) -> Agreement:  # fmt: skip
    """Change an agreement (only the fields given; its status too), replace or remove its attachment."""
    customer = agreement.customer
    _require_customer(acting_user, customer)
    unknown = set(fields) - set(AGREEMENT_EDITABLE)
    if unknown:
        raise ServiceError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    _check_agreement_fields(acting_user, customer, fields, exclude_pk=agreement.pk)
    if attachment is not None:
        attachment_name = attachment_name or getattr(attachment, "name", "") or ""
        error = attachment_error(attachment, attachment_name)
        if error:
            raise ServiceError(error, field="attachment")
    storage = Agreement._meta.get_field("attachment").storage
    stored = ""
    try:
        with transaction.atomic():
            agreement = Agreement.objects.select_for_update().get(pk=agreement.pk)
            start = fields.get("start_date", agreement.start_date)
            end = fields.get("end_date", agreement.end_date)
            if end is not None and start is not None and end < start:
                raise ServiceError(_("The agreement cannot end before it starts."), field="end_date")
            before = snapshot(agreement)
            old_file = agreement.attachment.name or ""
            for name, value in fields.items():
                setattr(agreement, name, value)
            extra: dict = {"customer": customer.code}
            if attachment is not None:
                stored = _store_attachment(agreement, attachment, attachment_name)
                extra.update(filename=attachment_name, bytes=_file_size(attachment))
            elif remove_attachment:
                agreement.attachment = ""
            changes = diff(before, snapshot(agreement))
            if changes:
                agreement.save()
                audit_record(actor=acting_user, action="agreement.update", obj=agreement, changes=changes,
                             extra=extra)  # fmt: skip
                if old_file and old_file != (agreement.attachment.name or ""):
                    _delete_file_after_commit(storage, old_file)
    except Exception:
        if stored:
            storage.delete(stored)
        raise
    return agreement


def agreement_delete(*, acting_user, agreement: Agreement) -> None:
    """Remove an agreement (one entered by mistake; an ended one is better set to "ended") and its file."""
    customer = agreement.customer
    _require_customer(acting_user, customer)
    with transaction.atomic():
        pk, label, before = agreement.pk, str(agreement), snapshot(agreement)
        old_file = agreement.attachment.name or ""
        agreement.delete()
        audit_record(actor=acting_user, action="agreement.delete", object_type="customers.agreement",
                     object_id=pk, object_repr=label, changes=before,
                     extra={"customer": customer.code})  # fmt: skip
        _delete_file_after_commit(Agreement._meta.get_field("attachment").storage, old_file)


def photo_add(*, acting_user, customer: Customer, image, caption: str = ""):
    """Add a photo of the premises: a real JPEG, PNG or WebP image of at most 10 MB, stored as uploaded."""
    import uuid

    from django.core.files import File

    from kehu.customers.models import CustomerPhoto

    _require_customer(acting_user, customer)
    fmt = _image_format(image, PHOTO_MAX_BYTES, "image")
    caption = (caption or "").strip()
    if len(caption) > 200:
        raise ServiceError(_("A caption has at most 200 characters."), field="caption")
    ext = PHOTO_FORMATS[fmt][0]
    photo = CustomerPhoto(customer=customer, caption=caption, uploaded_by=acting_user)
    photo.image.save(f"{uuid.uuid4().hex}.{ext}", File(image), save=False)
    try:
        with transaction.atomic():
            photo.save()
            audit_record(actor=acting_user, action="photo.add", obj=photo, changes=snapshot(photo),
                         extra={"customer": customer.code, "format": fmt, "bytes": _file_size(image),
                                "filename": getattr(image, "name", "") or ""})  # fmt: skip
    except Exception:
        photo.image.storage.delete(photo.image.name)
        raise
    return photo


def photo_delete(*, acting_user, photo) -> None:
    customer = photo.customer
    _require_customer(acting_user, customer)
    with transaction.atomic():
        pk, label, before, name = photo.pk, str(photo), snapshot(photo), photo.image.name
        storage = photo.image.storage
        photo.delete()
        audit_record(actor=acting_user, action="photo.delete", object_type="customers.customerphoto",
                     object_id=pk, object_repr=label, changes=before,
                     extra={"customer": customer.code})  # fmt: skip
        _delete_file_after_commit(storage, name)
