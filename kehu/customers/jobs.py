"""Background job kinds of the customer archive: the three imports (upload page and API)."""

from __future__ import annotations

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
