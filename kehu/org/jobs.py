"""Background job kinds of the organisation app."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kehu.jobs.registry import register
from kehu.org.imports import units_import


@register("units_import", _("Import units"))
def units_import_job(job, progress) -> dict:
    """Import the job's units file acting as the person who submitted it."""
    with job.input_file.open("rb") as handle:
        content = handle.read()
    result = units_import(
        acting_user=job.created_by, filename=job.input_name, content=content,
        create_types=bool(job.params.get("create_types")), dry_run=bool(job.params.get("dry_run")),
        progress=progress,
    )  # fmt: skip
    return {
        "ok": result.ok, "dry_run": result.dry_run, "rows": result.rows, "created": result.created,
        "updated": result.updated, "moved": result.moved, "unchanged": result.unchanged,
        "types_created": result.types_created,
        "errors": [{"row": e.row, "field": e.field, "value": e.value, "message": e.message} for e in result.errors[:1000]],
        "error_count": len(result.errors),
        "message": ngettext(
            "%(n)d problem — nothing was changed.", "%(n)d problems — nothing was changed.", len(result.errors)
        ) % {"n": len(result.errors)} if result.errors else "",
    }  # fmt: skip
