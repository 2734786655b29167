"""The customer archive: list, search and exact lookup, detail, create, edit and merge, phones and the ID
number, contacts, agreements and their attachments, photos, imports.

Every customer is fetched through ``get_visible_or_404`` (out of scope answers 404 like missing) and
every write goes through ``kehu.customers.services`` (which audits it). Phones and ID card numbers are
masked in every answer (``customer_personal_data``) except ``POST /customers/{code}/reveal``. Stored files
(photos, agreement attachments) are served only through handlers that fetch them by the same scoping point.

Answers about one customer are built here as plain dicts, never handed to a schema as model instances:
``Customer.id_number`` and ``Customer.phones`` hold the plaintext, and a schema reading them from the
model would send it out.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Annotated, get_type_hints

from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, File, Form, Query, Router, Schema, UploadedFile
from ninja.pagination import paginate
from ninja.responses import Status

from kehu.accounts.models import User
from kehu.accounts.roles import Capability
from kehu.api.customer_schemas import (
    AgreementIn,
    AgreementOut,
    AgreementPatch,
    ContactIn,
    ContactOut,
    ContactPatch,
    CustomerIn,
    CustomerListItem,
    CustomerOut,
    CustomerPatch,
    IdNumberIn,
    IdNumberOut,
    JobOut,
    LookupIn,
    MergeIn,
    PersonalDataOut,
    PhoneIn,
    PhoneOut,
    PhotoOut,
    RevealIn,
    SimilarNamesError,
)
from kehu.api.pagination import KehuPagination
from kehu.api.schemas import Error, FieldError
from kehu.core.errors import ServiceError, require_any
from kehu.core.files import private_file_response
from kehu.core.scoping import get_visible_or_404, ids_visible
from kehu.core.tabular import SUPPORTED_SUFFIXES, check_size
from kehu.customers.duplicates import SimilarNamesFound
from kehu.customers.merge import customer_merge
from kehu.customers.models import (
    Agreement,
    Contact,
    Customer,
    CustomerKind,
    CustomerPhone,
    CustomerPhoto,
    CustomerStatus,
    CustomerSubType,
)
from kehu.customers.personal import (
    customer_personal_data,
    customer_set_id_number,
    customers_by_id_number,
    customers_by_phone,
    id_card_error,
    normalise_phone,
    personal_data_reveal,
    phone_add,
    phone_error,
    phone_remove,
)
from kehu.customers.selectors import (
    COUNT_CAP,
    ORDERINGS,
    CustomerFilters,
    capped_count,
    customer_photos,
    customer_search,
    visible_customer_by_code,
)
from kehu.customers.services import (
    ATTACHMENT_TYPES,
    PHOTO_FORMATS,
    agreement_create,
    agreement_delete,
    agreement_update,
    contact_create,
    contact_delete,
    contact_update,
    customer_create,
    customer_update,
    photo_add,
    photo_delete,
)
from kehu.jobs.models import Job
from kehu.jobs.services import job_progress, job_submit
from kehu.org.models import Unit

router = Router(tags=["customers"])
jobs_router = Router(tags=["jobs"])

LIST_RELATED = ("owning_unit", "lead_manager", "backup_manager", "sub_type")
SUMMARY_LIMIT = 100
IMPORT_KINDS = ("customers", "contacts", "agreements")


class CappedPagination(KehuPagination):
    """``limit``/``offset`` like every list, but the count stops at 10,000 (``count_capped`` says so).

    Counting a million matching customers costs more than fetching a page of them; a person needs to
    know "more than 10,000" to narrow the search, not the exact figure.
    """

    class Output(Schema):
        items: list
        count: int = Field(..., description=f"Matching customers, counted up to {COUNT_CAP:,}.")
        count_capped: bool = Field(
            ..., description=f"true: more than {COUNT_CAP:,} customers match; `count` is {COUNT_CAP:,}."
        )

    def paginate_queryset(self, queryset, pagination, request, **params):
        offset, limit = pagination.offset, min(pagination.limit, self.max_limit)
        count, capped = capped_count(queryset)
        return {"items": queryset[offset : offset + limit], "count": count, "count_capped": capped}


def _typed(view):
    """Real types in place of this module's string annotations, for a view under ``@paginate``.

    ``@paginate`` wraps the view in a function of ninja's module, and ninja resolves the annotations it reads
    through that wrapper against ninja's globals, where a schema of ours (a request body) is unknown.
    """
    view.__annotations__ = get_type_hints(view, include_extras=True)
    return view


# ---------------------------------------------------------------- input references


def _unit(viewer, code: str | None, field: str) -> Unit | None:
    if code is None:
        return None
    unit = Unit.objects.visible_to(viewer).filter(code=code.strip()).first()
    if unit is None:
        raise ServiceError(_("No unit with the code “%(c)s” within your scope.") % {"c": code}, field=field)
    return unit


def _person(viewer, username: str | None, field: str) -> User | None:
    if username is None:
        return None
    person = User.objects.visible_to(viewer).filter(username=username.strip()).first()
    if person is None:
        raise ServiceError(
            _("No person with the username “%(u)s” within your scope.") % {"u": username}, field=field
        )
    return person


def _sub_type(code: str | None) -> CustomerSubType | None:
    if code is None or not code.strip():
        return None
    sub_type = CustomerSubType.objects.filter(code=code.strip()).first()
    if sub_type is None:
        raise ServiceError(_("Unknown customer sub-type “%(c)s”.") % {"c": code}, field="sub_type")
    return sub_type


def _head_office(viewer, code: str) -> Customer | None:
    code = (code or "").strip()
    if not code:
        return None
    parent = visible_customer_by_code(viewer=viewer, code=code)
    if parent is None:
        raise ServiceError(
            _("No customer with the code %(c)s within your scope.") % {"c": code}, field="parent"
        )
    return parent


def _profile_fields(viewer, data: dict) -> dict:
    """The payload's references (unit and sub-type codes, usernames) as the objects the services take."""
    fields = dict(data)
    if "owning_unit" in fields:
        fields["owning_unit"] = _unit(viewer, fields["owning_unit"], "owning_unit")
    if "sub_type" in fields:
        fields["sub_type"] = _sub_type(fields["sub_type"])
    for name in ("lead_manager", "backup_manager"):
        if name in fields:
            fields[name] = _person(viewer, fields[name], name)
    return fields


