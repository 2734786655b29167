"""No password, token or unmasked ID card number ever reaches the audit trail."""

from __future__ import annotations

import itertools
import json
import re
import string

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kehu.accounts.models import User
from kehu.accounts.services import api_token_issue
from kehu.audit.masking import REDACTED, mask_id_number, mask_text, mask_value
from kehu.audit.models import AuditEvent
from kehu.audit.selectors import audit_chain_verify
from kehu.audit.services import audit_record, snapshot

pytestmark = pytest.mark.django_db

ID = "110101199003071234"
ID_X = "37010219851231002X"
ID_RUN = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")


def stored(event: AuditEvent) -> str:
    """changes and extra exactly as the database gives them back."""
    row = AuditEvent.objects.filter(pk=event.pk).values("changes", "extra").get()
    return json.dumps(row, ensure_ascii=False)


def record(**kwargs) -> AuditEvent:
    return audit_record(actor=None, actor_username="tester", action="test.mask", **kwargs)


def test_secrets_id_numbers_and_id_numbers_in_text_are_masked():
    event = record(
        changes={
            "password": ["Old#Secret1", "New#Secret2"],
            "new_password": "Secret#Pass9",
            "id_number": ID,
            "remark": f"客户身份证号{ID}，已核实；配偶 {ID_X.lower()}。",
            "nested": {"api_token": "tok_abcdefghijklmnop", "list": [ID_X, {"id_card": "12345"}]},
        },
        extra={"token": "raw-token-value", "client_secret": "s3cr3t", "passport": "E12345678"},
    )
    text = stored(event)
    for secret in ["Old#Secret1", "New#Secret2", "Secret#Pass9", "tok_abcdefghijklmnop", "raw-token-value",
                   "s3cr3t", ID, ID_X, ID_X.lower(), "E12345678"]:  # fmt: skip
        assert secret not in text
    assert not ID_RUN.search(text)
    assert event.changes["password"] == REDACTED
    assert event.changes["new_password"] == REDACTED
    assert event.changes["id_number"] == "110***********1234"
    assert event.changes["remark"] == "客户身份证号110101********1234，已核实；配偶 370102********002x。"
    assert event.changes["nested"]["api_token"] == REDACTED
    assert event.changes["nested"]["list"][0] == "370102********002X"
    assert event.extra["passport"] == "E12**5678"


def test_diff_of_an_id_number_keeps_its_shape():
    event = record(changes={"id_number": [ID, ID_X]})
    assert event.changes == {"id_number": ["110***********1234", "370***********002X"]}
    assert not ID_RUN.search(stored(event))


def test_empty_values_stay_empty():
    event = record(changes={"password": "", "id_number": None, "token": None})
    assert event.changes == {"password": "", "id_number": None, "token": None}


def test_facts_about_secrets_are_not_secrets():
    event = record(
        changes={"must_change_password": [True, False], "password_changed_at": "2026-01-01T00:00:00Z"},
        extra={"tokens_revoked": 2, "sessions_ended": 1},
    )
    assert event.changes == {
        "must_change_password": [True, False],
        "password_changed_at": "2026-01-01T00:00:00Z",
    }
    assert event.extra == {"tokens_revoked": 2, "sessions_ended": 1}


def test_user_snapshot_hides_the_password_hash(people):
    user = User.objects.get(pk=people.alice.pk)
    snap = snapshot(user)
    assert snap["password"] == REDACTED
    assert user.password not in json.dumps(snap)
    assert snap["must_change_password"] is False
    assert snap["password_changed_at"]  # a date, kept
    event = record(obj=user, changes=snap)
    assert user.password not in stored(event)


def test_token_issue_never_records_the_token_or_its_digest(people, password):
    raw, token = api_token_issue(username="alice", password=password)
    for event in AuditEvent.objects.all():
        text = stored(event) + event.object_repr
        assert raw not in text and token.digest not in text
    assert snapshot(token)["digest"] == REDACTED


def test_masked_values_still_verify():
    record(changes={"password": "x", "id_number": ID, "note": ID})
    assert audit_chain_verify().ok


@pytest.mark.parametrize(
    "value,masked",
    [
        ("1234", "****"),
        ("12345", "***45"),
        ("1234567", "*****67"),
        ("12345678", "123*5678"),
        (ID, "110***********1234"),
    ],
)
def test_mask_id_number(value, masked):
    assert mask_id_number(value) == masked


def test_mask_text_leaves_other_numbers_alone():
    assert mask_text("订单 20260101 金额 1234.56") == "订单 20260101 金额 1234.56"
    # a 19-digit bank card is not an ID card number
    assert mask_text("卡号 6222021234567890123") == "卡号 6222021234567890123"


def test_mask_value_names_are_case_insensitive():
    assert mask_value("PassWord", "x") == REDACTED
    assert mask_value("ID_Number", ID) == "110***********1234"


# ---------------------------------------------------------------- property


def id_numbers():
    return st.builds(
        lambda digits, last: digits + last,
        st.text(alphabet=string.digits, min_size=17, max_size=17),
        st.sampled_from(list(string.digits + "Xx")),
    )


secret_serial = itertools.count()


def secrets_():
    return st.builds(lambda: f"SECRET-{next(secret_serial):06d}-Zz")


safe_text = st.text(alphabet="客户经理 abc,.;:()-", max_size=6)


def json_values(ids: list[str], secrets: list[str]):
    def free_text_with_id():
        return st.builds(lambda a, n, b: (ids.append(n), f"{a}{n}{b}")[1], safe_text, id_numbers(), safe_text)

    def under_id_key():
        return st.builds(lambda n: (ids.append(n), n)[1], id_numbers())

    def under_secret_key():
        return st.builds(lambda s: (secrets.append(s), s)[1], secrets_())

    leaves = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), safe_text, free_text_with_id())
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.sampled_from(["name", "note", "unit", "rows", "值"]), children, max_size=3),
            st.fixed_dictionaries(
                {},
                optional={
                    "password": under_secret_key(),
                    "old_password": st.lists(under_secret_key(), min_size=2, max_size=2),
                    "api_token": under_secret_key(),
                    "secret": under_secret_key(),
                    "id_number": under_id_key(),
                    "spouse_id_card": st.lists(under_id_key(), min_size=2, max_size=2),
                    "remark": children,
                },
            ),
        ),
        max_leaves=12,
    )


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_nothing_secret_survives_any_payload(db, data):
    ids: list[str] = []
    secrets: list[str] = []
    changes = data.draw(
        st.dictionaries(st.sampled_from(["a", "b", "备注"]), json_values(ids, secrets), max_size=3)
    )
    extra = data.draw(json_values(ids, secrets))
    event = record(changes=changes, extra={"payload": extra})
    text = stored(event)
    for secret in secrets:
        assert secret not in text
    for number in ids:
        assert number not in text
        assert number.upper() not in text
    assert not ID_RUN.search(text)
