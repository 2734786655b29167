"""Importing sales: transactions (``kehu import transactions``) and monthly facts (``kehu import monthly-facts``).

Both read a CSV (UTF-8, UTF-8 with BOM, GBK/GB18030), Parquet or XLSX file from a PATH — a month of
transactions is tens of millions of rows, so nothing here goes row by row in Python: the file is parsed
and checked with Polars expressions, and Python only builds the messages of the rows that fail (at most
``MAX_ERRORS``). Formats: docs/import-formats.md; storage: docs/decisions/0007-sales-facts-storage.md.

All-or-nothing: any row error and nothing is written. Idempotent:

* **transactions** are aggregated per customer, month and product and *added* to the source's facts.
  Each (source, month) keeps a ledger of the transaction ids already counted with a hash of their content
  (``with_content_hash``): an id seen before with the same content is a duplicate (skipped, counted), with
  other content an error. The same id twice in one file counts once, or is an error when the two
  differ.
* **monthly facts** *replace*, for their source and for the customers in the importer's scope, every
  month the file contains; rows equal to what is stored change nothing, and a month where nothing
  changed keeps its version.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath

import polars as pl
from django.db import connection, transaction
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError, require
from kehu.core.tabular import RowError, check_size, map_header, read_table
from kehu.customers.models import Customer, RetiredCustomerCode
from kehu.metrics import storage
from kehu.metrics.models import BatchKind, FactBatch, Product, TransactionLedger
from kehu.metrics.services import lock_month, write_month_facts
from kehu.metrics.storage import FileSwap
from kehu.org.models import Unit

MAX_ERRORS = 10_000
AMOUNT_DECIMALS = 2
ROW = "__kehu_row"  # the row number column while the file's own columns are around (one may be "row")
SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

TRANSACTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "txn_id": ("txn_id", "交易号", "交易编号", "流水号"),
    "customer_code": ("customer_code", "客户编码"),
    "date": ("date", "日期", "交易日期"),
    "product": ("product", "产品", "产品编码"),
    "quantity": ("quantity", "数量"),
    "amount": ("amount", "金额"),
    "unit_code": ("unit_code", "单位编码"),
}
TRANSACTION_REQUIRED = ("txn_id", "customer_code", "date", "product", "quantity", "amount")
MONTHLY_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_code": ("customer_code", "客户编码"),
    "month": ("month", "月份"),
    "product": ("product", "产品", "产品编码"),
    "quantity": ("quantity", "数量"),
    "amount": ("amount", "金额"),
    "txn_count": ("txn_count", "笔数"),
}
MONTHLY_REQUIRED = ("customer_code", "month", "product", "quantity", "amount")


@dataclass
class FactsImportResult:
    """What a sales import did (or, in a dry run, would do). ``errors`` are RowErrors."""

    kind: str
    source: str
    rows: int = 0
    new: int = 0  # transactions counted now
    duplicates: int = 0  # transactions already counted (earlier import, or earlier in the file)
    facts_written: int = 0
    facts_unchanged: int = 0
    facts_deleted: int = 0
    months: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0  # all the errors found; ``errors`` holds at most MAX_ERRORS of them
    dry_run: bool = False
    batch_id: int | None = None
    warnings: list = field(default_factory=list)  # the import command's interface; sales imports have none
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for the benchmark

    def lap(self, stage: str) -> None:
        """Record the seconds since the previous lap under ``stage``."""
        now = time.perf_counter()
        self.timings[stage] = round(now - getattr(self, "_last", now), 3)
        self._last = now

    @property
    def ok(self) -> bool:
        return not self.errors

    needs_reason = False

    def summary(self) -> dict[str, object]:
        counts: dict[str, object] = {"rows": self.rows}
        if self.kind == BatchKind.TRANSACTIONS:
            counts.update(new=self.new, duplicates=self.duplicates)
        counts.update(facts_written=self.facts_written, unchanged=self.facts_unchanged)
        if self.kind == BatchKind.MONTHLY_FACTS:
            counts["facts_deleted"] = self.facts_deleted
        counts["months"] = list(self.months)
        return counts

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind, "source": self.source, "ok": self.ok, "dry_run": self.dry_run,
            "needs_reason": False, "batch_id": self.batch_id, **self.summary(),
            "errors": [e.as_dict() for e in self.errors], "error_count": self.error_count or len(self.errors),
            "warning_list": [],
        }  # fmt: skip


class _Problems:
    def __init__(self):
        self.errors: list[RowError] = []
        self.count = 0

    def add(self, row: int, column: str, value: str, message: str) -> None:
        self.count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(row, column, value, message))


# ---------------------------------------------------------------------------------------------------
# Reading the file into text columns


def _is_utf8(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _csv_frame(path: Path) -> pl.LazyFrame:
    with path.open("rb") as handle:
        head = handle.read(1 << 22)
    if not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise ServiceError(_("The file is empty."), field="file")
    if b"\x00" in head:
        raise ServiceError(_("The file is not text (it contains NUL bytes); save it as CSV."), field="file")
    options = {
        "infer_schema": False,
        "truncate_ragged_lines": True,
        "row_index_name": ROW,
        "row_index_offset": 2,
    }
    if _is_utf8(head):
        source: Path | io.BytesIO = path
    else:
        # GBK / GB18030, as Excel saves a CSV on a Chinese Windows: such files are small enough to recode.
        try:
            text = path.read_bytes().decode("gb18030")
        except UnicodeDecodeError:
            raise ServiceError(
                _("The file is neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8."), field="file"
            ) from None
        source = io.BytesIO(text.encode("utf-8"))
    if isinstance(source, io.BytesIO):
        return pl.read_csv(source, **options).lazy()
    return pl.scan_csv(source, **options)


def _xlsx_frame(path: Path, filename: str) -> pl.LazyFrame:
    content = path.read_bytes()
    check_size(len(content))  # a workbook is loaded whole
    table = read_table(filename, content)
    (_header_row, header), body = table[0], table[1:]
    data: dict[str, list] = {ROW: [n for n, _cells in body]}
    for i, name in enumerate(header):
        key = name if name not in data else f"{name}\x00{i}"
        data[key] = [cells[i] if i < len(cells) else "" for _n, cells in body]
    return pl.DataFrame(data, schema={k: (pl.Int64 if k == ROW else pl.Utf8) for k in data}).lazy()


def _parquet_frame(path: Path) -> pl.LazyFrame:
    frame = pl.scan_parquet(path)
    names = frame.collect_schema().names()
    return frame.with_row_index(ROW, offset=2).select(
        pl.col(ROW).cast(pl.Int64), *[pl.col(n).cast(pl.Utf8) for n in names]
    )


def read_columns(path: Path, filename: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]):
    """The file as a LazyFrame of text columns named as in ``columns`` (absent optional columns are
    empty) plus ``row`` (as a spreadsheet numbers it: header = 1), and the header's errors."""
    suffix = PurePath(filename).suffix.lower()
    try:
        if suffix == ".csv":
            frame = _csv_frame(path)
        elif suffix == ".parquet":
            frame = _parquet_frame(path)
        elif suffix == ".xlsx":
            frame = _xlsx_frame(path, filename)
        else:
            raise ServiceError(
                _("Unsupported file type “%(s)s”: use .csv, .parquet or .xlsx.") % {"s": suffix or filename},
                field="file",
            )
        header = [n for n in frame.collect_schema().names() if n != ROW]
    except pl.exceptions.NoDataError:
        raise ServiceError(_("The file is empty."), field="file") from None
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise ServiceError(
            _("The file cannot be read: %(e)s") % {"e": str(exc).splitlines()[0]}, field="file"
        ) from None
    index, errors = map_header([h.split("\x00")[0] for h in header], columns, required=required)
    if errors:
        return None, errors
    # Cells are taken as they are, not trimmed: trimming every cell of 30,000,000 rows would cost more
    # than parsing them, and systems do not pad their exports (a cell with spaces is reported, not lost).
    picked = [pl.col(header[i]).alias(name) for name, i in index.items()]
    missing = [pl.lit(None, dtype=pl.Utf8).alias(name) for name in columns if name not in index]
    frame = frame.select(pl.col(ROW).cast(pl.Int64).alias("row"), *picked, *missing)
    # Rows with nothing in them are skipped, as a spreadsheet user would expect.
    frame = frame.filter(pl.any_horizontal([pl.col(n).is_not_null() for n in columns]))
    return frame.with_columns(pl.col(list(columns)).fill_null("")), []


