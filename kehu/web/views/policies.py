"""Classification pages: the policy documents (list, show, load, activate), the monthly close (start it, its
runs, a month's results with filters and export, the month's changes), simulation of a draft, and manual
overrides (request from the customer page, approve / refuse / revoke here).

Views parse input, call one service or selector of ``kehu.policies`` and render. Reads go through the
scoped selectors: a customer, result or override outside the viewer's scope is absent (404 when
addressed). The services check the capabilities again and say what is wrong; their errors are shown
next to the field they name or as a message.
"""

from __future__ import annotations

import functools
import tempfile
from datetime import date

import polars as pl
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.roles import Capability
from kehu.accounts.selectors import unit_choices
from kehu.audit.services import audit_record
from kehu.core.errors import NotAllowed, ServiceError, require
from kehu.core.frames import frame_from_queryset
from kehu.core.scoping import get_visible_or_404
from kehu.customers.models import Customer
from kehu.customers.selectors import COUNT_CAP
from kehu.org.models import Unit
from kehu.policies.exports import XLSX_MAX_ROWS, close_results_export, close_results_frame
from kehu.policies.exports import _cells as results_cells
from kehu.policies.jobs import close_submit
from kehu.policies.language import PolicyInvalid, policy_parse
from kehu.policies.models import (
    ChangeKind,
    CloseChange,
    CloseResult,
    CloseStatus,
    Override,
    OverrideStatus,
    Policy,
    PolicyActivation,
)
from kehu.policies.selectors import (
    close_changes,
    close_results,
    close_runs,
    override_list,
    policy_in_force,
)
from kehu.policies.services import (
    override_decide,
    override_request,
    override_revoke,
    parse_month,
    policy_activate,
)
from kehu.policies.services import policy_load as policy_load_service
from kehu.policies.simulation import policy_simulate
from kehu.web.forms import add_service_error
from kehu.web.views.common import capability_required

PAGE_SIZE = 50
MAX_DOCUMENT_BYTES = 512 * 1024  # a policy is a page or two of YAML; anything this large is not one
LEVEL_LABELS = {
    "province": gettext_lazy("province"),
    "city": gettext_lazy("city"),
    "county": gettext_lazy("county"),
    "station": gettext_lazy("station"),
}
CHANGE_KINDS = [(k.value, k.label) for k in ChangeKind]
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


# ---------------------------------------------------------------- presentation helpers


@functools.lru_cache(maxsize=64)
def _parse_cached(sha256: str, document: str):
    return policy_parse(document)


def parsed_policy(policy: Policy):
    """The parsed document of a stored version (versions never change: cached by their digest)."""
    return _parse_cached(policy.sha256, policy.document)


def value_text(output, value) -> str:
    """An output's value as a person reads it: the policy's label for a choice, yes/no, or the number."""
    if value is None or value == "":
        return "—"
    if output is not None and output.type == "boolean":
        return _("yes") if value in (True, "true") else _("no")
    if output is not None and output.type == "choice":
        return dict(output.labels).get(str(value), str(value))
    return str(value)


def level_text(level: str) -> str:
    return str(LEVEL_LABELS.get(level, level)) if level else "—"


def output_cells(parsed, outputs: dict) -> list[dict]:
    """One cell per exported output of ``parsed``: its name, label, raw value and text."""
    cells = []
    for output in parsed.outputs:
        if not output.export:
            continue
        raw = outputs.get(output.name)
        cells.append({"name": output.name, "label": output.label or output.name,
                      "value": "" if raw is None else str(raw).lower() if isinstance(raw, bool) else str(raw),
                      "text": value_text(output, raw)})  # fmt: skip
    return cells


def value_choices(parsed) -> list[tuple[str, str]]:
    """``output=value`` pairs of the exported choice and yes/no outputs, for a filter select."""
    choices = []
    for output in parsed.outputs:
        if not output.export:
            continue
        if output.type == "choice":
            for value in output.values:
                choices.append(
                    (f"{output.name}={value}", f"{output.label or output.name}: {value_text(output, value)}")
                )
        elif output.type == "boolean":
            for value in ("true", "false"):
                choices.append(
                    (f"{output.name}={value}", f"{output.label or output.name}: {value_text(output, value)}")
                )
    return choices


