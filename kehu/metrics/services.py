"""Writing the product catalogue and the sales facts.

* ``products_load`` — create or update the catalogue from a pack's list (``catalogues.py``), audited.
* ``write_month_facts`` — the one path by which facts reach the database and the month snapshot: the
  imports (``imports.py``) and ``kehu gen-data --history-months`` call it inside their transaction. It
  writes a (source, month)'s changed facts in bulk (PostgreSQL: ``COPY`` into a temporary table, then
  one ``INSERT … ON CONFLICT``; SQLite: ``executemany`` of the same upsert), writes the month's new
  snapshot and bumps the month's version — only when something changed.
* ``ensure_snapshot`` — the month snapshot, rebuilt from the database when its file is missing or older
  than the month's version.

Storage decisions: docs/decisions/0007-sales-facts-storage.md.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

import polars as pl
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record, snapshot
from kehu.core.errors import ServiceError, require_any
from kehu.metrics import storage
from kehu.metrics.models import MAX_QUANTITY_DECIMALS, FactMonth, Product, SalesFact
from kehu.metrics.storage import SNAPSHOT_FILE_SCHEMA, FileSwap

KEY = ["customer_id", "product"]
FACT_TABLE = SalesFact._meta.db_table

# ---------------------------------------------------------------------------------------------------
# The catalogue


def products_load(*, acting_user, products: list[dict]) -> dict[str, int]:
    """Create or update products from dicts with ``code, name, unit, group, scale`` (quantity decimals).

    Idempotent: a product that already matches is left alone (and not audited). Products missing from
    the list are kept as they are: facts may refer to them. Returns the counts.
    """
    if acting_user is not None:  # None: the installation itself (kehu setup on the server console)
        require_any(acting_user, Capability.MANAGE_POLICIES, Capability.MANAGE_UNITS)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic():
        for item in products:
            code = str(item.get("code") or "").strip()
            if not code:
                raise ServiceError(_("A product needs a code."), field="code")
            scale = int(item.get("scale", item.get("quantity_decimals", 3)))
            if not 0 <= scale <= MAX_QUANTITY_DECIMALS:
                raise ServiceError(
                    _("Product %(code)s: a quantity has at most %(n)d decimals.")
                    % {"code": code, "n": MAX_QUANTITY_DECIMALS},
                    field="scale",
                )
            values = {
                "name": str(item.get("name") or code).strip(),
                "unit": str(item.get("unit") or "").strip(),
                "group": str(item.get("group") or "").strip(),
                "quantity_decimals": scale,
                "active": bool(item.get("active", True)),
            }
            product = Product.objects.select_for_update().filter(code=code).first()
            if product is None:
                product = Product.objects.create(code=code, **values)
                counts["created"] += 1
                audit_record(actor=acting_user, actor_username="" if acting_user else "kehu setup",
                             action="product.create", obj=product, changes=snapshot(product))  # fmt: skip
                continue
            changes = {k: [getattr(product, k), v] for k, v in values.items() if getattr(product, k) != v}
            if not changes:
                counts["unchanged"] += 1
                continue
            for name, (_old, new) in changes.items():
                setattr(product, name, new)
            product.save()
            counts["updated"] += 1
            audit_record(actor=acting_user, actor_username="" if acting_user else "kehu setup",
                         action="product.update", obj=product, changes=changes)  # fmt: skip
    return counts


# ---------------------------------------------------------------------------------------------------
# Month snapshots


def _empty_snapshot() -> pl.DataFrame:
    return pl.DataFrame(schema=SNAPSHOT_FILE_SCHEMA)


def snapshot_from_db(month: date) -> pl.DataFrame:
    """Every fact of ``month`` (all sources) read from the database, in the snapshot's layout."""
    sql = (
        f"SELECT f.customer_id, p.code, f.quantity_milli, f.amount_fen, f.txn_count, f.source "
        f"FROM {FACT_TABLE} f JOIN {Product._meta.db_table} p ON p.id = f.product_id WHERE f.month = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [month])
        rows = cursor.fetchall()
    frame = pl.DataFrame(
        rows,
        schema=["customer_id", "product", "quantity_milli", "amount_fen", "txn_count", "source"],
        orient="row",
    )
    return _tidy(frame.with_columns(pl.lit(month).alias("month")))


def _tidy(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select([pl.col(n).cast(t) for n, t in SNAPSHOT_FILE_SCHEMA.items()]).sort(
        ["customer_id", "product", "source"]
    )


def _current_snapshot(fact_month: FactMonth) -> pl.DataFrame:
    """The month's facts from its snapshot when that is there and current, else from the database."""
    if (
        fact_month.snapshot_file
        and fact_month.snapshot_version == fact_month.version
        and storage.exists(fact_month.snapshot_file)
    ):
        return storage.scan(fact_month.snapshot_file).collect()
    if fact_month.pk is None:
        return _empty_snapshot()
    return snapshot_from_db(fact_month.month)


def _store_snapshot(fact_month: FactMonth, frame: pl.DataFrame, swap: FileSwap) -> None:
    """Point ``fact_month`` at a new snapshot file holding ``frame`` (saved by the caller's transaction)."""
    name = swap.write(frame, prefix=f"month-{fact_month.month:%Y-%m}-v{fact_month.version}",
                      replaces=fact_month.snapshot_file)  # fmt: skip
    totals = frame.select(
        pl.col("quantity_milli").sum(), pl.col("amount_fen").sum(), pl.col("txn_count").sum()
    ).row(0)
    fact_month.snapshot_file = name
    fact_month.snapshot_version = fact_month.version
    fact_month.rows = frame.height
    fact_month.quantity_milli, fact_month.amount_fen, fact_month.txn_count = (int(v or 0) for v in totals)
    fact_month.updated_at = timezone.now()
    fact_month.save()


def ensure_snapshot(month: date) -> FactMonth | None:
    """The month's FactMonth with a current snapshot file (rebuilt from the database when missing or
    stale); None when the month has no facts at all."""
    fact_month = FactMonth.objects.filter(month=month).first()
    if fact_month is None:
        if not SalesFact.objects.filter(month=month).exists():
            return None
        fact_month = FactMonth(month=month, version=1)
    elif (
        fact_month.snapshot_file
        and fact_month.snapshot_version == fact_month.version
        and storage.exists(fact_month.snapshot_file)
    ):
        return fact_month
    swap = FileSwap()
    try:
        with transaction.atomic():
            if fact_month.pk is not None:
                fact_month = FactMonth.objects.select_for_update().get(pk=fact_month.pk)
            _store_snapshot(fact_month, snapshot_from_db(month), swap)
            transaction.on_commit(swap.committed)
    except BaseException:
        swap.rolled_back()
        raise
    return fact_month


def lock_month(month: date) -> FactMonth:
    """The month's FactMonth row, locked for this transaction (created when new, version 0)."""
    FactMonth.objects.get_or_create(month=month)
    return FactMonth.objects.select_for_update().get(month=month)


# ---------------------------------------------------------------------------------------------------
# Writing facts


@dataclass
class MonthChange:
    written: int = 0  # facts inserted or changed
    unchanged: int = 0
    deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.written or self.deleted)


FACT_COLUMNS = [
    "customer_id",
    "product",
    "quantity_milli",
    "amount_fen",
    "txn_count",
    "first_date",
    "last_date",
]


def write_month_facts(
    *,
    month: date,
    source: str,
    batch,
    facts: pl.DataFrame,
    mode: str,
    swap: FileSwap,
    products: dict[str, int],
    replace_customers: pl.DataFrame | None = None,
) -> MonthChange:
    """Write one source's facts of one month; call inside a transaction.

    ``facts``: ``customer_id, product (code), quantity_milli, amount_fen, txn_count, first_date,
    last_date``, one row per customer and product.

    ``mode="add"`` (transactions): the facts are new transactions' aggregates, added to what is stored
    (exact integer sums; first/last date widened). ``mode="replace"`` (monthly facts): the facts replace
    the source's stored facts of the month for the customers in ``replace_customers`` (a frame of
    ``customer_id``: the importer's scope; None = every customer); stored facts of those customers missing
    from ``facts`` are deleted; rows equal to what is stored change nothing. The month's version is bumped
    and a new snapshot written only when something changed.
    """
    fact_month = lock_month(month)
    current = _current_snapshot(fact_month)
    mine = current.filter(pl.col("source") == source)
    others = current.filter(pl.col("source") != source)
    facts = facts.select(FACT_COLUMNS).with_columns(
        pl.col("customer_id").cast(pl.Int64), pl.col("quantity_milli").cast(pl.Int64),
        pl.col("amount_fen").cast(pl.Int64), pl.col("txn_count").cast(pl.Int64),
        pl.col("first_date").cast(pl.Date), pl.col("last_date").cast(pl.Date),
    )  # fmt: skip
    change = MonthChange()
    if mode == "add":
        if facts.is_empty():
            return change
        stored = mine.select(KEY + ["quantity_milli", "amount_fen", "txn_count"])
        merged = (
            facts.join(stored, on=KEY, how="left", suffix="_old")
            .with_columns(
                (pl.col("quantity_milli") + pl.col("quantity_milli_old").fill_null(0)).alias(
                    "quantity_milli"
                ),
                (pl.col("amount_fen") + pl.col("amount_fen_old").fill_null(0)).alias("amount_fen"),
                (pl.col("txn_count") + pl.col("txn_count_old").fill_null(0)).alias("txn_count"),
            )
            .select(FACT_COLUMNS)
        )
        _upsert(facts, month=month, source=source, batch_id=batch.pk, products=products, add=True,
                fresh=mine.is_empty())  # fmt: skip
        change.written = facts.height
        kept_mine = mine.join(facts.select(KEY), on=KEY, how="anti")
        new_mine = merged
    elif mode == "replace":
        in_scope = (
            mine if replace_customers is None else mine.join(replace_customers, on="customer_id", how="semi")
        )
        out_of_scope = mine.join(in_scope.select(KEY), on=KEY, how="anti")
        compared = facts.join(
            in_scope.select(KEY + ["quantity_milli", "amount_fen", "txn_count"]),
            on=KEY,
            how="left",
            suffix="_old",
        )
        same = (
            (pl.col("quantity_milli") == pl.col("quantity_milli_old"))
            & (pl.col("amount_fen") == pl.col("amount_fen_old"))
            & (pl.col("txn_count") == pl.col("txn_count_old"))
        ).fill_null(False)
        changed = compared.filter(~same).select(FACT_COLUMNS)
        change.unchanged = compared.height - changed.height
        gone = in_scope.join(facts.select(KEY), on=KEY, how="anti").select(KEY)
        if changed.height:
            _upsert(changed, month=month, source=source, batch_id=batch.pk, products=products, add=False,
                    fresh=mine.is_empty())  # fmt: skip
        if gone.height:
            _delete(gone, month=month, source=source, products=products)
        change.written, change.deleted = changed.height, gone.height
        if not change.changed:
            return change
        kept_mine = out_of_scope
        new_mine = facts
    else:  # pragma: no cover - a programming error
        raise ValueError(mode)
    new_rows = new_mine.select(KEY + ["quantity_milli", "amount_fen", "txn_count"]).with_columns(
        pl.lit(month).alias("month"), pl.lit(source).alias("source")
    )
    frame = _tidy(pl.concat([others, kept_mine, _tidy(new_rows)], how="diagonal_relaxed"))
    fact_month.version += 1
    _store_snapshot(fact_month, frame, swap)
    return change


def _db_rows(
    frame: pl.DataFrame, *, month: date, source: str, batch_id: int | None, products: dict[str, int]
):
    """The frame in the fact table's column order, dates as ISO text (what both databases take)."""
    columns = [
        pl.lit(source).alias("source"),
        pl.col("customer_id"),
        pl.lit(month.isoformat()).alias("month"),
        pl.col("product").replace_strict(products, return_dtype=pl.Int64).alias("product_id"),
    ]
    if batch_id is not None:
        columns += [
            pl.col("quantity_milli"), pl.col("amount_fen"), pl.col("txn_count"),
            pl.col("first_date").dt.to_string("%Y-%m-%d"), pl.col("last_date").dt.to_string("%Y-%m-%d"),
            pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
        ]  # fmt: skip
    return frame.select(columns)


INSERT_COLUMNS = "source, customer_id, month, product_id, quantity_milli, amount_fen, txn_count, first_date, " \
    "last_date, batch_id"  # fmt: skip
CONFLICT = "ON CONFLICT (customer_id, source, month, product_id) DO UPDATE SET "
ADD_SET = (
    f"quantity_milli = {FACT_TABLE}.quantity_milli + excluded.quantity_milli, "
    f"amount_fen = {FACT_TABLE}.amount_fen + excluded.amount_fen, txn_count = {FACT_TABLE}.txn_count + excluded.txn_count, "
    f"first_date = CASE WHEN {FACT_TABLE}.first_date IS NULL OR excluded.first_date < {FACT_TABLE}.first_date "
    f"THEN excluded.first_date ELSE {FACT_TABLE}.first_date END, "
    f"last_date = CASE WHEN {FACT_TABLE}.last_date IS NULL OR excluded.last_date > {FACT_TABLE}.last_date "
    f"THEN excluded.last_date ELSE {FACT_TABLE}.last_date END, batch_id = excluded.batch_id"
)
REPLACE_SET = (
    "quantity_milli = excluded.quantity_milli, amount_fen = excluded.amount_fen, txn_count = excluded.txn_count, "
    "first_date = excluded.first_date, last_date = excluded.last_date, batch_id = excluded.batch_id"
)


def _copy_into_temp(cursor, frame: pl.DataFrame, table: str, columns_sql: str) -> None:
    """PostgreSQL: load ``frame`` into a temporary table with COPY (CSV; an empty field is NULL)."""
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE TEMP TABLE {table} ({columns_sql}) ON COMMIT DROP")
    _copy(cursor, frame, table)


def _copy(cursor, frame: pl.DataFrame, target: str) -> None:
    """PostgreSQL: COPY ``frame`` into ``target`` (a table, with its column list) as CSV."""
    raw = cursor.cursor  # the psycopg cursor under Django's wrapper
    with raw.copy(f"COPY {target} FROM STDIN WITH (FORMAT csv)") as copy:
        step = 500_000
        for start in range(0, frame.height, step):
            buffer = io.BytesIO()
            frame.slice(start, step).write_csv(buffer, include_header=False)
            copy.write(buffer.getvalue())


def _upsert(
    facts: pl.DataFrame, *, month, source, batch_id, products, add: bool, fresh: bool = False
) -> None:
    """Insert ``facts`` or, for a key already stored, add to it (``add``) or overwrite it.

    ``fresh``: the source has no fact in the month yet (its first import): on PostgreSQL the rows are
    copied straight into the table, without the temporary table and the conflict checks.
    Rows go in key order: the unique index is then appended to rather than written all over.
    """
    rows = _db_rows(facts.sort(KEY), month=month, source=source, batch_id=batch_id, products=products)
    assignments = ADD_SET if add else REPLACE_SET
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if fresh:
                _copy(cursor, rows, f"{FACT_TABLE} ({INSERT_COLUMNS})")
                return
            _copy_into_temp(
                cursor, rows, "metrics_load",
                "source varchar(32), customer_id bigint, month date, product_id bigint, quantity_milli bigint, "
                "amount_fen bigint, txn_count integer, first_date date, last_date date, batch_id bigint",
            )  # fmt: skip
            cursor.execute(
                f"INSERT INTO {FACT_TABLE} ({INSERT_COLUMNS}) SELECT {INSERT_COLUMNS} FROM metrics_load "
                f"{CONFLICT}{assignments}"
            )
        else:
            # The values every row shares go into the statement: fewer parameters to bind per row.
            constants = (
                f"{_sql_text(source)}, ?, {_sql_text(month.isoformat())}, ?, ?, ?, ?, ?, ?, {int(batch_id)}"
            )
            sql = f"INSERT INTO {FACT_TABLE} ({INSERT_COLUMNS}) VALUES ({constants})"
            if not fresh:
                sql += f" {CONFLICT}{assignments}"
            varying = rows.drop("source", "month", "batch_id")
            connection.connection.executemany(sql, varying.iter_rows())


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _delete(keys: pl.DataFrame, *, month, source, products) -> None:
    rows = _db_rows(keys, month=month, source=source, batch_id=None, products=products)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _copy_into_temp(cursor, rows, "metrics_gone",
                            "source varchar(32), customer_id bigint, month date, product_id bigint")  # fmt: skip
            cursor.execute(
                f"DELETE FROM {FACT_TABLE} f USING metrics_gone g WHERE f.source = g.source AND "
                "f.customer_id = g.customer_id AND f.month = g.month AND f.product_id = g.product_id"
            )
        else:
            connection.connection.executemany(
                f"DELETE FROM {FACT_TABLE} WHERE source = ? AND customer_id = ? AND month = ? AND product_id = ?",
                rows.iter_rows(),
            )
