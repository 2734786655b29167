"""Sales imports, policy documents, simulation, the monthly close and its results, and manual overrides.

Every handler parses its input, calls one service or selector of ``kehu.metrics`` / ``kehu.policies`` and
answers. Results, runs and overrides are read through the scoped selectors: a customer, run or override
outside the caller's scope answers 404 exactly like a missing one. The services check the capabilities
(403) and the input (400, with the field at fault).
"""

from __future__ import annotations

from typing import Annotated

from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils.translation import gettext as _
from ninja import File, Form, Router, UploadedFile
from ninja.pagination import paginate
from ninja.responses import Status

from kehu.accounts.roles import Capability
from kehu.api.customer_schemas import JobOut
from kehu.api.pagination import KehuPagination
from kehu.api.policy_schemas import (
    ActivateIn,
    ActivationOut,
    CloseIn,
    CloseRunOut,
    NoteIn,
    OverrideIn,
    OverrideOut,
    PolicyInvalidError,
    PolicyListItem,
    PolicyLoaded,
    PolicyLoadIn,
    PolicyOut,
    PolicyTextIn,
    ResultOut,
    SimulateIn,
    SimulationOut,
    ValidationOut,
)
from kehu.api.routers.customers import _job_body, _typed
from kehu.api.schemas import Error, FieldError
from kehu.core.errors import ServiceError, require, require_any
from kehu.core.scoping import get_visible_or_404
from kehu.core.tabular import check_size
from kehu.customers.models import Customer
from kehu.jobs.services import job_submit
from kehu.metrics.jobs import DEFAULT_SOURCES
from kehu.org.models import Unit
from kehu.policies.jobs import close_submit
from kehu.policies.language import PolicyInvalid, policy_parse
from kehu.policies.models import CloseChange, CloseRun, Override, Policy
from kehu.policies.selectors import close_results, close_runs, customer_close_history, override_list
from kehu.policies.services import (
    override_decide,
    override_request,
    override_revoke,
    parse_month,
    policy_activate,
)
from kehu.policies.services import policy_load as policy_load_service
from kehu.policies.simulation import policy_simulate
from kehu.web.views.policies import output_value_q, parsed_policy, published_activations, published_policies

sales_router = Router(tags=["sales"])
policies_router = Router(tags=["policies"])
close_router = Router(tags=["close"])
customer_results_router = Router(tags=["close"])
overrides_router = Router(tags=["overrides"])

SALES_KINDS = {"transactions": "transactions", "monthly-facts": "monthly_facts"}
SALES_SUFFIXES = (".csv", ".xlsx", ".parquet")


def _person(user) -> dict | None:
    return {"username": user.username, "full_name": user.full_name} if user is not None else None


def _customer_ref(customer) -> dict:
    return {"code": customer.code, "name": customer.name}


# ---------------------------------------------------------------- sales import


@sales_router.post(
    "/import",
    response={202: JobOut, 400: FieldError, 401: Error, 403: Error},
    summary="Import sales transactions or monthly facts from a file",
    description=(
        "Upload a CSV (UTF-8 or GBK), XLSX or Parquet file as `multipart/form-data` with `file` and `kind`: "
        "`transactions` (`txn_id, customer_code, date, product, quantity, amount[, unit_code]`) or "
        "`monthly-facts` (`customer_code, month, product, quantity, amount[, txn_count]`); columns and units "
        "in docs/import-formats.md. `source` names the system the file comes from (default `default` for "
        "transactions, `monthly` for monthly facts). A background job acting as you checks every row and "
        "imports all or nothing; a transaction id is counted once per source, a monthly facts file replaces "
        "its months for its source. `dry_run=true` only reports. Answers **202** with the job; follow it at "
        "`GET /api/v1/jobs/{id}` (its `result` holds the counts and the row errors)."
    ),
    operation_id="sales_import",
)
def sales_import(
    request,
    file: Annotated[UploadedFile, File(description="The file: .csv, .xlsx or .parquet.")],
    kind: str = Form(..., max_length=16, description="`transactions` or `monthly-facts`."),
    source: str = Form("", max_length=32, description="The source system's name; empty: the kind's default."),
    dry_run: bool = Form(False, description="true: only check the file and report; change nothing."),
):
    viewer = request.auth
    require(viewer, Capability.IMPORT_SALES, _("Your roles do not allow importing sales."))
    if kind not in SALES_KINDS:
        raise ServiceError(
            _("Unknown import “%(v)s”: use transactions or monthly-facts.") % {"v": kind}, field="kind"
        )
    if not (file.name or "").lower().endswith(SALES_SUFFIXES):
        raise ServiceError(_("Upload a .csv, .xlsx or .parquet file."), field="file")
    check_size(file.size)  # before storing: a file over KEHU_MAX_UPLOAD_MB is refused
    job_kind = SALES_KINDS[kind]
    # A month of transactions is large: the upload is copied to storage in chunks, never read into memory;
    # the job runs once this commits, with its file in place.
    with transaction.atomic():
        job = job_submit(acting_user=viewer, kind=f"{job_kind}_import", filename=file.name,
                         params={"source": source.strip() or DEFAULT_SOURCES[job_kind], "dry_run": bool(dry_run)})  # fmt: skip
        job.input_file.save(f"{job.pk}-{job.kind}", file, save=True)
    job.refresh_from_db()  # without a broker the job has already run by now
    return Status(202, _job_body(job))