def _json_value(output, text: str):
    """The stored JSON value an ``output=text`` filter matches."""
    if output.type == "boolean":
        return text == "true"
    if output.type in ("points", "integer"):
        try:
            return int(text)
        except ValueError:
            raise ServiceError(_("“%(v)s” is not a whole number.") % {"v": text}, field="value") from None
    return text


def output_value_q(parsed, output_name: str, value: str) -> Q:
    """Results whose ``output_name`` is ``value`` (a ServiceError names an unknown output)."""
    output = next((o for o in parsed.outputs if o.name == output_name and o.export), None)
    if output is None:
        raise ServiceError(
            _("The policy has no output “%(o)s”; it has %(all)s.")
            % {"o": output_name, "all": ", ".join(parsed.exported_outputs())},
            field="output",
        )
    if value == "":
        return Q(**{f"outputs__{output.name}__isnull": True}) | Q(**{f"outputs__{output.name}": None})
    return Q(**{f"outputs__{output.name}": _json_value(output, value)})


def published_policies(viewer):
    """Every policy version, for a signed-in viewer: the rules are published to everyone (models.EVERYONE).

    ``Policy.objects.visible_to`` cannot be used for this yet: EVERYONE's ``Q()`` is dropped when scope_q
    ORs it onto its NOTHING (Django keeps the non-empty side of ``Q(pk__in=[]) | Q()``), so it answers no
    row at all. Reported to the lead; the same rule is applied here explicitly meanwhile.
    """
    if viewer is None or not viewer.is_authenticated or not viewer.is_active:
        return Policy.objects.none()
    return Policy.objects.select_related("created_by").order_by("name", "-version")


def published_activations(viewer):
    if viewer is None or not viewer.is_authenticated or not viewer.is_active:
        return PolicyActivation.objects.none()
    return PolicyActivation.objects.select_related("policy", "activated_by")


