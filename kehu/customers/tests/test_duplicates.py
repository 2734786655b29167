"""Duplicate detection: the name key, the similarity rules, finding candidates through the indexes,
scoping of the candidates and the audited reason to go on."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.utils import translation
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kehu.audit.models import AuditEvent
from kehu.customers import duplicates
from kehu.customers.duplicates import (
    LEGAL_SUFFIXES,
    SimilarNamesFound,
    _bigram_groups,
    name_key,
    similar_customers,
    similarity,
)
from kehu.customers.services import customer_create, customer_update


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def make(user, unit, name, division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, **kw)  # fmt: skip


# ---------------------------------------------------------------- name_key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("中国石化（北京）有限公司", "中国石化北京"),
        ("中国石化 (北京) 有限公司", "中国石化北京"),
        ("【中国石化】北京", "中国石化北京"),
        ("济南顺达物流有限责任公司", "济南顺达物流"),
        ("济南顺达物流股份有限公司", "济南顺达物流"),
        ("济南顺达物流股份公司", "济南顺达物流"),
        ("中国石化济南分公司", "中国石化济南"),
        ("齐鲁能源集团有限公司", "齐鲁能源"),
        ("青岛创投中心（有限合伙）", "青岛创投中心"),
        ("ＡＢＣ　物流有限公司", "abc物流"),
        ("Foo Trading Co., Ltd.", "footrading"),
        ("FOO TRADING COMPANY LIMITED", "footrading"),
        ("Tesco", "tesco"),  # "co" ends ordinary words: not a legal form here
        ("Zinc Works Inc", "zincworksinc"),
        ("公司", "公司"),  # never emptied
        ("有限公司", "有限"),
        ("（）", ""),
    ],
)
def test_name_key_examples(name, key):
    assert name_key(name) == key


CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
# Characters that occur in no legal suffix, so that a base never ends in part of one.
SUFFIX_CHARS = set("".join(LEGAL_SUFFIXES).replace(" ", ""))
BASE_CHARS = st.one_of(CJK, st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789")).filter(
    lambda c: c not in SUFFIX_CHARS
)
NOISE = st.sampled_from(
    [" ", "\u3000", "(", ")", "（", "）", "【", "】", "[", "]", "·", "-", ",", "，", "。", "、", "."]
)


@given(st.text(max_size=60))
@settings(max_examples=400)
def test_name_key_is_idempotent(name):
    assert name_key(name_key(name)) == name_key(name)


@given(st.text(BASE_CHARS, min_size=1, max_size=30), st.lists(st.sampled_from(LEGAL_SUFFIXES), max_size=3),
       st.data())  # fmt: skip
def test_spaces_brackets_and_full_width_forms_do_not_change_the_key(base, suffixes, data):
    name = base + "".join(suffixes)
    noisy = []
    for char in name:
        if data.draw(st.booleans()):
            noisy.append(data.draw(NOISE))
        if "!" <= char <= "~" and data.draw(st.booleans()):
            char = chr(ord(char) + 0xFEE0)  # the full-width form a Chinese input method types
        if char.isascii() and data.draw(st.booleans()):
            char = char.upper()
        noisy.append(char)
    assert name_key("".join(noisy)) == name_key(name)


@given(st.text(BASE_CHARS, max_size=20), st.lists(st.sampled_from(LEGAL_SUFFIXES), min_size=1, max_size=4))
def test_suffixes_go_but_never_the_whole_name(base, suffixes):
    key = name_key(base + "".join(suffixes))
    assert key  # a name made only of legal forms keeps something
    if base:
        assert key == name_key(base)


# ---------------------------------------------------------------- the similarity rules


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("济南顺达物流", "济南顺达物流", "same"),
        ("中国石化", "中国石化北京销售", "contained"),  # 4 characters inside a longer key
        ("济南顺达物流", "济南顺发物流", "one_character"),  # 6 characters, one replaced
        ("济南顺达物流", "济南顺达物流运", "contained"),
        ("济南顺达物流", "济南顺物流", "one_character"),  # one left out
        ("济南市历下区顺达物流", "济南市历下区顺达货流", "one_character"),
        ("济南市历下区宏图建材经营部", "济南市历下区宏图建材批发经营部", "ratio"),  # two added in 13: 93
        # two replaced in 20 characters: 90
        ("山东省济南市历下区顺达物流运输服务中心站", "山东省济南市历城区顺达物流运输服务中心所", "ratio"),
        ("appleinc", "apple", "contained"),
    ],
)
def test_very_similar_keys(a, b, why):
    assert similarity(a, b)[1] == why
    assert similarity(b, a)[1] == why


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("顺达物流", "顺发物流"),  # one character in a 4-character key: too short to say
        ("济南顺", "济南顺达"),  # a 3-character key inside another: too short
        ("济南顺达物流", "济南达顺物流"),  # two characters swapped: two different, 6 characters
        ("济南市历下区顺达物流", "济南市历城区通达物流"),  # two replaced in 10: ratio 80
        ("济南顺达物流", "青岛宏发建材"),
        # two replaced in 19 characters: 84
        ("山东省济南市历下区顺达物流运输服务中心", "山东省济南市历城区顺达物流运输服务总站"),
        ("", "济南顺达物流"),
    ],
)
def test_keys_that_are_not_similar(a, b):
    assert similarity(a, b) is None


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1) if re.match(r"[\u4e00-\u9fa5]{2}", text[i : i + 2])}


def holds_a_group(key: str, other: str) -> bool:
    """The recall guarantee of the index lookup: a key the rules call similar holds every bigram of
    some group of the new key's — except keys inside the new one, which the name_key index finds."""
    if similarity(key, other) is None or other in key:
        return True
    held = bigrams(other)
    return any(set(group) <= held for group in _bigram_groups(key))


