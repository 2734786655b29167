"""Exporting the customer list, its contacts and its agreements (``kehu export KIND FILE``, the list page's
export menu, background export jobs).

Each kind writes the columns of its import format (``kehu.customers.imports``: ``CUSTOMER_COLUMNS``,
``CONTACT_COLUMNS``, ``AGREEMENT_COLUMNS``) with the English headers, so an export imports back
unchanged. The rows are those of the customers the acting user may see that the filter lets through
(``customer_search``: the customer list's scope, search and filters), in the list's order; contacts and
agreements follow their customer's place in that order. Phones and ID card numbers are always masked.

Nothing holds the whole list: customers are read with ``.iterator()`` a chunk at a time (their phones,
contacts or agreements one query per chunk); CSV is written row by row (to a file or, on the web, a
streaming response); XLSX through xlsxwriter's ``constant_memory`` mode into a file. Every export is
audited with its row count and the filter (``CustomerFilters.describe()``).

A web XLSX export of more than ``BACKGROUND_XLSX_ROWS`` rows runs as a background job instead
(``export_job_submit``; the job kinds live in ``kehu.customers.jobs``), whose file only its starter can
download (``export_job_file``) until the jobs' clean-up removes it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kehu.audit.services import audit_record
from kehu.core.context import current_context, request_context
from kehu.core.crypto import mask_id_card, mask_phone
from kehu.core.errors import NotAllowed, ServiceError
from kehu.core.tabular import csv_cell
from kehu.customers.imports import AGREEMENT_COLUMNS, CONTACT_COLUMNS, CUSTOMER_COLUMNS
from kehu.customers.models import Agreement, Contact, CustomerPhone
from kehu.customers.selectors import CustomerFilters, capped_count, customer_search

EXPORT_FORMATS = ("csv", "xlsx")
EXPORT_COLUMNS = tuple(CUSTOMER_COLUMNS)
CHUNK = 2000
XLSX_MAX_ROWS = 1_048_575  # a worksheet's rows, less the header
# A web XLSX export of more rows than this is written by a background job, not inside the request.
BACKGROUND_XLSX_ROWS = 20_000
PROGRESS_EVERY = 1000  # rows between two progress reports of an export job
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


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _customer_chunks(viewer, filters: CustomerFilters, *fields: str) -> Iterator[list[tuple]]:
    """The visible, filtered customers in list order, ``CHUNK`` rows of ``fields`` at a time."""
    iterator = customer_search(viewer=viewer, filters=filters).values_list(*fields).iterator(chunk_size=CHUNK)
    while True:
        chunk = list(islice(iterator, CHUNK))
        if not chunk:
            return
        yield chunk


# ---------------------------------------------------------------------------------------------------
# The rows of each kind


def customer_export_rows(*, viewer, filters: CustomerFilters) -> Iterator[list[str]]:
    """The customers export's rows (without the header), masked, in the list's order, a chunk at a time."""
    for chunk in _customer_chunks(viewer, filters, *_VALUES, "id_number"):
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


_CONTACT_VALUES = ("pk", "customer_id", "name", "title", "decision_role", "birthday", "preferences", "relations",
                   "notes")  # fmt: skip


def contact_export_rows(*, viewer, filters: CustomerFilters) -> Iterator[list[str]]:
    """The contacts export's rows: the contacts of the visible, filtered customers, in the list's order of
    their customers and by name within one customer; their own phones masked."""
    for chunk in _customer_chunks(viewer, filters, "pk", "code"):
        place = {pk: i for i, (pk, _code) in enumerate(chunk)}
        codes = dict(chunk)
        contacts = list(
            Contact.objects.filter(customer_id__in=codes).order_by().values_list(*_CONTACT_VALUES)
        )
        if not contacts:
            continue
        contacts.sort(key=lambda c: (place[c[1]], c[2], c[0]))
        phones: dict[int, list[str]] = {}
        numbers = (
            CustomerPhone.objects.filter(customer_id__in=codes, contact__isnull=False)
            .order_by("pk")
            .values_list("contact_id", "number")
        )
        for contact_id, number in numbers:
            phones.setdefault(contact_id, []).append(mask_phone(number))
        for pk, customer_id, name, title, role, birthday, preferences, relations, notes in contacts:
            yield [
                codes[customer_id], name, title, role, ";".join(phones.get(pk, ())),
                birthday.isoformat() if birthday else "", preferences, relations, notes,
            ]  # fmt: skip


_AGREEMENT_VALUES = ("pk", "customer_id", "number", "signing_level", "start_date", "end_date", "agreement_type",
                     "status", "signing_unit_id", "parties")  # fmt: skip


def agreement_export_rows(*, viewer, filters: CustomerFilters) -> Iterator[list[str]]:
    """The agreements export's rows: the agreements of the visible, filtered customers, in the list's order
    of their customers and by start date within one customer.

    The signing unit's code is written when the viewer may see that unit; otherwise the cell stays
    empty (the code of a unit outside the viewer's scope is not theirs to read, and an empty cell is
    no change when the file is imported again).
    """
    from kehu.org.models import Unit

    unit_codes: dict[int, str] = {}  # visible signing units met so far, by id ("" when out of sight)
    for chunk in _customer_chunks(viewer, filters, "pk", "code"):
        place = {pk: i for i, (pk, _code) in enumerate(chunk)}
        codes = dict(chunk)
        agreements = list(
            Agreement.objects.filter(customer_id__in=codes).order_by().values_list(*_AGREEMENT_VALUES)
        )
        if not agreements:
            continue
        agreements.sort(key=lambda a: (place[a[1]], a[4], a[2], a[0]))
        unknown = {a[8] for a in agreements if a[8] is not None and a[8] not in unit_codes}
        if unknown:
            unit_codes.update(dict.fromkeys(unknown, ""))
            unit_codes.update(
                Unit.objects.visible_to(viewer).filter(pk__in=unknown).values_list("pk", "code")
            )
        for _pk, customer_id, number, level, start, end, kind, status, unit_id, parties in agreements:
            yield [
                codes[customer_id], number, level, start.isoformat(), end.isoformat() if end else "", kind,
                status, unit_codes.get(unit_id, "") if unit_id is not None else "", parties,
            ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The kinds


@dataclass(frozen=True)
class ExportKind:
    name: str  # customers, contacts, agreements: also the file name's start and the XLSX sheet's name
    columns: tuple[str, ...]  # the import format's columns, English headers
    rows: Callable[..., Iterator[list[str]]]  # rows(viewer=, filters=)
    action: str  # the audit trail's action
    object_type: str
    too_many: str | Promise  # the message when more rows than an XLSX sheet holds, with %(n)s
    wide: tuple[str, ...] = ()  # columns given a wide XLSX column
    medium: tuple[str, ...] = ()


EXPORT_KINDS: dict[str, ExportKind] = {
    "customers": ExportKind(
        name="customers", columns=EXPORT_COLUMNS, rows=customer_export_rows, action="customer.export",
        object_type="customers.customer",
        too_many=gettext_lazy("More than %(n)s customers do not fit in one XLSX sheet; export CSV or narrow the "
                              "filter."),
        wide=("name", "address", "notes", "business_scope"), medium=("code", "credit_code", "phone", "id_number"),
    ),
    "contacts": ExportKind(
        name="contacts", columns=tuple(CONTACT_COLUMNS), rows=contact_export_rows, action="contact.export",
        object_type="customers.contact",
        too_many=gettext_lazy("More than %(n)s contacts do not fit in one XLSX sheet; export CSV or narrow the "
                              "filter."),
        wide=("preferences", "relations", "notes"), medium=("customer_code", "name", "title", "phone"),
    ),
    "agreements": ExportKind(
        name="agreements", columns=tuple(AGREEMENT_COLUMNS), rows=agreement_export_rows,
        action="agreement.export", object_type="customers.agreement",
        too_many=gettext_lazy("More than %(n)s agreements do not fit in one XLSX sheet; export CSV or narrow the "
                              "filter."),
        wide=("parties",), medium=("customer_code", "number", "signing_unit_code"),
    ),
}  # fmt: skip


def _kind(what: str) -> ExportKind:
    try:
        return EXPORT_KINDS[what]
    except KeyError:
        raise ServiceError(
            _("Export customers, contacts or agreements, not “%(w)s”.") % {"w": what}, field="what"
        ) from None


def export_filename(fmt: str, what: str = "customers") -> str:
    return f"{_kind(what).name}-{timezone.localdate():%Y%m%d}.{fmt}"


def export_row_count(*, viewer, what: str, filters: CustomerFilters, cap: int) -> tuple[int, bool]:
    """How many rows the export would write, counting no further than ``cap``: (count, more_than_cap).

    The customer list is counted first, as the list counts it (``capped_count``, through the path
    index); contacts and agreements, where the list itself is not over the cap, then by their own rows.
    """
    kind = _kind(what)
    customers = customer_search(viewer=viewer, filters=filters, path_index=True)
    count, more = capped_count(customers, cap=cap)
    if kind.name == "customers" or more:
        return count, more
    model = Contact if kind.name == "contacts" else Agreement
    return capped_count(model.objects.filter(customer__in=customers.order_by().values("pk")), cap=cap)


# ---------------------------------------------------------------------------------------------------
# Writing


def _audit(acting_user, kind: ExportKind, *, fmt: str, count: int, filters: CustomerFilters,
           complete: bool = True) -> None:  # fmt: skip
    with transaction.atomic():
        audit_record(
            actor=acting_user, action=kind.action, object_type=kind.object_type,
            extra={"format": fmt, "count": count, "filter": filters.describe(), "complete": complete},
        )  # fmt: skip


def _counted(rows: Iterator[list[str]], progress: Callable[[int], None] | None) -> Iterator[list[str]]:
    """The rows as they are, reporting ``progress(rows so far)`` every PROGRESS_EVERY rows."""
    if progress is None:
        yield from rows
        return
    for n, row in enumerate(rows, start=1):
        yield row
        if n % PROGRESS_EVERY == 0:
            progress(n)


def _write_csv(kind: ExportKind, rows, out) -> int:
    """CSV into a binary file: UTF-8 with a BOM (Excel reads it right), CRLF line ends."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(kind.columns)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
        count += 1
    text.flush()
    text.detach()  # leave ``out`` open for the caller
    return count


