"""The engine's one-pass window aggregation against a plain reference: one filtered group-by per metric.

Seeded random facts with what the fast path must get right: several rows per (customer, month, product),
negative figures (a product or month counts only when its sum is positive), customers absent from the
customers frame, products the policy does not read, months outside every window, days other than the 1st,
sparse or negative customer ids (the sorted-search path) and a customer listed twice."""

from __future__ import annotations

import datetime

import numpy as np
import polars as pl
import pytest

from kehu.policies import engine
from kehu.policies.engine import MEASURE_COLUMNS, _metric_col, _metric_frame, policy_evaluate
from kehu.policies.language import policy_parse

MONTH = datetime.date(2026, 3, 1)

POLICY = policy_parse("""\
policy: equivalence
products: [a, b, c, d]
metrics:
  a_month: {sum: quantity, products: [a]}
  ab_month: {sum: amount, products: [a, b]}
  all_month: {sum: amount}
  prev_year: {sum: amount, window: previous_year}
  c_prev_year: {sum: quantity, products: [c], window: previous_year}
  ytd: {sum: transactions, window: year_to_date}
  before: {sum: quantity, products: [a, d], window: {last: 3, offset: 1}}
  last12: {sum: amount, window: {last: 12}}
  lines12: {count_products: amount, window: {last: 12}}
  lines_prev: {count_products: quantity, products: [b, c, d], window: previous_year}
  months6: {count_months: amount, products: [a, b], window: {last: 6}}
  months_all: {count_months: quantity, window: {last: 14, offset: 2}}
  total12: {total: last12}
  share: {ratio: [last12, total12]}
outputs:
  big:
    type: boolean
    if: {any: [{metric: a_month, gte: 1}, {metric: share, gte: 1%}, {metric: lines12, gte: 3}]}
  band:
    type: choice
    values: {hi: 高, mid: 中, lo: 低}
    first_match:
      - {value: hi, if: {all: [{metric: months6, gte: 4}, {metric: prev_year, gt: {metric: last12, times: 1/2}}]}}
      - {value: mid, if: {any: [{metric: before, gt: 0}, {metric: lines_prev, gte: 2}, {metric: months_all, gte: 5}]}}
      - {value: lo, otherwise: true}
""")


