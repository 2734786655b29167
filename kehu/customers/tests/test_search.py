"""The search box: Chinese substrings, pinyin, initials, code prefix, phone, credit code; filters; scope."""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from kehu.customers import search
from kehu.customers.duplicates import name_key
from kehu.customers.personal import phone_add
from kehu.customers.search import customer_search_tokens, ensure_search_index, parse_query
from kehu.customers.selectors import CustomerFilters, capped_count, customer_page, customer_search
from kehu.customers.services import customer_create, customer_update

pytestmark = pytest.mark.django_db


def make(user, unit, name, division="370102", **kw):
    return customer_create(acting_user=user, name=name, kind=kw.pop("kind", "institution"), owning_unit=unit,
                           division_code=division, **kw)  # fmt: skip


def names(viewer, **kw):
    return sorted(c.name for c in customer_search(viewer=viewer, **kw))


@pytest.fixture
def archive(people, org):
    sinopec = make(people.alice, org.a1, "中国石化销售有限公司", short_name="中石化", tags=["重点", "vip"])
    make(people.alice, org.a1, "济南顺达物流有限公司", credit_code="91350100M000100Y43")
    make(people.alice, org.a1, "重庆火锅店", kind="individual")
    make(people.bob, org.b1, "青岛中国石化加油站", division="370202")
    phone_add(acting_user=people.alice, customer=sinopec, number="138 0013 8000")
    return sinopec


def test_tokens_hold_characters_bigrams_pinyin_and_initials():
    tokens = customer_search_tokens(name="中国石化", tags=["重点"]).split()
    for token in ("中", "中国", "国石", "石化", "zhongguoshihua", "shihua", "zgsh", "gsh", "h"):
        assert token in tokens
    assert search.tag_token("重点") in tokens
    assert "中国石化" not in tokens  # longer substrings are confirmed on the name, not stored


def test_full_width_and_case_are_folded():
    assert customer_search_tokens(name="ＡＢＣ加油站").split()[0] == "abc"
    assert [t.tokens for t in parse_query("ＺＧＳＨ")] == [("zgsh",)]


def test_chinese_substrings_of_any_length(archive, people):
    assert names(people.alice, q="石") == ["中国石化销售有限公司"]
    assert names(people.alice, q="石化") == ["中国石化销售有限公司"]
    assert names(people.alice, q="石化销售") == ["中国石化销售有限公司"]
    assert names(people.alice, q="中石化") == ["中国石化销售有限公司"]  # the short name
    assert names(people.alice, q="销石") == []


def test_bigrams_present_apart_are_not_a_substring(people, org):
    make(people.alice, org.a1, "石化中国国石")  # holds 中国, 国石, 石化 but not 中国石化
    assert names(people.alice, q="中国石化") == []


def test_full_pinyin_and_initials(archive, people):
    assert names(people.alice, q="zgsh") == ["中国石化销售有限公司"]
    assert names(people.alice, q="zhongguo") == ["中国石化销售有限公司"]
    assert names(people.alice, q="shihuaxiao") == ["中国石化销售有限公司"]
    assert names(people.alice, q="chongqing") == ["重庆火锅店"]  # 重 read chong in 重庆
    assert names(people.alice, q="ZGSH") == ["中国石化销售有限公司"]
    assert names(people.alice, q="zgx") == []


def test_several_words_must_all_match(archive, people):
    assert names(people.alice, q="石化 xiaoshou") == ["中国石化销售有限公司"]
    assert names(people.alice, q="石化 wuliu") == []


def test_code_prefix_credit_code_and_phone(archive, people):
    assert names(people.alice, q="370102") == ["中国石化销售有限公司", "济南顺达物流有限公司", "重庆火锅店"]
    assert names(people.alice, q="37010200002") == ["济南顺达物流有限公司"]
    assert names(people.alice, q="91350100M000100Y43") == ["济南顺达物流有限公司"]
    assert names(people.alice, q="91350100m0") == ["济南顺达物流有限公司"]
    assert names(people.alice, q="13800138000") == ["中国石化销售有限公司"]
    assert names(people.alice, q="138-0013-8000") == ["中国石化销售有限公司"]
    assert names(people.alice, q="13800138001") == []