def _write_xlsx(kind: ExportKind, rows, out) -> int:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        out, {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
              "strings_to_urls": False},
    )  # fmt: skip
    sheet = workbook.add_worksheet(kind.name)
    bold = workbook.add_format({"bold": True})
    text = workbook.add_format({"num_format": "@"})  # codes and numbers stay text when edited
    for col, name in enumerate(kind.columns):
        width = 30 if name in kind.wide else 16 if name in kind.medium else 12
        sheet.set_column(col, col, width, text)
    for col, name in enumerate(kind.columns):
        sheet.write_string(0, col, name, bold)
    sheet.freeze_panes(1, 0)
    count = 0
    for count, row in enumerate(rows, start=1):
        if count > XLSX_MAX_ROWS:
            workbook.close()
            raise ServiceError(str(kind.too_many) % {"n": f"{XLSX_MAX_ROWS:,}"}, field="format")
        for col, value in enumerate(row):
            if value:
                sheet.write_string(count, col, value, text)
    sheet.autofilter(0, 0, max(count, 1), len(kind.columns) - 1)
    workbook.close()
    return count


def records_export(*, what: str, acting_user, fmt: str, out, filters: CustomerFilters | None = None,
                   progress: Callable[[int], None] | None = None, **filter_fields) -> int:  # fmt: skip
    """Write the ``what`` (customers, contacts or agreements) export of the visible customers that
    ``filters`` (or the filter fields) let through into the binary file ``out`` as CSV or XLSX; audited
    with the count and the filter. ``progress(rows so far)`` is called now and then. Returns the rows."""
    kind = _kind(what)
    _check(acting_user, fmt)
    filters = filters or CustomerFilters(**{k: v for k, v in filter_fields.items() if v is not None})
    rows = _counted(kind.rows(viewer=acting_user, filters=filters), progress)
    count = _write_csv(kind, rows, out) if fmt == "csv" else _write_xlsx(kind, rows, out)
    _audit(acting_user, kind, fmt=fmt, count=count, filters=filters)
    return count


