"""The evaluation engine on small policies: windows, metric kinds, exact comparisons, overrides, output shape."""

from __future__ import annotations

import datetime
import json

import polars as pl
import pytest

from kehu.core.errors import ServiceError
from kehu.policies.engine import decimal_text, policy_evaluate
from kehu.policies.language import policy_parse
from kehu.policies.tests.test_packs import (
    MONTH,
    agreements_frame,
    customers_frame,
    facts_frame,
    months_before,
    overrides_frame,
)

POLICY = """\
policy: engine-test
products: [a, b, c]
metrics:
  a_month: {sum: quantity, products: [a]}
  all_month: {sum: amount}
  all_prev_year: {sum: amount, window: previous_year}
  all_ytd: {sum: amount, window: year_to_date}
  a_before: {sum: quantity, products: [a], window: {last: 2, offset: 1}}
  txns: {sum: transactions, window: {last: 12}}
  lines: {count_products: amount, window: {last: 12}}
  months_active: {count_months: amount, products: [a, b], window: {last: 6}}
  total_month: {total: all_month}
  share: {ratio: [all_month, total_month]}
  supply_city: {agreement: {levels: [city], types: [supply]}}
outputs:
  big:
    type: boolean
    if: {any: [{metric: a_month, gte: 0.1}, {not: {metric: share, lt: 50%}}]}
  band:
    label: 档
    type: choice
    values: {hi: 高, lo: 低}
    applies_if: {attribute: sub_type, in: [shop, kiosk]}
    first_match:
      - {value: hi, if: {all: [{output: big, is: true}, {metric: supply_city, is: true}]}}
      - {value: lo, otherwise: true}
  n:
    type: integer
    first_match:
      - {value: 3, if: {output: band, eq: hi}}
      - {value: 1, if: {metric: a_month, gt: {metric: a_before, times: 1/2}}}
      - {value: 0, otherwise: true}
  share_points:
    type: points
    brackets:
      of: share
      table:
        - {min: 0.5, points: 10}
        - {min: 0.25, max: 0.5, points: 5}
  mix:
    type: number
    decimals: 2
    weighted: [{of: n, weight: 0.25}, {of: share_points, weight: 0.75}]
  busy:
    type: boolean
    export: false
    if: {all: [{metric: lines, gte: 2}, {metric: months_active, gte: 2}, {metric: txns, gte: 10}]}
"""


@pytest.fixture(scope="module")
def policy():
    return policy_parse(POLICY)


def run(policy, facts, customers=None, agreements=(), overrides=None, month=MONTH):
    if customers is None:
        customers = [{"customer_id": c, "sub_type": "shop"} for c in sorted({row[0] for row in facts})]
    result = policy_evaluate(
        policy,
        month=month,
        customers=customers_frame(customers),
        facts=facts_frame(facts).lazy(),
        agreements=agreements_frame(list(agreements)),
        overrides=overrides_frame(overrides) if overrides else None,
    )
    return result, {row["customer_id"]: row for row in result.iter_rows(named=True)}


def metrics_of(row):
    return json.loads(row["metrics"])


def test_output_frame_columns_and_types(policy):
    result, _rows = run(policy, [(1, MONTH, "a", "1", "1")])
    assert result.columns == [
        "customer_id",
        "big",
        "band",
        "n",
        "share_points",
        "mix",
        "busy",
        "responsible_level",
        "metrics",
        "explanation",
    ]
    assert result.schema["big"] == pl.Boolean and result.schema["band"] == pl.Utf8
    assert result.schema["n"] == pl.Int64 and result.schema["mix"] == pl.Utf8
    assert result["responsible_level"].to_list() == [None]  # no responsibility section


def test_windows(policy):
    facts = [
        (1, MONTH, "a", "1", "1"),
        (1, datetime.date(2026, 1, 1), "b", "0", "10"),  # this year, 10 months before: year to date only
        (1, datetime.date(2025, 12, 1), "b", "0", "100"),  # previous year
        (1, datetime.date(2025, 1, 1), "c", "0", "1000"),  # previous year
        (1, datetime.date(2024, 12, 1), "c", "0", "10000"),  # before everything
        (1, months_before(1), "a", "2", "0"),
        (1, months_before(2), "a", "4", "0"),
        (1, months_before(3), "a", "8", "0"),  # outside {last: 2, offset: 1}
        (1, datetime.date(2026, 11, 1), "a", "100", "100000"),  # after the closed month
    ]
    _result, rows = run(policy, facts)
    m = metrics_of(rows[1])
    assert m["a_month"] == "1.000" and m["all_month"] == "1.00"
    assert m["a_before"] == "6.000"
    assert (
        json.loads(
            run(policy_parse(POLICY.replace("{ratio: [all_month", "{ratio: [all_ytd")), facts)[1][1][
                "metrics"
            ]
        )["all_ytd"]
        == "11.00"
    )
    prev = policy_parse(POLICY.replace("{ratio: [all_month", "{ratio: [all_prev_year"))
    assert metrics_of(run(prev, facts)[1][1])["all_prev_year"] == "1100.00"