def capped_count(queryset, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many rows, counting no further than ``cap``: (count, more_than_cap)."""
    n = queryset.order_by().values("pk")[: cap + 1].count()
    return min(n, cap), n > cap


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page") or 1))
    except ValueError:
        return 1


def _months_closed(viewer) -> list[date]:
    """The months with a finished close the viewer can see, newest first."""
    months = close_runs(viewer=viewer).filter(status=CloseStatus.SUCCEEDED).values_list("month", flat=True)
    return sorted(set(months), reverse=True)


def may_see_closes(user) -> bool:
    return user.can(Capability.RUN_CLOSE) or user.can(Capability.MANAGE_POLICIES)


# ---------------------------------------------------------------- policies


@require_GET
@login_required
def policy_list_view(request):
    """Every version with its author, date, comment and the months it applies from."""
    starts: dict[int, list[date]] = {}
    for activation in published_activations(request.user).order_by("valid_from"):
        starts.setdefault(activation.policy_id, []).append(activation.valid_from)
    policies = list(published_policies(request.user))
    for policy in policies:
        policy.applies_from = starts.get(policy.pk, [])
    in_force = policy_in_force(month=timezone.localdate().replace(day=1))
    return render(request, "web/policies/list.html", {
        "policies": policies, "in_force": in_force, "can_manage": request.user.can(Capability.MANAGE_POLICIES),
    })  # fmt: skip


class ActivateForm(forms.Form):
    valid_from = forms.CharField(label=gettext_lazy("From the month (YYYY-MM)"), max_length=7,
                                 widget=forms.TextInput(attrs={"placeholder": "2026-10", "inputmode": "numeric"}))  # fmt: skip
    comment = forms.CharField(label=gettext_lazy("Comment"), required=False, max_length=500)


def _policy(request, name: str, version: int) -> Policy:
    policy = published_policies(request.user).filter(name=name, version=version).first()
    if policy is None:
        raise Http404("No such policy.")
    return policy


def _policy_detail(request, policy: Policy, form: ActivateForm | None = None, status: int = 200):
    parsed = parsed_policy(policy)
    outputs = [
        {"name": o.name, "label": o.label, "type": o.type, "export": o.export,
         "values": [(v, dict(o.labels).get(v, "")) for v in o.values]}
        for o in parsed.outputs
    ]  # fmt: skip
    activations = published_activations(request.user).filter(policy=policy).order_by("valid_from")
    lines = policy.document.splitlines()
    return render(request, "web/policies/detail.html", {
        "policy": policy, "parsed": parsed, "outputs": outputs, "activations": activations,
        "lines": [(n, text) for n, text in enumerate(lines, start=1)],
        "responsibility": parsed.responsibility,
        "can_manage": request.user.can(Capability.MANAGE_POLICIES),
        "form": form or ActivateForm(initial={"valid_from": f"{timezone.localdate():%Y-%m}"}),
    }, status=status)  # fmt: skip


@require_GET
@login_required
def policy_detail_view(request, name: str, version: int):
    return _policy_detail(request, _policy(request, name, version))


@require_POST
@capability_required(Capability.MANAGE_POLICIES)
def policy_activate_view(request, name: str, version: int):
    policy = _policy(request, name, version)
    form = ActivateForm(request.POST)
    if form.is_valid():
        try:
            month = parse_month(form.cleaned_data["valid_from"], field="valid_from")
            policy_activate(acting_user=request.user, name=policy.name, version=policy.version, valid_from=month,
                            comment=form.cleaned_data["comment"].strip())  # fmt: skip
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ServiceError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, _("%(p)s applies from %(m)s.") % {"p": policy, "m": f"{month:%Y-%m}"})
            return redirect("policy_detail", name=policy.name, version=policy.version)
    return _policy_detail(request, policy, form, status=400)


class PolicyLoadForm(forms.Form):
    text = forms.CharField(label=gettext_lazy("Document (YAML)"), required=False, strip=False,
                           widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "mono",
                                                        "style": "width:100%; font-family: monospace"}))  # fmt: skip
    file = forms.FileField(label=gettext_lazy("…or a file"), required=False,
                           help_text=gettext_lazy("A .yaml file, UTF-8; used instead of the text above."))  # fmt: skip
    comment = forms.CharField(
        label=gettext_lazy("Comment (what changed and why)"), required=False, max_length=500
    )

    def document(self) -> str:
        upload = self.cleaned_data.get("file")
        if upload:
            if upload.size > MAX_DOCUMENT_BYTES:
                raise ServiceError(_("This file is too large to be a policy document."), field="file")
            try:
                return upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ServiceError(_("The file is not UTF-8 text."), field="file") from None
        text = self.cleaned_data.get("text") or ""
        if not text.strip():
            raise ServiceError(_("Paste the document or choose a file."), field="text")
        return text


def problem_rows(exc: PolicyInvalid) -> list[dict]:
    return [{"line": p.line, "column": p.column, "path": p.path, "message": p.message} for p in exc.problems]


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_POLICIES)
def policy_load_view(request):
    """Paste or upload a document; "check" validates it, "load" stores it as the next version. Every
    problem is listed with its line before anything is stored."""
    initial = {}
    base = request.GET.get("from")
    if base and "@" in base:  # start from a stored version: ?from=name@version
        name, _sep, version = base.partition("@")
        found = published_policies(request.user).filter(
            name=name, version=version if version.isdigit() else 0
        )
        if found.exists():
            initial["text"] = found.first().document
    form = PolicyLoadForm(request.POST or None, request.FILES or None, initial=initial)
    problems, checked = [], None
    if request.method == "POST" and form.is_valid():
        try:
            text = form.document()
            if request.POST.get("action") == "check":
                checked = policy_parse(text)
            else:
                policy, created = policy_load_service(acting_user=request.user, text=text,
                                                      comment=form.cleaned_data["comment"].strip())  # fmt: skip
                if created:
                    messages.success(request, _("Loaded %(p)s. Activate it from a month to use it in the close.")
                                     % {"p": policy})  # fmt: skip
                else:
                    messages.info(
                        request, _("%(p)s already holds this document; nothing changed.") % {"p": policy}
                    )
                return redirect("policy_detail", name=policy.name, version=policy.version)
        except PolicyInvalid as exc:
            problems = problem_rows(exc)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ServiceError as exc:
            add_service_error(form, exc)
    status = 400 if problems or form.errors else 200
    return render(request, "web/policies/load.html", {"form": form, "problems": problems, "checked": checked},
                  status=status)  # fmt: skip


# ---------------------------------------------------------------- the monthly close


class CloseForm(forms.Form):
    month = forms.CharField(label=gettext_lazy("Month (YYYY-MM)"), max_length=7,
                            widget=forms.TextInput(attrs={"placeholder": "2026-10", "inputmode": "numeric"}))  # fmt: skip
    unit = forms.CharField(label=gettext_lazy("Only the customers of this unit (code, optional)"), required=False,
                           max_length=64, widget=forms.TextInput(attrs={"list": "close-units"}))  # fmt: skip


@require_http_methods(["GET", "POST"])
@login_required
def close_home_view(request):
    """Start a close (→ its job page) and the list of closes the viewer can see."""
    user = request.user
    if not may_see_closes(user):
        raise PermissionDenied(_("Your roles do not allow this page."))
    previous = timezone.localdate().replace(day=1)
    previous = (previous.replace(year=previous.year - 1, month=12) if previous.month == 1
                else previous.replace(month=previous.month - 1))  # fmt: skip
    form = CloseForm(request.POST or None, initial={"month": f"{previous:%Y-%m}"})
    if request.method == "POST":
        if not user.can(Capability.RUN_CLOSE):
            raise PermissionDenied(_("You may not run the monthly close."))
        if form.is_valid():
            try:
                month = parse_month(form.cleaned_data["month"])
                unit = None
                code = form.cleaned_data["unit"].strip()
                if code:
                    unit = Unit.objects.visible_to(user).filter(code=code).first()
                    if unit is None:
                        raise ServiceError(_("No unit with the code “%(c)s” within your scope.") % {"c": code},
                                           field="unit")  # fmt: skip
                job = close_submit(acting_user=user, month=month, unit=unit)
            except NotAllowed as exc:
                raise PermissionDenied(exc.message) from None
            except ServiceError as exc:
                add_service_error(form, exc)
            else:
                return redirect("job_detail", pk=job.pk)
    runs = close_runs(viewer=user).select_related("job")
    page = _page_number(request)
    rows = list(runs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE + 1])
    for run in rows:
        run.seconds = (
            round((run.finished_at - run.started_at).total_seconds(), 1) if run.finished_at else None
        )
    return render(request, "web/policies/close.html", {
        "form": form, "runs": rows[:PAGE_SIZE], "page": page, "has_next": len(rows) > PAGE_SIZE,
        "units": unit_choices(viewer=user), "can_run": user.can(Capability.RUN_CLOSE),
        "months": _months_closed(user),
    }, status=400 if form.errors else 200)  # fmt: skip


class ResultsFilterForm(forms.Form):
    value = forms.ChoiceField(label=gettext_lazy("Output"), required=False)
    change = forms.ChoiceField(label=gettext_lazy("Changed against the month before"), required=False,
                               choices=[("", gettext_lazy("all customers")), ("any", gettext_lazy("any change")),
                                        *CHANGE_KINDS])  # fmt: skip
    q = forms.CharField(
        label=gettext_lazy("Customer code or name starts with"), required=False, max_length=100
    )

    def __init__(self, *args, parsed, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["value"].choices = [("", _("any value")), *value_choices(parsed)]


def results_q(parsed, month: date, *, value: str = "", change: str = "", q: str = "") -> Q:
    """The results table's filters as a condition on CloseResult: ``value`` is ``output=value``, ``change``
    a change kind (or "any"), ``q`` the start of the customer's code or name."""
    condition = Q()
    if value:
        output_name, _sep, wanted = value.partition("=")
        condition &= output_value_q(parsed, output_name, wanted)
    if change:
        changed = CloseChange.objects.filter(month=month)
        if change != "any":
            changed = changed.filter(kind=change)
        condition &= Q(customer__in=changed.values("customer_id"))
    if q:
        condition &= Q(customer__code__startswith=q) | Q(customer__name__startswith=q)
    return condition


def _results_policy(viewer, month: date) -> Policy | None:
    """The version that made the month's results the viewer sees (the latest run's)."""
    policy_id = (
        close_results(viewer=viewer, month=month)
        .order_by("-run_id")
        .values_list("policy_id", flat=True)
        .first()
    )
    if policy_id is None:
        run = close_runs(viewer=viewer).filter(month=month, status=CloseStatus.SUCCEEDED).first()
        return run.policy if run else None
    return Policy.objects.get(pk=policy_id)


def _month_arg(month: str) -> date:
    try:
        return parse_month(month)
    except ServiceError:
        raise Http404("No such month.") from None


@require_GET
@login_required
def close_results_view(request, month: str):
    """A month's results the viewer may see: filters, pages, and the filtered table as CSV or XLSX."""
    user = request.user
    month_day = _month_arg(month)
    policy = _results_policy(user, month_day)
    context = {"month": month_day, "month_text": month, "months": _months_closed(user), "policy": policy,
               "can_export": user.can(Capability.RUN_CLOSE)}  # fmt: skip
    if policy is None:
        return render(request, "web/policies/results.html", {**context, "rows": [], "form": None})
    parsed = parsed_policy(policy)
    form = ResultsFilterForm(request.GET or None, parsed=parsed)
    filters = form.cleaned_data if form.is_valid() else {}
    queryset = close_results(viewer=user, month=month_day)
    try:
        queryset = queryset.filter(results_q(parsed, month_day, value=filters.get("value", ""),
                                             change=filters.get("change", ""), q=(filters.get("q") or "").strip()))  # fmt: skip
    except ServiceError as exc:
        return HttpResponseBadRequest(exc.message)
    page = _page_number(request)
    results = list(queryset[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])
    total, capped = capped_count(queryset)
    rows = [
        {"customer": r.customer, "cells": output_cells(parsed, r.outputs), "level": level_text(r.responsible_level),
         "explanation": r.explanation}
        for r in results
    ]  # fmt: skip
    query = request.GET.copy()
    query.pop("page", None)
    headers = [o.label or o.name for o in parsed.outputs if o.export]
    return render(request, "web/policies/results.html", {
        **context, "form": form, "rows": rows, "headers": headers, "total": total, "capped": capped,
        "page": page, "has_next": page * PAGE_SIZE < total or capped, "query": query.urlencode(),
    })  # fmt: skip


@require_GET
@capability_required(Capability.RUN_CLOSE)
def close_export_view(request, month: str):
    """The month's results (filtered like the table) as CSV or XLSX: ``customer_code``, the exported
    outputs named as in the policy, ``explanation``."""
    user = request.user
    month_day = _month_arg(month)
    fmt = request.GET.get("format", "csv")
    if fmt not in CONTENT_TYPES:
        return HttpResponseBadRequest(_("Export as csv or xlsx, not “%(f)s”.") % {"f": fmt})
    policy = _results_policy(user, month_day)
    if policy is None:
        raise Http404("Not closed.")
    parsed = parsed_policy(policy)
    form = ResultsFilterForm(request.GET, parsed=parsed)
    if not form.is_valid():
        return HttpResponseBadRequest(_("The filter is not valid."))
    filters = {k: (v or "").strip() for k, v in form.cleaned_data.items()}
    try:
        handle = _export(user, month_day, fmt, parsed, filters)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ServiceError as exc:
        return HttpResponseBadRequest(exc.message)
    response = FileResponse(handle, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="close-results-{month_day:%Y-%m}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def _export(user, month: date, fmt: str, parsed, filters: dict):
    handle = tempfile.TemporaryFile()
    if not any(filters.values()):
        close_results_export(acting_user=user, fmt=fmt, out=handle, month=month)
        handle.seek(0)
        return handle
    # A filtered table: the service gives the frame of the customers matching the filters; written here.
    require(user, Capability.RUN_CLOSE, _("You may not export close results."))
    matching = CloseResult.objects.filter(month=month).filter(results_q(parsed, month, **filters))
    frame, outputs = close_results_frame(acting_user=user, month=month,
                                         extra=Q(pk__in=matching.values("customer_id")))  # fmt: skip
    table = results_cells(frame, outputs)
    if fmt == "xlsx" and table.height > XLSX_MAX_ROWS:
        raise ServiceError(
            _("More than %(n)s rows do not fit in one XLSX sheet; export CSV.") % {"n": XLSX_MAX_ROWS}
        )
    if fmt == "csv":
        handle.write(table.write_csv().encode("utf-8"))
    else:
        table.write_excel(handle, worksheet=f"{month:%Y-%m}", autofit=False)
    audit_record(actor=user, action="close.export", object_type="close_results", object_id=f"{month:%Y-%m}",
                 extra={"month": f"{month:%Y-%m}", "format": fmt, "rows": table.height, "filters": filters})  # fmt: skip
    handle.seek(0)
    return handle


@require_GET
@login_required
def close_changes_view(request, month: str):
    """The month's upgrades, downgrades, new and lost values of the customers the viewer may see."""
    user = request.user
    month_day = _month_arg(month)
    policy = _results_policy(user, month_day)
    parsed = parsed_policy(policy) if policy else None
    outputs = {o.name: o for o in parsed.outputs} if parsed else {}
    queryset = close_changes(viewer=user, month=month_day)
    kind = request.GET.get("kind", "")
    if kind in dict(CHANGE_KINDS):
        queryset = queryset.filter(kind=kind)
    output_name = request.GET.get("output", "")
    if output_name in outputs:
        queryset = queryset.filter(output=output_name)
    page = _page_number(request)
    changes = list(queryset[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])
    total, capped = capped_count(queryset)
    rows = [
        {"customer": c.customer, "output": (outputs[c.output].label or c.output) if c.output in outputs else c.output,
         "before": value_text(outputs.get(c.output), c.before), "after": value_text(outputs.get(c.output), c.after),
         "kind": c.kind, "kind_label": c.get_kind_display()}
        for c in changes
    ]  # fmt: skip
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "web/policies/changes.html", {
        "month": month_day, "month_text": month, "rows": rows, "total": total, "capped": capped, "page": page,
        "has_next": page * PAGE_SIZE < total or capped, "query": query.urlencode(), "kinds": CHANGE_KINDS,
        "kind": kind, "outputs": [(o.name, o.label or o.name) for o in outputs.values() if o.export],
        "output": output_name, "months": _months_closed(user),
    })  # fmt: skip


# ---------------------------------------------------------------- simulation


class SimulateForm(forms.Form):
    month = forms.CharField(label=gettext_lazy("Month (YYYY-MM)"), max_length=7,
                            widget=forms.TextInput(attrs={"placeholder": "2026-10", "inputmode": "numeric"}))  # fmt: skip
    mode = forms.ChoiceField(label=gettext_lazy("Simulate"), widget=forms.RadioSelect, initial="edits",
                             choices=[("edits", gettext_lazy("the policy in force with edited thresholds")),
                                      ("draft", gettext_lazy("a draft document"))])  # fmt: skip
    draft = forms.CharField(label=gettext_lazy("Draft (YAML)"), required=False, strip=False,
                            widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false",
                                                         "style": "width:100%; font-family: monospace"}))  # fmt: skip
    file = forms.FileField(label=gettext_lazy("…or a draft file"), required=False)
    show = forms.ChoiceField(label=gettext_lazy("Show the customers whose draft value is"), required=False)