def _months(count: int) -> list[datetime.date]:
    index = MONTH.year * 12 + MONTH.month - 1
    return [datetime.date((index - k) // 12, (index - k) % 12 + 1, 1) for k in range(count)]


def _frames(seed: int, *, customer_ids: np.ndarray):
    rng = np.random.default_rng(seed)
    rows = 4000
    months = _months(30)
    pick = rng.integers(0, len(months), rows)
    days = np.where(rng.random(rows) < 0.1, rng.integers(2, 28, rows), 1)  # some facts not on the 1st
    strangers = rng.choice(np.array([-7, 10**12 + 5, 999_999], dtype=np.int64), rows)
    facts = pl.DataFrame(
        {
            "customer_id": np.where(rng.random(rows) < 0.9, rng.choice(customer_ids, rows), strangers),
            "month": [months[i].replace(day=int(d)) for i, d in zip(pick, days, strict=True)],
            "product": rng.choice(np.array(["a", "b", "c", "d", "other"]), rows),
            "quantity_milli": rng.integers(-200, 5000, rows),
            "amount_fen": rng.integers(-500, 100_000, rows),
            "txn_count": rng.integers(0, 5, rows),
        },
        schema_overrides={"month": pl.Date},
    )
    customers = pl.DataFrame(
        {
            "customer_id": customer_ids,
            "kind": "institution",
            "sub_type": None,
            "status": "active",
            "payment_profile": "",
        },
        schema_overrides={"customer_id": pl.Int64, "sub_type": pl.Utf8},
    )
    agreements = pl.DataFrame(
        schema={
            "customer_id": pl.Int64,
            "signing_level": pl.Utf8,
            "agreement_type": pl.Utf8,
            "status": pl.Utf8,
            "start_date": pl.Date,
            "end_date": pl.Date,
        }
    )
    return customers, facts, agreements


def _reference(customers: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """Every windowed metric with one straightforward filtered group-by each."""
    result = customers.select("customer_id").unique()
    for metric in POLICY.metrics:
        if metric.kind not in ("sum", "count_products", "count_months"):
            continue
        months = metric.window.months(MONTH)
        value = MEASURE_COLUMNS[metric.measure]
        rows = facts.filter(
            pl.col("month").is_between(min(months), max(months))
            & pl.col("product").is_in(list(metric.products))
        )
        if metric.kind == "sum":
            per_customer = rows.group_by("customer_id").agg(pl.col(value).sum().alias("v"))
        else:
            key = pl.col("product") if metric.kind == "count_products" else pl.col("month").dt.truncate("1mo")
            per_customer = (
                rows.group_by("customer_id", key.alias("k"))
                .agg(pl.col(value).sum())
                .filter(pl.col(value) > 0)
                .group_by("customer_id")
                .agg(pl.len().cast(pl.Int64).alias("v"))
            )
        result = result.join(per_customer, on="customer_id", how="left").select(
            pl.exclude("v"), pl.col("v").fill_null(0).alias(_metric_col(metric.name))
        )
    return result


CUSTOMER_IDS = {
    "dense": np.arange(1, 301, dtype=np.int64),
    "sparse": np.arange(1, 301, dtype=np.int64) * 10**9 + 17,
    "negative": np.arange(-150, 150, dtype=np.int64),
    "listed twice": np.concatenate([np.arange(1, 301), [5, 77]]).astype(np.int64),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("ids", CUSTOMER_IDS.keys())
def test_windowed_metrics_match_a_group_by_per_metric(seed, ids):
    customers, facts, agreements = _frames(seed, customer_ids=CUSTOMER_IDS[ids])
    fast = _metric_frame(POLICY, MONTH, customers, facts.lazy(), agreements).collect()
    assert fast["customer_id"].to_list() == customers["customer_id"].to_list()
    expected = _reference(customers, facts)
    names = list(expected.columns[1:])
    got = fast.select("customer_id", *names).unique().sort("customer_id")
    assert got.equals(expected.sort("customer_id")), names
    assert fast[_metric_col("total12")].to_list() == [int(fast[_metric_col("last12")].sum())] * fast.height


@pytest.mark.parametrize("ids", ["dense", "sparse"])
def test_a_matrix_too_large_for_one_pass_is_summed_in_several(monkeypatch, ids):
    customers, facts, agreements = _frames(4, customer_ids=CUSTOMER_IDS[ids])
    one_pass = _metric_frame(POLICY, MONTH, customers, facts.lazy(), agreements).collect()
    monkeypatch.setattr(engine, "MAX_ACCUMULATOR_CELLS", 3 * customers.height)  # three cells per pass
    several = _metric_frame(POLICY, MONTH, customers, facts.lazy(), agreements).collect()
    assert several.equals(one_pass)
    expected = _reference(customers, facts).sort("customer_id")
    assert several.select(expected.columns).sort("customer_id").equals(expected)


def test_results_do_not_depend_on_how_customer_ids_are_spelled():
    """The dense-array path and the sorted-search path give the same outputs, metrics and explanations."""
    customers, facts, agreements = _frames(7, customer_ids=CUSTOMER_IDS["dense"])
    dense = policy_evaluate(POLICY, month=MONTH, customers=customers, facts=facts, agreements=agreements)
    shift = pl.col("customer_id") * 10**9 + 17
    sparse = policy_evaluate(
        POLICY,
        month=MONTH,
        customers=customers.with_columns(shift),
        facts=facts.with_columns(
            pl.when(pl.col("customer_id") > 0).then(shift).otherwise(pl.col("customer_id"))
        ),
        agreements=agreements,
    )
    assert (
        sparse.with_columns((pl.col("customer_id") - 17) // 10**9)
        .sort("customer_id")
        .equals(dense.sort("customer_id"))
    )
    assert dense["band"].n_unique() == 3 and dense["big"].n_unique() == 2  # every branch is exercised


def test_no_facts_and_no_customers():
    customers, facts, agreements = _frames(1, customer_ids=CUSTOMER_IDS["dense"])
    empty = policy_evaluate(
        POLICY, month=MONTH, customers=customers, facts=facts.clear(), agreements=agreements
    )
    assert empty.height == customers.height
    assert set(empty["metrics"].str.contains('"last12":"0.00"').to_list()) == {True}
    none = policy_evaluate(
        POLICY, month=MONTH, customers=customers.clear(), facts=facts, agreements=agreements
    )
    assert none.height == 0
