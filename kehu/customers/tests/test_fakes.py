"""The fake customers behind ``kehu demo`` and ``kehu gen-data``: valid codes, unique names, determinism."""

from __future__ import annotations

from collections import Counter
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.core.divisions import _table, is_known_division
from kehu.customers import fakes
from kehu.customers.creditcode import credit_code_error
from kehu.customers.duplicates import name_key
from kehu.customers.fakes import (
    CITY_CENTRES,
    INDUSTRIES,
    PLACE_ENDINGS,
    PUBLIC_BODIES,
    SUB_TYPES,
    TRADE_CHARS,
    CustomerFaker,
    org_code_check,
    place_prefixes,
)
from kehu.customers.personal import id_card_error, normalise_phone, phone_error
from kehu.customers.search import CJK_RUN, pinyin_syllables

COUNTY_CODES = sorted(c for c in _table() if not c.endswith("00"))
SHANDONG = [c for c in COUNTY_CODES if c.startswith("37")]


def test_org_code_check_character_gb_11714():
    # 91350100M000100Y43 is a published valid credit code: its organisation code is M000100Y-4.
    assert org_code_check("M000100Y") == "4"
    assert org_code_check("00000000") == "0"  # 11 - 0 → 0
    # Every digit body gets a check character that makes the weighted sum a multiple of 11.
    for body in ("12345678", "MA3C4X7N", "D2143569"):
        check = org_code_check(body)
        value = 10 if check == "X" else int(check)
        total = sum(
            (int(c) if c.isdigit() else ord(c) - 55) * w
            for c, w in zip(body, fakes._ORG_WEIGHTS, strict=True)
        )
        assert (total + value) % 11 == 0, body


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    division=st.sampled_from(COUNTY_CODES),
    authority=st.sampled_from(["91", "93", "11", "12", "51"]),
    skip=st.integers(min_value=0, max_value=50),
)
def test_credit_codes_are_valid(seed, division, authority, skip):
    faker = CustomerFaker(seed)
    for _ in range(skip):
        faker.org_body()
    code = faker.credit_code(division, authority)
    assert credit_code_error(code) is None, code
    assert code[:2] == authority and code[2:8] == division
    body, check = code[8:16], code[16]
    assert check == org_code_check(body)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**31), division=st.sampled_from(COUNTY_CODES))
def test_every_generated_customer_is_well_formed(seed, division):
    faker = CustomerFaker(seed)
    for _ in range(40):
        c = faker.customer(division)
        assert c.kind in ("institution", "individual")
        assert c.sub_type in {code for code, _n, _k in SUB_TYPES}
        if c.credit_code:
            assert credit_code_error(c.credit_code) is None
            assert c.credit_code[2:8] == division
        assert c.division_code == division and is_known_division(division)
        assert c.name and len(c.name) <= 200 and len(c.short_name) <= 100
        runs = CJK_RUN.findall(c.name)
        assert len(c.syllables) == sum(len(run) for run in runs) and all(c.syllables), c.name
        if c.short_name:
            assert c.short_name in c.name
            assert len(c.short_syllables) == len(c.short_name)
        assert -90 <= c.latitude <= 90 and -180 <= c.longitude <= 180


def test_names_never_share_a_duplicate_key_within_one_generation():
    faker = CustomerFaker(11)
    divisions = SHANDONG + [c for c in COUNTY_CODES if c.startswith(("11", "4190", "1529"))]
    customers = [faker.customer(divisions[i % len(divisions)]) for i in range(30000)]
    keys = Counter(name_key(c.name) for c in customers)
    assert max(keys.values()) == 1, keys.most_common(3)
    # Many names in one place and one industry still come out different (a permutation of trade names).
    one_place = [faker.institution("370102", public_share=0) for _ in range(3000)]
    assert len({name_key(c.name) for c in one_place}) == 3000
    kinds = Counter(c.kind for c in customers)
    assert 0.5 < kinds["institution"] / len(customers) < 0.7
    for form in ("有限公司", "有限责任公司", "股份有限公司"):
        assert any(c.name.endswith(form) for c in customers), form
    assert any(c.name.endswith("合作社") and c.credit_code.startswith("93") for c in customers)
    assert any(c.credit_code[:2] in ("11", "12", "51") for c in customers)