def _constants(parsed) -> list[dict]:
    """Every threshold of a policy with its path and its text as written, for the edit form."""
    return [{"path": path, "value": parsed.source[start:end], "field": f"edit:{path}"}
            for path, start, end in parsed.constants]  # fmt: skip


def _changed_frame(user, simulation) -> pl.DataFrame:
    """The simulation's changed customers with their code and name (the customers the user may see)."""
    ids = simulation.changed.get_column("customer_id")
    schema = {"customer_id": pl.Int64, "customer_code": pl.Utf8, "customer_name": pl.Utf8}
    visible = Customer.objects.visible_to(user).order_by()
    if ids.len() <= 5000:
        visible = visible.filter(pk__in=ids.to_list())
    try:
        names = frame_from_queryset(visible.values_list("id", "code", "name"), schema)
    except EmptyResultSet:  # nothing changed, or a viewer who sees no customer: no SQL to run
        names = pl.DataFrame(schema=schema)
    return names.join(simulation.changed, on="customer_id", how="inner").sort("customer_code")


def _distribution_charts(simulation, titles: dict[str, str]) -> list[dict]:
    """An ECharts bar chart per output (titled with its label): customers per value now and under the draft."""
    charts = []
    for name in simulation.outputs:
        counts = simulation.distribution.get(name) or {}
        if not counts:
            continue
        labels = simulation.labels.get(name, {})
        values = list(counts)
        spec = {
            "title": titles.get(name) or name,
            "categories": [labels.get(v, v) if v else "—" for v in values],
            "series": [
                {"name": _("now"), "data": [counts[v]["now"] for v in values]},
                {"name": _("draft"), "data": [counts[v]["draft"] for v in values]},
            ],
        }
        charts.append({"output": name, "id": f"chart-data-{name}", "spec": spec})
    return charts