def test_counts_of_products_months_and_transactions(policy):
    facts = [
        (1, MONTH, "a", "1", "1", 3),
        (1, months_before(5), "b", "0", "2", 4),
        (1, months_before(6), "b", "0", "2", 5),  # outside the 6 months, inside the 12
        (1, months_before(2), "c", "0", "0", 1),  # zero amount: neither a line nor a month
        (1, months_before(12), "c", "0", "9", 1),  # outside every window
    ]
    m = metrics_of(run(policy, facts)[1][1])
    assert (m["lines"], m["months_active"], m["txns"]) == ("2", "2", "13")
    assert run(policy, facts)[1][1]["busy"] is True


def test_counts_stay_exact_with_negative_corrections(policy):
    # A refund cancelling a purchase: the product's (and the month's) sum is 0, so it does not count.
    facts = [
        (1, MONTH, "a", "1", "5"),
        (1, months_before(1), "b", "0", "7"),
        (1, months_before(1), "b", "0", "-7"),
        (2, MONTH, "b", "0", "3"),
    ]
    rows = run(policy, facts)[1]
    assert (metrics_of(rows[1])["lines"], metrics_of(rows[1])["months_active"]) == ("1", "1")
    assert (metrics_of(rows[2])["lines"], metrics_of(rows[2])["months_active"]) == ("1", "1")


def test_ratio_of_a_zero_total_is_zero(policy):
    _result, rows = run(policy, [(1, MONTH, "a", "0", "0")])
    assert metrics_of(rows[1])["share"] == "0.00‰"
    assert rows[1]["share_points"] == 0 and "share 0.00‰ < 0.25" in rows[1]["explanation"]


def test_ratio_comparisons_are_exact_at_the_boundary(policy):
    # Customer 1 has exactly half of the month: share ≥ 0.5 → 10 points and "not (share < 50%)" holds.
    rows = run(
        policy, [(1, MONTH, "b", "0", "0.01"), (2, MONTH, "b", "0", "0.01"), (3, MONTH, "c", "0", "0")]
    )[1]
    assert rows[1]["share_points"] == 10 and rows[1]["big"] is True
    assert "big=true: share 500.00‰ ≥ 50%" in rows[1]["explanation"]
    assert rows[3]["share_points"] == 0 and rows[3]["big"] is False


def test_totals_do_not_overflow_int64(policy):
    huge = 6_000_000_000_000_000_000  # fen, twice over int64's range together
    facts = pl.DataFrame(
        {
            "customer_id": [1, 2],
            "month": [MONTH, MONTH],
            "product": ["b", "b"],
            "quantity_milli": [0, 0],
            "amount_fen": [huge, huge],
            "txn_count": [1, 1],
        },
        schema_overrides={"month": pl.Date},
    )
    result = policy_evaluate(
        policy,
        month=MONTH,
        customers=customers_frame([{"customer_id": 1}, {"customer_id": 2}]),
        facts=facts,
        agreements=agreements_frame([]),
    )
    assert [metrics_of(r)["share"] for r in result.sort("customer_id").iter_rows(named=True)] == [
        "500.00‰"
    ] * 2


def test_applies_if_attributes_agreement_filters_and_operands(policy):
    customers = [
        {"customer_id": 1, "sub_type": "shop"},
        {"customer_id": 2, "sub_type": None},
        {"customer_id": 3, "sub_type": "kiosk"},
        {"customer_id": 4, "sub_type": "shop"},
    ]
    agreements = [
        {"customer_id": 1, "signing_level": "city"},
        {"customer_id": 3, "signing_level": "city", "agreement_type": "framework"},
        {"customer_id": 4, "signing_level": "county"},
    ]
    facts = [(c, MONTH, "a", "1", "0") for c in (1, 2, 3, 4)]
    rows = run(policy, facts, customers=customers, agreements=agreements)[1]
    assert [rows[c]["band"] for c in (1, 2, 3, 4)] == ["hi", None, "lo", "lo"]
    assert "band=n/a: sub_type (none) not in [shop, kiosk]" in rows[2]["explanation"]
    assert "band=hi: big true and supply_city true" in rows[1]["explanation"]
    assert "band=lo: supply_city false" in rows[3]["explanation"]
    assert rows[1]["n"] == 3 and rows[2]["n"] == 1
    assert "n=1: a_month 1.000 > a_before 0.000 × 1/2" in rows[2]["explanation"]


def test_weighted_number_output_is_exact_text(policy):
    # n = 3 (hi), share points 10: 0.25 × 3 + 0.75 × 10 = 8.25
    rows = run(policy, [(1, MONTH, "b", "0", "1")], agreements=[{"customer_id": 1, "signing_level": "city"}])[
        1
    ]
    assert rows[1]["mix"] == "8.25"
    assert "mix=8.25: n 3 × 25% + share_points 10 × 75%" in rows[1]["explanation"]