def edited(key: str, edits) -> str:
    chars = list(key)
    for op, position, char in edits:
        if op == "insert" or position >= len(chars):
            chars.insert(position, char)
        elif op == "replace":
            chars[position] = char
        else:
            del chars[position]
    return "".join(chars)


@pytest.mark.parametrize("size", range(4, 19))
def test_every_one_or_two_edits_keep_a_group(size):
    key = "".join(chr(0x4E00 + 37 * i) for i in range(size))  # no character twice
    ops = ("insert", "delete", "replace")
    singles = [(op, p, "乙") for op in ops for p in range(size + 1)]
    for first in singles:
        assert holds_a_group(key, edited(key, [first])), first
        for op, p, _char in singles:
            other = edited(key, [first, (op, p, "丙")])
            assert holds_a_group(key, other), (first, (op, p))


@given(st.one_of(st.text(st.sampled_from("济南顺达物流运输中心山东省青岛宏发建材"), min_size=4, max_size=40),
                 st.text(CJK, min_size=4, max_size=40)), st.data())  # fmt: skip
@settings(max_examples=500)
def test_a_similar_key_always_holds_one_bigram_group(key, data):
    if data.draw(st.booleans()):
        other = data.draw(st.text(CJK, max_size=6)) + key + data.draw(st.text(CJK, max_size=6))
    else:
        other = list(key)
        # Within the edit budget of the rules: one edit, or 2 per 9 characters.
        for _edit in range(data.draw(st.integers(1, max(1, 2 * len(key) // 9)))):
            position = data.draw(st.integers(0, len(other)))
            op = data.draw(st.sampled_from(["replace", "insert", "insert", "delete", "delete"]))
            if op == "insert" or position == len(other):
                other.insert(position, data.draw(CJK))
            elif op == "replace":
                other[position] = data.draw(CJK)
            else:
                del other[position]
        other = "".join(other)
    assume(similarity(key, other) is not None and other not in key)
    assert holds_a_group(key, other)


# ---------------------------------------------------------------- finding them in the archive


@pytest.fixture
def archive(people, org):
    return {
        "shunda": make(people.alice, org.a1, "济南顺达物流有限公司"),
        "district": make(people.alice, org.a1, "济南市历下区宏图建材经营部"),
        "sinopec": make(people.alice, org.a1, "中国石化销售股份有限公司山东济南分公司"),
        "qingdao": make(people.bob, org.b1, "青岛顺达物流有限公司", division="370202"),
        "apple": make(people.alice, org.a1, "Apple Inc."),
    }


def found(viewer, name, **kw):
    similar = similar_customers(viewer=viewer, name=name, **kw)
    return [(c.name, c.similarity_reason) for c in similar.visible], similar.hidden


@pytest.mark.django_db
def test_identical_keys_warn_until_a_reason_is_given(archive, people, org):
    with pytest.raises(SimilarNamesFound) as warned:
        make(people.alice, org.a1, "济南顺达物流（有限责任公司）")
    assert warned.value.field == "name" and warned.value.code == "similar_name"
    assert "济南顺达物流有限公司 (37010200001000)" in warned.value.message
    assert [c.code for c in warned.value.similar.visible] == [archive["shunda"].code]
    customer = make(
        people.alice, org.a1, "济南顺达物流（有限责任公司）", duplicate_reason="另一家，同名不同址"
    )
    event = AuditEvent.objects.get(action="customer.create", object_id=str(customer.pk))
    assert event.extra == {"duplicate_reason": "另一家，同名不同址", "similar_to": [archive["shunda"].code]}
    # A name like no other needs no reason and records none.
    fresh = make(people.alice, org.a1, "淄博张店鑫源化工有限公司")
    assert AuditEvent.objects.get(action="customer.create", object_id=str(fresh.pk)).extra == {}


@pytest.mark.django_db
def test_a_blank_reason_is_no_reason(archive, people, org):
    with pytest.raises(SimilarNamesFound):
        make(people.alice, org.a1, "济南顺达物流", duplicate_reason="   ")


@pytest.mark.django_db
def test_very_similar_names_are_found(archive, people):
    alice = people.alice
    assert found(alice, "济南顺发物流有限公司") == ([("济南顺达物流有限公司", "one_character")], 0)
    assert found(alice, "济南顺物流") == ([("济南顺达物流有限公司", "one_character")], 0)
    assert found(alice, "济南顺达物流园区管理中心") == ([("济南顺达物流有限公司", "contained")], 0)
    assert found(alice, "顺达物流") == ([("济南顺达物流有限公司", "contained")], 1)  # and bob's in Qingdao
    assert found(alice, "济南市历下区宏图建材经销部") == (
        [("济南市历下区宏图建材经营部", "one_character")],
        0,
    )
    assert found(alice, "济南市历下区宏图建材批发经营部") == ([("济南市历下区宏图建材经营部", "ratio")], 0)
    assert found(alice, "中国石化") == ([("中国石化销售股份有限公司山东济南分公司", "contained")], 0)
    assert found(alice, "APPLE") == ([("Apple Inc.", "contained")], 0)
    assert found(alice, "Pineapple Express") == ([], 0)
    # Sharing place and trade words is not being similar.
    assert found(alice, "济南宏发物流有限公司") == ([], 0)
    assert found(alice, "济南市历下区通达建材经营部") == ([], 0)
    assert found(alice, "顺达") == ([], 0)


@pytest.mark.django_db
def test_candidates_out_of_scope_are_counted_never_named(archive, people, org):
    # alice sees her Jinan company; Qingdao's is bob's: counted, not named.
    assert found(people.alice, "顺达物流") == ([("济南顺达物流有限公司", "contained")], 1)
    assert found(people.bob, "顺达物流") == ([("青岛顺达物流有限公司", "contained")], 1)
    names, hidden = found(people.head_p, "顺达物流")
    assert sorted(names) == [("济南顺达物流有限公司", "contained"), ("青岛顺达物流有限公司", "contained")]
    assert hidden == 0
    with pytest.raises(SimilarNamesFound) as warned:
        make(people.bob, org.b1, "济南顺达物流有限公司", division="370202")
    assert warned.value.similar.visible == [] and warned.value.similar.hidden == 1
    assert "registered by other units" in warned.value.message
    assert "顺达" not in warned.value.message and archive["shunda"].code not in warned.value.message
    # the audit trail keeps the codes all the same
    customer = make(
        people.bob, org.b1, "济南顺达物流有限公司", division="370202", duplicate_reason="本地另一家"
    )
    event = AuditEvent.objects.get(action="customer.create", object_id=str(customer.pk))
    assert event.extra["similar_to"] == [archive["shunda"].code]


@pytest.mark.django_db
def test_head_a_sees_city_a_and_counts_the_rest(archive, people):
    assert found(people.head_a, "顺达物流")[1] == 1
    assert found(people.head_a, "顺达物流")[0] == [("济南顺达物流有限公司", "contained")]


@pytest.mark.django_db
def test_identical_first_then_by_score(people, org):
    make(people.head_a, org.a1, "济南顺达物流运输中心")
    make(people.head_a, org.a1, "济南顺达物流运输", duplicate_reason="test")
    make(people.head_a, org.a1, "济南顺达物流运", duplicate_reason="test")
    make(people.head_a, org.a1, "济南顺达物流有限公司", duplicate_reason="test")
    similar = similar_customers(viewer=people.head_a, name="济南顺达物流")
    assert [c.name for c in similar.visible] == ["济南顺达物流有限公司", "济南顺达物流运", "济南顺达物流运输",
                                                 "济南顺达物流运输中心"]  # fmt: skip
    assert [c.similarity for c in similar.visible] == [100, 92, 86, 75]
    assert similar.codes == [c.code for c in similar.visible]
    assert len(similar_customers(viewer=people.head_a, name="济南顺达物流", limit=2).visible) == 2


@pytest.mark.django_db
def test_the_customer_itself_can_be_left_out(archive, people):
    shunda = archive["shunda"]
    assert found(people.alice, shunda.name, exclude_pk=shunda.pk) == ([], 0)
    assert found(people.alice, shunda.name)[0] == [(shunda.name, "same")]


@pytest.mark.django_db
def test_renamed_customers_are_found_by_their_new_name(archive, people):
    customer_update(acting_user=people.alice, customer=archive["district"], name="泰安泰山宏图建材经营部")
    assert found(people.alice, "泰安泰山宏图建材经销部")[0] == [("泰安泰山宏图建材经营部", "one_character")]
    assert found(people.alice, "济南市历下区宏图建材经销部") == ([], 0)


@pytest.mark.django_db
def test_a_general_group_fetches_a_bounded_number_of_candidates(people, org, monkeypatch):
    # Jinan firms "…发物流": the group 济南 + 发物 + 物流 of 济南顺发物流 holds them all, yet none is
    # similar (another district, another name); the similar firm is found through another group.
    for name in ("济南历下宏发物流", "济南市中鸿发物流", "济南槐荫联发物流", "济南天桥振发物流"):
        make(people.head_a, org.a1, name)
    target = make(people.head_a, org.a1, "济南顺达物流有限公司")
    groups = _bigram_groups(name_key("济南顺发物流"))
    assert ("济南", "发物", "物流") in groups and ("济南", "南顺", "物流") in groups
    assert len(duplicates._fts_rows(("济南", "发物", "物流"), 10)) == 4
    assert len(duplicates._fts_rows(("济南", "发物", "物流"), 3)) == 3
    assert [row[1] for row in duplicates._fts_rows(("济南", "南顺", "物流"), 3)] == [target.code]
    monkeypatch.setattr(duplicates, "GROUP_CAP", 3)
    assert found(people.head_a, "济南顺发物流") == ([(target.name, "one_character")], 0)


@pytest.mark.django_db
def test_groups_of_common_tokens_are_not_asked(people, org, monkeypatch):
    target = make(people.head_a, org.a1, "济南顺达物流有限公司")
    asked = []
    fts_rows = duplicates._fts_rows
    monkeypatch.setattr(
        duplicates, "_fts_rows", lambda group, cap: asked.append(group) or fts_rows(group, cap)
    )
    monkeypatch.setattr(duplicates, "_common_tokens", lambda: frozenset({"济南", "发物", "物流"}))
    assert found(people.head_a, "济南顺发物流") == ([(target.name, "one_character")], 0)
    assert ("济南", "发物", "物流") not in asked  # only common tokens: not asked
    assert ("济南", "南顺", "物流") in asked and (
        "顺发",
        "发物",
        "物流",
    ) in asked  # a rarer token in it: asked


@pytest.fixture
def fresh_statistics():
    duplicates._common.clear()
    yield
    duplicates._common.clear()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="statistics of PostgreSQL's search index")
@pytest.mark.django_db
def test_common_tokens_come_from_the_index_statistics(people, org, fresh_statistics, monkeypatch):
    for i in range(120):  # each brand in 1 of 120 names: under COMMON_SHARE
        make(people.head_a, org.a1, f"济南{chr(0x4E00 + 2 * i)}{chr(0x4E01 + 2 * i)}物流有限公司")
    assert "济南" not in duplicates._common_tokens()  # no statistics yet
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")  # sees this transaction's rows; rolled back with it
    assert "济南" not in duplicates._common_tokens()  # remembered for COMMON_TTL seconds
    duplicates._common.clear()
    assert duplicates._common_tokens() == frozenset()  # 120 customers: too few to trust
    monkeypatch.setattr(duplicates, "COMMON_MIN_CUSTOMERS", 100)
    duplicates._common.clear()
    common = duplicates._common_tokens()
    assert {"济南", "物流", "有限", "公司"} <= common
    assert f"{chr(0x4E00)}{chr(0x4E01)}" not in common