def _move_matrices(simulation) -> list[dict]:
    """Per choice/yes-no output: rows = value now, columns = value under the draft, cells = customers."""
    matrices = []
    for name, moves in simulation.moves.items():
        counts = simulation.distribution.get(name) or {}
        labels = simulation.labels.get(name, {})
        values = list(counts)
        moved: dict[tuple[str, str], int] = {(a, b): n for a, b, n in moves}
        out_of = {v: sum(n for (a, _b), n in moved.items() if a == v) for v in values}
        rows = []
        for now in values:
            cells = []
            for draft in values:
                n = counts[now]["now"] - out_of[now] if now == draft else moved.get((now, draft), 0)
                cells.append({"n": n, "same": now == draft})
            rows.append({"label": labels.get(now, now) or "—", "cells": cells})
        matrices.append({"output": name, "columns": [labels.get(v, v) or "—" for v in values], "rows": rows})
    return matrices


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_POLICIES)
def policy_simulate_view(request):
    """Try a draft (or the policy in force with edited thresholds) on a month; nothing is written."""
    user = request.user
    month_text = request.POST.get("month") or request.GET.get("month") or f"{timezone.localdate():%Y-%m}"
    try:
        month = parse_month(month_text)
    except ServiceError:
        month = timezone.localdate().replace(day=1)
    current = policy_in_force(month=month)
    constants = _constants(parsed_policy(current)) if current else []
    form = SimulateForm(request.POST or None, request.FILES or None, initial={"month": f"{month:%Y-%m}"})
    form.fields["show"].choices = [("", _("any"))] + (
        value_choices(parsed_policy(current)) if current else []
    )
    context = {"form": form, "current": current, "constants": constants, "month": month, "problems": []}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        edits = {}
        for item in constants:
            value = (request.POST.get(item["field"]) or "").strip()
            item["edited"] = value
            if value and value != item["value"]:
                edits[item["path"]] = value
        try:
            draft_text = None
            if data["mode"] == "draft":
                upload = data.get("file")
                draft_text = upload.read().decode("utf-8-sig") if upload else data["draft"]
                if not (draft_text or "").strip():
                    raise ServiceError(_("Paste the draft or choose a file."), field="draft")
            simulation = policy_simulate(acting_user=user, month=parse_month(data["month"]), draft_text=draft_text,
                                         edits=edits if draft_text is None else None)  # fmt: skip
        except UnicodeDecodeError:
            form.add_error("file", _("The file is not UTF-8 text."))
        except PolicyInvalid as exc:
            context["problems"] = problem_rows(exc)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ServiceError as exc:
            add_service_error(form, exc)
        else:
            changed = _changed_frame(user, simulation)
            show = data.get("show") or ""
            if show:
                output_name, _sep, wanted = show.partition("=")
                column = f"{output_name}_draft"
                if column in changed.columns:
                    changed = changed.filter(pl.col(column) == wanted.lower())
            if request.POST.get("export") == "csv":
                response = HttpResponse(
                    changed.write_csv().encode("utf-8-sig"), content_type=CONTENT_TYPES["csv"]
                )
                response["Content-Disposition"] = (
                    f'attachment; filename="simulation-{simulation.month:%Y-%m}.csv"'
                )
                response["Cache-Control"] = "no-store"
                return response
            outputs = simulation.outputs
            titles = {o.name: o.label for o in parsed_policy(current).outputs} if current else {}
            context.update(
                simulation=simulation, charts=_distribution_charts(simulation, titles), matrices=_move_matrices(simulation),
                changed_rows=[
                    {"code": r["customer_code"], "name": r["customer_name"],
                     "cells": [(r[f"{o}_now"] or "—", r[f"{o}_draft"] or "—") for o in outputs],
                     "explanation": r["explanation_draft"]}
                    for r in changed.head(PAGE_SIZE).iter_rows(named=True)
                ],
                changed_total=changed.height, changed_count=simulation.changed.height, outputs=outputs,
            )  # fmt: skip
    status = 400 if request.method == "POST" and (form.errors or context["problems"]) else 200
    return render(request, "web/policies/simulate.html", context, status=status)