def _choice(value: str, choices, field: str, message: str) -> str:
    value = value.strip()
    if value and value not in choices:
        raise ServiceError(message % {"v": value, "choices": ", ".join(choices)}, field=field)
    return value


# ---------------------------------------------------------------- answers


def _person_ref(user) -> dict | None:
    return {"username": user.username, "full_name": user.full_name} if user is not None else None


def _number(value) -> float | None:
    return None if value is None else float(value)


def _customer(viewer, code: str) -> Customer:
    return get_visible_or_404(
        Customer.objects.select_related(*LIST_RELATED, "parent", "created_by", "updated_by"),
        viewer,
        code=code,
    )


def _values(obj, names: tuple[str, ...]) -> dict:
    return {name: getattr(obj, name) for name in names}


# Model fields an answer carries as they are. Never ``id_number`` or ``phones``: those go through personal.py.
CUSTOMER_PLAIN = (
    "code", "name", "short_name", "kind", "sub_type", "status", "owning_unit", "tags", "updated_at",
    "credit_code", "legal_representative", "address", "division_code", "payment_profile", "business_scope",
    "notes", "created_at",
)  # fmt: skip
CONTACT_SUMMARY = ("id", "name", "title", "decision_role")
CONTACT_PLAIN = (
    *CONTACT_SUMMARY,
    "birthday",
    "important_dates",
    "preferences",
    "relations",
    "notes",
    "created_at",
)
AGREEMENT_SUMMARY = ("id", "number", "agreement_type", "signing_level", "start_date", "end_date", "status")
AGREEMENT_PLAIN = (*AGREEMENT_SUMMARY, "parties", "created_at")
JOB_PLAIN = ("id", "kind", "status", "input_name", "params", "result", "error", "created_at", "started_at",
             "finished_at")  # fmt: skip


def _customer_body(viewer, customer: Customer) -> dict:
    personal = customer_personal_data(viewer=viewer, customer=customer)
    contacts = Contact.objects.visible_to(viewer).filter(customer=customer).order_by("name", "pk")
    agreements = Agreement.objects.visible_to(viewer).filter(customer=customer).order_by("-start_date", "pk")
    return {
        **_values(customer, CUSTOMER_PLAIN),
        "lead_manager": _person_ref(customer.lead_manager),
        "backup_manager": _person_ref(customer.backup_manager),
        "created_by": _person_ref(customer.created_by),
        "updated_by": _person_ref(customer.updated_by),
        "latitude": _number(customer.latitude),
        "longitude": _number(customer.longitude),
        "floor_area": _number(customer.floor_area),
        # The head office's code is the branch's own first 11 digits + 000: it tells nothing new.
        "parent_code": customer.parent.code if customer.parent_id else None,
        "id_number": personal["id_number"],
        "phones": personal["phones"],
        "contacts": [_values(c, CONTACT_SUMMARY) for c in contacts[:SUMMARY_LIMIT]],
        "contacts_count": contacts.count(),
        "agreements": [_values(a, AGREEMENT_SUMMARY) for a in agreements[:SUMMARY_LIMIT]],
        "agreements_count": agreements.count(),
    }


def _contact_body(contact: Contact, phones: list[dict]) -> dict:
    return {**_values(contact, CONTACT_PLAIN), "phones": phones}


def _masked_phones_by_contact(viewer, customer: Customer) -> dict[int, list[dict]]:
    by_contact: dict[int, list[dict]] = defaultdict(list)
    for phone in customer_personal_data(viewer=viewer, customer=customer)["phones"]:
        if phone["contact"] is not None:
            by_contact[phone["contact"]].append(phone)
    return by_contact