def test_pinyin_by_name_part_agrees_with_the_whole_name_almost_always():
    """The fakes read each name part on its own (cached); pypinyin reading the whole name may pick
    another reading where a part boundary makes a word (于思娟: yu si juan, not yu sai juan)."""
    faker = CustomerFaker(21)
    customers = [faker.customer(SHANDONG[i % len(SHANDONG)]) for i in range(3000)]
    differ = [c.name for c in customers
              if c.syllables != tuple(s for run in CJK_RUN.findall(c.name) for s in pinyin_syllables(run))]  # fmt: skip
    assert len(differ) < len(customers) * 0.03, differ[:10]


def test_the_pieces_keep_names_apart():
    """The construction behind unique keys: trade-name characters never start an industry or a public
    body's name and never end a place; no prefix extends another with a trade-name character."""
    trade = set(TRADE_CHARS)
    assert len(trade) == len(TRADE_CHARS)
    assert not trade & set(PLACE_ENDINGS)
    for word, *_rest in INDUSTRIES:
        assert word[0] not in trade and not set(word) & set(PLACE_ENDINGS), word
    for body, *_rest in PUBLIC_BODIES:
        assert body[0] not in trade, body
    for code in COUNTY_CODES[::7]:
        prefixes = [p for p, _w in place_prefixes(code)]
        assert prefixes, code
        for p in prefixes:
            assert p[-1] not in trade
            for other in prefixes:
                if other != p and p.startswith(other):
                    assert p[len(other)] not in trade, (p, other)


def test_near_duplicates_share_the_key_and_nothing_else():
    faker = CustomerFaker(5)
    for _ in range(200):
        original = faker.institution("370602")
        twin = faker.near_duplicate(original)
        assert twin.name != original.name
        assert name_key(twin.name) == name_key(original.name)
        assert twin.credit_code == ""  # a second filing without the code: nothing to block it


def test_same_seed_same_customers_other_seed_others():
    def batch(seed):
        faker = CustomerFaker(seed)
        return [(c.name, c.credit_code, c.address, c.tags, faker.mobile()) for c in
                (faker.customer(SHANDONG[i % len(SHANDONG)]) for i in range(300))]  # fmt: skip

    assert batch(3) == batch(3)
    assert batch(3) != batch(4)


def test_phones_plates_and_id_cards():
    faker = CustomerFaker(9)
    mobiles = [faker.mobile() for _ in range(20000)]
    assert len(set(mobiles)) == len(mobiles)
    for number in mobiles[:500]:
        assert phone_error(number) is None and normalise_phone(number) == number
    landlines = [faker.landline("370102") for _ in range(2000)]
    assert len(set(landlines)) == len(landlines)
    assert all(n.startswith("0531") and phone_error(n) is None for n in landlines)
    plates = [faker.plate("370102") for _ in range(20000)]
    assert len(set(plates)) == len(plates) and all(p.startswith("鲁A") and len(p) == 7 for p in plates)
    assert not {c for p in plates for c in p[1:]} & {"I", "O"}
    for k in range(200):
        number = faker.id_card("370102", date(1960 + k % 40, 1 + k % 12, 1 + k % 28))
        assert id_card_error(number) is None, number


def test_locations_near_the_city_and_addresses_in_the_division():
    faker = CustomerFaker(2)
    for code in ("370102", "370211", "371302"):
        lat0, lon0 = CITY_CENTRES[code[:4]]
        for _ in range(50):
            lat, lon = faker.location(code)
            assert abs(float(lat) - lat0) <= 0.1 and abs(float(lon) - lon0) <= 0.13
    assert faker.address("370102").startswith("山东省济南市历下区")
    assert faker.address("370102", roads=["经十路"]).startswith("山东省济南市历下区经十路")
    lat, lon = faker.location("130102")  # a province the demo does not cover: near its capital
    assert abs(float(lat) - 38.04) < 2 and abs(float(lon) - 114.5) < 2


def test_contacts_and_agreements():
    faker = CustomerFaker(4)
    customer = faker.institution("370102", public_share=0)
    first = faker.contact(customer, first=True)
    assert first.name == customer.legal_representative and first.decision_role == "decision_maker"
    roles = {faker.contact(customer).decision_role for _ in range(200)}
    assert roles == {"decision_maker", "influencer", "user", "payer"}
    for _ in range(200):
        a = faker.agreement(unit_tag="SD-JN")
        assert a.number.startswith("SD-JN-")
        assert a.end_date is None or a.end_date >= a.start_date
        assert a.status in ("draft", "active", "ended", "terminated")
        if a.end_date is not None and a.end_date < faker.today:
            assert a.status in ("ended", "terminated")