def customers_export(
    *, acting_user, fmt: str, out, filters: CustomerFilters | None = None, **filter_fields
) -> int:
    """The customers export (see ``records_export``)."""
    return records_export(what="customers", acting_user=acting_user, fmt=fmt, out=out, filters=filters,
                          **filter_fields)  # fmt: skip


def contacts_export(
    *, acting_user, fmt: str, out, filters: CustomerFilters | None = None, **filter_fields
) -> int:
    """The contacts of the visible, filtered customers, in the contacts import format (phones masked)."""
    return records_export(what="contacts", acting_user=acting_user, fmt=fmt, out=out, filters=filters,
                          **filter_fields)  # fmt: skip


def agreements_export(*, acting_user, fmt: str, out, filters: CustomerFilters | None = None,
                      **filter_fields) -> int:  # fmt: skip
    """The agreements of the visible, filtered customers, in the agreements import format."""
    return records_export(what="agreements", acting_user=acting_user, fmt=fmt, out=out, filters=filters,
                          **filter_fields)  # fmt: skip


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


def export_csv_stream(
    *, what: str, acting_user, filters: CustomerFilters, rows_per_chunk: int = 500
) -> Iterator[bytes]:
    """The CSV export of ``what`` as a stream of byte chunks for a streaming response (nothing held whole).

    The permission is checked at once; the audit event is written when the stream ends, with the
    number of rows sent — also when the client goes away half-way (``complete: false``).
    """
    kind = _kind(what)
    _check(acting_user, "csv")
    context = current_context()  # the request's, gone by the time the response streams

    def stream() -> Iterator[bytes]:
        sink = _Lines()
        writer = csv.writer(sink, lineterminator="\r\n")
        writer.writerow(kind.columns)
        yield "\ufeff".encode() + sink.take()
        count, complete = 0, False
        try:
            for row in kind.rows(viewer=acting_user, filters=filters):
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
                _audit(acting_user, kind, fmt="csv", count=count, filters=filters, complete=complete)

    return stream()


