"""Exporting the customer list (``kehu export customers FILE``, the list page's export button).

The file has the columns of ``kehu.customers.imports.CUSTOMER_COLUMNS`` with the English headers, one
row per customer the acting user may see and the filter lets through (``customer_search``), in the
list's order, so an export imports back unchanged. Phones and ID card numbers are always masked.

Nothing holds the whole list: customers are read with ``.iterator()`` a chunk at a time (their
phones one query per chunk); CSV is written row by row (to a file or, on the web, a streaming
response); XLSX through xlsxwriter's ``constant_memory`` mode into a temporary file. Every export is
audited with its row count and the filter (``CustomerFilters.describe()``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from itertools import islice

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.audit.services import audit_record
from kehu.core.context import current_context, request_context
from kehu.core.crypto import mask_id_card, mask_phone
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.tabular import csv_cell
from kehu.customers.imports import CUSTOMER_COLUMNS
from kehu.customers.models import CustomerPhone
from kehu.customers.selectors import CustomerFilters, customer_search

EXPORT_FORMATS = ("csv", "xlsx")
EXPORT_COLUMNS = tuple(CUSTOMER_COLUMNS)
CHUNK = 2000
XLSX_MAX_ROWS = 1_048_575  # a worksheet's rows, less the header
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# The database columns behind the export's columns (phones and the ID number are added per chunk).
_VALUES = (
    "pk", "code", "name", "kind", "owning_unit__code", "division_code", "credit_code", "address", "short_name",
    "sub_type__code", "legal_representative", "status", "payment_profile", "lead_manager__username",
    "backup_manager__username", "tags", "notes", "latitude", "longitude", "business_scope", "floor_area",
    "parent__code",
)  # fmt: skip


def may_export_customers(user) -> bool:
    """Anyone whose roles reach customers (a data scope); administrators hold none."""
    return user is not None and user.is_authenticated and user.is_active and bool(user.data_scopes())


def _check(acting_user, fmt: str) -> None:
    if not may_export_customers(acting_user):
        raise NotAllowed(_("Your roles give you no customers to export."))
    if fmt not in EXPORT_FORMATS:
        raise ServiceError(_("Export as csv or xlsx, not “%(f)s”.") % {"f": fmt}, field="format")


def export_filename(fmt: str) -> str:
    return f"customers-{timezone.localdate():%Y%m%d}.{fmt}"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def customer_export_rows(*, viewer, filters: CustomerFilters) -> Iterator[list[str]]:
    """The export's rows (without the header), masked, in the list's order, a chunk at a time."""
    rows = customer_search(viewer=viewer, filters=filters).values_list(*_VALUES, "id_number")
    iterator = rows.iterator(chunk_size=CHUNK)
    while True:
        chunk = list(islice(iterator, CHUNK))
        if not chunk:
            return
        phones: dict[int, list[str]] = {}
        numbers = (
            CustomerPhone.objects.filter(customer_id__in=[row[0] for row in chunk], contact__isnull=True)
            .order_by("pk")
            .values_list("customer_id", "number")
        )
        for customer_id, number in numbers:
            phones.setdefault(customer_id, []).append(mask_phone(number))
        for row in chunk:
            values = dict(zip(_VALUES, row, strict=False))
            id_number = row[-1]
            yield [
                values["code"], values["name"], values["kind"], _text(values["owning_unit__code"]),
                values["division_code"], values["credit_code"], ";".join(phones.get(row[0], ())),
                values["address"], values["short_name"], _text(values["sub_type__code"]),
                values["legal_representative"], mask_id_card(id_number) if id_number else "", values["status"],
                values["payment_profile"], _text(values["lead_manager__username"]),
                _text(values["backup_manager__username"]), _text(values["tags"]), values["notes"],
                _text(values["latitude"]), _text(values["longitude"]), values["business_scope"],
                _text(values["floor_area"]), _text(values["parent__code"]),
            ]  # fmt: skip


def _audit(acting_user, *, fmt: str, count: int, filters: CustomerFilters, complete: bool = True) -> None:
    with transaction.atomic():
        audit_record(
            actor=acting_user, action="customer.export", object_type="customers.customer",
            extra={"format": fmt, "count": count, "filter": filters.describe(), "complete": complete},
        )  # fmt: skip


def _write_csv(rows, out) -> int:
    """CSV into a binary file: UTF-8 with a BOM (Excel reads it right), CRLF line ends."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
        count += 1
    text.flush()
    text.detach()  # leave ``out`` open for the caller
    return count