# ---------------------------------------------------------------- policies


def _applies_from(viewer) -> dict[int, list[str]]:
    starts: dict[int, list[str]] = {}
    for activation in published_activations(viewer).order_by("valid_from"):
        starts.setdefault(activation.policy_id, []).append(f"{activation.valid_from:%Y-%m}")
    return starts


def _policy_item(policy, starts: dict[int, list[str]]) -> dict:
    return {
        "name": policy.name, "version": policy.version, "title": policy.title, "comment": policy.comment,
        "created_by": _person(policy.created_by), "created_at": policy.created_at,
        "applies_from": starts.get(policy.pk, []),
    }  # fmt: skip


def _policy_body(viewer, policy) -> dict:
    parsed = parsed_policy(policy)
    outputs = [
        {"name": o.name, "label": o.label, "type": o.type, "export": o.export,
         "values": [{"value": v, "label": dict(o.labels).get(v, "")} for v in o.values]}
        for o in parsed.outputs
    ]  # fmt: skip
    thresholds = [{"path": path, "value": parsed.source[start:end]} for path, start, end in parsed.constants]
    return {**_policy_item(policy, _applies_from(viewer)), "document": policy.document,
            "products": list(parsed.products), "outputs": outputs, "thresholds": thresholds}  # fmt: skip


def _problems(exc: PolicyInvalid) -> list[dict]:
    return [{"line": p.line, "column": p.column, "path": p.path, "message": p.message} for p in exc.problems]


def _invalid(exc: PolicyInvalid):
    body = {"detail": exc.message, "field": exc.field, "code": exc.code, "problems": _problems(exc)}
    return Status(400, body)


@policies_router.get(
    "",
    response={200: list[PolicyListItem], 401: Error},
    summary="List the policy versions",
    description="Every version of every policy, newest first within a name, with the months each applies from.",
    operation_id="policies_list",
)
@paginate(KehuPagination)
def policies_list(request):
    starts = _applies_from(request.auth)
    return [_policy_item(p, starts) for p in published_policies(request.auth)]


@policies_router.post(
    "/validate",
    response={200: ValidationOut, 401: Error},
    summary="Validate a policy document",
    description=(
        "Checks a YAML document without storing anything. Always 200: `valid` says whether it can be loaded, "
        "`problems` lists every problem with its line and path."
    ),
    operation_id="policies_validate",
)
def policies_validate(request, payload: PolicyTextIn):
    try:
        parsed = policy_parse(payload.text)
    except PolicyInvalid as exc:
        return {"valid": False, "problems": _problems(exc)}
    return {"valid": True, "name": parsed.name, "outputs": [o.name for o in parsed.outputs], "problems": []}