def test_explanation_is_one_line_per_customer_in_output_order(policy):
    rows = run(policy, [(1, MONTH, "a", "0.1", "0")])[1]
    segments = rows[1]["explanation"].split("; ")
    assert [s.split("=")[0] for s in segments] == ["big", "band", "n", "share_points", "mix", "busy"]
    assert "\n" not in rows[1]["explanation"]


def test_any_false_lists_failures_or_counts_them():
    text = POLICY.replace(
        "{any: [{metric: a_month, gte: 0.1}, {not: {metric: share, lt: 50%}}]}",
        "{any: [{metric: a_month, gte: 1}, {metric: a_month, gte: 2}, {metric: a_month, gte: 3}, "
        "{metric: a_month, gte: 4}, {metric: a_month, gte: 5}]}",
    )
    rows = run(policy_parse(text), [(1, MONTH, "a", "0.5", "0")])[1]
    assert rows[1]["explanation"].startswith("big=false: none of the 5 conditions holds;")


def test_overrides_replace_the_value_at_their_step(policy):
    overrides = [
        {"customer_id": 1, "output": "big", "value": "true", "note": "#1 by 王五"},
        {"customer_id": 2, "output": "band", "value": "", "note": "#2"},
        {"customer_id": 3, "output": "mix", "value": "1.5", "note": "#3"},
        {"customer_id": 4, "output": "mix", "value": "", "note": "#4"},
    ]
    facts = [(c, MONTH, "c", "0", "0") for c in (1, 2, 3, 4)]
    rows = run(policy, facts, agreements=[{"customer_id": 1, "signing_level": "city"}], overrides=overrides)[
        1
    ]
    assert rows[1]["big"] is True and rows[1]["band"] == "hi"  # the forced value flows into band
    assert "big=true (override: #1 by 王五; rules gave false: " in rows[1]["explanation"]
    assert rows[2]["band"] is None and "band=n/a (override: #2; rules gave lo: " in rows[2]["explanation"]
    assert rows[3]["mix"] == "1.50"
    assert rows[4]["mix"] is None and "mix=n/a (override: #4; rules gave 0.00: " in rows[4]["explanation"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"output": "band", "value": "mid"}, "is not a value of band"),
        ({"output": "big", "value": "yes"}, "true or false"),
        ({"output": "mix", "value": "1.234"}, "not a valid mix"),
        ({"output": "n", "value": "x"}, "not a valid n"),
    ],
)
def test_bad_overrides_are_refused(policy, override, message):
    with pytest.raises(ServiceError, match=message):
        run(policy, [(1, MONTH, "a", "1", "1")], overrides=[{"customer_id": 1, "note": "#7", **override}])


def test_the_last_of_two_overrides_wins_and_unknown_outputs_are_left_out(policy):
    overrides = [
        {"customer_id": 1, "output": "big", "value": "false"},
        {"customer_id": 1, "output": "big", "value": "true", "note": "the later one"},
        {"customer_id": 1, "output": "dropped_output", "value": "x"},
    ]
    row = run(policy, [(1, MONTH, "c", "0", "0")], overrides=overrides)[1][1]
    assert row["big"] is True and "(override: the later one;" in row["explanation"]


def test_month_must_be_a_first_day(policy):
    with pytest.raises(ServiceError):
        run(policy, [(1, MONTH, "a", "1", "1")], month=datetime.date(2026, 10, 2))


def test_customers_without_facts_get_zero_metrics(policy):
    result, rows = run(policy, [], customers=[{"customer_id": 7, "sub_type": "shop"}])
    assert result.height == 1 and metrics_of(rows[7])["a_month"] == "0.000" and rows[7]["big"] is False


def test_decimal_text_is_exact():
    frame = pl.DataFrame({"x": [0, 5, -5, 5000, -1234567, 9_223_372_036_854_775_807]})
    assert frame.select(decimal_text(pl.col("x"), 3))["x"].to_list() == [
        "0.000",
        "0.005",
        "-0.005",
        "5.000",
        "-1234.567",
        "9223372036854775.807",
    ]
    assert frame.select(decimal_text(pl.col("x"), 0))["x"].to_list()[1] == "5"


def test_empty_inputs_give_an_empty_frame_with_every_column(policy):
    result, _rows = run(policy, [], customers=[])
    assert result.height == 0
    assert result.columns[-3:] == ["responsible_level", "metrics", "explanation"]
    empty_facts = pl.LazyFrame(schema=facts_frame([]).schema)
    result = policy_evaluate(
        policy,
        month=MONTH,
        customers=customers_frame([{"customer_id": 1}]),
        facts=empty_facts,
        agreements=agreements_frame([]),
    )
    assert result["big"].to_list() == [False]
