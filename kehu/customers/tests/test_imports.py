"""Importing customers, contacts and agreements (CSV/XLSX): the services and the `kehu import` commands."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kehu.audit.models import AuditEvent
from kehu.audit.services import snapshot
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers.creditcode import check_character
from kehu.customers.imports import agreements_import, contacts_import, customers_import
from kehu.customers.models import (
    Agreement,
    Contact,
    Customer,
    CustomerPhone,
    CustomerSubType,
    DivisionSequence,
)
from kehu.customers.personal import customers_by_phone
from kehu.customers.services import agreement_create, contact_create, customer_create

pytestmark = pytest.mark.django_db

HEADER = ["code", "name", "kind", "unit_code", "division_code", "credit_code", "phone", "address"]
HEADER_ZH = [
    "客户编码",
    "客户名称",
    "客户属性",
    "所属单位编码",
    "行政区划代码",
    "统一社会信用代码",
    "电话",
    "地址",
]


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def credit(n: int) -> str:
    first = f"91370102MA{n:07d}"
    return first + check_character(first)


def csv_bytes(rows, header=HEADER, encoding="utf-8"):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def run(user, rows=None, *, header=HEADER, content=None, filename="customers.csv", **kwargs):
    if content is None:
        content = csv_bytes(rows, header)
    return customers_import(acting_user=user, filename=filename, content=content, **kwargs)


def errors_at(result):
    return [(e.row, e.field) for e in result.errors]  # in file order, then column order


def audit_count(action=None):
    qs = AuditEvent.objects.all()
    return qs.filter(action=action).count() if action else qs.count()


ROWS = [
    ["", "济南顺达物流有限公司", "institution", "A1", "370102", credit(1), "13800000001", "历下区经十路1号"],
    ["", "泰山建材股份有限公司", "机构", "A1", "370102", credit(2), "13800000002;0531-88886666", "历下区2号"],
    ["", "王建国", "个人", "A2", "370103", "", "", "市中区3号"],
]


# ---------------------------------------------------------------------------------------------------
# Creating


def test_a_file_creates_customers_with_codes_phones_and_the_audit_trail(people, org):
    result = run(people.head_a, ROWS)
    assert result.ok, result.errors
    assert (result.created, result.updated, result.unchanged, result.rejected) == (3, 0, 0, 0)
    shunda = Customer.objects.get(name="济南顺达物流有限公司")
    assert (
        shunda.code == "37010200001000" and shunda.kind == "institution" and shunda.credit_code == credit(1)
    )
    assert (
        shunda.owning_unit == org.a1
        and shunda.unit_path == org.a1.path
        and shunda.address == "历下区经十路1号"
    )
    taishan = Customer.objects.get(name="泰山建材股份有限公司")
    assert taishan.code == "37010200002000"
    assert sorted(p.number for p in taishan.phones.all()) == ["053188886666", "13800000002"]
    assert Customer.objects.get(name="王建国").code == "37010300001000"
    assert DivisionSequence.objects.get(pk="370102").last_sequence == 2
    assert list(customers_by_phone(viewer=people.head_a, number="138 0000 0001")) == [shunda]
    assert audit_count("customer.create") == 3 and audit_count("customer.phone_add") == 3
    summary = AuditEvent.objects.get(action="customer.import")
    assert summary.extra["created"] == 3 and summary.extra["file"] == "customers.csv"
    # Searchable like any customer (tokens kept as customer_create keeps them).
    from kehu.customers.selectors import customer_search

    assert list(customer_search(viewer=people.head_a, q="shunda")) == [shunda]


def test_imported_customers_are_what_customer_create_makes(people, org):
    """The batch path writes the rows and audit events customer_create (+ phone_add) would."""
    subtype = CustomerSubType.objects.create(code="freight", name="货运", kind="institution")
    by_hand = customer_create(
        acting_user=people.alice, name="济南顺达物流有限公司", kind="institution", owning_unit=org.a1,
        division_code="370102", credit_code=credit(1), phones=["13800000001"], address="历下区1号",
        short_name="顺达", sub_type=subtype, tags=["大客户", "物流"], latitude=Decimal("36.651200"),
        status="active", payment_profile="fuel_card", notes="老客户",
    )  # fmt: skip
    header = [*HEADER, "short_name", "sub_type", "tags", "latitude", "status", "payment_profile", "notes"]
    result = run(people.alice, [["", "青岛海鸥渔业合作社", "institution", "A1", "370102", credit(2), "13800000002",
                                 "历下区1号", "海鸥", "货运", "大客户;物流", "36.6512", "在用", "加油卡", "老客户"]],
                 header=header)  # fmt: skip
    assert result.ok, result.errors
    imported = Customer.objects.get(name="青岛海鸥渔业合作社")
    ignore = {"id", "code", "name", "short_name", "credit_code", "created_at", "updated_at"}
    mine, theirs = snapshot(by_hand), snapshot(imported)
    assert {k: v for k, v in mine.items() if k not in ignore} == {
        k: v for k, v in theirs.items() if k not in ignore
    }
    assert imported.lead_manager == people.alice  # a customer manager leads what they add
    from kehu.customers.search import customer_search_tokens

    assert imported.search_tokens == customer_search_tokens(
        name=imported.name, short_name="海鸥", tags=imported.tags
    )
    events = list(AuditEvent.objects.filter(object_id=str(imported.pk)).order_by("seq"))
    assert [e.action for e in events] == ["customer.create", "customer.phone_add"]
    hand = list(AuditEvent.objects.filter(object_id=str(by_hand.pk)).order_by("seq"))
    assert set(events[0].changes) == set(hand[0].changes)
    assert events[1].extra == {"phone": "138****0002", "label": "", "contact": None}
    assert {e.channel for e in events} == {hand[0].channel}


def test_chinese_headers_gbk_and_bom(people, org):
    result = run(people.head_a, content=csv_bytes(ROWS, HEADER_ZH, encoding="gbk"))
    assert result.ok, result.errors
    assert Customer.objects.filter(name="泰山建材股份有限公司", kind="institution").exists()
    assert Customer.objects.get(name="王建国").kind == "individual"
    result = run(people.head_a, content=csv_bytes(ROWS[:2], HEADER_ZH, encoding="utf-8-sig"))
    assert result.ok and result.unchanged == 2 and result.created == 0  # matched by their credit codes


def test_xlsx_with_numbers_typed_as_numbers(people, org):
    import xlsxwriter

    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = workbook.add_worksheet("客户")
    sheet.write_row(0, 0, [*HEADER, "latitude", "floor_area"])
    sheet.write_row(1, 0, ["", "济南顺达物流有限公司", "机构", "A1", 370102, credit(1), 13800000001, "一号",
                           36.65, 120])  # fmt: skip
    sheet.write_row(
        3, 0, [37010200050000, "泰山建材股份有限公司", "机构", "A1", 370102, "", "", "二号", "", ""]
    )
    workbook.close()
    result = run(people.head_a, content=out.getvalue(), filename="客户.xlsx")
    assert result.ok, result.errors
    shunda = Customer.objects.get(name="济南顺达物流有限公司")
    assert shunda.division_code == "370102" and shunda.latitude == Decimal("36.65")
    assert shunda.floor_area == Decimal("120") and shunda.phones.get().number == "13800000001"
    assert Customer.objects.filter(code="37010200050000").exists()  # row 4 (row 3 empty, numbering kept)


def test_given_codes_move_the_counter_and_assigned_codes_never_collide(people, org):
    rows = [
        ["", "济南顺达物流有限公司", "机构", "A1", "370102", "", "", ""],
        ["37010200001000", "泰山建材股份有限公司", "机构", "A1", "370102", "", "", ""],  # listed after, given
    ]
    result = run(people.head_a, rows)
    assert result.ok, result.errors
    assert Customer.objects.get(name="泰山建材股份有限公司").code == "37010200001000"
    assert Customer.objects.get(name="济南顺达物流有限公司").code == "37010200002000"
    assert DivisionSequence.objects.get(pk="370102").last_sequence == 2


def test_branches_by_parent_code_in_the_file_or_in_kehu(people, org):
    head = customer_create(acting_user=people.head_a, name="齐鲁能源集团", kind="institution", owning_unit=org.a1,
                           division_code="370102")  # fmt: skip
    header = [*HEADER, "parent_code"]
    rows = [
        ["", "泰山建材历下分公司", "机构", "A1", "370102", "", "", "", "37010200005000"],  # its head is below
        ["37010200005000", "泰山建材股份有限公司", "机构", "A1", "370102", "", "", "", ""],
        ["", "齐鲁能源市中站", "机构", "A2", "370103", "", "", "", head.code],
        ["37010200005002", "泰山建材市中分公司", "机构", "A2", "370103", "", "", "", "37010200005000"],
    ]
    result = run(people.head_a, rows, header=header, reason="分公司与总公司同名")
    assert result.ok, (result.errors, result.warnings)
    taishan = Customer.objects.get(code="37010200005000")
    # The given branch code is claimed first; the branch without a code takes the next one.
    assert set(taishan.branches.values_list("code", flat=True)) == {"37010200005002", "37010200005003"}
    assert Customer.objects.get(code="37010200005003").name == "泰山建材历下分公司"
    assert Customer.objects.get(name="齐鲁能源市中站").code == head.code[:11] + "001"
    taishan.refresh_from_db()
    assert taishan.last_branch == 3
    bad = run(people.head_a, [["37010200006000", "鲁中运输车队", "机构", "A1", "370102", "", "", "", head.code],
                              ["37010200007001", "青岛海鸥渔业合作社", "机构", "A1", "370102", "", "", "", ""]],
              header=header)  # fmt: skip
    assert errors_at(bad) == [(2, "code"), (3, "code")]


# ---------------------------------------------------------------------------------------------------
# Updating and idempotency


def test_importing_the_same_file_twice_changes_nothing_and_writes_no_audit_events(people, org):
    rows = ROWS[:2]  # matched the second time by their credit codes
    assert run(people.head_a, rows).created == 2
    before = (audit_count(), DivisionSequence.objects.get(pk="370102").last_sequence)
    again = run(people.head_a, rows)
    assert again.ok, again.errors
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert Customer.objects.count() == 2
    assert (audit_count(), DivisionSequence.objects.get(pk="370102").last_sequence) == before


def test_a_row_without_code_or_credit_code_is_never_created_twice(people, org):
    assert run(people.head_a, [ROWS[2]]).created == 1
    again = run(people.head_a, [ROWS[2]])  # nothing to match it by: its name now warns
    assert not again.ok and [w.row for w in again.warnings] == [2] and again.created == 0
    assert Customer.objects.count() == 1


def test_rows_with_codes_are_idempotent(people, org):
    rows = [["37010200007000", "济南顺达物流有限公司", "机构", "A1", "370102", "", "13800000001", "一号"],
            ["37010300002000", "王建国", "个人", "A2", "370103", "", "", ""]]  # fmt: skip
    assert run(people.head_a, rows).created == 2
    before = audit_count()
    again = run(people.head_a, rows)
    assert again.ok and (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert audit_count() == before


def test_updates_are_matched_by_code_or_credit_code_never_by_name(people, org):
    run(people.head_a, ROWS)
    shunda = Customer.objects.get(name="济南顺达物流有限公司")
    rows = [
        [shunda.code, "济南顺达物流集团", "", "", "", "", "13900000009", ""],  # by code: renamed, phone added
        ["", "泰山建材", "", "A2", "", credit(2), "", ""],  # by credit code: new name and unit
    ]
    result = run(people.head_a, rows, reason="renamed")
    assert result.ok, (result.errors, result.warnings)
    assert (result.created, result.updated, result.unchanged) == (0, 2, 0)
    shunda.refresh_from_db()
    assert shunda.name == "济南顺达物流集团" and shunda.address == "历下区经十路1号"  # empty cell keeps
    assert shunda.phones.count() == 2
    taishan = Customer.objects.get(credit_code=credit(2))
    assert taishan.name == "泰山建材" and taishan.owning_unit == org.a2
    update = AuditEvent.objects.get(action="customer.update", object_id=str(shunda.pk))
    assert update.changes["name"] == ["济南顺达物流有限公司", "济南顺达物流集团"]
    assert audit_count("customer.phone_add") == 4


def test_an_existing_customers_head_office_is_not_changed(people, org):
    run(people.head_a, ROWS)
    shunda = Customer.objects.get(name="济南顺达物流有限公司")
    result = run(people.head_a, [[shunda.code, shunda.name, "", "", "", "", "", "", "37010200002000"]],
                 header=[*HEADER, "parent_code"])  # fmt: skip
    assert errors_at(result) == [(2, "parent_code")]
    assert "does not change the head office" in result.errors[0].message


# ---------------------------------------------------------------------------------------------------
# All or nothing, row errors


def test_one_bad_row_changes_nothing_and_every_problem_is_listed(people, org):
    rows = [
        ROWS[0],
        ["123", "", "robot", "NOPE", "999999", "91350100M000100Y44", "12345", ""],
        ["", "泰山建材股份有限公司", "机构", "B1", "370102", "", "", ""],  # B1 is outside city A
    ]
    before = (Customer.objects.count(), audit_count())
    result = run(people.head_a, rows)
    assert not result.ok and result.created == 0
    assert (Customer.objects.count(), audit_count()) == before
    assert errors_at(result) == [
        (3, "code"), (3, "name"), (3, "kind"), (3, "unit_code"), (3, "division_code"), (3, "credit_code"),
        (3, "phone"), (4, "unit_code"),
    ]  # fmt: skip
    by_field = {(e.row, e.field): e for e in result.errors}
    assert "14 digits" in by_field[(3, "code")].message
    assert "check character" in by_field[(3, "credit_code")].message
    assert (
        by_field[(3, "unit_code")].value == "NOPE" and "in your scope" in by_field[(3, "unit_code")].message
    )
    assert by_field[(3, "phone")].value == "***2345"  # phone numbers are never stored in clear in error lists
    assert "institution / individual" in by_field[(3, "kind")].message
    assert result.rejected == 2
    assert "row 3, field code" in str(by_field[(3, "code")])


def test_duplicate_rows_inside_one_file_name_both_rows(people, org):
    rows = [
        ["37010200001000", "济南顺达物流有限公司", "机构", "A1", "370102", credit(1), "13800000001", ""],
        ["37010200001000", "泰山建材股份有限公司", "机构", "A1", "370102", credit(1), "138 0000 0001", ""],
    ]
    result = run(people.head_a, rows)
    assert errors_at(result) == [(3, "code"), (3, "credit_code"), (3, "phone")]
    assert all("row 2" in e.message for e in result.errors)
    assert not Customer.objects.exists()


def test_text_in_number_columns_and_other_bad_cells(people, org):
    header = [*HEADER, "latitude", "longitude", "floor_area", "lead_manager", "status", "tags", "id_number"]
    rows = [["", "济南顺达物流有限公司", "机构", "A1", "370102", "", "", "", "北纬36", "200", "-5", "nobody",
             "sleeping", "x" * 51, "110101199001011234"]]  # fmt: skip
    result = run(people.head_a, rows, header=header)
    assert errors_at(result) == [(2, "id_number"), (2, "status"), (2, "lead_manager"), (2, "tags"),
                                 (2, "latitude"), (2, "longitude"), (2, "floor_area")]  # fmt: skip
    by_field = {e.field: e for e in result.errors}
    assert "is not a number" in by_field["latitude"].message
    assert "between -180 and 180" in by_field["longitude"].message
    assert "check character" in by_field["id_number"].message and "*" in by_field["id_number"].value
    assert not Customer.objects.exists()


def test_a_manager_must_be_an_active_customer_manager_in_scope(people, org):
    header = [*HEADER, "lead_manager", "backup_manager"]
    rows = [["", "济南顺达物流有限公司", "机构", "A1", "370102", "", "", "", "stan", "alice"],
            ["", "泰山建材股份有限公司", "机构", "A1", "370102", "", "", "", "bob", ""],
            ["", "王建国", "个人", "A1", "370102", "", "", "", "alice", "amy"]]  # fmt: skip
    result = run(people.head_a, rows, header=header)
    assert errors_at(result) == [(2, "lead_manager"), (3, "lead_manager")]
    assert "not an active customer manager" in result.errors[0].message
    assert "in your scope" in result.errors[1].message  # bob works in city B


def test_file_problems_raise(people, org, settings):
    with pytest.raises(ServiceError, match="empty"):
        run(people.head_a, content=b"", filename="c.csv")
    with pytest.raises(ServiceError, match="neither UTF-8 nor GBK"):
        run(people.head_a, content=b"\x81\x20\xff\xfe" * 10, filename="c.csv")
    with pytest.raises(ServiceError, match="not a readable .xlsx"):
        run(people.head_a, content=b"plain text", filename="c.xlsx")
    with pytest.raises(ServiceError, match="save it as .xlsx"):
        run(people.head_a, content=b"x", filename="c.xls")
    with pytest.raises(ServiceError, match="NUL"):
        run(people.head_a, content=b"code,name\x00\x00\x01", filename="c.csv")
    settings.KEHU_MAX_UPLOAD_MB = 1
    with pytest.raises(ServiceError, match="at most 1 MB") as too_big:
        run(people.head_a, content=csv_bytes(ROWS) + b"x" * (1024 * 1024), filename="c.csv")
    assert too_big.value.code == "too_large"
    assert not Customer.objects.exists()


def test_missing_columns_and_a_header_without_rows(people, org):
    result = run(people.head_a, [["济南顺达物流有限公司"]], header=["name"])
    assert {e.field for e in result.errors} == set(HEADER) - {"name"}
    assert all(e.row == 1 for e in result.errors) and "客户编码" in result.errors[0].message
    result = run(people.head_a, [], header=HEADER)
    assert result.errors[0].message == "The file has a header but no customers."


def test_credit_code_or_phone_of_another_customer_is_a_row_error(people, org):
    mine = customer_create(acting_user=people.alice, name="济南顺达物流有限公司", kind="institution",
                           owning_unit=org.a1, division_code="370102", credit_code=credit(1),
                           phones=["13800000001"])  # fmt: skip
    rows = [["", "泰山建材股份有限公司", "机构", "A1", "370102", "", "13800000001", ""],
            ["37010200009000", "王建国", "个人", "A1", "370102", credit(1), "", ""]]  # fmt: skip
    seen = run(people.head_a, rows)
    assert errors_at(seen) == [(2, "phone"), (3, "credit_code")]
    assert mine.code in seen.errors[0].message and mine.code in seen.errors[1].message
    # bob (city B) learns only that they are taken, not by whom
    hidden = run(
        people.bob,
        [[*rows[0][:3], "B1", "370202", *rows[0][5:]], [*rows[1][:3], "B1", "370202", *rows[1][5:]]],
    )
    assert errors_at(hidden) == [(2, "phone"), (3, "credit_code")]
    assert all("another unit" in e.message and mine.code not in e.message for e in hidden.errors)


# ---------------------------------------------------------------------------------------------------
# Similar names: warnings that need a reason


def test_similar_names_warn_and_need_a_reason(people, org):
    customer_create(acting_user=people.head_a, name="济南顺达物流有限公司", kind="institution",
                    owning_unit=org.a1, division_code="370102")  # fmt: skip
    rows = [["", "济南顺达物流有限责任公司", "机构", "A1", "370102", "", "", ""], ROWS[2]]
    result = run(people.head_a, rows)
    assert not result.errors and result.needs_reason and not result.ok
    assert [(w.row, w.field) for w in result.warnings] == [(2, "name")]
    assert "similar name" in result.warnings[0].message
    assert Customer.objects.count() == 1  # nothing, not even the good row
    result = run(people.head_a, rows, reason="另一家公司，同名不同址")
    assert result.ok and result.created == 2
    event = AuditEvent.objects.get(action="customer.create", object_repr__contains="有限责任公司")
    assert event.extra["duplicate_reason"] == "另一家公司，同名不同址" and event.extra["similar_to"]


def test_similar_names_within_one_file_warn_too(people, org):
    rows = [["", "济南顺达物流有限公司", "机构", "A1", "370102", "", "", ""],
            ["", "济南顺达物流有限责任公司", "机构", "A1", "370102", "", "", ""]]  # fmt: skip
    result = run(people.head_a, rows)
    assert [w.row for w in result.warnings] == [3] and not Customer.objects.exists()


# ---------------------------------------------------------------------------------------------------
# Scope


def test_scope_owner_peer_and_superior(people, org):
    result = run(people.alice, [ROWS[0]])
    assert result.ok, result.errors
    shunda = Customer.objects.get()
    assert shunda.lead_manager == people.alice  # a customer manager leads what she imports
    # bob, in another branch, cannot touch it: to him its code is simply taken
    theirs = run(people.bob, [[shunda.code, "改名", "", "", "", "", "", ""]])
    assert errors_at(theirs) == [(2, "code")] and "taken" in theirs.errors[0].message
    # amy (same station, own-records scope) neither
    assert errors_at(run(people.alice_peer, [[shunda.code, "改名", "", "", "", "", "", ""]])) == [(2, "code")]
    # nor does bob get at alice's unit
    assert errors_at(run(people.bob, [["", "泰山建材股份有限公司", "机构", "A1", "370102", "", "", ""]])) == [
        (2, "unit_code")
    ]
    # the city head sees the subtree and may update it
    superior = run(people.head_a, [[shunda.code, "济南顺达物流集团", "", "", "", "", "", ""]])
    assert superior.ok and superior.updated == 1
    assert Customer.objects.get().name == "济南顺达物流集团"


def test_a_row_that_would_fall_outside_the_scope_is_refused(people, org):
    # The station manager sees the units above A1 but only customers within A1: a customer of city A
    # would be out of his sight once written.
    result = run(people.station_mgr_a1, [["", "王建国", "个人", "CA", "370100", "", "", ""],
                                         ["", "泰山建材股份有限公司", "机构", "A1", "370102", "", "", ""]])  # fmt: skip
    assert errors_at(result) == [(2, "")] and "outside your scope" in result.errors[0].message
    assert not Customer.objects.exists()
    assert run(people.station_mgr_a1, [["", "泰山建材股份有限公司", "机构", "A1", "370102", "", "", ""]]).ok


def test_administrators_and_roles_without_the_capability_cannot_import(people, org):
    for user in (people.sysadmin, people.auditor):
        with pytest.raises(NotAllowed):
            run(user, ROWS)


# ---------------------------------------------------------------------------------------------------
# Dry run


def test_dry_run_counts_and_writes_nothing(people, org):
    run(people.head_a, ROWS)
    shunda = Customer.objects.get(name="济南顺达物流有限公司")
    rows = [
        [shunda.code, "济南顺达物流集团", "", "", "", "", "", ""],  # updated
        ["", "泰山建材股份有限公司", "", "", "", credit(2), "", ""],  # unchanged
        ["", "青岛海鸥渔业合作社", "机构", "A1", "370102", credit(3), "", ""],  # created
        ["", "坏行", "机构", "NOPE", "370102", "", "", ""],  # rejected
    ]
    before = (audit_count(), DivisionSequence.objects.get(pk="370102").last_sequence)
    result = run(people.head_a, rows, dry_run=True)
    assert result.dry_run and result.summary() == {
        "rows": 4, "created": 1, "updated": 1, "unchanged": 1, "rejected": 1, "warnings": 0,
    }  # fmt: skip
    assert (audit_count(), DivisionSequence.objects.get(pk="370102").last_sequence) == before
    assert Customer.objects.get(pk=shunda.pk).name == "济南顺达物流有限公司"
    assert not Customer.objects.filter(name="青岛海鸥渔业合作社").exists()


# ---------------------------------------------------------------------------------------------------
# ID numbers and masked values


def test_id_numbers_are_encrypted_and_audited_masked(people, org):
    header = [*HEADER, "id_number"]
    result = run(people.head_a, [["", "王建国", "个人", "A1", "370102", "", "", "", "11010519491231002X"]],
                 header=header)  # fmt: skip
    assert result.ok, result.errors
    customer = Customer.objects.get()
    assert customer.id_number == "11010519491231002X"
    event = AuditEvent.objects.get(action="customer.id_number_set")
    assert event.extra["id_number"] == "110***********002X"
    # a masked value (as exports write it) that matches is no change; one that does not is an error
    masked = run(people.head_a, [[customer.code, "王建国", "", "", "", "", "", "", "110***********002X"]],
                 header=header)  # fmt: skip
    assert masked.ok and masked.unchanged == 1
    wrong = run(people.head_a, [[customer.code, "王建国", "", "", "", "", "", "", "110***********0031"]],
                header=header)  # fmt: skip
    assert errors_at(wrong) == [(2, "id_number")]
    new = run(people.head_a, [["", "李四", "个人", "A1", "370102", "", "139****0000", "", ""]], header=header)
    assert errors_at(new) == [(2, "phone")] and "masked" in new.errors[0].message


# ---------------------------------------------------------------------------------------------------
# Contacts


CONTACT_HEADER = [
    "customer_code",
    "name",
    "title",
    "decision_role",
    "phone",
    "birthday",
    "preferences",
    "notes",
]


@pytest.fixture
def customers(people, org):
    a = customer_create(acting_user=people.alice, name="济南顺达物流有限公司", kind="institution",
                        owning_unit=org.a1, division_code="370102")  # fmt: skip
    b = customer_create(acting_user=people.bob, name="青岛海鸥渔业合作社", kind="institution",
                        owning_unit=org.b1, division_code="370202")  # fmt: skip
    return a, b


def contacts(user, rows, header=CONTACT_HEADER, **kwargs):
    return contacts_import(
        acting_user=user, filename="contacts.csv", content=csv_bytes(rows, header), **kwargs
    )


def test_contacts_are_created_with_their_phones_and_are_idempotent(people, customers):
    a, _b = customers
    rows = [[a.code, "李总", "总经理", "决策人", "13900000001", "1975年3月8日", "喜欢茶", ""],
            [a.code, "张会计", "会计", "payer", "", "1980/5/17", "", "月底付款"]]  # fmt: skip
    result = contacts(people.alice, rows)
    assert result.ok, result.errors
    assert result.created == 2
    li = Contact.objects.get(name="李总")
    assert (
        li.decision_role == "decision_maker"
        and li.birthday == date(1975, 3, 8)
        and li.preferences == "喜欢茶"
    )
    assert li.phones.get().number == "13900000001" and li.phones.get().customer == a
    assert audit_count("contact.create") == 2 and audit_count("customer.phone_add") == 1
    before = audit_count()
    again = contacts(people.alice, rows)
    assert again.ok and (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert audit_count() == before
    # a changed title updates the contact through contact_update
    rows[0][2] = "董事长"
    changed = contacts(people.alice, rows)
    assert changed.ok and changed.updated == 1
    assert Contact.objects.get(pk=li.pk).title == "董事长"
    assert AuditEvent.objects.filter(action="contact.update", object_id=str(li.pk)).exists()


def test_contact_rows_are_checked(people, customers):
    a, b = customers
    rows = [[b.code, "王经理", "", "", "", "", "", ""],  # bob's customer: outside alice's scope
            ["", "赵工", "", "", "", "", "", ""],
            [a.code, "", "", "boss", "123", "1975-02-30", "", ""],
            [a.code, "李总", "", "", "13900000001", "", "", ""],
            [a.code, "李总", "", "", "13900000001", "", "", ""]]  # fmt: skip
    result = contacts(people.alice, rows)
    assert errors_at(result) == [(2, "customer_code"), (3, "customer_code"), (4, "name"), (4, "decision_role"),
                                 (4, "phone"), (4, "birthday"), (6, "name"), (6, "phone")]  # fmt: skip
    assert "in your scope" in result.errors[0].message
    assert not Contact.objects.exists()


def test_a_contact_phone_already_on_the_customer_is_an_error(people, customers):
    a, _b = customers
    contact_create(acting_user=people.alice, customer=a, name="李总")
    from kehu.customers.personal import phone_add

    phone_add(acting_user=people.alice, customer=a, number="13900000001")
    result = contacts(people.alice, [[a.code, "李总", "", "", "13900000001", "", "", ""]])
    assert errors_at(result) == [(2, "phone")] and "already" in result.errors[0].message


# ---------------------------------------------------------------------------------------------------
# Agreements


AGREEMENT_HEADER = ["customer_code", "number", "signing_level", "start_date", "end_date", "status",
                    "signing_unit_code", "agreement_type"]  # fmt: skip


def agreements(user, rows, header=AGREEMENT_HEADER, **kwargs):
    return agreements_import(
        acting_user=user, filename="agreements.csv", content=csv_bytes(rows, header), **kwargs
    )


def test_agreements_are_created_open_ended_and_idempotent(people, org, customers):
    a, _b = customers
    rows = [[a.code, "GX-2026-001", "地市", "2026-01-01", "", "", "CA", "框架协议"],
            [a.code, "GX-2026-002", "station", "2026.2.1", "2026-12-31", "草稿", "", ""]]  # fmt: skip
    result = agreements(people.head_a, rows)
    assert result.ok, result.errors
    first = Agreement.objects.get(number="GX-2026-001")
    assert first.end_date is None and first.signing_level == "city" and first.signing_unit == org.city_a
    assert first.agreement_type == "framework" and first.status == "active"
    second = Agreement.objects.get(number="GX-2026-002")
    assert second.start_date == date(2026, 2, 1) and second.status == "draft"
    assert audit_count("agreement.create") == 2 and audit_count("agreement.import") == 1
    before = audit_count()
    assert agreements(people.head_a, rows).unchanged == 2 and audit_count() == before
    rows[1][5] = "生效"
    changed = agreements(people.head_a, rows)
    assert changed.ok and changed.updated == 1 and Agreement.objects.get(pk=second.pk).status == "active"


def test_agreement_rows_are_checked(people, org, customers):
    a, b = customers
    rows = [[a.code, "GX-1", "nation", "2026-01-01", "2025-01-01", "", "B1", ""],
            [b.code, "GX-2", "city", "tomorrow", "", "", "", ""],
            [a.code, "GX-3", "city", "2026-01-01", "", "", "", ""],
            [a.code, "GX-3", "city", "2026-01-01", "", "", "", ""]]  # fmt: skip
    result = agreements(people.head_a, rows)
    assert errors_at(result) == [(2, "signing_level"), (2, "end_date"), (2, "signing_unit_code"),
                                 (3, "customer_code"), (3, "start_date"), (5, "number")]  # fmt: skip
    assert not Agreement.objects.exists()
    missing = agreements(people.head_a, [[a.code, "GX-1"]], header=["customer_code", "number"])
    assert {e.field for e in missing.errors} == {"signing_level", "start_date", "end_date"}


def test_agreement_numbers_are_per_customer(people, org, customers):
    a, _b = customers
    agreement_create(acting_user=people.alice, customer=a, number="GX-1", signing_level="city",
                     start_date=date(2026, 1, 1))  # fmt: skip
    other = customer_create(acting_user=people.head_a, name="泰山建材股份有限公司", kind="institution",
                            owning_unit=org.a2, division_code="370103")  # fmt: skip
    result = agreements(people.head_a, [[other.code, "GX-1", "city", "2026-01-01", "", "", "", ""],
                                        [a.code, "GX-1", "city", "2026-01-01", "", "", "", ""]])  # fmt: skip
    assert result.ok and (result.created, result.unchanged) == (1, 1)


# ---------------------------------------------------------------------------------------------------
# The command


def write(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_command_imports_as_the_named_account(people, org, tmp_path, capsys):
    path = write(tmp_path, "客户.csv", csv_bytes(ROWS))
    call_command("import", "customers", path, "--as", "head_a", "--dry-run")
    assert "Dry run" in capsys.readouterr().out and not Customer.objects.exists()
    call_command("import", "customers", path, "--as", "head_a")
    out = capsys.readouterr().out
    assert "Imported 客户.csv as head_a" in out and "created 3" in out
    assert set(AuditEvent.objects.filter(action="customer.create").values_list("channel", flat=True)) == {
        "cli"
    }


def test_command_errors_exit_1_and_list_rows(people, org, tmp_path, capsys):
    path = write(
        tmp_path, "bad.csv", csv_bytes([["", "济南顺达物流有限公司", "机构", "NOPE", "370102", "", "", ""]])
    )
    with pytest.raises(CommandError, match="1 error in bad.csv; nothing was imported") as exc:
        call_command("import", "customers", path, "--as", "head_a")
    assert exc.value.returncode == 1
    assert "row 2, field unit_code" in capsys.readouterr().err
    with pytest.raises(CommandError, match="may not import customers"):
        call_command("import", "customers", path)  # the system administrator holds no customer rights


def test_command_needs_a_reason_for_similar_names(people, org, tmp_path, capsys):
    customer_create(acting_user=people.head_a, name="济南顺达物流有限公司", kind="institution",
                    owning_unit=org.a1, division_code="370102")  # fmt: skip
    path = write(
        tmp_path, "c.csv", csv_bytes([["", "济南顺达物流有限责任公司", "机构", "A1", "370102", "", "", ""]])
    )
    with pytest.raises(CommandError, match="--reason"):
        call_command("import", "customers", path, "--as", "head_a")
    assert "warning: row 2, field name" in capsys.readouterr().err
    call_command("import", "customers", path, "--as", "head_a", "--reason", "两家不同的公司")
    assert Customer.objects.count() == 2


def test_command_refuses_a_big_file_before_reading_it(people, org, tmp_path, settings):
    settings.KEHU_MAX_UPLOAD_MB = 1
    path = tmp_path / "big.csv"
    with path.open("wb") as handle:
        handle.truncate(2 * 1024 * 1024)
    with pytest.raises(CommandError, match="at most 1 MB"):
        call_command("import", "customers", str(path), "--as", "head_a")


def test_command_contacts_and_agreements(people, org, customers, tmp_path, capsys):
    a, _b = customers
    call_command("import", "contacts", write(tmp_path, "c.csv", csv_bytes([[a.code, "李总", "", "", "", "", "", ""]],
                                                                             CONTACT_HEADER)), "--as", "alice")  # fmt: skip
    call_command("import", "agreements", write(tmp_path, "a.csv", csv_bytes(
        [[a.code, "GX-1", "city", "2026-01-01", "", "", "", ""]], AGREEMENT_HEADER)), "--as", "alice")  # fmt: skip
    assert (
        Contact.objects.filter(customer=a).count() == 1 and Agreement.objects.filter(customer=a).count() == 1
    )


def test_progress_is_reported(people, org):
    seen = []
    run(people.head_a, ROWS, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)


def test_dates_in_xlsx_cells(people, customers):
    import xlsxwriter

    a, _b = customers
    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, ["客户编码", "姓名", "生日"])
    sheet.write_string(1, 0, a.code)
    sheet.write_string(1, 1, "李总")
    sheet.write_datetime(1, 2, datetime(1975, 3, 8), workbook.add_format({"num_format": "yyyy-mm-dd"}))
    workbook.close()
    result = contacts_import(acting_user=people.alice, filename="c.xlsx", content=out.getvalue())
    assert result.ok, result.errors
    assert Contact.objects.get().birthday == date(1975, 3, 8)


def test_phones_table_has_no_plaintext(people, org):
    run(people.head_a, ROWS)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT number FROM customers_customerphone")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and not any("13800000001" in s for s in stored)
    assert CustomerPhone.objects.count() == 3


def test_a_number_registered_meanwhile_stops_the_import(people, org, monkeypatch):
    """The checks ran before someone else registered the number: the database's unique index refuses it."""
    from kehu.customers import imports as imports_module

    customer_create(acting_user=people.bob, name="青岛海鸥渔业合作社", kind="institution", owning_unit=org.b1,
                    division_code="370202", phones=["13800000001"])  # fmt: skip
    monkeypatch.setattr(imports_module._Phones, "holder", lambda self, number: None)  # as if checked earlier
    before = (Customer.objects.count(), audit_count())
    result = run(people.head_a, ROWS)
    assert [(e.row, e.field) for e in result.errors] == [(2, "")]
    assert "at the same moment" in result.errors[0].message and result.created == 0
    assert (Customer.objects.count(), audit_count()) == before


def test_a_merged_away_code_is_refused(people, org):
    from kehu.customers.models import RetiredCustomerCode

    RetiredCustomerCode.objects.create(code="37010200077000", reason="merged")
    header = "code,name,kind,unit_code,division_code,credit_code,phone,address\n"
    content = (header + "37010200077000,泰山能源,institution,A1,370102,,,\n").encode()
    with translation.override("en"):
        result = customers_import(acting_user=people.alice, filename="c.csv", content=content)
    assert not result.ok and "never reused" in str(result.errors[0])
    assert not Customer.objects.filter(code="37010200077000").exists()