@policies_router.post(
    "/simulate",
    response={200: SimulationOut, 400: PolicyInvalidError | FieldError, 401: Error, 403: Error},
    summary="Simulate a draft policy on a month",
    description=(
        "Evaluates `draft` (a document) — or the policy in force with `edits` (threshold path → new value, "
        "paths as `GET /policies/{name}/{version}` lists them) — for `month` over the customers in your scope, "
        "and compares it with the policy in force. Writes nothing (one audit row). Answers the distribution "
        "per output value now and under the draft, the moves between values, how many customers would change "
        "and the first `changed_limit` of them. A draft with problems answers 400 with `problems`."
    ),
    operation_id="policies_simulate",
)
def policies_simulate(request, payload: SimulateIn):
    viewer = request.auth
    if (payload.draft is None) == (payload.edits is None):
        raise ServiceError(_("Send either a draft or edits to the policy in force."), field="draft")
    try:
        simulation = policy_simulate(acting_user=viewer, month=parse_month(payload.month), draft_text=payload.draft,
                                     edits=payload.edits)  # fmt: skip
    except PolicyInvalid as exc:
        return _invalid(exc)
    head = simulation.changed.head(payload.changed_limit)
    customers = {
        c.pk: c for c in Customer.objects.visible_to(viewer).filter(pk__in=head["customer_id"].to_list())
    }
    changed = []
    for row in head.iter_rows(named=True):
        customer = customers.get(row["customer_id"])
        if customer is None:
            continue
        changed.append({
            "customer": _customer_ref(customer),
            "now": {o: row[f"{o}_now"] or "" for o in simulation.outputs},
            "draft": {o: row[f"{o}_draft"] or "" for o in simulation.outputs},
            "explanation": row["explanation_draft"] or "",
        })  # fmt: skip
    return {**simulation.as_dict(), "changed": changed}


@policies_router.post(
    "",
    response={201: PolicyLoaded, 200: PolicyLoaded, 400: PolicyInvalidError, 401: Error, 403: Error},
    summary="Load a policy document as its next version",
    description=(
        "Validates the document and stores it as the next version of the policy it names (201). The same "
        "text as the latest version changes nothing (200, `created: false`). A document with problems stores "
        "nothing and answers 400 with every problem and its line. Activate the version to use it."
    ),
    operation_id="policies_load",
)
def policies_load(request, payload: PolicyLoadIn):
    try:
        policy, created = policy_load_service(acting_user=request.auth, text=payload.text,
                                              comment=payload.comment.strip())  # fmt: skip
    except PolicyInvalid as exc:
        return _invalid(exc)
    return Status(201 if created else 200, {**_policy_body(request.auth, policy), "created": created})


def _published(viewer, name: str, version: int):
    policy = published_policies(viewer).filter(name=name, version=version).first()
    if policy is None:
        raise Http404("No such policy.")
    return policy


@policies_router.get(
    "/{name}/{int:version}",
    response={200: PolicyOut, 401: Error, 404: Error},
    summary="One policy version: its document and outputs",
    description="The YAML document, the products it reads, its outputs with their values' labels, and every "
    "threshold with the path `simulate` edits it by.",
    operation_id="policies_get",
)
def policies_get(request, name: str, version: int):
    return _policy_body(request.auth, _published(request.auth, name, version))