# ---------------------------------------------------------------- overrides

OVERRIDE_TABS = {
    "pending": (gettext_lazy("Awaiting approval"), [OverrideStatus.PENDING]),
    "approved": (gettext_lazy("In force"), [OverrideStatus.APPROVED]),
    "ended": (gettext_lazy("Ended"), [OverrideStatus.REFUSED, OverrideStatus.REVOKED]),
}


@require_GET
@login_required
def override_list_view(request):
    user = request.user
    tab = request.GET.get("status") if request.GET.get("status") in OVERRIDE_TABS else "pending"
    queryset = (
        override_list(viewer=user).filter(status__in=OVERRIDE_TABS[tab][1]).select_related("revoked_by")
    )
    page = _page_number(request)
    overrides = list(queryset[(page - 1) * PAGE_SIZE : page * PAGE_SIZE + 1])
    for override in overrides:
        override.may_decide = (override.status == OverrideStatus.PENDING and user.can(Capability.APPROVE_OVERRIDE)
                               and override.requested_by_id != user.pk)  # fmt: skip
        override.may_revoke = override.status in (OverrideStatus.PENDING, OverrideStatus.APPROVED) and (
            user.can(Capability.APPROVE_OVERRIDE) or override.requested_by_id == user.pk
        )
    return render(request, "web/policies/overrides.html", {
        "overrides": overrides[:PAGE_SIZE], "has_next": len(overrides) > PAGE_SIZE, "page": page, "tab": tab,
        "tabs": [(key, label) for key, (label, _statuses) in OVERRIDE_TABS.items()],
    })  # fmt: skip