def _agreement_body(agreement: Agreement, visible_units: set[int]) -> dict:
    unit = agreement.signing_unit
    return {
        **_values(agreement, AGREEMENT_PLAIN),
        "has_attachment": bool(agreement.attachment),
        "signing_unit": unit if unit is not None and unit.pk in visible_units else None,
    }


def _masked_phone(viewer, customer: Customer, phone_id: int) -> dict:
    return next(
        p for p in customer_personal_data(viewer=viewer, customer=customer)["phones"] if p["id"] == phone_id
    )


def _add_phone(viewer, customer: Customer, payload: PhoneIn, contact: Contact | None = None) -> dict:
    try:
        phone = phone_add(acting_user=viewer, customer=customer, number=payload.number,
                          label=payload.label.strip(), contact=contact)  # fmt: skip
    except ServiceError as exc:
        if exc.field == "phone":
            exc.field = "number"  # the service calls it "phone"; the input here is `number`
        raise
    return _masked_phone(viewer, customer, phone.pk)


def _photo_body(customer: Customer, photo: CustomerPhoto) -> dict:
    url = reverse("api:customers_photos_file", kwargs={"code": customer.code, "photo_id": photo.pk})
    return {
        "id": photo.pk, "caption": photo.caption, "uploaded_by": _person_ref(photo.uploaded_by),
        "created_at": photo.created_at, "url": url,
    }  # fmt: skip


def _binary(content_type: str, what: str) -> dict:
    """The OpenAPI description of a 200 answer that is a file, not JSON."""
    schema = {"type": "string", "format": "binary"}
    return {"responses": {200: {"description": what, "content": {content_type: {"schema": schema}}}}}


def _job_body(job: Job) -> dict:
    done, total = job_progress(job)
    return {**_values(job, JOB_PLAIN), "done": done, "total": total}


# ---------------------------------------------------------------- list and search


@router.get(
    "",
    response={200: list[CustomerListItem], 400: FieldError, 401: Error, 404: Error},
    summary="List and search customers",
    description=(
        "Customers the caller may see. `q` is the search box: a Chinese name substring, full pinyin or "
        "pinyin initials (`zgsh` finds 中国石化), the start of a customer code or credit code, or a whole "
        "phone number. Filters: `within` (a unit code: that unit and everything below it; 404 when missing "
        "or out of scope), `kind`, `sub_type` (code), `status`, `manager` (username of the lead or backup "
        "manager; 404 when not visible), `tag`. `order` is one of `code`, `-code`, `name`, `-name`, "
        "`updated`, `-updated`. Pages with `limit`/`offset`; `count` stops at 10,000 and `count_capped` "
        "is true when more customers match."
    ),
    operation_id="customers_list",
)
@paginate(CappedPagination)
def customers_list(
    request,
    q: str = Query("", max_length=100, description="The search box."),
    within: str = Query("", max_length=32, description="Unit code: only customers in its subtree."),
    kind: str = Query("", max_length=16, description="`institution` or `individual`."),
    sub_type: str = Query("", max_length=32, description="Sub-type code."),
    status: str = Query("", max_length=16, description="prospect, registered, active, dormant or lost."),
    manager: str = Query("", max_length=64, description="Username of the lead (A) or backup (B) manager."),
    tag: str = Query("", max_length=50, description="One tag."),
    order: str = Query("code", max_length=16, description="code, -code, name, -name, updated, -updated."),
):
    viewer = request.auth
    filters = CustomerFilters(
        q=q.strip(),
        within=get_visible_or_404(Unit, viewer, code=within.strip()) if within.strip() else None,
        kind=_choice(kind, CustomerKind.values, "kind", _("Unknown kind “%(v)s”: use %(choices)s.")),
        sub_type=_sub_type(sub_type),
        status=_choice(
            status, CustomerStatus.values, "status", _("Unknown status “%(v)s”: use %(choices)s.")
        ),
        manager=get_visible_or_404(User, viewer, username=manager.strip()) if manager.strip() else None,
        tag=tag.strip(),
        order=_choice(order, list(ORDERINGS), "order", _("Unknown order “%(v)s”: use %(choices)s.")),
    )
    return customer_search(viewer=viewer, filters=filters).select_related(*LIST_RELATED)


# ---------------------------------------------------------------- import (before "/{code}": a literal path)