def customers_export_csv_stream(
    *, acting_user, filters: CustomerFilters, rows_per_chunk: int = 500
) -> Iterator[bytes]:
    """The customers CSV export as a stream (see ``export_csv_stream``)."""
    return export_csv_stream(what="customers", acting_user=acting_user, filters=filters,
                             rows_per_chunk=rows_per_chunk)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Export jobs: the filter travels as ids and is looked up again, in the starter's scope, when it runs


def filters_to_params(filters: CustomerFilters) -> dict:
    """The filter as JSON-able values (the unit, sub-type and manager by id) for a job's parameters."""
    return {
        "q": filters.q, "within": getattr(filters.within, "pk", None), "kind": filters.kind,
        "sub_type": getattr(filters.sub_type, "pk", None), "status": filters.status,
        "manager": getattr(filters.manager, "pk", None), "tag": filters.tag, "order": filters.order,
    }  # fmt: skip


def filters_from_params(*, viewer, data: dict) -> CustomerFilters:
    """The filter of ``filters_to_params`` again. A unit or manager no longer in the viewer's scope (or a
    sub-type since deleted) is refused: dropping it would export more than was asked for."""
    from kehu.accounts.models import User
    from kehu.customers.models import CustomerSubType
    from kehu.org.models import Unit

    def look_up(queryset, pk, message):
        if pk is None:
            return None
        found = queryset.filter(pk=pk).first()
        if found is None:
            raise ServiceError(message, field="filter")
        return found

    return CustomerFilters(
        q=str(data.get("q") or ""),
        within=look_up(Unit.objects.visible_to(viewer), data.get("within"),
                       _("The unit this export was filtered by is no longer in your scope.")),
        kind=str(data.get("kind") or ""),
        sub_type=look_up(CustomerSubType.objects.all(), data.get("sub_type"),
                         _("The customer sub-type this export was filtered by no longer exists.")),
        status=str(data.get("status") or ""),
        manager=look_up(User.objects.visible_to(viewer), data.get("manager"),
                        _("The manager this export was filtered by is no longer in your scope.")),
        tag=str(data.get("tag") or ""),
        order=str(data.get("order") or "code"),
    )  # fmt: skip


def export_job_kind(what: str) -> str:
    return f"{_kind(what).name}_export"


EXPORT_JOB_KINDS = {f"{name}_export": name for name in EXPORT_KINDS}


def export_job_submit(*, acting_user, what: str, fmt: str, filters: CustomerFilters):
    """Start a background job writing the export of ``what`` as ``fmt`` (see ``kehu.customers.jobs``).

    The same export asked for again while an earlier one of the same person is still waiting or running
    (a second click) is that earlier job.
    """
    from kehu.jobs.models import Job, JobStatus
    from kehu.jobs.services import job_submit

    kind = _kind(what)
    _check(acting_user, fmt)
    params = {"what": kind.name, "format": fmt, "filter": filters_to_params(filters)}
    running = (
        Job.objects.visible_to(acting_user)
        .filter(kind=export_job_kind(what), status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
        .order_by("-created_at")[:20]
    )
    for job in running:
        if job.params == params:
            return job
    return job_submit(acting_user=acting_user, kind=export_job_kind(what), params=params,
                      filename=export_filename(fmt, kind.name))  # fmt: skip


def export_job_file(*, acting_user, job):
    """The file an export job wrote, open for reading, for the job's starter (the caller found the job
    through ``visible_to``); the download is audited. Raises NotAllowed for a person whose roles no
    longer reach customers, ServiceError when the job has no file (any more)."""
    from kehu.jobs.services import job_result_file_open

    if job.kind not in EXPORT_JOB_KINDS:
        raise ServiceError(_("This job wrote no export."))
    if not may_export_customers(acting_user):
        raise NotAllowed(_("Your roles give you no customers to export."))
    return job_result_file_open(acting_user=acting_user, job=job)
