"""The results of a monthly close as a file: one row per customer, ``customer_code``, one column per
exported output of the policy (named as in the policy), then ``explanation``. Booleans are written
``true`` / ``false``; an output that does not apply is empty. Scoped like the close itself."""

from __future__ import annotations

from datetime import date

import polars as pl
from django.db.models import Q
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError, require
from kehu.core.frames import frame_from_queryset
from kehu.policies.close import close_reach
from kehu.policies.language import policy_parse
from kehu.policies.models import CloseResult, CloseRun, CloseStatus

XLSX_MAX_ROWS = 1_048_575


def close_results_frame(*, acting_user, month: date, extra: Q | None = None) -> tuple[pl.DataFrame, list]:
    """(frame, exported outputs): the month's results the user reaches, ordered by customer code."""
    from kehu.customers.models import Customer

    month = month.replace(day=1)
    run = CloseRun.objects.filter(month=month, status=CloseStatus.SUCCEEDED).select_related("policy").first()
    if run is None:
        raise ServiceError(_("%(m)s has not been closed yet (kehu close %(m)s).") % {"m": f"{month:%Y-%m}"},
                           field="month")  # fmt: skip
    parsed = policy_parse(run.policy.document)
    outputs = [o for o in parsed.outputs if o.export]
    reach = close_reach(acting_user)
    if extra is not None:
        reach &= extra
    queryset = (
        CloseResult.objects.filter(month=month, customer__in=Customer.objects.filter(reach).values("pk"))
        .order_by("customer__code")
        .values_list("customer__code", "outputs", "explanation")
    )
    frame = frame_from_queryset(
        queryset, {"customer_code": pl.Utf8, "outputs": pl.Utf8, "explanation": pl.Utf8}
    )
    return frame, outputs


JSON_TYPES = {
    "choice": pl.Utf8,
    "boolean": pl.Boolean,
    "points": pl.Int64,
    "integer": pl.Int64,
    "number": pl.Utf8,
}


def _cells(frame: pl.DataFrame, outputs: list) -> pl.DataFrame:
    """Output values as the file shows them, decoded from each row's JSON (vectorised)."""
    names = [o.name for o in outputs]
    if frame.height == 0:
        return pl.DataFrame(
            schema={"customer_code": pl.Utf8, **{n: pl.Utf8 for n in names}, "explanation": pl.Utf8}
        )
    struct = pl.Struct([pl.Field(o.name, JSON_TYPES.get(o.type, pl.Utf8)) for o in outputs])
    decoded = frame.with_columns(pl.col("outputs").str.json_decode(struct)).unnest("outputs")
    cells = []
    for o in outputs:
        column = pl.col(o.name)
        if JSON_TYPES.get(o.type) == pl.Boolean:
            column = pl.when(column).then(pl.lit("true")).when(column.not_()).then(pl.lit("false"))
        cells.append(column.cast(pl.Utf8).fill_null("").alias(o.name))
    return decoded.select("customer_code", *cells, pl.col("explanation").fill_null(""))


def close_results_export(*, acting_user, fmt: str, out, month: date) -> int:
    """Write the month's results the user reaches into ``out`` (binary) as CSV or XLSX; the row count."""
    require(acting_user, Capability.RUN_CLOSE, _("You may not export close results."))
    frame, outputs = close_results_frame(acting_user=acting_user, month=month)
    table = _cells(frame, outputs)
    if fmt == "xlsx" and table.height > XLSX_MAX_ROWS:
        raise ServiceError(
            _("More than %(n)s rows do not fit in one XLSX sheet; export CSV.") % {"n": XLSX_MAX_ROWS}
        )
    if fmt == "csv":
        out.write(table.write_csv().encode("utf-8"))
    else:
        table.write_excel(out, worksheet=f"{month:%Y-%m}", autofit=False)
    audit_record(actor=acting_user, action="close.export", object_type="close_results", object_id=f"{month:%Y-%m}",
                 extra={"month": f"{month:%Y-%m}", "format": fmt, "rows": table.height})  # fmt: skip
    return table.height
