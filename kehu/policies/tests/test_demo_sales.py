"""The demo's sales give every pack meaningful distributions: each value of each choice output occurs."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from kehu.metrics.demo_sales import demo_months, demo_sales_frame
from kehu.policies.engine import policy_evaluate
from kehu.policies.language import policy_parse
from kehu.policies.packs import PACKS, pack_text

TODAY = date(2026, 11, 23)


def _facts(frame: pl.DataFrame, ids: dict[str, int], decimals: int = 3) -> pl.DataFrame:
    return frame.select(
        pl.col("customer_code").replace_strict(ids, return_dtype=pl.Int64).alias("customer_id"),
        (pl.col("month") + "-01").str.to_date().alias("month"),
        pl.col("product"),
        (pl.col("quantity").cast(pl.Decimal(20, 3)) * 1000).cast(pl.Int64).alias("quantity_milli"),
        (pl.col("amount").cast(pl.Decimal(20, 2)) * 100).cast(pl.Int64).alias("amount_fen"),
        pl.col("txn_count").cast(pl.Int64),
    )


@pytest.mark.parametrize("pack", PACKS)
def test_demo_sales_give_every_value_of_every_choice_output(pack):
    n = 3000
    customers = pl.DataFrame(
        {
            "customer_id": list(range(1, n + 1)),
            "customer_code": [f"370102{i:05d}000" for i in range(1, n + 1)],
            "kind": ["institution" if i % 5 < 3 else "individual" for i in range(n)],
        }
    )
    months = demo_months(TODAY)
    assert months[0] == date(2024, 11, 1) and months[-1] == date(2026, 10, 1) and len(months) == 24
    sales = demo_sales_frame(customers.select("customer_code", "kind"), pack, months)
    assert sales.height > n  # most customers buy most months
    ids = dict(zip(customers["customer_code"], customers["customer_id"], strict=True))
    parsed = policy_parse(pack_text(pack))
    frame = policy_evaluate(
        parsed,
        month=months[-1],
        customers=customers.select(
            "customer_id", "kind", pl.lit(None, dtype=pl.Utf8).alias("sub_type"), pl.lit("active").alias("status"),
            pl.lit("").alias("payment_profile"),
        ),
        facts=_facts(sales, ids),
        agreements=pl.DataFrame(schema={"customer_id": pl.Int64, "signing_level": pl.Utf8, "agreement_type": pl.Utf8,
                                        "status": pl.Utf8, "start_date": pl.Date, "end_date": pl.Date}),
    )  # fmt: skip
    for output in parsed.outputs:
        if output.type != "choice" or not output.export:
            continue
        seen = set(frame[output.name].drop_nulls().to_list())
        # "province" needs a province-level agreement or ¥20M of card purchases: none in generated sales.
        expected = set(parsed.order(output.name)) - {"province"}
        assert expected <= seen, (pack, output.name, seen)
    # The same seed gives the same sales.
    assert demo_sales_frame(customers.select("customer_code", "kind"), pack, months).equals(sales)
