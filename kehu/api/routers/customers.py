"""The customer archive: list and search, detail, create and edit, contacts, agreements, imports.

Every customer is fetched through ``get_visible_or_404`` (out of scope answers 404 like missing) and
every write goes through ``kehu.customers.services`` (which audits it). Phones and ID card numbers are
masked in every answer (``customer_personal_data``) except ``POST /customers/{code}/reveal``.

Answers about one customer are built here as plain dicts, never handed to a schema as model instances:
``Customer.id_number`` and ``Customer.phones`` hold the plaintext, and a schema reading them from the
model would send it out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

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
    JobOut,
    PersonalDataOut,
    RevealIn,
    SimilarNamesError,
)
from kehu.api.pagination import KehuPagination
from kehu.api.schemas import Error, FieldError
from kehu.core.errors import ServiceError, require_any
from kehu.core.scoping import get_visible_or_404, ids_visible
from kehu.core.tabular import SUPPORTED_SUFFIXES, check_size
from kehu.customers.duplicates import SimilarNamesFound
from kehu.customers.models import (
    Agreement,
    Contact,
    Customer,
    CustomerKind,
    CustomerStatus,
    CustomerSubType,
)
from kehu.customers.personal import customer_personal_data, personal_data_reveal
from kehu.customers.selectors import (
    COUNT_CAP,
    ORDERINGS,
    CustomerFilters,
    capped_count,
    customer_search,
    visible_customer_by_code,
)
from kehu.customers.services import (
    agreement_create,
    agreement_update,
    contact_create,
    contact_update,
    customer_create,
    customer_update,
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
