"""Moving whole tables between the database and Polars frames, fast, on both databases.

The monthly close reads a million customers and writes a million results in seconds: row-by-row ORM
objects cannot do that. On PostgreSQL both directions go through ``COPY`` (CSV produced and parsed by
Polars); on SQLite through one cursor (``fetchall`` / ``executemany``) in the caller's transaction.
"""

from __future__ import annotations

import io

import polars as pl
from django.db import connection
from django.db.models import QuerySet

COPY_CHUNK = 8 << 20  # bytes handed to COPY at a time


def queryset_sql(queryset: QuerySet) -> tuple[str, tuple]:
    compiler = queryset.query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    return sql, tuple(params)


def frame_from_sql(sql: str, params: tuple | list, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The rows of ``sql`` as a frame with exactly ``schema`` (columns in the select's order)."""
    if connection.vendor == "postgresql":
        buffer = io.BytesIO()
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                for chunk in copy:
                    buffer.write(chunk)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        buffer.seek(0)
        text_schema = {
            name: (pl.Utf8 if dtype in (pl.Date, pl.Boolean) else dtype) for name, dtype in schema.items()
        }
        frame = pl.read_csv(buffer, has_header=False, new_columns=list(schema), schema_overrides=text_schema)
        casts = []
        for name, dtype in schema.items():
            if dtype == pl.Date:
                casts.append(pl.col(name).str.to_date("%Y-%m-%d"))
            elif dtype == pl.Boolean:
                casts.append(pl.col(name) == "t")
        # PostgreSQL's CSV writes NULL as an empty field: for text columns Polars reads that as null too.
        return frame.with_columns(casts) if casts else frame
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame(rows, schema=list(schema), orient="row", infer_schema_length=None)
    casts = []
    for name, dtype in schema.items():
        if dtype == pl.Date and frame.schema[name] == pl.Utf8:
            casts.append(pl.col(name).str.to_date("%Y-%m-%d"))
        elif frame.schema[name] != dtype:
            casts.append(pl.col(name).cast(dtype))
    return frame.with_columns(casts) if casts else frame


def frame_from_queryset(queryset: QuerySet, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``queryset`` must be a ``values_list`` of exactly the columns of ``schema``, in that order."""
    sql, params = queryset_sql(queryset)
    return frame_from_sql(sql, params, schema)


def frame_insert(table: str, frame: pl.DataFrame) -> int:
    """Insert every row of ``frame`` into ``table`` (columns named as the frame's), inside the caller's
    transaction. Dates, numbers and text go as they are; JSON columns take the frame's JSON text."""
    if frame.height == 0:
        return 0
    columns = frame.columns
    quote = connection.ops.quote_name
    column_list = ", ".join(quote(c) for c in columns)
    if connection.vendor == "postgresql":
        data = frame.write_csv(include_header=False, null_value="\\N").encode()
        with connection.cursor() as cursor:
            statement = f"COPY {quote(table)} ({column_list}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
            with cursor.cursor.copy(statement) as copy:
                for start in range(0, len(data), COPY_CHUNK):
                    copy.write(data[start : start + COPY_CHUNK])
        return frame.height
    placeholders = ", ".join(["%s"] * len(columns))
    statement = f"INSERT INTO {quote(table)} ({column_list}) VALUES ({placeholders})"
    converted = frame.with_columns(pl.col(pl.Date).cast(pl.Utf8), pl.col(pl.Boolean).cast(pl.Int8))
    with connection.cursor() as cursor:
        cursor.executemany(statement, converted.iter_rows())
    return frame.height
