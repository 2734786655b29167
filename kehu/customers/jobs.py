"""Background job kinds of the customer archive: the three imports (upload page and API) and the three
exports (a web XLSX export of more than ``exports.BACKGROUND_XLSX_ROWS`` rows)."""

from __future__ import annotations

import tempfile

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kehu.customers.imports import IMPORTERS
from kehu.jobs.registry import register

JOB_ERRORS_KEPT = 10_000  # every error the import reports (it stops at 10,000), for the error file


def _drop_input(job) -> None:
    from kehu.jobs.models import Job

    if job.input_file:
        job.input_file.delete(save=False)
        Job.objects.filter(pk=job.pk).update(input_file="")


def _import_job(kind: str):
    def handler(job, progress) -> dict:
        """Import the job's file acting as the person who submitted it (scope and audit as by hand)."""
        with job.input_file.open("rb") as handle:
            content = handle.read()
        options = {"reason": job.params.get("reason", "")} if kind == "customers" else {}
        result = IMPORTERS[kind](
            acting_user=job.created_by, filename=job.input_name, content=content,
            dry_run=bool(job.params.get("dry_run")), progress=progress, **options,
        )  # fmt: skip
        data = result.as_dict()
        data["errors"] = data["errors"][:JOB_ERRORS_KEPT]
        if result.errors:
            data["message"] = ngettext(
                "%(n)d problem — nothing was changed.", "%(n)d problems — nothing was changed.", len(result.errors)
            ) % {"n": len(result.errors)}  # fmt: skip
        elif result.needs_reason:
            data["message"] = ngettext(
                "%(n)d row looks like a customer already in Kehu — nothing was changed; give a reason to "
                "import anyway.",
                "%(n)d rows look like customers already in Kehu — nothing was changed; give a reason to "
                "import anyway.",
                len(result.warnings),
            ) % {"n": len(result.warnings)}  # fmt: skip
        else:
            data["message"] = ""
        if not result.dry_run and not (result.needs_reason and not result.errors):
            # The uploaded file holds phone and ID numbers in clear: once imported (or refused for errors
            # that need a new file) it is not kept. After a dry run, or when only a reason is missing,
            # it stays so that the job page can import it without another upload.
            _drop_input(job)
        return data

    return handler


register("customers_import", _("Import customers"))(_import_job("customers"))
register("contacts_import", _("Import contacts"))(_import_job("contacts"))
register("agreements_import", _("Import agreements"))(_import_job("agreements"))


def _export_job(what: str):
    def handler(job, progress) -> dict:
        """Write the export acting as the person who asked for it (scope, masking and audit as by hand),
        into a file kept for them to download from the job page."""
        from kehu.core.errors import ServiceError
        from kehu.customers.exports import (
            EXPORT_KINDS,
            XLSX_MAX_ROWS,
            export_filename,
            export_row_count,
            filters_from_params,
            records_export,
        )
        from kehu.jobs.services import job_result_file_store

        user, fmt = job.created_by, job.params.get("format", "xlsx")
        filters = filters_from_params(viewer=user, data=job.params.get("filter") or {})
        # The total for the progress bar; beyond a sheet's rows the XLSX export refuses (and stops there).
        total, _more = export_row_count(viewer=user, what=what, filters=filters, cap=XLSX_MAX_ROWS + 1)
        if fmt == "xlsx" and total > XLSX_MAX_ROWS:
            raise ServiceError(str(EXPORT_KINDS[what].too_many) % {"n": f"{XLSX_MAX_ROWS:,}"}, field="format")
        progress(0, total)
        with tempfile.TemporaryFile() as handle:
            count = records_export(what=what, acting_user=user, fmt=fmt, out=handle, filters=filters,
                                   progress=lambda n: progress(n, max(total, n)))  # fmt: skip
            handle.seek(0)
            stored = job_result_file_store(job=job, filename=export_filename(fmt, what), source=handle)
        progress(count, count)
        return {"what": what, "format": fmt, "count": count, "filter": filters.describe(), **stored}

    return handler


register("customers_export", _("Export customers"))(_export_job("customers"))
register("contacts_export", _("Export contacts"))(_export_job("contacts"))
register("agreements_export", _("Export agreements"))(_export_job("agreements"))