@policies_router.post(
    "/{name}/{int:version}/activate",
    response={200: ActivationOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Activate a version from a month on",
    description="Closes of `valid_from` and later months use this version, until a later activation.",
    operation_id="policies_activate",
)
def policies_activate(request, name: str, version: int, payload: ActivateIn):
    policy = _published(request.auth, name, version)
    month = parse_month(payload.valid_from, field="valid_from")
    activation = policy_activate(acting_user=request.auth, name=policy.name, version=policy.version, valid_from=month,
                                 comment=payload.comment.strip())  # fmt: skip
    return {"name": policy.name, "version": policy.version, "valid_from": f"{activation.valid_from:%Y-%m}",
            "comment": activation.comment}  # fmt: skip


# ---------------------------------------------------------------- the close


def _run_body(run: CloseRun) -> dict:
    seconds = round((run.finished_at - run.started_at).total_seconds(), 2) if run.finished_at else None
    return {
        "id": run.pk, "month": f"{run.month:%Y-%m}", "policy": str(run.policy),
        "unit": {"code": run.unit.code, "name": run.unit.name} if run.unit else None, "status": run.status,
        "started_by": _person(run.started_by), "started_at": run.started_at, "finished_at": run.finished_at,
        "seconds": seconds, "customers": run.customers, "changes": run.changes, "summary": run.summary or {},
        "error": run.error, "job_id": run.job_id,
    }  # fmt: skip


def _may_see_closes(viewer) -> None:
    require_any(viewer, Capability.RUN_CLOSE, Capability.MANAGE_POLICIES)


@close_router.post(
    "",
    response={202: JobOut, 400: FieldError, 401: Error, 403: Error},
    summary="Start the monthly close",
    description=(
        "Queues a close of `month` for the customers in your scope (or in `unit_code`'s subtree): every "
        "customer gets the month's outputs of the policy in force. Answers **202** with the job; follow it at "
        "`GET /api/v1/jobs/{id}` — its `result.run` is the run's id (`GET /close/runs/{id}`). Two closes of one "
        "month never run at once; closing a month again gives the same results."
    ),
    operation_id="close_start",
)
def close_start(request, payload: CloseIn):
    viewer = request.auth
    month = parse_month(payload.month)
    unit = None
    if payload.unit_code.strip():
        unit = Unit.objects.visible_to(viewer).filter(code=payload.unit_code.strip()).first()
        if unit is None:
            raise ServiceError(_("No unit with the code “%(c)s” within your scope.") % {"c": payload.unit_code},
                               field="unit_code")  # fmt: skip
    job = close_submit(acting_user=viewer, month=month, unit=unit)
    job.refresh_from_db()
    return Status(202, _job_body(job))


@close_router.get(
    "/runs",
    response={200: list[CloseRunOut], 401: Error, 403: Error},
    summary="List the closes",
    description="Closes you can see (of your unit's subtree, or started by you), newest first. Needs the right "
    "to run the close or to manage policies.",
    operation_id="close_runs_list",
)
@paginate(KehuPagination)
def close_runs_list(request):
    _may_see_closes(request.auth)
    return _Mapped(close_runs(viewer=request.auth), _run_body)


@close_router.get(
    "/runs/{int:run_id}",
    response={200: CloseRunOut, 401: Error, 403: Error, 404: Error},
    summary="One close: status, counts and summary",
    description="A close outside your scope answers 404 like a missing one.",
    operation_id="close_runs_get",
)
def close_runs_get(request, run_id: int):
    _may_see_closes(request.auth)
    return _run_body(get_visible_or_404(close_runs(viewer=request.auth), request.auth, pk=run_id))


def _result_body(result) -> dict:
    return {"customer": _customer_ref(result.customer), "month": f"{result.month:%Y-%m}", "outputs": result.outputs,
            "responsible_level": result.responsible_level, "explanation": result.explanation,
            "policy": str(result.policy)}  # fmt: skip


@close_router.get(
    "/{month}/results",
    response={200: list[ResultOut], 400: FieldError, 401: Error},
    summary="A month's results",
    description=(
        "One row per customer in your scope for a closed `month` (YYYY-MM), by customer code: every exported "
        "output, the responsible level, the explanation. Filters: `output` + `value` (e.g. `size` `large`; "
        "`value` empty: not applicable; yes/no outputs take `true`/`false`), `change` (`upgrade`, `downgrade`, "
        "`new`, `lost`, `changed` or `any`: changed against the month before), `q` (start of the code or name)."
    ),
    operation_id="close_results_list",
)
@paginate(KehuPagination)
@_typed
def close_results_list(request, month: str, output: str = "", value: str = "", change: str = "", q: str = ""):
    viewer = request.auth
    month_day = parse_month(month)
    queryset = close_results(viewer=viewer, month=month_day)
    if output:
        policy_id = queryset.order_by("-run_id").values_list("policy_id", flat=True).first()
        if policy_id is not None:
            queryset = queryset.filter(
                output_value_q(parsed_policy(Policy.objects.get(pk=policy_id)), output, value)
            )
    if change:
        changed = CloseChange.objects.filter(month=month_day)
        if change != "any":
            changed = changed.filter(kind=change)
        queryset = queryset.filter(customer__in=changed.values("customer_id"))
    if q.strip():
        queryset = queryset.filter(
            Q(customer__code__startswith=q.strip()) | Q(customer__name__startswith=q.strip())
        )
    return _Mapped(queryset, _result_body)


class _Mapped:
    """A queryset that pagination slices and counts, each row answered through ``body``: only the page's
    rows are read and shaped."""

    def __init__(self, queryset, body):
        self.queryset, self.body = queryset, body

    def __getitem__(self, item):
        return [self.body(row) for row in self.queryset[item]]

    def __len__(self):
        return self.queryset.count()


@customer_results_router.get(
    "/{code}/results",
    response={200: list[ResultOut], 401: Error, 404: Error},
    summary="A customer's results, month by month",
    description="Every closed month's outputs of one customer with the explanation and the policy version, "
    "newest first. A customer outside your scope answers 404 like a missing one.",
    operation_id="customers_results",
)
@paginate(KehuPagination)
def customers_results(request, code: str):
    customer = get_visible_or_404(Customer, request.auth, code=code)
    return _Mapped(
        customer_close_history(viewer=request.auth, customer=customer).select_related("customer"),
        _result_body,
    )


# ---------------------------------------------------------------- overrides


def _override_body(o: Override) -> dict:
    return {
        "id": o.pk, "customer": _customer_ref(o.customer), "output": o.output, "value": o.value, "reason": o.reason,
        "status": o.status, "requested_by": _person(o.requested_by), "requested_at": o.requested_at,
        "decided_by": _person(o.decided_by), "decided_at": o.decided_at, "decision_note": o.decision_note,
        "revoked_by": _person(o.revoked_by), "revoked_at": o.revoked_at,
    }  # fmt: skip


@overrides_router.get(
    "",
    response={200: list[OverrideOut], 401: Error},
    summary="List overrides",
    description="Overrides of the customers in your scope, newest first; `status` filters "
    "(`pending`, `approved`, `refused`, `revoked`).",
    operation_id="overrides_list",
)
@paginate(KehuPagination)
def overrides_list(request, status: str = ""):
    queryset = override_list(viewer=request.auth).select_related("revoked_by")
    if status:
        queryset = queryset.filter(status=status)
    return _Mapped(queryset, _override_body)


@overrides_router.post(
    "",
    response={201: OverrideOut, 400: FieldError, 401: Error, 403: Error},
    summary="Request an override",
    description=(
        "Asks for `output` of a customer to be `value` from the next close on, for `reason`. Someone else at "
        "the approving level decides (`/approve` or `/refuse`). An output already overridden or awaiting a "
        "decision answers 400."
    ),
    operation_id="overrides_request",
)
def overrides_request(request, payload: OverrideIn):
    viewer = request.auth
    require(viewer, Capability.REQUEST_OVERRIDE, _("You may not request overrides."))
    customer = Customer.objects.visible_to(viewer).filter(code=payload.customer_code.strip()).first()
    if customer is None:
        raise ServiceError(_("No customer with the code %(c)s within your scope.") % {"c": payload.customer_code},
                           field="customer_code")  # fmt: skip
    override = override_request(acting_user=viewer, customer=customer, output=payload.output, value=payload.value,
                                reason=payload.reason)  # fmt: skip
    return Status(
        201, _override_body(Override.objects.select_related("customer", "requested_by").get(pk=override.pk))
    )


def _override(viewer, override_id: int) -> Override:
    return get_visible_or_404(Override.objects.select_related("customer"), viewer, pk=override_id)


def _decided(override: Override) -> dict:
    return _override_body(
        Override.objects.select_related("customer", "requested_by", "decided_by", "revoked_by").get(
            pk=override.pk
        )
    )


@overrides_router.post(
    "/{int:override_id}/approve",
    response={200: OverrideOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Approve an override",
    description="By someone other than the requester, at the required unit level or above; it applies from the "
    "next close and stays until revoked.",
    operation_id="overrides_approve",
)
def overrides_approve(request, override_id: int, payload: NoteIn):
    override = _override(request.auth, override_id)
    return _decided(
        override_decide(acting_user=request.auth, override=override, approve=True, note=payload.note)
    )


@overrides_router.post(
    "/{int:override_id}/refuse",
    response={200: OverrideOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Refuse an override",
    description="By someone other than the requester who may approve overrides.",
    operation_id="overrides_refuse",
)
def overrides_refuse(request, override_id: int, payload: NoteIn):
    override = _override(request.auth, override_id)
    return _decided(
        override_decide(acting_user=request.auth, override=override, approve=False, note=payload.note)
    )


@overrides_router.post(
    "/{int:override_id}/revoke",
    response={200: OverrideOut, 400: FieldError, 401: Error, 403: Error, 404: Error},
    summary="Revoke an override",
    description="Ends a pending or approved override (by an approver or its requester): the next close follows "
    "the rules again.",
    operation_id="overrides_revoke",
)
def overrides_revoke(request, override_id: int, payload: NoteIn):
    override = _override(request.auth, override_id)
    return _decided(override_revoke(acting_user=request.auth, override=override, reason=payload.note))