@require_POST
@login_required
def override_action_view(request, pk: int, action: str):
    """Approve, refuse or revoke one override; the service's refusal is shown as a message."""
    override = get_visible_or_404(Override.objects.select_related("customer"), request.user, pk=pk)
    note = (request.POST.get("note") or "").strip()[:500]
    try:
        if action == "approve":
            override_decide(acting_user=request.user, override=override, approve=True, note=note)
            messages.success(request, _("Override approved: it applies from the next close."))
        elif action == "refuse":
            override_decide(acting_user=request.user, override=override, approve=False, note=note)
            messages.success(request, _("Override refused."))
        elif action == "revoke":
            override_revoke(acting_user=request.user, override=override, reason=note)
            messages.success(request, _("Override revoked: the next close follows the rules again."))
        else:
            raise Http404("No such action.")
    except ServiceError as exc:  # NotAllowed too: shown, as the page offers the action to approvers
        messages.error(request, exc.message)
    back = request.POST.get("next") or ""
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect(reverse("override_list") + f"?status={request.POST.get('tab') or 'pending'}")


class OverrideRequestForm(forms.Form):
    output = forms.ChoiceField(label=gettext_lazy("Output"))
    value = forms.CharField(label=gettext_lazy("Value to force"), required=False, max_length=64,
                            help_text=gettext_lazy("A value of the output, e.g. diamond; empty: not applicable."))  # fmt: skip
    reason = forms.CharField(
        label=gettext_lazy("Reason"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, parsed=None, **kwargs):
        super().__init__(*args, **kwargs)
        outputs = [o for o in parsed.outputs if o.export] if parsed is not None else []
        self.fields["output"].choices = [(o.name, o.label or o.name) for o in outputs]
        hints = []
        for o in outputs:
            if o.type == "choice":
                hints.append(f"{o.name}: " + ", ".join(f"{v} ({dict(o.labels).get(v, v)})" for v in o.values))
            elif o.type == "boolean":
                hints.append(f"{o.name}: true, false")
        self.value_hints = hints


def override_request_form(parsed, data=None) -> OverrideRequestForm:
    return OverrideRequestForm(data, parsed=parsed, prefix="override")


@require_POST
@capability_required(Capability.REQUEST_OVERRIDE)
def override_request_view(request, code: str):
    """Ask for an override of one output of a customer (from its sales tab)."""
    customer = get_visible_or_404(Customer, request.user, code=code)
    current = policy_in_force(month=timezone.localdate().replace(day=1))
    form = override_request_form(parsed_policy(current) if current else None, request.POST)
    back = reverse("customer_tab", kwargs={"code": customer.code, "tab": "sales"})
    if not form.is_valid():
        problems = "; ".join(f"{form.fields[n].label if n in form.fields else n}: {' '.join(e)}"
                             for n, e in form.errors.items())  # fmt: skip
        messages.error(request, _("The override was not requested: %(p)s") % {"p": problems})
        return redirect(back)
    data = form.cleaned_data
    try:
        override_request(acting_user=request.user, customer=customer, output=data["output"], value=data["value"],
                         reason=data["reason"])  # fmt: skip
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Override requested; someone at the approving level decides on it."))
    return redirect(back)