@router.post(
    "/import",
    response={202: JobOut, 400: FieldError, 401: Error, 403: Error},
    summary="Import customers, contacts or agreements from a file",
    description=(
        "Upload a CSV (UTF-8 or GBK) or XLSX file as `multipart/form-data` with `file` and `kind` "
        "(`customers`, `contacts` or `agreements`; columns in docs/import-formats.md). The file is checked "
        "and applied by a background job acting as you: all-or-nothing (one bad row changes nothing) and "
        "idempotent (the same file twice creates nothing new). `dry_run=true` only reports what would be "
        "created, updated and rejected. `reason` is kept with customers whose names resemble existing "
        "ones. Answers **202** with the job; follow it at `GET /api/v1/jobs/{id}`."
    ),
    operation_id="customers_import",
)
def customers_import(
    request,
    file: Annotated[UploadedFile, File(description="The file: .csv (UTF-8 or GBK) or .xlsx.")],
    kind: str = Form("customers", max_length=16, description="`customers`, `contacts` or `agreements`."),
    dry_run: bool = Form(False, description="true: only check the file and report; change nothing."),
    reason: str = Form("", max_length=500, description="Why customers with similar names are added anyway."),
):
    viewer = request.auth
    require_any(viewer, Capability.MANAGE_CUSTOMERS)
    kind = _choice(kind, IMPORT_KINDS, "kind", _("Unknown import “%(v)s”: use %(choices)s.")) or "customers"
    if not (file.name or "").lower().endswith(SUPPORTED_SUFFIXES):
        raise ServiceError(_("Upload a .csv or .xlsx file."), field="file")
    check_size(file.size)  # before reading: a file over KEHU_MAX_UPLOAD_MB is never loaded into memory
    job = job_submit(
        acting_user=viewer, kind=f"{kind}_import", filename=file.name, content=file.read(),
        params={"dry_run": bool(dry_run), "reason": reason.strip()[:500]},
    )  # fmt: skip
    job.refresh_from_db()  # without a broker the job has already run by now
    return Status(202, _job_body(job))


# ---------------------------------------------------------------- exact lookup (before "/{code}")


@router.post(
    "/lookup",
    response={200: list[CustomerListItem], 400: FieldError, 401: Error},
    summary="Find customers by a whole phone or ID card number",
    description=(
        "Exact lookup through the encrypted numbers' blind indexes: send **either** `phone` (any spacing, "
        "`+86` accepted) **or** `id_number`. A POST so that the number stays out of URLs and access logs; "
        "it changes nothing. Answers the matching customers you may see (a phone belongs to one customer, "
        "an ID number may be on several), as the list shows them: without phones or ID numbers. A number "
        "registered outside your scope answers an empty list, exactly like an unknown one. A malformed "
        "number answers 400 naming the field."
    ),
    operation_id="customers_lookup",
)
@paginate(CappedPagination)  # the list's page shape (one OpenAPI schema); a lookup never reaches the cap
@_typed
def customers_lookup(request, payload: LookupIn):
    viewer = request.auth
    phone, id_number = payload.phone.strip(), payload.id_number.strip().upper()
    if bool(phone) == bool(id_number):
        raise ServiceError(_("Send either a phone or an ID card number."))
    if phone:
        problem = phone_error(normalise_phone(phone))
        if problem:
            raise ServiceError(_("Phone: %(e)s.") % {"e": problem}, field="phone")
        found = customers_by_phone(viewer=viewer, number=phone)
    else:
        problem = id_card_error(id_number)
        if problem:
            raise ServiceError(_("ID card number: %(e)s.") % {"e": problem}, field="id_number")
        found = customers_by_id_number(viewer=viewer, id_number=id_number)
    return found.select_related(*LIST_RELATED).order_by("code")


# ---------------------------------------------------------------- one customer


@router.post(
    "",
    response={201: CustomerOut, 400: FieldError, 401: Error, 403: Error, 409: SimilarNamesError},
    summary="Create a customer",
    description=(
        "`code` empty: the next free 14-digit id of `division_code` is assigned (a branch — `parent` given — "
        "takes its head office's next branch number). A customer manager creating a customer becomes its "
        "lead manager unless another is named. The same credit code or phone as an existing customer is "
        "refused (400, `code: duplicate`), naming that customer only if you may see it. A name that "
        "normalises like an existing customer's answers **409** with the `candidates` you may see and how "
        "many more are `hidden` in other units; send the request again with `duplicate_reason` to add it "
        "anyway (the reason is audited). Bad input answers 400 with the `field` at fault."
    ),
    operation_id="customers_create",
)
def customers_create(request, payload: CustomerIn):
    viewer = request.auth
    require_any(viewer, Capability.MANAGE_CUSTOMERS)
    data = payload.dict(exclude_unset=True)
    code, parent = data.pop("code", ""), data.pop("parent", "")
    phones, reason = data.pop("phones", []), data.pop("duplicate_reason", "")
    fields = _profile_fields(viewer, data)
    try:
        customer = customer_create(
            acting_user=viewer, code=code, parent=_head_office(viewer, parent), phones=phones,
            duplicate_reason=reason, **fields,
        )  # fmt: skip
    except SimilarNamesFound as exc:
        return Status(
            409,
            {
                "detail": exc.message, "field": exc.field, "code": exc.code,
                "candidates": [{"code": c.code, "name": c.name} for c in exc.similar.visible],
                "hidden": exc.similar.hidden,
            },
        )  # fmt: skip
    return Status(201, _customer_body(viewer, _customer(viewer, customer.code)))


