"""The three packs against the source tables (domain.md §3–5), at and around every boundary."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from functools import cache
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.policies.engine import policy_evaluate
from kehu.policies.language import Policy, policy_parse

PACKS = Path(__file__).resolve().parent.parent / "packs"
MONTH = datetime.date(2026, 10, 1)


@cache
def pack(name: str) -> Policy:
    return policy_parse((PACKS / f"{name}.yaml").read_text(encoding="utf-8"))


def months_before(count: int, month: datetime.date = MONTH) -> datetime.date:
    index = month.year * 12 + month.month - 1 - count
    return datetime.date(index // 12, index % 12 + 1, 1)


def customers_frame(rows: list[dict]) -> pl.DataFrame:
    defaults = {"kind": "institution", "sub_type": None, "status": "active", "payment_profile": ""}
    return pl.DataFrame(
        [{**defaults, **row} for row in rows],
        schema={
            "customer_id": pl.Int64,
            "kind": pl.Utf8,
            "sub_type": pl.Utf8,
            "status": pl.Utf8,
            "payment_profile": pl.Utf8,
        },
    )


def facts_frame(rows: list[tuple]) -> pl.DataFrame:
    """(customer_id, month, product, quantity in units as text, amount in yuan as text[, txn_count])."""
    records = []
    for row in rows:
        customer, month, product, quantity, amount = row[:5]
        records.append(
            {
                "customer_id": customer,
                "month": month,
                "product": product,
                "quantity_milli": int(Decimal(str(quantity)) * 1000),
                "amount_fen": int(Decimal(str(amount)) * 100),
                "txn_count": row[5] if len(row) > 5 else 1,
            }
        )
    return pl.DataFrame(
        records,
        schema={
            "customer_id": pl.Int64,
            "month": pl.Date,
            "product": pl.Utf8,
            "quantity_milli": pl.Int64,
            "amount_fen": pl.Int64,
            "txn_count": pl.Int64,
        },
    )


def agreements_frame(rows: list[dict]) -> pl.DataFrame:
    defaults = {
        "signing_level": "city",
        "agreement_type": "supply",
        "status": "active",
        "start_date": datetime.date(2020, 1, 1),
        "end_date": None,
    }
    return pl.DataFrame(
        [{**defaults, **row} for row in rows],
        schema={
            "customer_id": pl.Int64,
            "signing_level": pl.Utf8,
            "agreement_type": pl.Utf8,
            "status": pl.Utf8,
            "start_date": pl.Date,
            "end_date": pl.Date,
        },
    )


def overrides_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"note": "override", **row} for row in rows],
        schema={"customer_id": pl.Int64, "output": pl.Utf8, "value": pl.Utf8, "note": pl.Utf8},
    )


def evaluate(
    name: str,
    facts: list[tuple],
    *,
    customers: list[dict] | None = None,
    agreements=(),
    overrides=(),
    month: datetime.date = MONTH,
) -> dict[int, dict]:
    """Results by customer id; customers default to every customer named in the facts (institutions)."""
    if customers is None:
        customers = [{"customer_id": c} for c in sorted({row[0] for row in facts})]
    result = policy_evaluate(
        pack(name),
        month=month,
        customers=customers_frame(customers),
        facts=facts_frame(facts),
        agreements=agreements_frame(list(agreements)),
        overrides=overrides_frame(list(overrides)) if overrides else None,
    )
    return {row["customer_id"]: row for row in result.iter_rows(named=True)}


def one(name: str, facts: list[tuple], **kwargs) -> dict:
    customer = kwargs.pop("customer", {"customer_id": 1})
    return evaluate(name, facts, customers=[customer], **kwargs)[customer["customer_id"]]


# ------------------------------------------------------------------ fuel-retail


def test_fuel_pack_exports_size_level_churn():
    policy = pack("fuel-retail")
    assert policy.exported_outputs() == ["size", "level", "churn"]
    assert policy.order("level") == ["province", "city", "county", "station"]
    assert policy.value_labels("size") == {"large": "大型", "medium": "中型", "small": "小型"}


@pytest.mark.parametrize(
    ("product", "quantity", "size", "level"),
    [
        ("gasoline", "5", "large", "city"),
        ("gasoline", "4.999", "medium", "county"),
        ("gasoline", "2", "medium", "county"),
        ("gasoline", "1.999", "small", "station"),
        ("diesel", "50", "large", "city"),
        ("diesel", "49.999", "medium", "county"),
        ("diesel", "20", "medium", "county"),
        ("diesel", "19.999", "small", "station"),
    ],
)
def test_fuel_size_and_level_by_monthly_tonnes(product, quantity, size, level):
    row = one("fuel-retail", [(1, MONTH, product, quantity, "0")])
    assert (row["size"], row["level"], row["responsible_level"]) == (size, level, level)


@pytest.mark.parametrize(
    ("amount", "size", "level"),
    [
        ("20000000", "large", "province"),
        ("19999999.99", "large", "city"),
        ("1000000", "large", "city"),
        ("999999.99", "medium", "county"),
        ("100000", "medium", "county"),
        ("99999.99", "small", "station"),
    ],
)
def test_fuel_card_purchases_over_twelve_months(amount, size, level):
    # Spread over the first and the last month of the window; a purchase 12 months back is outside it.
    half = (Decimal(amount) / 2).quantize(Decimal("0.01"))
    facts = [
        (1, MONTH, "card", "0", str(half)),
        (1, months_before(11), "card", "0", str(Decimal(amount) - half)),
        (1, months_before(12), "card", "0", "50000000"),
    ]
    row = one("fuel-retail", facts)
    assert (row["size"], row["level"]) == (size, level)
    assert json.loads(row["metrics"])["card_12m"] == str(Decimal(amount).quantize(Decimal("0.01")))


def test_fifty_tenths_of_a_tonne_are_five_tonnes():
    row = one("fuel-retail", [(1, MONTH, "gasoline", "0.1", "0")] * 50)
    assert (row["size"], row["level"]) == ("large", "city")
    assert json.loads(row["metrics"])["gasoline_t"] == "5.000"
    assert "gasoline_t 5.000 ≥ 5" in row["explanation"]


def test_fuel_individuals_have_no_size_but_a_level():
    row = one(
        "fuel-retail", [(1, MONTH, "gasoline", "6", "0")], customer={"customer_id": 1, "kind": "individual"}
    )
    assert row["size"] is None and row["level"] == "city"
    assert row["explanation"].startswith(
        "size=n/a: kind individual ≠ institution; level=city: gasoline_t 6.000 ≥ 5"
    )


@pytest.mark.parametrize(
    ("agreement", "active"),
    [
        ({"start_date": datetime.date(2026, 10, 31)}, True),  # starts on the month's last day
        ({"start_date": datetime.date(2026, 11, 1)}, False),  # starts the day after
        (
            {"start_date": datetime.date(2025, 1, 1), "end_date": datetime.date(2026, 10, 1)},
            True,
        ),  # ends on day 1
        (
            {"start_date": datetime.date(2025, 1, 1), "end_date": datetime.date(2026, 9, 30)},
            False,
        ),  # the day before
        ({"status": "draft"}, False),
        ({"status": "ended", "end_date": datetime.date(2026, 10, 15)}, True),  # ended within the month
    ],
)
def test_fuel_province_agreement_active_on_month_boundaries(agreement, active):
    row = one(
        "fuel-retail",
        [(1, MONTH, "gasoline", "0.5", "0")],
        agreements=[{"customer_id": 1, "signing_level": "province", **agreement}],
    )
    # Without an active agreement this small institution stays at station level.
    assert row["level"] == ("province" if active else "station")


def test_fuel_county_for_an_institution_with_any_active_agreement():
    customers = [{"customer_id": 1}, {"customer_id": 2, "kind": "individual"}]
    agreements = [
        {"customer_id": 1, "signing_level": "station"},
        {"customer_id": 2, "signing_level": "station"},
    ]
    rows = evaluate(
        "fuel-retail", [(1, MONTH, "gasoline", "0.1", "0")], customers=customers, agreements=agreements
    )
    assert rows[1]["level"] == "county" and rows[2]["level"] == "station"
    assert "kind institution = institution and any_agreement true" in rows[1]["explanation"]


@pytest.mark.parametrize(("this_month", "churn"), [("1.499", True), ("1.5", False), ("0", True)])
def test_fuel_churn_under_half_of_the_previous_three_months_average(this_month, churn):
    facts = [(1, months_before(k), "gasoline", "2", "0") for k in (1, 2, 3)]
    facts += [
        (1, months_before(k), "diesel", "1", "0") for k in (1, 2, 3)
    ]  # 9 t over 3 months: half avg 1.5 t
    facts += [(1, months_before(4), "diesel", "900", "0")]  # outside the window
    facts.append((1, MONTH, "diesel", this_month, "0"))
    assert one("fuel-retail", facts)["churn"] is churn


def test_fuel_no_churn_without_previous_volume():
    assert one("fuel-retail", [(1, MONTH, "gasoline", "0", "0")])["churn"] is False


def test_fuel_facts_of_several_sources_are_summed_and_strangers_ignored():
    facts = [
        (1, MONTH, "gasoline", "3", "0"),
        (1, MONTH, "gasoline", "2", "0"),
        (99, MONTH, "gasoline", "9", "0"),
    ]
    rows = evaluate("fuel-retail", facts, customers=[{"customer_id": 1}, {"customer_id": 2}])
    assert set(rows) == {1, 2}
    assert rows[1]["size"] == "large" and rows[2]["size"] == "small"
    assert json.loads(rows[2]["metrics"])["gasoline_t"] == "0.000"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3_000), min_size=1, max_size=60), st.integers(0, 2))
def test_splitting_quantities_into_many_facts_never_changes_the_result(parts, product_index):
    product = ["gasoline", "diesel", "card"][product_index]
    total = sum(parts)
    whole = [(1, MONTH, product, str(Decimal(total) / 1000), str(Decimal(total) * 40))]
    split = [(1, MONTH, product, str(Decimal(p) / 1000), str(Decimal(p) * 40)) for p in parts]
    assert one("fuel-retail", whole) == one("fuel-retail", split)


# ------------------------------------------------------------------ postal-key-accounts

LINES = {
    "savings_remittance": ("20000", "2000"),
    "bills": ("50000", "5000"),
    "letters": ("12000", "1000"),
    "philately": ("40000", "3500"),
    "express": ("20000", "2000"),
    "logistics": ("50000", "5000"),
    "parcels": ("10000", "1000"),
    "newspapers": ("20000", "2000"),
}


def test_postal_pack_exports_in_order():
    policy = pack("postal-key-accounts")
    assert policy.exported_outputs() == ["key_account", "score", "grade", "scope"]
    assert policy.order("grade") == ["diamond", "gold", "silver", "general"]


def test_postal_key_account_by_totals_boundary():
    last_year = datetime.date(2025, 6, 1)
    at = one(
        "postal-key-accounts", [(1, last_year, "letters", "0", "10000"), (1, MONTH, "letters", "0", "1000")]
    )
    under = one(
        "postal-key-accounts", [(1, last_year, "letters", "0", "10000"), (1, MONTH, "letters", "0", "999.99")]
    )
    short = one(
        "postal-key-accounts", [(1, last_year, "letters", "0", "9999.99"), (1, MONTH, "letters", "0", "5000")]
    )
    assert at["key_account"] is True and under["key_account"] is False and short["key_account"] is False
    assert "revenue_prev_year ¥10000.00 ≥ 10000 and revenue_month ¥1000.00 ≥ 1000" in at["explanation"]
    assert under["grade"] is None and under["responsible_level"] == "station"


@pytest.mark.parametrize("line", sorted(LINES))
def test_postal_key_account_by_one_product_line_at_exactly_both_thresholds(line):
    year, month = LINES[line]
    facts = [(1, datetime.date(2025, 12, 1), line, "0", year), (1, MONTH, line, "0", month)]
    assert one("postal-key-accounts", facts)["key_account"] is True
    below = [
        (1, datetime.date(2025, 12, 1), line, "0", str(Decimal(year) - Decimal("0.01"))),
        (1, MONTH, line, "0", str(Decimal(month) - Decimal("0.01"))),
    ]
    # Under the line's thresholds; the totals rule (¥10,000 / ¥1,000) may still hold on its own.
    expected = Decimal(year) - Decimal("0.01") >= 10000 and Decimal(month) - Decimal("0.01") >= 1000
    assert one("postal-key-accounts", below)["key_account"] is expected


def test_postal_key_account_by_agreement():
    row = one("postal-key-accounts", [], agreements=[{"customer_id": 1}])
    assert row["key_account"] is True and row["grade"] == "general" and row["scope"] is None
    assert row["responsible_level"] == "station"


@pytest.mark.parametrize(
    ("revenue", "points"),
    [
        ("1500000", 100),
        ("1499999.99", 90),
        ("1000000", 90),
        ("999999.99", 80),
        ("500000", 80),
        ("300000", 70),
        ("299999.99", 60),
        ("100000", 60),
        ("99999.99", 0),
        ("0", 0),
    ],
)
def test_postal_revenue_points_at_bracket_boundaries(revenue, points):
    # A second customer makes the bureau's total large, so share points stay 0 (score = 0.6 × points).
    facts = [(1, MONTH, "express", "0", revenue), (2, MONTH, "bills", "0", "999999999999")]
    row = evaluate("postal-key-accounts", facts)[1]
    assert row["score"] == str((Decimal(points) * Decimal("0.6")).quantize(Decimal("0.1")))
    assert f"revenue_points={points}" in row["explanation"]


@pytest.mark.parametrize(
    ("mine", "others", "points"),
    [
        ("3000", "997000", 100),
        ("2999.99", "997000.01", 80),
        ("1000", "999000", 80),
        ("999.99", "999000.01", 60),
        ("500", "999500", 60),
        ("100", "999900", 40),
        ("99.99", "999900.01", 0),
    ],
)
def test_postal_share_points_at_bracket_boundaries(mine, others, points):
    facts = [(1, MONTH, "letters", "0", mine), (2, months_before(11), "parcels", "0", others)]
    row = evaluate("postal-key-accounts", facts)[1]
    assert f"share_points={points}" in row["explanation"]


def test_postal_share_is_over_every_customer_evaluated_not_strangers():
    facts = [
        (1, MONTH, "letters", "0", "3000"),
        (2, MONTH, "letters", "0", "997000"),
        (3, MONTH, "letters", "0", "5000000"),
    ]
    rows = evaluate("postal-key-accounts", facts, customers=[{"customer_id": 1}, {"customer_id": 2}])
    assert json.loads(rows[1]["metrics"])["share"] == "3.00‰"
    assert json.loads(rows[1]["metrics"])["revenue_all"] == "1000000.00"


@pytest.mark.parametrize(
    ("score", "grade", "level"),
    [
        ("90.0", "diamond", "province"),
        ("89.9", "gold", "city"),
        ("75", "gold", "city"),
        ("74.9", "silver", "county"),
        ("65.0", "silver", "county"),
        ("64.9", "general", "station"),
    ],
)
def test_postal_grade_thresholds_via_a_score_override(score, grade, level):
    # 75 cannot come out of the pack's brackets (0.6·r + 0.4·s), so the score is forced and flows on.
    facts = [(1, MONTH, "letters", "0", "3000"), (1, MONTH, "parcels", "0", "3000")]
    row = one(
        "postal-key-accounts",
        facts,
        agreements=[{"customer_id": 1}],
        overrides=[{"customer_id": 1, "output": "score", "value": score, "note": "test"}],
    )
    assert (row["grade"], row["scope"], row["responsible_level"]) == (grade, "comprehensive", level)


def test_postal_scores_grades_and_responsibility_from_real_brackets():
    facts = [
        (1, MONTH, "express", "0", "1500000"),
        (1, MONTH, "parcels", "0", "1"),  # 100 points, share 2.98‰
        (2, MONTH, "express", "0", "1000000"),  # 90 points, share 1.99‰: 80 points, specialist
        (3, MONTH, "letters", "0", "100"),  # a tiny customer: not a key account
        (4, MONTH, "bills", "0", "500000000"),
    ]
    rows = evaluate("postal-key-accounts", facts, agreements=[{"customer_id": 1}, {"customer_id": 2}])
    assert (rows[1]["score"], rows[1]["grade"], rows[1]["scope"], rows[1]["responsible_level"]) == (
        "92.0",
        "diamond",
        "comprehensive",
        "province",
    )
    assert (rows[2]["score"], rows[2]["grade"], rows[2]["scope"], rows[2]["responsible_level"]) == (
        "86.0",
        "gold",
        "specialist",
        "county",
    )
    assert "score=86.0: revenue_points 90 × 60% + share_points 80 × 40%" in rows[2]["explanation"]
    assert "revenue_points=90: revenue_12m ¥1000000.00 in [1000000, 1500000)" in rows[2]["explanation"]
    assert (rows[3]["key_account"], rows[3]["grade"], rows[3]["responsible_level"]) == (
        False,
        None,
        "station",
    )
    assert rows[3]["score"] == "0.0"


def test_postal_override_propagates_to_grade_and_responsibility():
    facts = [(1, MONTH, "express", "0", "1000000"), (2, MONTH, "bills", "0", "500000000")]
    note = "override #12 approved by 王五"
    row = evaluate(
        "postal-key-accounts",
        facts,
        agreements=[{"customer_id": 1}],
        overrides=[{"customer_id": 1, "output": "grade", "value": "diamond", "note": note}],
    )[1]
    assert row["grade"] == "diamond" and row["responsible_level"] == "province"
    assert f"grade=diamond (override: {note}; rules gave gold: score 86.0 ≥ 75)" in row["explanation"]


def test_postal_scope_needs_revenue_and_counts_lines():
    facts = [
        (1, MONTH, "letters", "0", "10"),
        (2, MONTH, "letters", "0", "10"),
        (2, months_before(11), "bills", "0", "1"),
        (3, months_before(12), "bills", "0", "50"),
    ]
    rows = evaluate("postal-key-accounts", facts)
    assert (rows[1]["scope"], rows[2]["scope"], rows[3]["scope"]) == ("specialist", "comprehensive", None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200_000_000), min_size=2, max_size=8))
def test_revenue_points_are_monotone_and_exact(fens):
    brackets = [(150_000_000, 100), (100_000_000, 90), (50_000_000, 80), (30_000_000, 70), (10_000_000, 60)]
    boundaries = [b for b, _p in brackets]
    values = sorted(set(fens + [b + d for b in boundaries for d in (-1, 0)]))
    facts = [(i + 1, MONTH, "express", "0", str(Decimal(v) / 100)) for i, v in enumerate(values)]
    rows = evaluate("postal-key-accounts", facts)
    points = []
    for i, v in enumerate(values):
        expected = next((p for b, p in brackets if v >= b), 0)
        got = int(rows[i + 1]["explanation"].split("revenue_points=")[1].split(":")[0])
        assert got == expected
        points.append(got)
    assert points == sorted(points)


# ------------------------------------------------------------------ tobacco-retail


def test_tobacco_pack_parses_with_documented_outputs():
    policy = pack("tobacco-retail")
    assert "class" in policy.exported_outputs() and "visit_frequency" in policy.exported_outputs()
    assert policy.order("class") == ["A", "B", "C", "D", "E"]


def tobacco_row(monthly: str, *, months: int = 12, previous: str = "0", sub_type: str = "grocery") -> dict:
    facts = [(1, months_before(k), "cigarettes", "0", monthly) for k in range(months)]
    facts += [(1, months_before(12 + k), "cigarettes", "0", previous) for k in range(12)]
    return one(
        "tobacco-retail", facts, customer={"customer_id": 1, "sub_type": sub_type, "kind": "individual"}
    )


def test_tobacco_composite_class_and_visits():
    row = tobacco_row("30000", previous="25000")  # 360k (80), 12 months (100), grocery (60), +20 % (100)
    assert (row["contribution"], row["credit"], row["own"], row["development"]) == (80, 100, 60, 100)
    assert (row["composite"], row["class"], row["visit_frequency"]) == ("84.0", "B", 2)
    assert (
        "composite=84.0: contribution 80 × 40% + credit 100 × 20% + own 60 × 20% + development 100 × 20%"
        in (row["explanation"])
    )
    assert row["responsible_level"] is None


@pytest.mark.parametrize(
    ("previous", "points"),
    [("25000", 100), ("25000.01", 80), ("28571.42", 80), ("28571.43", 60), ("0", 0)],
)
def test_tobacco_development_growth_boundaries(previous, points):
    # 12 × ¥30,000 = ¥360,000 this year: exactly 120 % of 12 × ¥25,000; ¥360,000 / 1.05 = ¥342,857.142…
    assert tobacco_row("30000", previous=previous)["development"] == points


@pytest.mark.parametrize(
    ("months", "credit"), [(12, 100), (11, 80), (10, 80), (8, 60), (6, 40), (3, 20), (2, 0)]
)
def test_tobacco_credit_counts_months_with_purchases(months, credit):
    assert tobacco_row("1000", months=months)["credit"] == credit


@pytest.mark.parametrize(
    ("sub_type", "monthly", "months", "previous", "expected"),
    [
        ("supermarket", "50000", 12, "40000", ("100.0", "A", 4)),  # 100·0.4 + 100·0.2 + 100·0.2 + 100·0.2
        ("convenience_store", "20000", 12, "20000", ("80.0", "B", 2)),  # 80·0.4 + 100·0.2 + 80·0.2 + 60·0.2
        ("grocery", "10000", 12, "10000", ("68.0", "C", 1)),  # 60·0.4 + 100·0.2 + 60·0.2 + 60·0.2
        ("grocery", "10", 12, "8", ("52.0", "D", 1)),  # 0 + 100·0.2 + 60·0.2 + 100·0.2
        ("kiosk", "10", 2, "0", ("12.0", "E", 0)),  # 0 + 0 + 60·0.2 + 0
    ],
)
def test_tobacco_classes(sub_type, monthly, months, previous, expected):
    row = tobacco_row(monthly, months=months, previous=previous, sub_type=sub_type)
    assert (row["composite"], row["class"], row["visit_frequency"]) == expected
