"""The Parquet files beside the sales facts: month snapshots and transaction ledgers.

They live in ``KEHU_FACTS_DIR`` (default: ``DATA_DIR/facts``; see docs/configuration.md). A file is
never changed in place: every change writes a new file under a new unique name, the database row
(``FactMonth`` / ``TransactionLedger``) is pointed at it in the same transaction as the facts, and
``FileSwap`` deletes the old file once that transaction has committed — or the new one when it rolls
back. So the database and the files never disagree; at worst an interrupted process leaves an orphan
file that nothing points at.

* **Month snapshot** — every fact of one month (all sources), sorted by customer:
  ``customer_id Int64, month Date, product Utf8, quantity_milli Int64, amount_fen Int64,
  txn_count Int64`` plus ``source Utf8`` (the close reads the first six through
  ``selectors.facts_frame``; the source lets an import replace its own rows without reading the
  database).
* **Transaction ledger** — per (source, month): ``txn_id Utf8, id_hash UInt64, content_hash UInt64`` of
  every transaction counted (see ``imports.with_content_hash`` and ``imports.ID_HASH_SCHEME``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl
from django.conf import settings

SNAPSHOT_SCHEMA = {
    "customer_id": pl.Int64,
    "month": pl.Date,
    "product": pl.Utf8,
    "quantity_milli": pl.Int64,
    "amount_fen": pl.Int64,
    "txn_count": pl.Int64,
}
SNAPSHOT_FILE_SCHEMA = {**SNAPSHOT_SCHEMA, "source": pl.Utf8}
LEDGER_SCHEMA = {"txn_id": pl.Utf8, "id_hash": pl.UInt64, "content_hash": pl.UInt64}


def facts_dir() -> Path:
    configured = getattr(settings, "KEHU_FACTS_DIR", "") or Path(settings.DATA_DIR) / "facts"
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_path(name: str) -> Path:
    return facts_dir() / name


def exists(name: str) -> bool:
    return bool(name) and file_path(name).is_file()


def write_frame(frame: pl.DataFrame, *, prefix: str) -> str:
    """Write ``frame`` to a new Parquet file and return its name (unique: never overwrites a file)."""
    name = f"{prefix}-{uuid.uuid4().hex[:16]}.parquet"
    final = file_path(name)
    partial = final.with_suffix(".partial")
    frame.write_parquet(partial, compression="zstd", compression_level=1, statistics=True)
    os.replace(partial, final)  # a reader never sees half a file
    return name


def scan(name: str) -> pl.LazyFrame:
    return pl.scan_parquet(file_path(name))


def delete(name: str) -> None:
    if name:
        file_path(name).unlink(missing_ok=True)


class FileSwap:
    """New files written during one database transaction and the old files they replace.

    ``committed()`` deletes the old ones, ``rolled_back()`` the new ones; the service calls one of them
    (the first from ``transaction.on_commit``).
    """

    def __init__(self):
        self.new: list[str] = []
        self.old: list[str] = []

    def write(self, frame: pl.DataFrame, *, prefix: str, replaces: str = "") -> str:
        name = write_frame(frame, prefix=prefix)
        self.new.append(name)
        if replaces:
            self.old.append(replaces)
        return name

    def committed(self) -> None:
        for name in self.old:
            delete(name)
        self.old, self.new = [], []

    def rolled_back(self) -> None:
        for name in self.new:
            delete(name)
        self.old, self.new = [], []
