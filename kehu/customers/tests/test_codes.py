"""Customer ids (Shantou Post rule) and unified social credit codes (GB 32100-2015)."""

from __future__ import annotations

import pytest
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from kehu.customers.codes import format_code, parse_code
from kehu.customers.creditcode import ALPHABET, check_character, credit_code_error, normalise


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110108551385082Q", "91440300708461136T"])
def test_real_credit_codes_are_valid(code):
    assert credit_code_error(code) is None


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("91350100M000100Y4", "18 characters"),
        ("91350100M000100Y44", "check character is wrong: with these first 17 characters it must be 3"),
        ("91350100M0001O0Y43", "“O” cannot appear"),
        ("9135A100M000100Y43", "division code and must be digits"),
    ],
)
def test_invalid_credit_codes_say_why(code, why):
    assert why in credit_code_error(code)


def test_credit_codes_typed_with_a_chinese_input_method_are_normalised():
    assert normalise(" ９１３５０１００ｍ０００１００ｙ４３ ") == "91350100M000100Y43"


first17 = st.text(alphabet=ALPHABET, min_size=2, max_size=2).flatmap(
    lambda head: st.from_regex(r"\A[0-9]{6}\Z").flatmap(
        lambda division: st.text(alphabet=ALPHABET, min_size=9, max_size=9).map(
            lambda body: head + division + body
        )
    )
)


@given(first17)
def test_exactly_one_check_character_completes_any_code(first):
    valid = [c for c in ALPHABET if credit_code_error(first + c) is None]
    assert valid == [check_character(first)]


@given(first17, st.integers(min_value=0, max_value=16), st.sampled_from(ALPHABET))
def test_any_single_character_change_is_caught(first, position, replacement):
    code = first + check_character(first)
    changed = code[:position] + replacement + code[position + 1 :]
    if changed != code and changed[2:8].isdigit():
        assert credit_code_error(changed) is not None


def test_customer_code_parts():
    parsed = parse_code("44050700012003")
    assert (parsed.division, parsed.sequence, parsed.branch, parsed.head) == ("440507", 12, 3, "44050700012")
    assert format_code("440507", 12) == "44050700012000"


@pytest.mark.parametrize("code", ["4405070001200", "440507000120031", "44050700000000", "4405070001200X", ""])
def test_malformed_customer_codes_are_refused(code):
    with pytest.raises(ValueError):
        parse_code(code)