def test_search_respects_scope(archive, people):
    assert names(people.alice, q="中国石化") == ["中国石化销售有限公司"]
    assert names(people.bob, q="中国石化") == ["青岛中国石化加油站"]
    assert names(people.head_p, q="中国石化") == ["中国石化销售有限公司", "青岛中国石化加油站"]
    assert names(people.sysadmin, q="中国石化") == []


def test_filters(archive, people, org):
    assert names(people.head_p, within=org.city_b) == ["青岛中国石化加油站"]
    assert names(people.head_p, kind="individual") == ["重庆火锅店"]
    assert names(people.head_p, manager=people.bob) == ["青岛中国石化加油站"]
    assert names(people.head_p, tag="重点") == ["中国石化销售有限公司"]
    assert names(people.head_p, tag="VIP") == ["中国石化销售有限公司"]
    assert names(people.head_p, status="active") == []


def test_edits_reach_the_index(archive, people):
    archive = customer_update(acting_user=people.alice, customer=archive, name="齐鲁能源集团", short_name="")
    assert names(people.alice, q="qlny") == ["齐鲁能源集团"]
    assert names(people.alice, q="石化") == []
    assert archive.name_key == name_key("齐鲁能源集团") == "齐鲁能源"


def test_deleted_customers_leave_the_index(archive, people):
    archive.phones.all().delete()
    archive.delete()
    assert names(people.alice, q="zgsh") == []


def test_dense_terms_fall_back_to_filtering(archive, people, monkeypatch):
    monkeypatch.setattr(search, "CANDIDATE_CAP", 0)
    assert names(people.head_p, q="中国石化") == ["中国石化销售有限公司", "青岛中国石化加油站"]
    assert names(people.head_p, q="zgsh") == ["中国石化销售有限公司", "青岛中国石化加油站"]  # qdZGSHjyz
    assert names(people.head_p, tag="重点") == ["中国石化销售有限公司"]
    assert names(people.head_p, q="z") == ["中国石化销售有限公司", "青岛中国石化加油站"]  # zhong, zhan


def test_ordering_pages_and_capped_counts(archive, people):
    rows, total, more = customer_page(
        viewer=people.head_p, filters=CustomerFilters(order="-code"), per_page=2
    )
    assert [r.code for r in rows] == ["37020200001000", "37010200003000"] and (total, more) == (4, False)
    rows, _, _ = customer_page(
        viewer=people.head_p, filters=CustomerFilters(order="-code"), page=2, per_page=2
    )
    assert [r.code for r in rows] == ["37010200002000", "37010200001000"]
    assert capped_count(customer_search(viewer=people.head_p), cap=3) == (3, True)


def test_the_index_is_rebuilt_when_sqlite_lost_its_triggers(archive, people):
    if connection.vendor != "sqlite":
        assert ensure_search_index() is False
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER customers_customer_fts_insert")
    assert ensure_search_index() is True
    make(people.alice, archive.owning_unit, "泰山能源")
    assert names(people.alice, q="tsny") == ["泰山能源"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="中国石化销售济南物流重庆有限公司加油站", min_size=1, max_size=12), st.data())
def test_every_substring_of_a_name_finds_it(name, data):
    """Property: whatever slice of the name is typed, the tokens admit it (no false negatives)."""
    tokens = set(customer_search_tokens(name=name).split())
    start = data.draw(st.integers(0, len(name) - 1))
    end = data.draw(st.integers(start + 1, len(name)))
    for term in parse_query(name[start:end]):
        assert set(term.tokens) <= tokens


def test_wide_subtrees_are_filtered_row_by_row_with_the_same_answer(archive, people, org, monkeypatch):
    from kehu.customers import selectors

    expected = (
        names(people.head_p, q="中国石化"),
        names(people.head_a),
        names(people.head_p, within=org.city_a),
    )
    monkeypatch.setattr(selectors, "WIDE_SUBTREE", 0)
    assert (
        names(people.head_p, q="中国石化"),
        names(people.head_a),
        names(people.head_p, within=org.city_a),
    ) == expected
    assert names(people.bob) == ["青岛中国石化加油站"]
    sql = str(customer_search(viewer=people.head_a).query)
    assert ('+"customers_customer"."unit_path"' in sql) == (connection.vendor == "sqlite")
