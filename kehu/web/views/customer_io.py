"""Customer import (upload → background job) and export (download of the current filtered list's
customers, contacts or agreements; a large XLSX export → background job whose file its starter downloads).

The upload is capped while it streams (``KEHU_MAX_UPLOAD_MB``): it goes to a temporary file on disk,
never into memory, and stops at the limit. The import itself runs as a job (``kehu.customers.jobs``)
acting as the uploader; its page shows the progress, the counts, the warnings and the errors, offers
the errors as a CSV file, and after a dry run imports the same file for real with one click.
"""

from __future__ import annotations

import csv
import io
import tempfile

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.uploadhandler import FileUploadHandler, StopUpload, TemporaryFileUploadHandler
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kehu.accounts.roles import Capability
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.scoping import get_visible_or_404
from kehu.core.tabular import SUPPORTED_SUFFIXES, csv_cell, max_import_bytes
from kehu.customers.exports import (
    BACKGROUND_XLSX_ROWS,
    CONTENT_TYPES,
    EXPORT_JOB_KINDS,
    EXPORT_KINDS,
    export_csv_stream,
    export_filename,
    export_job_file,
    export_job_submit,
    export_row_count,
    may_export_customers,
    records_export,
)
from kehu.jobs.models import Job
from kehu.jobs.services import job_submit
from kehu.org.models import Unit
from kehu.web.forms import add_service_error
from kehu.web.views.common import capability_required

IMPORT_KINDS = {
    "customers": gettext_lazy("Customers"),
    "contacts": gettext_lazy("Contacts and decision makers"),
    "agreements": gettext_lazy("Agreements"),
}
JOB_KINDS = {f"{kind}_import": kind for kind in IMPORT_KINDS}
EXPORT_LABELS = IMPORT_KINDS  # the same three: customers, contacts and decision makers, agreements


# ---------------------------------------------------------------------------------------------------
# Import


class CappedUploadHandler(FileUploadHandler):
    """Stops an upload as soon as it passes ``limit`` bytes; the rest of the request is read and dropped.

    Placed before TemporaryFileUploadHandler, which writes what passes to a temporary file.
    """

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):  # noqa: N803
        # A declared length far beyond the limit: no need to read a single file byte.
        if content_length and content_length > self.limit + 1024 * 1024:
            self.too_large = True
        return None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.too_large:
            raise StopUpload(connection_reset=False)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self.too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


class CustomerImportForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("What the file holds"), choices=list(IMPORT_KINDS.items()))
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy("CSV (UTF-8 or GBK) or XLSX, one row per record; see the column list below."),
    )
    dry_run = forms.BooleanField(
        label=gettext_lazy("Only check the file and show what it would do"), required=False, initial=True
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason to import customers whose names look like existing ones"),
        required=False,
        max_length=500,
        help_text=gettext_lazy(
            "Leave empty at first: rows with similar names are then listed, and nothing is imported."
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(SUPPORTED_SUFFIXES):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."))
        return upload


def _submit(user, *, kind: str, filename: str, source, dry_run: bool, reason: str) -> Job:
    """A job for ``kind`` whose input is ``source`` (a file), copied to storage in chunks."""
    with transaction.atomic():  # the job runs after this commits, with its file in place
        job = job_submit(
            acting_user=user, kind=f"{kind}_import", filename=filename,
            params={"dry_run": dry_run, "reason": reason if kind == "customers" else ""},
        )  # fmt: skip
        job.input_file.save(f"{job.pk}-{job.kind}", source, save=True)
    return job


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MANAGE_CUSTOMERS)
@csrf_exempt  # checked below, once the upload handlers are in place (they must come before reading POST)
def customers_import_view(request):
    """Upload a customers, contacts or agreements file; a background job checks it and imports it."""
    handler = None
    if request.method == "POST":
        handler = CappedUploadHandler(request, max_import_bytes())
        request.upload_handlers = [handler, TemporaryFileUploadHandler(request)]
    return _customers_import(request, handler)


@csrf_protect
def _customers_import(request, handler):
    initial = {"kind": request.GET.get("kind") if request.GET.get("kind") in IMPORT_KINDS else "customers"}
    form = CustomerImportForm(request.POST or None, request.FILES or None, initial=initial)
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
                job = _submit(request.user, kind=data["kind"], filename=upload.name, source=upload,
                              dry_run=data["dry_run"], reason=data["reason"].strip())  # fmt: skip
            except ServiceError as exc:
                add_service_error(form, exc)
            else:
                return redirect("job_detail", pk=job.pk)
    return render(
        request, "web/customers/import.html", {"form": form, "max_mb": max_import_bytes() // (1024 * 1024)}
    )


def _import_job(request, pk: int) -> Job:
    job = get_visible_or_404(Job, request.user, pk=pk)  # a job is its starter's alone
    if job.kind not in JOB_KINDS:
        raise Http404("No such import.")
    return job


@require_POST
@capability_required(Capability.MANAGE_CUSTOMERS)
def customers_import_run_view(request, pk: int):
    """Import the file of an earlier run for real (after a dry run, or with a reason after warnings)."""
    previous = _import_job(request, pk)
    if not previous.finished or not previous.input_file:
        raise Http404("The file of this import is no longer kept.")
    kind = JOB_KINDS[previous.kind]
    reason = (request.POST.get("reason") or previous.params.get("reason") or "").strip()[:500]
    try:
        with previous.input_file.open("rb") as source:
            job = _submit(request.user, kind=kind, filename=previous.input_name, source=source, dry_run=False,
                          reason=reason)  # fmt: skip
    except FileNotFoundError:
        raise Http404("The file of this import is no longer kept.") from None
    return redirect("job_detail", pk=job.pk)


@require_GET
@capability_required(Capability.MANAGE_CUSTOMERS)
def customers_import_errors_view(request, pk: int):
    """An import's errors and warnings as a CSV file (row, column, value, problem)."""
    job = _import_job(request, pk)
    result = job.result or {}
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_("row"), _("column"), _("value"), _("problem"), _("kind")])
    for level, items in (
        (_("error"), result.get("errors", [])),
        (_("warning"), result.get("warning_list", [])),
    ):
        for item in items:
            writer.writerow([item.get("row", ""), item.get("field", ""), csv_cell(str(item.get("value", ""))),
                             csv_cell(str(item.get("message", ""))), level])  # fmt: skip
    response = HttpResponse(out.getvalue().encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------------------------------
# Export


def _export_filters(request):
    """The customer list's filters from the query string (the list's own form), or None if one is wrong.

    A wrong filter is refused rather than dropped: dropping it would export more than the list shows.
    ``within`` (a unit's id) is accepted besides the list's ``unit`` (its code).
    """
    from kehu.web.customer_forms import CustomerFilterForm

    data = request.GET.copy()
    if data.get("within") and not data.get("unit"):
        try:
            unit = get_visible_or_404(Unit, request.user, pk=int(data["within"]))
        except ValueError:
            raise Http404("No such unit.") from None
        data["unit"] = unit.code
    form = CustomerFilterForm(data, viewer=request.user)
    if not form.is_valid():
        return None, form
    return form.filters(), form


@require_http_methods(["GET", "POST"])
@capability_required(Capability.VIEW_ORG)
def customers_export_view(request):
    """The current filtered list's customers, contacts or agreements (``what``) as CSV (streamed) or XLSX;
    masked, scoped and audited.

    An XLSX export of more than BACKGROUND_XLSX_ROWS rows is not written inside the request: the page
    says so and offers to prepare it in the background (a POST starts the job and shows its page).
    """
    if not may_export_customers(request.user):
        raise PermissionDenied(_("Your roles give you no customers to export."))
    what = request.GET.get("what") or "customers"
    if what not in EXPORT_KINDS:
        return HttpResponseBadRequest(
            _("Export customers, contacts or agreements, not “%(w)s”.") % {"w": what}
        )
    fmt = request.GET.get("format", "xlsx")
    if fmt not in CONTENT_TYPES:
        return HttpResponseBadRequest(_("Export as csv or xlsx, not “%(f)s”.") % {"f": fmt})
    filters, form = _export_filters(request)
    if filters is None:
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponseBadRequest(_("The filter is not valid (%(p)s).") % {"p": problems})
    try:
        if request.method == "POST":
            job = export_job_submit(acting_user=request.user, what=what, fmt=fmt, filters=filters)
            return redirect("job_detail", pk=job.pk)
        if fmt == "csv":
            response = StreamingHttpResponse(
                export_csv_stream(what=what, acting_user=request.user, filters=filters),
                content_type=CONTENT_TYPES["csv"],
            )
        else:
            count, more = export_row_count(
                viewer=request.user, what=what, filters=filters, cap=BACKGROUND_XLSX_ROWS
            )
            if more:
                return _export_in_background(request, what=what, count=count)
            handle = tempfile.TemporaryFile()  # written in constant memory, then streamed from disk
            try:
                records_export(what=what, acting_user=request.user, fmt="xlsx", out=handle, filters=filters)
            except BaseException:
                handle.close()
                raise
            handle.seek(0)
            response = FileResponse(handle, content_type=CONTENT_TYPES["xlsx"])
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ServiceError as exc:
        return HttpResponseBadRequest(exc.message)
    response["Content-Disposition"] = f'attachment; filename="{export_filename(fmt, what)}"'
    response["Cache-Control"] = "no-store"
    return response


def _export_in_background(request, *, what: str, count: int):
    """The page offering a background job for an export too large to write while the browser waits."""
    query = request.GET.copy()
    query["format"] = "xlsx"
    csv_query = query.copy()
    csv_query["format"] = "csv"
    return render(
        request,
        "web/customers/export_background.html",
        {
            "what": what,
            "what_label": EXPORT_LABELS[what],
            "threshold": f"{BACKGROUND_XLSX_ROWS:,}",
            "count": f"{count:,}",
            "action": f"{request.path}?{query.urlencode()}",
            "csv_url": f"{request.path}?{csv_query.urlencode()}",
        },
    )


@require_GET
@login_required  # a job is its starter's alone: anyone else gets 404, whatever their roles
def customers_export_file_view(request, pk: int):
    """The file a background export wrote, for the person who started it (anyone else: 404)."""
    job = get_visible_or_404(Job, request.user, pk=pk)  # a job is its starter's alone
    if job.kind not in EXPORT_JOB_KINDS:
        raise Http404("No such export.")
    try:
        handle = export_job_file(acting_user=request.user, job=job)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ServiceError:
        raise Http404("The file of this export is no longer kept.") from None
    fmt = job.params.get("format", "xlsx")
    response = FileResponse(handle, content_type=CONTENT_TYPES.get(fmt, "application/octet-stream"))
    response["Content-Disposition"] = f'attachment; filename="{job.result.get("file_name") or "export"}"'
    response["Cache-Control"] = "no-store"
    return response
