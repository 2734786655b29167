"""Parsing and validating policy documents: every problem reported, with its line and path."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from kehu.core.errors import ServiceError
from kehu.policies.language import PolicyInvalid, PolicyProblem, policy_parse

PACKS = Path(__file__).resolve().parent.parent / "packs"

BASE = """\
policy: test-policy
title: 测试
products: [gasoline, diesel, card]
metrics:
  gasoline_t: {sum: quantity, products: [gasoline]}
  card_12m: {sum: amount, products: [card], window: {last: 12}}
  revenue_all: {total: card_12m}
  share: {ratio: [card_12m, revenue_all]}
  signed: {agreement: {levels: [province]}}
outputs:
  size:
    label: 规模
    type: choice
    values: {large: 大型, small: 小型}
    first_match:
      - value: large
        if: {any: [{metric: gasoline_t, gte: 5}, {metric: card_12m, gte: 1000000}]}
      - value: small
        otherwise: true
  points:
    type: points
    export: false
    brackets:
      of: share
      table:
        - {min: 3‰, points: 100}
        - {min: 1‰, max: 3‰, points: 80}
  score:
    type: number
    decimals: 1
    weighted: [{of: points, weight: 0.6}, {of: points, weight: 0.4}]
responsibility:
  from: [size]
  table:
    - {when: {size: large}, level: city}
    - {otherwise: true, level: station}
