"""Background job kinds of the sales imports (the upload page and the API submit them).

The job's uploaded file is handed to the import by path; a storage without local paths is copied to a
temporary file first. The file is dropped once imported or refused, kept after a dry run so that the
job page can import it without another upload.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import PurePath

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kehu.jobs.registry import register
from kehu.metrics.imports import FACT_IMPORTERS

JOB_ERRORS_KEPT = 10_000  # every error the import reports (it stops at 10,000), for the error file
DEFAULT_SOURCES = {"transactions": "default", "monthly_facts": "monthly"}


def _import_job(kind: str):
    def handler(job, progress) -> dict:
        """Import the job's file acting as the person who submitted it (scope and audit as by hand)."""
        importer = FACT_IMPORTERS[kind]
        options = {
            "acting_user": job.created_by, "filename": job.input_name,
            "source": job.params.get("source") or DEFAULT_SOURCES[kind],
            "dry_run": bool(job.params.get("dry_run")), "progress": progress,
        }  # fmt: skip
        try:
            result = importer(path=job.input_file.path, **options)
        except NotImplementedError:  # a storage without local files
            suffix = PurePath(job.input_name).suffix
            with tempfile.NamedTemporaryFile(suffix=suffix) as copy, job.input_file.open("rb") as handle:
                shutil.copyfileobj(handle, copy)
                copy.flush()
                result = importer(path=copy.name, **options)
        data = result.as_dict()
        data["errors"] = data["errors"][:JOB_ERRORS_KEPT]
        data["message"] = (
            ngettext("%(n)d problem — nothing was changed.", "%(n)d problems — nothing was changed.",
                     result.error_count or len(result.errors)) % {"n": result.error_count or len(result.errors)}
            if result.errors else ""
        )  # fmt: skip
        if not result.dry_run and job.input_file:
            from kehu.jobs.models import Job

            job.input_file.delete(save=False)
            Job.objects.filter(pk=job.pk).update(input_file="")
        return data

    return handler


register("transactions_import", _("Import transactions"))(_import_job("transactions"))
register("monthly_facts_import", _("Import monthly sales facts"))(_import_job("monthly_facts"))