def _write_xlsx(rows, out) -> int:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        out, {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
              "strings_to_urls": False},
    )  # fmt: skip
    sheet = workbook.add_worksheet("customers")
    bold = workbook.add_format({"bold": True})
    text = workbook.add_format({"num_format": "@"})  # codes and numbers stay text when edited
    for col, name in enumerate(EXPORT_COLUMNS):
        width = 16 if name in ("code", "credit_code", "phone", "id_number") else 12
        width = 30 if name in ("name", "address", "notes", "business_scope") else width
        sheet.set_column(col, col, width, text)
    for col, name in enumerate(EXPORT_COLUMNS):
        sheet.write_string(0, col, name, bold)
    sheet.freeze_panes(1, 0)
    count = 0
    for count, row in enumerate(rows, start=1):
        if count > XLSX_MAX_ROWS:
            workbook.close()
            raise ServiceError(
                _("More than %(n)s customers do not fit in one XLSX sheet; export CSV or narrow the filter.")
                % {"n": f"{XLSX_MAX_ROWS:,}"}, field="format",
            )  # fmt: skip
        for col, value in enumerate(row):
            if value:
                sheet.write_string(count, col, value, text)
    sheet.autofilter(0, 0, max(count, 1), len(EXPORT_COLUMNS) - 1)
    workbook.close()
    return count


def customers_export(
    *, acting_user, fmt: str, out, filters: CustomerFilters | None = None, **filter_fields
) -> int:
    """Write the visible customers that ``filters`` (or the filter fields) let through into the binary
    file ``out`` as CSV or XLSX; audited with the count and the filter. Returns the number of rows."""
    _check(acting_user, fmt)
    filters = filters or CustomerFilters(**{k: v for k, v in filter_fields.items() if v is not None})
    rows = customer_export_rows(viewer=acting_user, filters=filters)
    count = _write_csv(rows, out) if fmt == "csv" else _write_xlsx(rows, out)
    _audit(acting_user, fmt=fmt, count=count, filters=filters)
    return count


class _Lines:
    """A file-like sink that hands back what csv.writer wrote since the last call."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        return data


def customers_export_csv_stream(
    *, acting_user, filters: CustomerFilters, rows_per_chunk: int = 500
) -> Iterator[bytes]:
    """The CSV export as a stream of byte chunks for a streaming response (nothing held whole).

    The permission is checked at once; the audit event is written when the stream ends, with the
    number of rows sent — also when the client goes away half-way (``complete: false``).
    """
    _check(acting_user, "csv")
    context = current_context()  # the request's, gone by the time the response streams

    def stream() -> Iterator[bytes]:
        sink = _Lines()
        writer = csv.writer(sink, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        yield "\ufeff".encode() + sink.take()
        count, complete = 0, False
        try:
            for row in customer_export_rows(viewer=acting_user, filters=filters):
                writer.writerow([csv_cell(c) for c in row])
                count += 1
                if count % rows_per_chunk == 0:
                    yield sink.take()
            rest = sink.take()
            if rest:
                yield rest
            complete = True
        finally:
            with request_context(ip=context.ip, user_agent=context.user_agent, channel=context.channel):
                _audit(acting_user, fmt="csv", count=count, filters=filters, complete=complete)

    return stream()