# ---------------------------------------------------------------------------------------------------
# Parsing cells with Polars expressions

OK, EMPTY, NOT_NUMBER, NEGATIVE, TOO_MANY_DECIMALS = 0, 1, 2, 3, 4


def _fixed_point(column: str, digits: int, allowed: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """A decimal text as an exact integer × 10**digits, and a status (OK, EMPTY, NOT_NUMBER, …).

    No floating point on the way: the text is parsed as a Decimal (an integer scaled by 10**digits), so
    "0.1" is 100 milli exactly and fifty 0.1 t sum to 5.000 t. Decimals beyond ``allowed`` are an error,
    counted on the text (the Decimal would silently cut them).
    """
    text = pl.col(column)
    parsed = text.cast(pl.Decimal(18, digits), strict=False)
    dot = text.str.find(".", literal=True)
    decimals = (
        pl.when(dot.is_null()).then(pl.lit(0, dtype=pl.UInt32)).otherwise(text.str.len_bytes() - dot - 1)
    )
    value = parsed.to_physical().cast(pl.Int64)
    status = (
        pl.when(text == "").then(pl.lit(EMPTY))
        .when(parsed.is_null()).then(pl.lit(NOT_NUMBER))
        .when(value < 0).then(pl.lit(NEGATIVE))
        .when(decimals > allowed).then(pl.lit(TOO_MANY_DECIMALS))
        .otherwise(pl.lit(OK))
    )  # fmt: skip
    return value, status


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _mix(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """SplitMix64's finaliser on a UInt64 column (wrapping arithmetic): a stable, well-spread 64-bit mix.

    One step per ``with_columns`` on purpose: as a single expression each step would repeat the one
    before twice over, and the tree would double with every step.
    """
    x = pl.col(name)
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        frame = frame.with_columns((x.xor(x // _u64(1 << shift)) * _u64(factor)).alias(name))
    return frame.with_columns(x.xor(x // _u64(1 << 31)).alias(name))


def with_content_hash(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``content_hash``: a 64-bit hash of a transaction's content, the same in every Polars
    version (Polars' own ``hash`` may change between releases, and a ledger outlives upgrades).

    The content is customer, day, product, unit, quantity × 1000 and amount in fen, packed without loss
    into four 64-bit words (customer id < 2**42, day within ±2,800 years of 1970, product id < 2**31,
    unit id < 2**32), each folded in with SplitMix64's finaliser.
    """
    words = {
        "_w1": pl.col("customer_id") * (1 << 21) + (pl.col("day").cast(pl.Int32).cast(pl.Int64) + (1 << 20)),
        "_w2": pl.col("product_id") * (1 << 32) + pl.col("unit_id"),
        "_w3": pl.col("quantity_milli"),
        "_w4": pl.col("amount_fen"),
    }
    frame = frame.with_columns(
        _u64(0x9E3779B97F4A7C15).alias("content_hash"),
        *[expr.cast(pl.UInt64).alias(name) for name, expr in words.items()],
    )
    for name in words:
        frame = frame.with_columns(
            pl.col("content_hash").xor(pl.col(name) + _u64(0x632BE59BD9B4E019)).alias("content_hash")
        )
        frame = _mix(frame, "content_hash")
    return frame.drop(list(words))


# Ids are compared through Polars' own 64-bit hash of the text (joining and counting integers is several
# times faster than text over tens of millions of rows). That hash may change between Polars releases, so
# a ledger records the scheme its ``id_hash`` column was made with and is rehashed from its ids when the
# scheme differs. Together with the content hash the key is 128 bits wide; where only the id hash matches
# the text is compared.
RUN_SEED = 0x5EED
ID_HASH_SCHEME = f"polars-{pl.__version__}-{RUN_SEED}"


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    """Run the checks over the whole file; a file Polars cannot read to its end is the user's problem."""
    try:
        # The streaming engine reads and checks the file in pieces: less memory and, measured, faster.
        return frame.collect(engine="streaming")
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise ServiceError(
            _("The file cannot be read: %(e)s") % {"e": str(exc).splitlines()[0]}, field="file"
        ) from None


def _visible_customers(user) -> pl.DataFrame:
    """Code and id of every customer the importer may see (a customer out of scope is unknown to them)."""
    from kehu.customers.selectors import operations_scope_q

    # The system administrator imports for every customer from the console (without seeing them).
    queryset = Customer.objects.filter(operations_scope_q(user)).order_by().values_list("code", "pk")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return pl.DataFrame(rows, schema={"customer_code": pl.Utf8, "customer_id": pl.Int64}, orient="row")


def _catalogue() -> dict[str, Product]:
    return {p.code: p for p in Product.objects.all()}


def _parse_common(frame: pl.LazyFrame, customers: pl.DataFrame, products: dict[str, Product]) -> pl.LazyFrame:
    """Resolve the customer and product and parse quantity and amount (shared by both formats).

    Customer codes are 14 digits: joined as integers when every code in scope is one (several times
    faster than joining text over millions of rows), as text otherwise.
    """
    ids = {code: p.pk for code, p in products.items()}
    decimals = {p.pk: p.quantity_decimals for p in products.values()}
    active = {p.pk: p.active for p in products.values()}
    keys = customers.with_columns(pl.col("customer_code").cast(pl.Int64, strict=False).alias("customer_key"))
    if keys["customer_key"].null_count() == 0:
        code = pl.col("customer_code")
        frame = frame.with_columns(
            pl.when(code.str.len_bytes() == 14).then(code.cast(pl.Int64, strict=False)).alias("customer_key")
        ).join(keys.lazy().select("customer_key", "customer_id"), on="customer_key", how="left")
    else:
        frame = frame.join(customers.lazy(), on="customer_code", how="left")
    frame = frame.with_columns(
        pl.col("product").replace_strict(ids, default=None, return_dtype=pl.Int64).alias("product_id")
    ).with_columns(
        pl.col("product_id").replace_strict(decimals, default=0, return_dtype=pl.Int64).alias("allowed_decimals"),
        pl.col("product_id").replace_strict(active, default=False, return_dtype=pl.Boolean).alias("product_active"),
    )  # fmt: skip
    quantity, quantity_status = _fixed_point("quantity", 3, pl.col("allowed_decimals"))
    amount, amount_status = _fixed_point("amount", AMOUNT_DECIMALS, pl.lit(AMOUNT_DECIMALS))
    return frame.with_columns(
        quantity.alias("quantity_milli"), quantity_status.alias("quantity_status"),
        amount.alias("amount_fen"), amount_status.alias("amount_status"),
    )  # fmt: skip


def _common_bad() -> pl.Expr:
    return (
        pl.col("customer_id").is_null()
        | pl.col("product_id").is_null()
        | ~pl.col("product_active")
        | (pl.col("quantity_status") != OK)
        | (pl.col("amount_status") != OK)
    )


def _number_message(status: int, decimals: int) -> str:
    if status == EMPTY:
        return _("A value is required.")
    if status == NOT_NUMBER:
        return _("Not a number: write digits with an optional decimal point (12.5).")
    if status == NEGATIVE:
        return _("Must not be negative.")
    return _("At most %(n)d decimals.") % {"n": decimals}


def _common_errors(problems: _Problems, bad: pl.DataFrame, products: dict[str, Product]) -> None:
    """The messages for the customer, product, quantity and amount cells of the failing rows."""
    missing_codes = bad.filter(pl.col("customer_id").is_null())["customer_code"].unique().to_list()
    retired = set(
        RetiredCustomerCode.objects.filter(code__in=missing_codes[:MAX_ERRORS]).values_list("code", flat=True)
    )
    for r in bad.iter_rows(named=True):
        n = r["row"]
        code = r["customer_code"]
        if r["customer_id"] is None:
            if not code:
                problems.add(n, "customer_code", code, _("A customer code is required."))
            elif code in retired:
                problems.add(n, "customer_code", code, _("The customer “%(c)s” was merged into another; use the "
                                                         "surviving customer's code.") % {"c": code})  # fmt: skip
            else:
                problems.add(n, "customer_code", code, _("No customer with the code “%(c)s” within your scope.")
                             % {"c": code})  # fmt: skip
        if r["product_id"] is None:
            problems.add(n, "product", r["product"], _("Unknown product “%(p)s”; the catalogue has: %(list)s.")
                         % {"p": r["product"], "list": ", ".join(sorted(products)) or "—"})  # fmt: skip
        elif not r["product_active"]:
            problems.add(n, "product", r["product"], _("The product “%(p)s” is no longer sold (inactive).")
                         % {"p": r["product"]})  # fmt: skip
        if r["quantity_status"] != OK and not (
            r["quantity_status"] == TOO_MANY_DECIMALS and r["product_id"] is None
        ):
            problems.add(
                n, "quantity", r["quantity"], _number_message(r["quantity_status"], r["allowed_decimals"])
            )
        if r["amount_status"] != OK:
            problems.add(n, "amount", r["amount"], _number_message(r["amount_status"], AMOUNT_DECIMALS))


# ---------------------------------------------------------------------------------------------------
# Running an import


def _check_source(source: str) -> str:
    source = (source or "").strip()
    if not SOURCE_PATTERN.match(source):
        raise ServiceError(
            _("A source name is 1 to 32 lower-case letters, digits, “-” or “_” (e.g. pos, card, billing)."),
            field="source",
        )
    return source


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _sorted_errors(problems: _Problems, columns) -> list[RowError]:
    order = {name: i for i, name in enumerate(columns)}
    return sorted(problems.errors, key=lambda e: (e.row, order.get(e.field, 99)))[:MAX_ERRORS]


def _start(kind: str, acting_user, path, filename, source, dry_run):
    require(acting_user, Capability.IMPORT_SALES, _("Your roles do not allow importing sales."))
    path = Path(path)
    filename = PurePath(filename or path.name).name
    result = FactsImportResult(kind=kind, source=_check_source(source), dry_run=dry_run)
    return path, filename, result


def _finish_errors(result: FactsImportResult, problems: _Problems, columns) -> FactsImportResult:
    result.errors = _sorted_errors(problems, columns)
    result.error_count = problems.count
    result.new = result.duplicates = result.facts_written = result.facts_unchanged = result.facts_deleted = 0
    return result


def _run_writes(swap: FileSwap, write: Callable[[], None]) -> None:
    """Run ``write`` in one transaction; the new files go with it (see storage.FileSwap)."""
    try:
        with transaction.atomic():
            write()
            transaction.on_commit(swap.committed)
    except BaseException:
        swap.rolled_back()
        raise


def transactions_import(
    *,
    acting_user,
    path,
    filename: str = "",
    source: str = "default",
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FactsImportResult:
    """Check a transactions file and add its new transactions to the source's facts, all or nothing.

    Problems with the file itself raise ServiceError; problems with the header or rows come back in
    ``errors`` and nothing is written. ``dry_run`` checks and counts without writing.
    """
    path, filename, result = _start(BatchKind.TRANSACTIONS, acting_user, path, filename, source, dry_run)
    result.lap("start")
    source = result.source
    frame, header_errors = read_columns(path, filename, TRANSACTION_COLUMNS, TRANSACTION_REQUIRED)
    if header_errors:
        result.errors = header_errors
        return result
    products = _catalogue()
    units = dict(Unit.objects.values_list("code", "pk"))
    customers = _visible_customers(acting_user)
    result.lap("customers")
    frame = _parse_common(frame, customers, products).with_columns(
        pl.col("date").str.to_date("%Y-%m-%d", strict=False).alias("day"),
        pl.when(pl.col("unit_code") == "").then(pl.lit(0, dtype=pl.Int64))
        .otherwise(pl.col("unit_code").replace_strict(units, default=None, return_dtype=pl.Int64)).alias("unit_id"),
    )  # fmt: skip
    frame = frame.with_columns(
        (
            _common_bad() | pl.col("day").is_null() | pl.col("unit_id").is_null() | (pl.col("txn_id") == "")
        ).alias("bad")
    )
    checked = _collect(
        frame.select(
            "row",
            "txn_id",
            pl.col("txn_id").hash(RUN_SEED).alias("id_hash"),
            "customer_id",
            "day",
            "product_id",
            "quantity_milli",
            "amount_fen",
            "unit_id",
            "bad",
        )
    )
    result.rows = checked.height
    result.lap("read and check")
    if progress:
        progress(0, result.rows)
    if not result.rows:
        result.errors = [RowError(1, "", "", _("The file has a header but no transactions."))]
        return result
    problems = _Problems()
    bad_total = int(checked["bad"].sum())
    if bad_total:
        bad = frame.filter(pl.col("bad")).head(MAX_ERRORS).collect()
        _common_errors(problems, bad, products)
        for r in bad.iter_rows(named=True):
            n = r["row"]
            if not r["txn_id"]:
                problems.add(n, "txn_id", "", _("A transaction id is required."))
            if r["day"] is None:
                problems.add(n, "date", r["date"], _("Not a date: write YYYY-MM-DD (2026-10-31)."))
            if r["unit_id"] is None:
                problems.add(
                    n,
                    "unit_code",
                    r["unit_code"],
                    _("No unit with the code “%(c)s”.") % {"c": r["unit_code"]},
                )
        problems.count += bad_total - bad.height  # rows beyond the first MAX_ERRORS: counted only
    good = checked.filter(~pl.col("bad")) if bad_total else checked  # no copy of a clean file
    del checked
    good = with_content_hash(good.drop("bad")).with_columns(pl.col("day").dt.truncate("1mo").alias("month"))
    result.lap("hash")
    good, in_file_duplicates = _deduplicate(good, problems)
    result.lap("same id twice")
    result.months = sorted(f"{m:%Y-%m}" for m in good["month"].unique().to_list())
    if problems.count:
        return _finish_errors(result, problems, TRANSACTION_COLUMNS)

    swap = FileSwap()
    product_codes = {p.pk: code for code, p in products.items()}

    def write() -> None:
        batch = None
        if not dry_run:
            batch = FactBatch.objects.create(
                kind=BatchKind.TRANSACTIONS, source=source, file_name=filename, sha256=_sha256(path),
                months=result.months, rows_read=result.rows, created_by=acting_user,
            )  # fmt: skip
        result.duplicates = in_file_duplicates
        for month in sorted(good["month"].unique().to_list()):
            lock_month(month)  # one import of a month at a time
            part = good if len(result.months) == 1 else good.filter(pl.col("month") == month)
            ledger = TransactionLedger.objects.select_for_update().filter(source=source, month=month).first()
            seen = _ledger_frame(ledger)
            if seen is not None:
                keys = seen.select("id_hash", "content_hash").collect()
                # Same id hash and same content hash: counted before. (Semi and anti joins on two integers:
                # no row is repeated, however the ledger's hashes fall.)
                known = part.join(keys, on=["id_hash", "content_hash"], how="semi").height
                if known:
                    part = part.join(keys, on=["id_hash", "content_hash"], how="anti")
                result.duplicates += known
                # Same id hash, other content: the same id changed — or two ids share a hash (compare texts).
                suspects = part.join(keys.select("id_hash"), on="id_hash", how="semi")
                if suspects.height:
                    texts = seen.select("id_hash", pl.col("txn_id").alias("txn_id_seen")).collect()
                    changed = suspects.join(texts, on="id_hash").filter(
                        pl.col("txn_id") == pl.col("txn_id_seen")
                    )
                    for r in changed.unique("row").sort("row").head(MAX_ERRORS).iter_rows(named=True):
                        problems.add(r["row"], "txn_id", r["txn_id"], _(
                            "The transaction %(id)s was imported before with different content (customer, date, "
                            "product, quantity, amount or unit); a counted transaction cannot change — give a "
                            "correction its own transaction id."
                        ) % {"id": r["txn_id"]})  # fmt: skip
            result.new += part.height
            result.lap("ledger")
            if problems.count or dry_run or part.is_empty():
                continue
            facts = part.group_by(["customer_id", "product_id"]).agg(
                pl.col("quantity_milli").sum(), pl.col("amount_fen").sum(), pl.len().alias("txn_count"),
                pl.col("day").min().alias("first_date"), pl.col("day").max().alias("last_date"),
            ).with_columns(pl.col("product_id").replace_strict(product_codes, return_dtype=pl.Utf8).alias("product"))  # fmt: skip
            result.lap("aggregate")
            change = write_month_facts(month=month, source=source, batch=batch, facts=facts, mode="add", swap=swap,
                                       products={c: p.pk for c, p in products.items()})  # fmt: skip
            result.facts_written += change.written
            result.lap("facts")
            _store_ledger(ledger, source, month, seen, part.select("txn_id", "id_hash", "content_hash"), swap)
            result.lap("ledger written")
        if problems.count or dry_run:
            transaction.set_rollback(True)
            return
        _close_batch(batch, result, acting_user)

    _run_writes(swap, write)
    result.lap("commit")
    if problems.count:
        return _finish_errors(result, problems, TRANSACTION_COLUMNS)
    if progress:
        progress(result.rows, result.rows)
    return result


def _deduplicate(good: pl.DataFrame, problems: _Problems) -> tuple[pl.DataFrame, int]:
    """The same id twice in the file: counted once when the content is the same, an error otherwise."""
    if good["id_hash"].n_unique() == good.height:  # the usual case, and counting is far cheaper than marking
        return good, 0
    maybe = good["id_hash"].is_duplicated()
    candidates = good.filter(maybe)
    twice = candidates.filter(candidates["txn_id"].is_duplicated())
    if twice.is_empty():
        return good, 0
    groups = twice.group_by("txn_id").agg(
        pl.col("content_hash").n_unique().alias("versions"), pl.col("row").min().alias("first_row"),
        pl.col("row"), pl.col("content_hash"), pl.col("content_hash").sort_by("row").first().alias("first_hash"),
    )  # fmt: skip
    for r in groups.filter(pl.col("versions") > 1).iter_rows(named=True):
        for row, digest in zip(r["row"], r["content_hash"], strict=True):
            if row != r["first_row"] and digest != r["first_hash"]:
                problems.add(row, "txn_id", r["txn_id"], _(
                    "The transaction %(id)s appears in row %(first)d with different content.")
                    % {"id": r["txn_id"], "first": r["first_row"]})  # fmt: skip
    later = twice.join(groups.select("txn_id", "first_row"), on="txn_id").filter(
        pl.col("row") != pl.col("first_row")
    )
    return good.join(later.select("row"), on="row", how="anti"), later.height


def _ledger_frame(ledger: TransactionLedger | None) -> pl.LazyFrame | None:
    """The ledger's ``txn_id, id_hash, content_hash`` (rehashed when made with another hash scheme)."""
    if ledger is None or not ledger.rows:
        return None
    if not storage.exists(ledger.file_name):
        raise ServiceError(
            _("The ledger of the transactions already counted for %(source)s %(month)s (%(file)s) is missing; "
              "restore it from the backup before importing — without it transactions would be counted twice.")
            % {"source": ledger.source, "month": f"{ledger.month:%Y-%m}", "file": ledger.file_name},
            field="file",
        )  # fmt: skip
    frame = storage.scan(ledger.file_name)
    if ledger.hash_scheme != ID_HASH_SCHEME:
        frame = frame.with_columns(pl.col("txn_id").hash(RUN_SEED).alias("id_hash"))
    return frame


def _store_ledger(ledger, source: str, month: date, seen, new: pl.DataFrame, swap: FileSwap) -> None:
    frame = new if seen is None else pl.concat([seen.select(new.columns).collect(), new])
    version = (ledger.version if ledger else 0) + 1
    name = swap.write(frame, prefix=f"ledger-{source}-{month:%Y-%m}-v{version}",
                      replaces=ledger.file_name if ledger else "")  # fmt: skip
    if ledger is None:
        TransactionLedger.objects.create(source=source, month=month, file_name=name, rows=frame.height, version=1,
                                         hash_scheme=ID_HASH_SCHEME)  # fmt: skip
    else:
        ledger.file_name, ledger.rows, ledger.version = name, frame.height, version
        ledger.hash_scheme = ID_HASH_SCHEME
        ledger.save(update_fields=["file_name", "rows", "version", "hash_scheme"])


def _close_batch(batch: FactBatch, result: FactsImportResult, acting_user) -> None:
    batch.rows_new, batch.rows_duplicate = result.new, result.duplicates
    batch.facts_written, batch.facts_unchanged, batch.facts_deleted = (
        result.facts_written, result.facts_unchanged, result.facts_deleted,
    )  # fmt: skip
    batch.save()
    result.batch_id = batch.pk
    audit_record(
        actor=acting_user, action="sales.import", obj=batch, object_repr=batch.file_name,
        extra={"kind": batch.kind, "source": batch.source, "file": batch.file_name, "sha256": batch.sha256,
               **{k: v for k, v in result.summary().items()}},
    )  # fmt: skip


def monthly_facts_import(
    *,
    acting_user,
    path,
    filename: str = "",
    source: str = "monthly",
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FactsImportResult:
    """Check a monthly facts file and make the source's facts of every month it contains equal to it
    (for the customers in the importer's scope), all or nothing."""
    path, filename, result = _start(BatchKind.MONTHLY_FACTS, acting_user, path, filename, source, dry_run)
    source = result.source
    frame, header_errors = read_columns(path, filename, MONTHLY_COLUMNS, MONTHLY_REQUIRED)
    if header_errors:
        result.errors = header_errors
        return result
    products = _catalogue()
    customers = _visible_customers(acting_user)
    frame = _parse_common(frame, customers, products).with_columns(
        pl.when(pl.col("month").str.contains(r"^[0-9]{4}-[0-9]{2}$"))
        .then((pl.col("month") + "-01").str.to_date("%Y-%m-%d", strict=False)).alias("month_day"),
        pl.when(pl.col("txn_count") == "").then(pl.lit(0, dtype=pl.Int64))
        .when(pl.col("txn_count").str.contains(r"^[0-9]{1,9}$")).then(pl.col("txn_count").cast(pl.Int64, strict=False))
        .alias("txn_number"),
    )  # fmt: skip
    frame = frame.with_columns(
        (_common_bad() | pl.col("month_day").is_null() | pl.col("txn_number").is_null()).alias("bad")
    )
    checked = _collect(
        frame.select(
            "row",
            "customer_id",
            "month_day",
            "product",
            "product_id",
            "quantity_milli",
            "amount_fen",
            "txn_number",
            "bad",
        )
    )
    result.rows = checked.height
    if progress:
        progress(0, result.rows)
    if not result.rows:
        result.errors = [RowError(1, "", "", _("The file has a header but no facts."))]
        return result
    problems = _Problems()
    if checked["bad"].any():
        bad = frame.filter(pl.col("bad")).head(MAX_ERRORS).collect()
        _common_errors(problems, bad, products)
        for r in bad.iter_rows(named=True):
            if r["month_day"] is None:
                problems.add(r["row"], "month", r["month"], _("Not a month: write YYYY-MM (2026-10)."))
            if r["txn_number"] is None:
                problems.add(r["row"], "txn_count", r["txn_count"], _("Not a whole number of transactions."))
        problems.count += int(checked["bad"].sum()) - bad.height
    good = checked.filter(~pl.col("bad")).drop("bad")
    key = ["customer_id", "month_day", "product_id"]
    twice = good.filter(good.select(key).is_duplicated())
    if twice.height:
        first = twice.group_by(key).agg(pl.col("row").min().alias("first_row"))
        for r in twice.join(first, on=key).filter(pl.col("row") != pl.col("first_row")).iter_rows(named=True):
            problems.add(r["row"], "product", r["product"], _(
                "The same customer, month and product appear in row %(first)d.") % {"first": r["first_row"]})  # fmt: skip
    result.months = sorted(f"{m:%Y-%m}" for m in good["month_day"].unique().to_list())
    if problems.count:
        return _finish_errors(result, problems, MONTHLY_COLUMNS)

    swap = FileSwap()
    scope = customers.select("customer_id")

    def write() -> None:
        batch = FactBatch.objects.create(
            kind=BatchKind.MONTHLY_FACTS, source=source, file_name=filename, sha256=_sha256(path),
            months=result.months, rows_read=result.rows, created_by=acting_user,
        )  # fmt: skip
        for month in sorted(good["month_day"].unique().to_list()):
            facts = good.filter(pl.col("month_day") == month).select(
                "customer_id", "product", "quantity_milli", "amount_fen", pl.col("txn_number").alias("txn_count"),
                pl.lit(None, dtype=pl.Date).alias("first_date"), pl.lit(None, dtype=pl.Date).alias("last_date"),
            )  # fmt: skip
            change = write_month_facts(month=month, source=source, batch=batch, facts=facts, mode="replace",
                                       swap=swap, products={c: p.pk for c, p in products.items()},
                                       replace_customers=scope)  # fmt: skip
            result.facts_written += change.written
            result.facts_unchanged += change.unchanged
            result.facts_deleted += change.deleted
        if dry_run:
            transaction.set_rollback(True)
            swap.rolled_back()
            return
        _close_batch(batch, result, acting_user)

    _run_writes(swap, write)
    if progress:
        progress(result.rows, result.rows)
    return result


FACT_IMPORTERS = {"transactions": transactions_import, "monthly_facts": monthly_facts_import}
