"""Sales import pages: upload a file of transactions or of monthly facts → a background job that checks
and imports it (``kehu.metrics.jobs``) → the job page with its progress, counts and row errors.

The upload streams to a temporary file and stops at ``KEHU_MAX_UPLOAD_MB`` (the customer import's capped
handler). The import runs as the uploader: all-or-nothing and idempotent (docs/import-formats.md). After
a dry run the job page offers to import the same file for real without another upload.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from django import forms
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.roles import Capability
from kehu.core.errors import ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.core.tabular import csv_cell, max_import_bytes
from kehu.jobs.models import Job
from kehu.jobs.services import job_submit
from kehu.metrics.jobs import DEFAULT_SOURCES
from kehu.web.forms import add_service_error
from kehu.web.views.common import capability_required
from kehu.web.views.customer_io import CappedUploadHandler

SALES_SUFFIXES = (".csv", ".xlsx", ".parquet")
IMPORT_KINDS = {
    "transactions": gettext_lazy("Transactions (one row per sale)"),
    "monthly_facts": gettext_lazy("Monthly facts (one row per customer, month and product)"),
}
JOB_KINDS = {f"{kind}_import": kind for kind in IMPORT_KINDS}


class SalesImportForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("What the file holds"), choices=list(IMPORT_KINDS.items()))
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy("CSV (UTF-8 or GBK), XLSX or Parquet; see the columns below."),
    )
    source = forms.CharField(
        label=gettext_lazy("Source"),
        required=False,
        max_length=32,
        help_text=gettext_lazy(
            "The system the file comes from (e.g. pos, card); empty: “default” for transactions, “monthly” for "
            "monthly facts. Monthly facts replace the months they contain for their source only."
        ),
    )
    dry_run = forms.BooleanField(
        label=gettext_lazy("Only check the file and show what it would do"), required=False, initial=True
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(SALES_SUFFIXES):
            raise forms.ValidationError(_("Upload a .csv, .xlsx or .parquet file."))
        return upload


def _submit(user, *, kind: str, filename: str, source_file, source: str, dry_run: bool) -> Job:
    """A job importing ``source_file``, copied to storage in chunks; it runs once this commits."""
    with transaction.atomic():
        job = job_submit(acting_user=user, kind=f"{kind}_import", filename=filename,
                         params={"source": source or DEFAULT_SOURCES[kind], "dry_run": dry_run})  # fmt: skip
        job.input_file.save(f"{job.pk}-{job.kind}", source_file, save=True)
    return job


@require_http_methods(["GET", "POST"])
@capability_required(Capability.IMPORT_SALES)
@csrf_exempt  # checked below, once the upload handlers are in place (they must come before reading POST)
def sales_import_view(request):
    """Upload a transactions or monthly facts file; a background job checks it and imports it."""
    handler = None
    if request.method == "POST":
        handler = CappedUploadHandler(request, max_import_bytes())
        request.upload_handlers = [handler, TemporaryFileUploadHandler(request)]
    return _sales_import(request, handler)


@csrf_protect
def _sales_import(request, handler):
    initial = {"kind": request.GET.get("kind") if request.GET.get("kind") in IMPORT_KINDS else "transactions"}
    form = SalesImportForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST":
        if handler is not None and handler.too_large:
            form.is_valid()
            form.errors.pop("file", None)
            form.add_error("file", _("The file is larger than %(n)d MB, the most an import takes; split it.")
                           % {"n": max_import_bytes() // (1024 * 1024)})  # fmt: skip
        elif form.is_valid():
            data = form.cleaned_data
            upload = data["file"]
            try:
                job = _submit(request.user, kind=data["kind"], filename=upload.name, source_file=upload,
                              source=data["source"].strip(), dry_run=data["dry_run"])  # fmt: skip
            except ServiceError as exc:
                add_service_error(form, exc)
            else:
                return redirect("job_detail", pk=job.pk)
    return render(
        request, "web/sales/import.html", {"form": form, "max_mb": max_import_bytes() // (1024 * 1024)}
    )


def _import_job(request, pk: int) -> Job:
    job = get_visible_or_404(Job, request.user, pk=pk)  # a job is its starter's alone
    if job.kind not in JOB_KINDS:
        raise Http404("No such import.")
    return job


@require_POST
@capability_required(Capability.IMPORT_SALES)
def sales_import_run_view(request, pk: int):
    """Import the file of a dry run for real."""
    previous = _import_job(request, pk)
    if not previous.finished or not previous.input_file:
        raise Http404("The file of this import is no longer kept.")
    try:
        with previous.input_file.open("rb") as source_file:
            job = _submit(request.user, kind=JOB_KINDS[previous.kind], filename=previous.input_name,
                          source_file=source_file, source=previous.params.get("source") or "", dry_run=False)  # fmt: skip
    except FileNotFoundError:
        raise Http404("The file of this import is no longer kept.") from None
    return redirect("job_detail", pk=job.pk)


@require_GET
@capability_required(Capability.IMPORT_SALES)
def sales_import_errors_view(request, pk: int):
    """An import's row errors as a CSV file (row, column, value, problem)."""
    job = _import_job(request, pk)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_("row"), _("column"), _("value"), _("problem")])
    for item in (job.result or {}).get("errors", []):
        writer.writerow([item.get("row", ""), item.get("field", ""), csv_cell(str(item.get("value", ""))),
                         csv_cell(str(item.get("message", "")))])  # fmt: skip
    response = HttpResponse(out.getvalue().encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="sales-import-{job.pk}-errors.csv"'
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------------------------------
# The customer page's "sales and grades" tab

CHART_MONTHS = 24
HISTORY_ROWS = 36


def _month_axis(today, months: int) -> list:
    index = today.year * 12 + today.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def _sales_charts(sales: list, axis: list) -> list[dict]:
    """ECharts specifications: amounts (yuan) per product per month, and quantities per product in its unit
    (products sold by amount only — a card — have no quantity chart)."""
    position = {m: i for i, m in enumerate(axis)}
    products: dict[str, dict] = {}
    for s in sales:
        entry = products.setdefault(s.product, {"name": s.product_name or s.product, "unit": s.unit,
                                                "amount": [0] * len(axis), "quantity": [0] * len(axis)})  # fmt: skip
        i = position.get(s.month)
        if i is not None:
            entry["amount"][i] += s.amount_fen
            entry["quantity"][i] += s.quantity_milli
    categories = [f"{m:%Y-%m}" for m in axis]
    amount_series = [
        {"name": p["name"], "stack": "amount", "data": [str(Decimal(v) / 100) for v in p["amount"]]}
        for p in products.values()
    ]
    charts = []
    if amount_series:
        charts.append({"id": "sales-amount", "spec": {"title": _("Amount per month (yuan)"), "unit": "¥",
                                                      "categories": categories, "series": amount_series}})  # fmt: skip
    by_unit: dict[str, list] = {}
    for p in products.values():
        if any(p["quantity"]):
            by_unit.setdefault(p["unit"], []).append(
                {"name": p["name"], "type": "line", "data": [str(Decimal(v) / 1000) for v in p["quantity"]]}
            )
    for n, (unit, series) in enumerate(by_unit.items()):
        charts.append({"id": f"sales-quantity-{n}", "spec": {
            "title": _("Quantity per month (%(u)s)") % {"u": unit}, "unit": unit, "categories": categories,
            "series": series}})  # fmt: skip
    return charts


def sales_tab_context(user, customer) -> dict:
    """What the customer page's sales tab shows: the sales charts of the last 24 months, the history of the
    close's outputs with their explanations and policy versions, the customer's overrides and, for those
    who may ask for one, the override form."""
    from django.utils import timezone

    from kehu.metrics.selectors import customer_sales
    from kehu.policies.selectors import customer_close_history, override_list, policy_in_force
    from kehu.web.views.policies import level_text, output_cells, override_request_form, parsed_policy

    today = timezone.localdate()
    sales = customer_sales(viewer=user, customer=customer, months=CHART_MONTHS, today=today)
    history = []
    for result in customer_close_history(viewer=user, customer=customer)[:HISTORY_ROWS]:
        parsed = parsed_policy(result.policy)
        history.append({"month": result.month, "policy": result.policy, "cells": output_cells(parsed, result.outputs),
                        "level": level_text(result.responsible_level), "explanation": result.explanation})  # fmt: skip
    current = policy_in_force(month=today.replace(day=1))
    form = None
    if user.can(Capability.REQUEST_OVERRIDE) and current is not None:
        form = override_request_form(parsed_policy(current))
    return {
        "sales_charts": _sales_charts(sales, _month_axis(today, CHART_MONTHS)),
        "has_sales": bool(sales),
        "close_history": history,
        "customer_overrides": list(override_list(viewer=user).filter(customer=customer)[:20]),
        "override_form": form,
    }