"""


def problems(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyInvalid) as caught:
        policy_parse(text)
    assert isinstance(caught.value, ServiceError)
    return caught.value.problems


def messages(text: str) -> list[str]:
    return [str(p) for p in problems(text)]


def test_base_document_parses():
    policy = policy_parse(BASE)
    assert policy.name == "test-policy" and policy.title == "测试"
    assert policy.products == ("gasoline", "diesel", "card")
    assert [o.name for o in policy.outputs] == ["size", "points", "score"]
    assert policy.exported_outputs() == ["size", "score"]
    assert policy.order("size") == ["large", "small"] and policy.order("score") == []
    assert policy.value_labels("size") == {"large": "大型", "small": "小型"}
    assert policy.responsibility.sources == ("size",)


@pytest.mark.parametrize("name", ["fuel-retail", "postal-key-accounts", "tobacco-retail"])
def test_the_packs_parse(name):
    policy = policy_parse((PACKS / f"{name}.yaml").read_text(encoding="utf-8"))
    assert policy.name == name


def test_constants_are_exact_decimals_from_the_text():
    policy = policy_parse(BASE.replace("gte: 5}", "gte: 0.1}"))
    condition = policy.outputs[0].rules[0].condition.items[0]
    assert condition.rhs.value == Fraction(1, 10) and condition.rhs.text == "0.1"
    share = policy.outputs[1].brackets
    assert [b.min.value for b in share] == [Fraction(3, 1000), Fraction(1, 1000)]


def test_problem_text_names_line_and_path():
    found = messages(BASE.replace("{metric: gasoline_t, gte: 5}", "{metric: gasolin, gte: 5}"))
    assert found == [
        "line 17, outputs.size.first_match[0].if.any[0].metric: unknown metric “gasolin” (did you mean “gasoline_t”?)"
    ]


def test_every_problem_is_reported_at_once():
    text = (
        BASE.replace("gte: 5}", "gte: 5.0001}")
        .replace("label: 规模", "lable: 规模")
        .replace("level: station", "level: village")
    )
    found = problems(text)
    assert len(found) == 3
    assert [p.line for p in found] == [12, 17, 36]
    assert "unknown key “lable” (did you mean “label”?)" in found[0].message
    assert "too many decimals for quantity: at most 3" in found[1].message
    assert "unknown level “village”" in found[2].message


def test_malformed_yaml_names_the_line():
    found = problems("policy: x\nproducts: [a\noutputs: {}\n")
    assert len(found) == 1 and found[0].line is not None and "malformed YAML" in found[0].message


def test_empty_document():
    assert "empty" in messages("")[0]


def test_duplicate_names():
    text = BASE.replace("  share: {ratio", "  gasoline_t: {sum: quantity}\n  share: {ratio")
    assert any("duplicate name “gasoline_t”" in m for m in messages(text))


def test_unknown_output_forward_and_self_references():
    text = BASE.replace("{metric: card_12m, gte: 1000000}", "{output: score, gte: 1}")
    assert any("output “score” is defined later" in m for m in messages(text))
    text = BASE.replace("{metric: card_12m, gte: 1000000}", "{output: size, in: [large]}")
    assert any("output “size” refers to itself" in m for m in messages(text))
    text = BASE.replace("{metric: card_12m, gte: 1000000}", "{output: sise, in: [large]}")
    assert any("unknown output “sise” (did you mean “size”?)" in m for m in messages(text))


def test_metric_cycles_and_unknown_parts():
    text = BASE.replace("revenue_all: {total: card_12m}", "revenue_all: {total: share}")
    found = messages(text)
    assert any("cycle" in m for m in found)
    text = BASE.replace("ratio: [card_12m, revenue_all]", "ratio: [card_12m, revenue_al]")
    assert any("unknown metric “revenue_al”" in m for m in messages(text))


def test_products_must_be_declared():
    text = BASE.replace("products: [gasoline]}", "products: [petrol]}")
    assert any("product “petrol” is not in the policy's products" in m for m in messages(text))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("- {min: 3‰, points: 100}\n        - {min: 1‰, max: 2‰, points: 80}", "a gap or an overlap"),
        ("- {min: 3‰, points: 100}\n        - {min: 1‰, max: 4‰, points: 80}", "a gap or an overlap"),
        ("- {min: 1‰, max: 3‰, points: 80}\n        - {min: 3‰, points: 100}", None),  # ascending is fine
        ("- {min: 3‰, points: 60}\n        - {min: 1‰, max: 3‰, points: 80}", "points must not fall"),
        ("- {min: 3‰, max: 5‰, points: 100}\n        - {min: 1‰, max: 3‰, points: 80}", "has no max"),
        ("- {min: 3‰, points: 100}\n        - {min: 3‰, max: 3‰, points: 80}", "max must be above min"),
        (
            "- {min: 1‰, max: 3‰, points: 80}\n        - {min: 5‰, points: 100}\n        - {min: 3‰, max: 5‰, points: 90}",
            "in order of min",
        ),
    ],
)
def test_bracket_tables_must_chain(table, expected):
    original = "- {min: 3‰, points: 100}\n        - {min: 1‰, max: 3‰, points: 80}"
    text = BASE.replace(original, table)
    if expected is None:
        assert policy_parse(text).outputs[1].brackets[0].points == 100
    else:
        assert any(expected in m for m in messages(text)), messages(text)


def test_weights_must_add_up_to_one_and_fit_the_decimals():
    assert any("add up to 0.9, not 1" in m for m in messages(BASE.replace("weight: 0.4", "weight: 0.3")))
    text = BASE.replace(
        "weight: 0.6}, {of: points, weight: 0.4}", "weight: 0.25}, {of: points, weight: 0.75}"
    )
    assert any("cannot show this weighted score exactly" in m for m in messages(text))
    assert policy_parse(text.replace("decimals: 1", "decimals: 2")).outputs[2].decimals == 2


def test_first_match_values_and_a_final_otherwise():
    assert any(
        "“huge” is not among the values" in m for m in messages(BASE.replace("value: large", "value: huge"))
    )
    text = BASE.replace("      - value: small\n        otherwise: true\n", "")
    assert any("an output that can match no rule" in m for m in messages(text))
    text = BASE.replace(
        "      - value: small\n        otherwise: true\n",
        "      - value: small\n        otherwise: true\n      - value: large\n        otherwise: true\n",
    )
    assert any("rules after “otherwise” can never match" in m for m in messages(text))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, is: true}", "“is” applies to a yes/no value"),
        ("{metric: gasoline_t, gte: 5}", "{metric: signed, gte: 5}", "is a yes/no value"),
        (
            "{metric: gasoline_t, gte: 5}",
            "{metric: gasoline_t, gte: {metric: card_12m}}",
            "cannot compare a quantity",
        ),
        ("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, gte: 5, lt: 6}", "exactly one operator"),
        ("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, gte: five}", "expected an exact decimal"),
        ("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, gte: 5‰}", "expected an exact decimal"),
        (
            "{metric: card_12m, gte: 1000000}",
            "{metric: card_12m, gte: 0.001}",
            "too many decimals for amount",
        ),
        (
            "{metric: gasoline_t, gte: 5}",
            "{attribute: knd, equals: x}",
            "unknown attribute “knd” (did you mean “kind”?)",
        ),
        ("{metric: gasoline_t, gte: 5}", "{metrc: gasoline_t, gte: 5}", "a condition is all, any, not"),
        ("sum: quantity, products: [gasoline]", "sum: quantities, products: [gasoline]", "unknown measure"),
        ("window: {last: 12}", "window: {last: 0}", "whole number ≥ 1"),
        ("window: {last: 12}", "window: last_year", "a window is month"),
        ("type: number", "type: decimal", "unknown type “decimal”"),
        ("policy: test-policy", "policy: Test Policy", "a policy name uses"),
        ("from: [size]", "from: [sizes]", "unknown output “sizes”"),
        (
            "{when: {size: large}, level: city}",
            "{when: {size: big}, level: city}",
            "“big” is not a value of size",
        ),
        (
            "{when: {size: large}, level: city}",
            "{when: {points: 1}, level: city}",
            "is not listed in responsibility",
        ),
        ("label: 规模", "label: 规模\n    if: {metric: signed, is: true}", "computed by exactly one of"),
        ("decimals: 1", "decimals: 1\n    label: x\n    values: [a]", "only a choice output has values"),
        ("  size:\n", "  metrics:\n", "reserved for a column"),
        ("  points:\n", "  gasoline_t:\n", "already the name of a metric"),
    ],
)
def test_validation_problems(old, new, expected):
    assert old in BASE
    found = messages(BASE.replace(old, new, 1))
    assert any(expected in m for m in found), found


def test_operands_with_rational_factors():
    text = BASE.replace(
        "{metric: card_12m, gte: 1000000}", "{metric: card_12m, lt: {metric: revenue_all, times: 1/6}}"
    )
    condition = policy_parse(text).outputs[0].rules[0].condition.items[1]
    assert condition.rhs.factor == Fraction(1, 6) and condition.rhs.factor_text == "1/6"


def test_with_thresholds_edits_constants_by_path_and_revalidates():
    policy = policy_parse(BASE)
    assert "outputs.size.first_match[0].if.any[0].gte" in policy.threshold_paths()
    edited = policy.with_thresholds(
        {
            "outputs.size.first_match[0].if.any[0].gte": "4.5",
            "outputs.points.brackets.table[0].min": "2.5‰",
            "outputs.points.brackets.table[1].max": "2.5‰",
        }
    )
    assert edited.outputs[0].rules[0].condition.items[0].rhs.value == Fraction(9, 2)
    assert edited.outputs[1].brackets[0].min.value == Fraction(25, 10000)
    assert policy.outputs[0].rules[0].condition.items[0].rhs.value == 5  # the original is unchanged
    with pytest.raises(PolicyInvalid, match="there is no threshold at this path"):
        policy.with_thresholds({"outputs.size.label": "1"})
    with pytest.raises(PolicyInvalid, match="a gap or an overlap"):
        policy.with_thresholds({"outputs.points.brackets.table[0].min": "2‰"})
    with pytest.raises(PolicyInvalid, match="too many decimals"):
        policy.with_thresholds({"outputs.size.first_match[0].if.any[0].gte": "4.5555"})
    with pytest.raises(PolicyInvalid, match="is not a decimal"):
        policy.with_thresholds({"outputs.size.first_match[0].if.any[0].gte": "5; rm -rf"})


def test_unknown_output_in_policy_helpers():
    with pytest.raises(ServiceError):
        policy_parse(BASE).value_labels("nope")


def test_alias_bombs_are_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, 8):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]")
    found = messages("\n".join(lines) + "\npolicy: x\nproducts: [a]\noutputs: {}\n")
    assert found == ["the document is too large"]