@router.get(
    "/{code}",
    response={200: CustomerOut, 401: Error, 404: Error},
    summary="Get one customer",
    description=(
        "The customer's profile with its phones and ID card number **masked**, and summaries of its "
        "contacts and agreements. A customer outside the caller's scope answers 404 exactly like a missing "
        "one. Full phones and ID number: `POST /customers/{code}/reveal`."
    ),
    operation_id="customers_get",
)
def customers_get(request, code: str):
    return _customer_body(request.auth, _customer(request.auth, code))


@router.patch(
    "/{code}",
    response={200: CustomerOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Edit a customer",
    description=(
        "Changes only the fields sent; the code never changes. References are by code (`owning_unit`, "
        "`sub_type`) and username (`lead_manager`, `backup_manager`; null clears them). Moving a customer "
        "out of your own scope is refused (403). Every change is audited with its before and after values."
    ),
    operation_id="customers_update",
)
def customers_update(request, code: str, payload: CustomerPatch):
    viewer = request.auth
    customer = _customer(viewer, code)
    require_any(viewer, Capability.MANAGE_CUSTOMERS)
    customer_update(
        acting_user=viewer, customer=customer, **_profile_fields(viewer, payload.dict(exclude_unset=True))
    )
    return _customer_body(viewer, _customer(viewer, code))


@router.post(
    "/{code}/reveal",
    response={200: PersonalDataOut, 401: Error, 403: Error, 404: Error},
    summary="Reveal a customer's phones and ID number",
    description=(
        "The customer's phones and ID card number in full, for roles that may view personal data (403 "
        "otherwise). Each call is written to the audit trail with the `reason` given."
    ),
    operation_id="customers_reveal",
)
def customers_reveal(request, code: str, payload: RevealIn | None = None):
    viewer = request.auth
    customer = _customer(viewer, code)
    return personal_data_reveal(
        acting_user=viewer, customer=customer, reason=payload.reason if payload else ""
    )


# ---------------------------------------------------------------- phones and the ID number


@router.get(
    "/{code}/phones",
    response={200: list[PhoneOut], 401: Error, 404: Error},
    summary="List a customer's phones",
    description=(
        "The customer's own numbers and its contacts' (`contact` says whose), **masked** as in the "
        "customer's detail, oldest first. Full numbers: `POST /customers/{code}/reveal`."
    ),
    operation_id="customers_phones_list",
)
@paginate(KehuPagination)
def phones_list(request, code: str):
    viewer = request.auth
    return customer_personal_data(viewer=viewer, customer=_customer(viewer, code))["phones"]


@router.post(
    "/{code}/phones",
    response={201: PhoneOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Add a phone to a customer",
    description=(
        "A number of the customer itself (a contact's: `POST /customers/{code}/contacts/{id}/phones`). "
        "A number already in the archive is refused (400, `code: duplicate`), naming the customer holding "
        "it only if you may see it. Answered masked. Audited."
    ),
    operation_id="customers_phones_create",
)
def phones_create(request, code: str, payload: PhoneIn):
    viewer = request.auth
    return Status(201, _add_phone(viewer, _customer(viewer, code), payload))


@router.delete(
    "/{code}/phones/{int:phone_id}",
    response={204: None, 401: Error, 403: Error, 404: Error},
    summary="Remove a phone",
    description="Removes one of the customer's numbers or one of its contacts'. Audited (the number masked). "
    "A phone of another customer, or out of scope, answers 404.",
    operation_id="customers_phones_delete",
)
def phones_delete(request, code: str, phone_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    phone = get_visible_or_404(CustomerPhone.objects.filter(customer=customer), viewer, pk=phone_id)
    phone_remove(acting_user=viewer, phone=phone)
    return Status(204, None)


@router.put(
    "/{code}/id-number",
    response={200: IdNumberOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Set a customer's ID card number",
    description=(
        "The ID card number of the individual customer or of the legal representative, checked against "
        "GB 11643 (date of birth and check character); an empty `id_number` clears it. Answered **masked** "
        "(the full value only through `reveal`). Audited, masked."
    ),
    operation_id="customers_id_number_set",
)
def id_number_set(request, code: str, payload: IdNumberIn):
    viewer = request.auth
    customer = _customer(viewer, code)
    customer = customer_set_id_number(acting_user=viewer, customer=customer, id_number=payload.id_number)
    return {"id_number": customer_personal_data(viewer=viewer, customer=customer)["id_number"]}


# ---------------------------------------------------------------- contacts


@router.get(
    "/{code}/contacts",
    response={200: list[ContactOut], 401: Error, 404: Error},
    summary="List a customer's contacts",
    description="The customer's contacts and decision makers, by name, with their phones masked.",
    operation_id="customers_contacts_list",
)
@paginate(KehuPagination)
def contacts_list(request, code: str):
    viewer = request.auth
    customer = _customer(viewer, code)
    phones = _masked_phones_by_contact(viewer, customer)
    contacts = Contact.objects.visible_to(viewer).filter(customer=customer).order_by("name", "pk")
    return [_contact_body(c, phones.get(c.pk, [])) for c in contacts]


@router.post(
    "/{code}/contacts",
    response={201: ContactOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Add a contact",
    description="A contact or decision maker of the customer. Audited. Bad input: 400 with the `field`.",
    operation_id="customers_contacts_create",
)
def contacts_create(request, code: str, payload: ContactIn):
    viewer = request.auth
    customer = _customer(viewer, code)
    contact = contact_create(acting_user=viewer, customer=customer, **payload.dict(exclude_unset=True))
    return Status(201, _contact_body(contact, []))


@router.patch(
    "/{code}/contacts/{int:contact_id}",
    response={200: ContactOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Edit a contact",
    description="Changes only the fields sent. Audited with before and after values. A contact of another "
    "customer, or out of scope, answers 404.",
    operation_id="customers_contacts_update",
)
def contacts_update(request, code: str, contact_id: int, payload: ContactPatch):
    viewer = request.auth
    customer = _customer(viewer, code)
    contact = get_visible_or_404(Contact.objects.filter(customer=customer), viewer, pk=contact_id)
    contact = contact_update(acting_user=viewer, contact=contact, **payload.dict(exclude_unset=True))
    return _contact_body(contact, _masked_phones_by_contact(viewer, customer).get(contact.pk, []))


@router.delete(
    "/{code}/contacts/{int:contact_id}",
    response={204: None, 401: Error, 403: Error, 404: Error},
    summary="Remove a contact",
    description="Removes the contact and its phones. Audited with what it held (its phones masked). A contact "
    "of another customer, or out of scope, answers 404.",
    operation_id="customers_contacts_delete",
)
def contacts_delete(request, code: str, contact_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    contact = get_visible_or_404(Contact.objects.filter(customer=customer), viewer, pk=contact_id)
    contact_delete(acting_user=viewer, contact=contact)
    return Status(204, None)


@router.get(
    "/{code}/contacts/{int:contact_id}/phones",
    response={200: list[PhoneOut], 401: Error, 404: Error},
    summary="List a contact's phones",
    description="The contact's numbers, **masked**, oldest first. Remove one with "
    "`DELETE /customers/{code}/phones/{id}`.",
    operation_id="customers_contacts_phones_list",
)
@paginate(KehuPagination)
def contact_phones_list(request, code: str, contact_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    contact = get_visible_or_404(Contact.objects.filter(customer=customer), viewer, pk=contact_id)
    return _masked_phones_by_contact(viewer, customer).get(contact.pk, [])


@router.post(
    "/{code}/contacts/{int:contact_id}/phones",
    response={201: PhoneOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Add a phone to a contact",
    description=(
        "A number of the contact, kept with the customer's numbers (one number, one customer: a number "
        "already in the archive is refused with `code: duplicate`). Answered masked. Audited."
    ),
    operation_id="customers_contacts_phones_create",
)
def contact_phones_create(request, code: str, contact_id: int, payload: PhoneIn):
    viewer = request.auth
    customer = _customer(viewer, code)
    contact = get_visible_or_404(Contact.objects.filter(customer=customer), viewer, pk=contact_id)
    return Status(201, _add_phone(viewer, customer, payload, contact=contact))


# ---------------------------------------------------------------- agreements


@router.get(
    "/{code}/agreements",
    response={200: list[AgreementOut], 401: Error, 404: Error},
    summary="List a customer's agreements",
    description="Supply and framework agreements of the customer, newest start date first.",
    operation_id="customers_agreements_list",
)
@paginate(KehuPagination)
def agreements_list(request, code: str):
    viewer = request.auth
    customer = _customer(viewer, code)
    agreements = list(
        Agreement.objects.visible_to(viewer)
        .filter(customer=customer)
        .select_related("signing_unit")
        .order_by("-start_date", "pk")
    )
    visible_units = ids_visible(Unit, viewer, {a.signing_unit_id for a in agreements if a.signing_unit_id})
    return [_agreement_body(a, visible_units) for a in agreements]


@router.post(
    "/{code}/agreements",
    response={201: AgreementOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Add an agreement",
    description=(
        "A supply or framework agreement: `number` unique per customer, `signing_level`, `start_date`, "
        "`end_date` (empty: open-ended), `signing_unit` by unit code. Audited. Bad input answers 400 "
        "with the `field`."
    ),
    operation_id="customers_agreements_create",
)
def agreements_create(request, code: str, payload: AgreementIn):
    viewer = request.auth
    customer = _customer(viewer, code)
    data = payload.dict(exclude_unset=True)
    if "signing_unit" in data:
        data["signing_unit"] = _unit(viewer, data["signing_unit"], "signing_unit")
    agreement = agreement_create(acting_user=viewer, customer=customer, **data)
    unit_ids = {agreement.signing_unit_id} if agreement.signing_unit_id else set()
    return Status(201, _agreement_body(agreement, unit_ids))


@router.patch(
    "/{code}/agreements/{int:agreement_id}",
    response={200: AgreementOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Edit an agreement",
    description="Changes only the fields sent (its status too, e.g. `ended`). Audited with before and after "
    "values. An agreement of another customer, or out of scope, answers 404.",
    operation_id="customers_agreements_update",
)
def agreements_update(request, code: str, agreement_id: int, payload: AgreementPatch):
    viewer = request.auth
    customer = _customer(viewer, code)
    agreement = get_visible_or_404(Agreement.objects.filter(customer=customer), viewer, pk=agreement_id)
    data = payload.dict(exclude_unset=True)
    if "signing_unit" in data:
        data["signing_unit"] = _unit(viewer, data["signing_unit"], "signing_unit")
    agreement = agreement_update(acting_user=viewer, agreement=agreement, **data)
    agreement = Agreement.objects.select_related("signing_unit").get(pk=agreement.pk)
    return _agreement_body(agreement, ids_visible(Unit, viewer, [agreement.signing_unit_id]))


@router.delete(
    "/{code}/agreements/{int:agreement_id}",
    response={204: None, 401: Error, 403: Error, 404: Error},
    summary="Remove an agreement",
    description="For an agreement entered by mistake (one that has ended is better set to `ended`): removes it "
    "and its attachment. Audited with what it held. Another customer's, or out of scope: 404.",
    operation_id="customers_agreements_delete",
)
def agreements_delete(request, code: str, agreement_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    agreement = get_visible_or_404(Agreement.objects.filter(customer=customer), viewer, pk=agreement_id)
    agreement_delete(acting_user=viewer, agreement=agreement)
    return Status(204, None)


@router.post(
    "/{code}/agreements/{int:agreement_id}/attachment",
    response={200: AgreementOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Attach a file to an agreement",
    description=(
        "Upload the signed agreement as `multipart/form-data` with `attachment`: PDF, OFD, Word, Excel or "
        "a JPEG/PNG/WebP image, checked by its content as well as its name, within the size limit. Replaces "
        "any earlier attachment (whose file is then deleted). Stored under a random name. Audited."
    ),
    operation_id="customers_agreements_attach",
)
def agreements_attach(
    request,
    code: str,
    agreement_id: int,
    attachment: Annotated[UploadedFile, File(description="The file: .pdf, .ofd, .doc(x), .xls(x), images.")],
):
    viewer = request.auth
    customer = _customer(viewer, code)
    agreement = get_visible_or_404(Agreement.objects.filter(customer=customer), viewer, pk=agreement_id)
    agreement = agreement_update(acting_user=viewer, agreement=agreement, attachment=attachment,
                                 attachment_name=attachment.name or "")  # fmt: skip
    agreement = Agreement.objects.select_related("signing_unit").get(pk=agreement.pk)
    return _agreement_body(agreement, ids_visible(Unit, viewer, [agreement.signing_unit_id]))


@router.delete(
    "/{code}/agreements/{int:agreement_id}/attachment",
    response={200: AgreementOut, 401: Error, 403: Error, 404: Error},
    summary="Remove an agreement's attachment",
    description="Deletes the attached file and answers the agreement (`has_attachment: false`). Audited. "
    "An agreement without an attachment is answered unchanged.",
    operation_id="customers_agreements_detach",
)
def agreements_detach(request, code: str, agreement_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    agreement = get_visible_or_404(Agreement.objects.filter(customer=customer), viewer, pk=agreement_id)
    agreement = agreement_update(acting_user=viewer, agreement=agreement, remove_attachment=True)
    agreement = Agreement.objects.select_related("signing_unit").get(pk=agreement.pk)
    return _agreement_body(agreement, ids_visible(Unit, viewer, [agreement.signing_unit_id]))


@router.get(
    "/{code}/agreements/{int:agreement_id}/attachment",
    response={401: Error, 404: Error},
    summary="Download an agreement's attachment",
    description=(
        "The attached file itself (`Content-Disposition: attachment`, named after the customer code and the "
        "agreement number), for anyone who may see the customer. No attachment, another customer's "
        "agreement, or out of scope: 404."
    ),
    operation_id="customers_agreements_attachment",
    openapi_extra=_binary("application/octet-stream", "The attached file."),
)
def agreements_attachment(request, code: str, agreement_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    agreement = get_visible_or_404(Agreement.objects.filter(customer=customer), viewer, pk=agreement_id)
    if not agreement.attachment:
        raise Http404("No attachment.")
    ext = os.path.splitext(agreement.attachment.name)[1].lower().lstrip(".")
    content_type = ATTACHMENT_TYPES.get(ext, ("application/octet-stream",))[0]
    safe_number = "".join(c if c.isalnum() or c in "-_" else "_" for c in agreement.number)
    return private_file_response(agreement.attachment, content_type=content_type, as_attachment=True,
                         filename=f"{customer.code}-{safe_number}.{ext}")  # fmt: skip


# ---------------------------------------------------------------- photos


@router.get(
    "/{code}/photos",
    response={200: list[PhotoOut], 401: Error, 404: Error},
    summary="List a customer's photos",
    description="Photos of the premises (门头, 场地), newest first; `url` fetches the image.",
    operation_id="customers_photos_list",
)
@paginate(KehuPagination)
def photos_list(request, code: str):
    viewer = request.auth
    customer = _customer(viewer, code)
    return [_photo_body(customer, p) for p in customer_photos(viewer=viewer, customer=customer)]


@router.post(
    "/{code}/photos",
    response={201: PhotoOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Add a photo",
    description=(
        "Upload a JPEG, PNG or WebP image as `multipart/form-data` with `image` (and an optional `caption`). "
        "The content is checked (a file that is not really such an image, or is too large, answers 400 "
        "with `field: image`) and stored under a random name. Audited."
    ),
    operation_id="customers_photos_create",
)
def photos_create(
    request,
    code: str,
    image: Annotated[UploadedFile, File(description="A JPEG, PNG or WebP image.")],
    caption: str = Form("", max_length=200, description="What it shows, e.g. 门头."),
):
    viewer = request.auth
    customer = _customer(viewer, code)
    photo = photo_add(acting_user=viewer, customer=customer, image=image, caption=caption)
    return Status(201, _photo_body(customer, photo))


@router.get(
    "/{code}/photos/{int:photo_id}/file",
    response={401: Error, 404: Error},
    summary="Fetch a photo",
    description="The image itself, for anyone who may see the customer; never cached by shared caches. "
    "Another customer's photo, or out of scope: 404.",
    operation_id="customers_photos_file",
    url_name="customers_photos_file",
    openapi_extra=_binary("image/*", "The image (JPEG, PNG or WebP)."),
)
def photos_file(request, code: str, photo_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    photo = get_visible_or_404(CustomerPhoto.objects.filter(customer=customer), viewer, pk=photo_id)
    ext = os.path.splitext(photo.image.name)[1].lower().lstrip(".")
    content_type = dict(PHOTO_FORMATS.values()).get(ext, "application/octet-stream")
    return private_file_response(photo.image, content_type=content_type, as_attachment=False,
                         filename=f"{customer.code}-{photo.pk}.{ext}")  # fmt: skip


@router.delete(
    "/{code}/photos/{int:photo_id}",
    response={204: None, 401: Error, 403: Error, 404: Error},
    summary="Remove a photo",
    description="Removes the photo and its file. Audited. Another customer's photo, or out of scope: 404.",
    operation_id="customers_photos_delete",
)
def photos_delete(request, code: str, photo_id: int):
    viewer = request.auth
    customer = _customer(viewer, code)
    photo = get_visible_or_404(CustomerPhoto.objects.filter(customer=customer), viewer, pk=photo_id)
    photo_delete(acting_user=viewer, photo=photo)
    return Status(204, None)


# ---------------------------------------------------------------- merging


@router.post(
    "/{code}/merge",
    response={200: CustomerOut, 400: FieldError, 401: Error, 403: Error, 404: Error, 409: FieldError},
    summary="Merge another record into this customer",
    description=(
        "Two records that are one customer: `{code}` is kept, `remove` (a customer code) is merged into it "
        "and deleted. Its contacts, agreements, phones, photos and branches move over, its profile fills "
        "this one's empty fields, its tags are added; its code is never handed out again. `reason` is "
        "required and audited. `remove` unknown or outside your scope: 400 (`field: remove`); a head office "
        "into its own branch, branches into a branch, the same record twice: 400; both records holding an "
        "agreement with the same number: **409** (`code: agreement_clash`). Branches of `remove` outside "
        "your scope: 403. Answers the kept customer."
    ),
    operation_id="customers_merge",
)
def customers_merge(request, code: str, payload: MergeIn):
    viewer = request.auth
    keep = _customer(viewer, code)
    require_any(viewer, Capability.MANAGE_CUSTOMERS)
    remove = visible_customer_by_code(viewer=viewer, code=payload.remove)
    if remove is None:
        raise ServiceError(
            _("No customer with the code %(c)s within your scope.") % {"c": payload.remove.strip()},
            field="remove",
        )
    try:
        customer_merge(acting_user=viewer, keep=keep, remove=remove, reason=payload.reason)
    except ServiceError as exc:
        if exc.code != "agreement_clash":
            raise
        return Status(409, {"detail": exc.message, "field": exc.field, "code": exc.code})
    return _customer_body(viewer, _customer(viewer, keep.code))


# ---------------------------------------------------------------- jobs


@jobs_router.get(
    "/{int:job_id}",
    response={200: JobOut, 401: Error, 404: Error},
    summary="Follow a background job",
    description=(
        "Status, progress and result of a job you started (an import, for instance). Someone else's job "
        "answers 404 exactly like a missing one."
    ),
    operation_id="jobs_get",
)
def jobs_get(request, job_id: int):
    return _job_body(get_visible_or_404(Job, request.auth, pk=job_id))
