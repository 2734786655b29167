"""Exporting customers (CSV/XLSX): scope, masking, filters, audit, streaming, round trip, the command."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers import exports as exports_module
from kehu.customers.exports import EXPORT_COLUMNS, customers_export, customers_export_csv_stream
from kehu.customers.imports import CUSTOMER_COLUMNS, customers_import
from kehu.customers.models import Customer, CustomerSubType
from kehu.customers.personal import customer_set_id_number
from kehu.customers.selectors import CustomerFilters
from kehu.customers.services import customer_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def archive(people, org):
    freight = CustomerSubType.objects.create(code="freight", name="货运", kind="institution")
    shunda = customer_create(
        acting_user=people.head_a, lead_manager=people.alice, name="济南顺达物流有限公司", kind="institution", owning_unit=org.a1,
        division_code="370102", credit_code="91350100M000100Y43", phones=["13800000001", "0531-88886666"],
        address="历下区经十路1号", sub_type=freight, tags=["大客户", "物流"], latitude=Decimal("36.651200"),
        longitude=Decimal("117.120000"), status="active", payment_profile="fuel_card", notes="=1+1 第一行\n第二行",
        backup_manager=people.alice_peer, floor_area=Decimal("120.50"), business_scope="道路运输",
    )  # fmt: skip
    branch = customer_create(acting_user=people.head_a, name="顺达物流市中分公司", kind="institution",
                             owning_unit=org.a2, division_code="370103", parent=shunda, lead_manager=people.alice,
                             duplicate_reason="分公司")  # fmt: skip
    person = customer_create(acting_user=people.head_a, name="王建国", kind="individual", owning_unit=org.a2,
                             division_code="370103", phones=["13900000002"])  # fmt: skip
    customer_set_id_number(acting_user=people.head_a, customer=person, id_number="11010519491231002X")
    qingdao = customer_create(acting_user=people.bob, name="青岛海鸥渔业合作社", kind="institution",
                              owning_unit=org.b1, division_code="370202")  # fmt: skip
    return shunda, branch, person, qingdao


def export_csv(user, **filters) -> list[dict]:
    out = io.BytesIO()
    count = customers_export(acting_user=user, fmt="csv", out=out, **filters)
    text = out.getvalue().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == count
    return rows


def test_columns_are_the_import_format(people, archive):
    assert EXPORT_COLUMNS == tuple(CUSTOMER_COLUMNS)
    out = io.BytesIO()
    customers_export(acting_user=people.head_a, fmt="csv", out=out)
    raw = out.getvalue()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # BOM for Excel, CRLF
    assert raw.decode("utf-8-sig").splitlines()[0] == ",".join(CUSTOMER_COLUMNS)


def test_export_is_scoped_masked_and_complete(people, archive):
    shunda, branch, person, qingdao = archive
    rows = {r["code"]: r for r in export_csv(people.head_a)}
    assert set(rows) == {shunda.code, branch.code, person.code}  # never city B
    row = rows[shunda.code]
    assert row["phone"] == "138****0001;053*****6666"  # masked, always
    assert "13800000001" not in str(rows)
    assert rows[person.code]["id_number"] == "110***********002X"
    assert row["unit_code"] == "A1" and row["sub_type"] == "freight" and row["tags"] == "大客户;物流"
    assert (
        row["kind"] == "institution" and row["status"] == "active" and row["payment_profile"] == "fuel_card"
    )
    assert row["lead_manager"] == "alice" and row["backup_manager"] == "amy"
    assert row["latitude"] == "36.651200" and row["floor_area"] == "120.50"
    assert row["notes"] == "'=1+1 第一行\n第二行"  # a formula-looking cell keeps its apostrophe
    assert rows[branch.code]["parent_code"] == shunda.code
    assert {r["code"] for r in export_csv(people.bob)} == {qingdao.code}
    assert {r["code"] for r in export_csv(people.alice)} == {shunda.code, branch.code}  # her own
    assert {r["code"] for r in export_csv(people.head_p)} == {c.code for c in archive}


def test_filters_and_order(people, org, archive):
    shunda, branch, person, _qingdao = archive
    assert [r["code"] for r in export_csv(people.head_a, kind="individual")] == [person.code]
    assert {r["code"] for r in export_csv(people.head_a, within=org.a2)} == {branch.code, person.code}
    assert [r["code"] for r in export_csv(people.head_a, q="shunda")][:1] == [shunda.code]
    assert [r["code"] for r in export_csv(people.head_a, manager=people.alice_peer)] == [shunda.code]
    assert [r["code"] for r in export_csv(people.head_a, tag="大客户")] == [shunda.code]
    assert [r["code"] for r in export_csv(people.head_a, status="active")] == [shunda.code]
    names = [r["name"] for r in export_csv(people.head_a, order="-name")]
    assert names == sorted(names, reverse=True)


def test_export_is_audited_with_count_and_filter(people, org, archive):
    export_csv(people.head_a, kind="institution", within=org.a1)
    event = AuditEvent.objects.get(action="customer.export")
    assert event.actor_username == "head_a" and event.extra["count"] == 1 and event.extra["format"] == "csv"
    assert event.extra["filter"]["kind"] == "institution" and event.extra["filter"]["within"] == "A1"
    assert event.extra["complete"] is True


def test_administrators_may_not_export(people, archive):
    for user in (people.sysadmin, people.secadmin, people.auditor):
        with pytest.raises(NotAllowed):
            customers_export(acting_user=user, fmt="csv", out=io.BytesIO())
    with pytest.raises(ServiceError, match="csv or xlsx"):
        customers_export(acting_user=people.head_a, fmt="pdf", out=io.BytesIO())
    assert not AuditEvent.objects.filter(action="customer.export").exists()


def test_xlsx_in_constant_memory(people, archive, tmp_path):
    from openpyxl import load_workbook

    path = tmp_path / "c.xlsx"
    with path.open("wb") as handle:
        count = customers_export(acting_user=people.head_a, fmt="xlsx", out=handle)
    sheet = load_workbook(path).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(CUSTOMER_COLUMNS) and len(rows) == count + 1 == 4
    codes = {r[0] for r in rows[1:]}
    assert archive[0].code in codes
    assert all(
        isinstance(v, str) or v is None for r in rows for v in r
    )  # text cells: codes keep their digits


def test_xlsx_beyond_a_sheet_is_refused(people, archive, monkeypatch):
    monkeypatch.setattr(exports_module, "XLSX_MAX_ROWS", 2)
    with pytest.raises(ServiceError, match="export CSV"):
        customers_export(acting_user=people.head_a, fmt="xlsx", out=io.BytesIO())


def test_the_csv_stream_audits_what_was_sent(people, archive):
    filters = CustomerFilters()
    chunks = list(customers_export_csv_stream(acting_user=people.head_a, filters=filters, rows_per_chunk=1))
    assert len(chunks) >= 3 and chunks[0].startswith(b"\xef\xbb\xbf")
    assert AuditEvent.objects.get(action="customer.export").extra["count"] == 3
    # A client that goes away half-way: the audit event says how many rows left, and that it stopped.
    stream = customers_export_csv_stream(acting_user=people.head_a, filters=filters, rows_per_chunk=1)
    next(stream), next(stream)
    stream.close()
    event = AuditEvent.objects.filter(action="customer.export").latest("seq")
    assert event.extra == {**event.extra, "count": 1, "complete": False}
    with pytest.raises(NotAllowed):
        customers_export_csv_stream(acting_user=people.auditor, filters=filters)


def test_round_trip_csv_and_xlsx(people, archive):
    for fmt in ("csv", "xlsx"):
        out = io.BytesIO()
        customers_export(acting_user=people.head_a, fmt=fmt, out=out)
        before = AuditEvent.objects.count()
        result = customers_import(acting_user=people.head_a, filename=f"export.{fmt}", content=out.getvalue())
        assert result.ok, (fmt, result.errors, result.warnings)
        assert (result.created, result.updated, result.unchanged) == (0, 0, 3)
        assert AuditEvent.objects.count() == before  # nothing changed, nothing audited


def test_an_edited_export_imports_its_change(people, archive):
    out = io.BytesIO()
    customers_export(acting_user=people.head_a, fmt="csv", out=out)
    text = out.getvalue().decode("utf-8-sig").replace("历下区经十路1号", "历下区经十路99号")
    result = customers_import(acting_user=people.head_a, filename="e.csv", content=text.encode("gbk"))
    assert result.ok and (result.updated, result.unchanged) == (1, 2)
    assert Customer.objects.get(pk=archive[0].pk).address == "历下区经十路99号"
    assert Customer.objects.get(pk=archive[0].pk).notes == "=1+1 第一行\n第二行"  # apostrophe taken off


# ---------------------------------------------------------------------------------------------------
# The command


def test_command_exports_as_the_named_account_with_filters(people, org, archive, tmp_path, capsys):
    path = tmp_path / "out.csv"
    call_command("export", "customers", str(path), "--as", "head_a", "--within", "A2", "--kind", "individual")
    assert "Exported 1 customer to" in capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(path.read_text("utf-8-sig"))))
    assert [r["code"] for r in rows] == [archive[2].code]
    xlsx = tmp_path / "out.data"
    call_command("export", "customers", str(xlsx), "--as", "alice", "--format", "xlsx", "--q", "顺达")
    assert xlsx.read_bytes().startswith(b"PK")
    event = AuditEvent.objects.filter(action="customer.export").latest("seq")
    assert event.channel == "cli" and event.extra["filter"]["q"] == "顺达"


def test_command_refusals(people, org, archive, tmp_path):
    path = str(tmp_path / "out.csv")
    with pytest.raises(CommandError, match="--as USERNAME"):
        call_command("export", "customers", path)
    with pytest.raises(CommandError, match="no customers to export"):
        call_command("export", "customers", path, "--as", "sysadmin")
    with pytest.raises(CommandError, match="No unit with the code"):
        call_command("export", "customers", path, "--as", "alice", "--within", "B1")
    with pytest.raises(CommandError, match="No account"):
        call_command("export", "customers", path, "--as", "alice", "--manager", "bob")
    with pytest.raises(CommandError, match="sub-type"):
        call_command("export", "customers", path, "--as", "alice", "--sub-type", "nope")
    with pytest.raises(CommandError, match="--format"):
        call_command("export", "customers", str(tmp_path / "out.txt"), "--as", "alice")


def test_command_writes_to_standard_output(people, archive, capsysbinary):
    call_command("export", "customers", "-", "--as", "head_a", "--format", "csv")
    captured = capsysbinary.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out.decode("utf-8-sig"))))
    assert len(rows) == 3 and b"Exported 3 customers to standard output" in captured.err
