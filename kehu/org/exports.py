"""Exporting the organisation tree (``kehu export units FILE``) in the import's own format.

The columns are those of ``kehu.org.imports.UNIT_COLUMNS`` with English headers, parents before
children, so an export imports back without change. Only the units the acting user may see are
written (``Unit.objects.visible_to``): their own subtree and the chain of units above it.
"""

from __future__ import annotations

import csv
import io
import re

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record
from kehu.core.errors import NotAllowed, ServiceError
from kehu.org.imports import FORMULA_START, UNIT_COLUMNS
from kehu.org.models import Unit

EXPORT_FORMATS = ("csv", "xlsx")


def _may_export(user) -> bool:
    return user is not None and (user.can(Capability.EXPORT_UNITS) or user.can(Capability.MANAGE_UNITS))


def _csv_cell(text: str) -> str:
    # Spreadsheets run cells starting with = + - @ as formulas; a leading apostrophe keeps them text.
    # The import takes the apostrophe off again.
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv_bytes(rows: list[tuple[str, ...]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(UNIT_COLUMNS))
    writer.writerows([_csv_cell(c) for c in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8


def _xlsx_bytes(rows: list[tuple[str, ...]]) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        out, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
              "strings_to_urls": False},
    )  # fmt: skip
    sheet = workbook.add_worksheet("units")
    bold = workbook.add_format({"bold": True})
    text = workbook.add_format({"num_format": "@"})  # division codes stay text when edited
    for col, name in enumerate(UNIT_COLUMNS):
        sheet.write_string(0, col, name, bold)
    widths = [len(name) for name in UNIT_COLUMNS]
    for r, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            sheet.write_string(r, col, value, text)
            widths[col] = max(widths[col], len(value) * (2 if not value.isascii() else 1))
    for col, width in enumerate(widths):
        sheet.set_column(col, col, min(width + 2, 60), text)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(rows), 1), len(UNIT_COLUMNS) - 1)
    workbook.close()
    return out.getvalue()


def units_export(*, acting_user, fmt: str, within: Unit | None = None) -> tuple[str, bytes, int]:
    """The visible units (below ``within`` when given) as a file: (suggested filename, content, count)."""
    if not _may_export(acting_user):
        raise NotAllowed(_("You may not export the organisation."))
    if fmt not in EXPORT_FORMATS:
        raise ServiceError(_("Export as csv or xlsx, not “%(f)s”.") % {"f": fmt}, field="format")
    units = Unit.objects.visible_to(acting_user)
    if within is not None:
        if not units.filter(pk=within.pk).exists():
            raise ServiceError(_("No such unit."), field="within")
        units = units.subtree_of(within)
    rows = [
        tuple(v or "" for v in values)
        for values in units.order_by("path").values_list(
            "code", "name", "unit_type__code", "parent__code", "division_code"
        )
    ]
    content = _csv_bytes(rows) if fmt == "csv" else _xlsx_bytes(rows)
    stem = "units" if within is None else "units-" + re.sub(r"[^\w.-]+", "_", within.code)
    filename = f"{stem}-{timezone.localdate():%Y%m%d}.{fmt}"
    with transaction.atomic():
        audit_record(
            actor=acting_user, action="unit.export", object_type="org.unit",
            object_id=within.pk if within is not None else "",
            object_repr=str(within) if within is not None else "",
            extra={"format": fmt, "count": len(rows), "within": within.code if within is not None else None},
        )  # fmt: skip
    return filename, content, len(rows)
