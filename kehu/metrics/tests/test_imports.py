"""Importing transactions and monthly facts: exact sums, idempotency, every bad input, formats, scoping,
snapshots and the files' life with the transaction, and the ``kehu import`` command."""

from __future__ import annotations

import csv
import io
from datetime import date

import polars as pl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import Http404
from django.utils import translation

from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.customers.models import RetiredCustomerCode
from kehu.customers.services import customer_create
from kehu.metrics import storage
from kehu.metrics.catalogues import CATALOGUES
from kehu.metrics.imports import monthly_facts_import, transactions_import
from kehu.metrics.models import FactBatch, FactMonth, Product, SalesFact, TransactionLedger
from kehu.metrics.selectors import customer_sales, facts_frame
from kehu.metrics.services import products_load, snapshot_from_db

pytestmark = pytest.mark.django_db

OCT = date(2026, 10, 1)
TXN_HEADER = ["txn_id", "customer_code", "date", "product", "quantity", "amount", "unit_code"]
MONTHLY_HEADER = ["customer_code", "month", "product", "quantity", "amount", "txn_count"]


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def facts_dir(settings, tmp_path):
    settings.KEHU_FACTS_DIR = str(tmp_path / "facts")
    return tmp_path / "facts"


@pytest.fixture
def world(org, people):
    products_load(acting_user=people.sysadmin, products=CATALOGUES["fuel-retail"])

    def make(unit, name, **kw):
        return customer_create(acting_user=people.head_p, name=name, kind="institution", owning_unit=unit,
                               division_code=unit.division_code, duplicate_reason="test", **kw)  # fmt: skip

    a1 = make(org.a1, "历下物流有限公司", lead_manager=people.alice)
    a2 = make(org.a2, "市中运输有限公司")
    b1 = make(org.b1, "市南出租车公司", lead_manager=people.bob)
    return type("World", (), {"a1": a1, "a2": a2, "b1": b1, "org": org, "people": people})


def write_csv(path, rows, header=TXN_HEADER, encoding="utf-8"):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def txns(tmp_path, rows, name="txns.csv", **kw):
    return write_csv(tmp_path / name, rows, **kw)


def run(user, path, **kw):
    return transactions_import(acting_user=user, path=path, **kw)


def facts(source="default"):
    return {
        (f.customer.code, f.month, f.product.code): (f.quantity_milli, f.amount_fen, f.txn_count, f.first_date,
                                                     f.last_date)
        for f in SalesFact.objects.filter(source=source).select_related("customer", "product")
    }  # fmt: skip


def version(month=OCT) -> int:
    found = FactMonth.objects.filter(month=month).first()
    return found.version if found else 0


def files(directory) -> set[str]:
    return {p.name for p in directory.glob("*.parquet")} if directory.exists() else set()


# ---------------------------------------------------------------------------------------------------
# Exact sums and idempotency


def test_fifty_tenths_of_a_tonne_are_exactly_five_tonnes(world, tmp_path):
    rows = [[f"T{i:03d}", world.a1.code, f"2026-10-{1 + i % 28:02d}", "gasoline", "0.1", "780.10", "A1"]
            for i in range(50)]  # fmt: skip
    result = run(world.people.head_p, txns(tmp_path, rows))
    assert result.ok, result.errors
    assert (result.rows, result.new, result.duplicates, result.facts_written) == (50, 50, 0, 1)
    assert result.months == ["2026-10"]
    assert facts() == {
        (world.a1.code, OCT, "gasoline"): (5000, 3900500, 50, date(2026, 10, 1), date(2026, 10, 28))
    }
    assert version() == 1


def test_same_file_twice_changes_nothing(world, tmp_path, facts_dir):
    rows = [["T1", world.a1.code, "2026-10-03", "diesel", "12.345", "98765.43", ""],
            ["T2", world.a2.code, "2026-10-04", "card", "500", "500.00", "A2"]]  # fmt: skip
    path = txns(tmp_path, rows)
    run(world.people.head_p, path)
    before, ledger = facts(), TransactionLedger.objects.get()
    snapshot_file = FactMonth.objects.get().snapshot_file
    again = run(world.people.head_p, path)
    assert again.ok
    assert (again.new, again.duplicates, again.facts_written) == (0, 2, 0)
    assert facts() == before
    assert version() == 1
    assert FactMonth.objects.get().snapshot_file == snapshot_file
    assert TransactionLedger.objects.get().file_name == ledger.file_name
    assert FactBatch.objects.count() == 2  # both runs are recorded


def test_overlapping_file_counts_only_new_transactions(world, tmp_path):
    first = [["T1", world.a1.code, "2026-10-03", "diesel", "1.5", "10.00", ""],
             ["T2", world.a1.code, "2026-10-05", "diesel", "2.25", "20.50", ""]]  # fmt: skip
    run(world.people.head_p, txns(tmp_path, first, name="a.csv"))
    second = first[1:] + [["T3", world.a1.code, "2026-10-09", "diesel", "0.001", "0.01", ""],
                          ["T4", world.a1.code, "2026-10-01", "gasoline", "3", "7", ""]]  # fmt: skip
    result = run(world.people.head_p, txns(tmp_path, second, name="b.csv"))
    assert (result.new, result.duplicates, result.facts_written) == (2, 1, 2)
    assert facts() == {
        (world.a1.code, OCT, "diesel"): (3751, 3051, 3, date(2026, 10, 3), date(2026, 10, 9)),
        (world.a1.code, OCT, "gasoline"): (3000, 700, 1, date(2026, 10, 1), date(2026, 10, 1)),
    }
    assert version() == 2
    assert TransactionLedger.objects.get().rows == 4
    # The snapshot agrees with the database, row for row.
    snap = facts_frame(months=[OCT]).collect()
    assert snap.columns == ["customer_id", "month", "product", "quantity_milli", "amount_fen", "txn_count"]
    assert sorted(snap.rows()) == sorted(snapshot_from_db(OCT).drop("source").rows())


def test_same_id_with_other_content_than_before_is_an_error_and_writes_nothing(world, tmp_path, facts_dir):
    run(
        world.people.head_p,
        txns(tmp_path, [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]], name="a.csv"),
    )
    before, files_before = facts(), files(facts_dir)
    changed = [["T1", world.a1.code, "2026-10-03", "diesel", "2", "10", ""],
               ["T9", world.a1.code, "2026-10-04", "diesel", "1", "10", ""]]  # fmt: skip
    result = run(world.people.head_p, txns(tmp_path, changed, name="b.csv"))
    assert not result.ok
    assert [(e.row, e.field, e.value) for e in result.errors] == [(2, "txn_id", "T1")]
    assert "imported before with different content" in result.errors[0].message
    assert (result.new, result.facts_written) == (0, 0)
    assert facts() == before and version() == 1
    assert files(facts_dir) == files_before
    assert FactBatch.objects.count() == 1


def test_same_id_twice_in_one_file(world, tmp_path):
    same = [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]] * 2
    result = run(world.people.head_p, txns(tmp_path, same, name="same.csv"))
    assert result.ok and (result.new, result.duplicates) == (1, 1)
    assert facts()[(world.a1.code, OCT, "diesel")][:3] == (1000, 1000, 1)
    other = [["T5", world.a1.code, "2026-10-03", "diesel", "1", "10", ""],
             ["T5", world.a1.code, "2026-10-03", "diesel", "1", "11", ""]]  # fmt: skip
    result = run(world.people.head_p, txns(tmp_path, other, name="other.csv"))
    assert [(e.row, e.field) for e in result.errors] == [(3, "txn_id")]
    assert "appears in row 2" in result.errors[0].message
    assert facts()[(world.a1.code, OCT, "diesel")][:3] == (1000, 1000, 1)


# ---------------------------------------------------------------------------------------------------
# Bad input


def test_every_bad_cell_is_reported_with_row_and_field(world, tmp_path):
    RetiredCustomerCode.objects.create(code="37010200009999", reason="merged")
    Product.objects.create(code="lubricant", name="润滑油", unit="t", quantity_decimals=3, active=False)
    c = world.a1.code
    rows = [
        ["T1", "99999999999999", "2026-10-01", "diesel", "1", "1", ""],  # 2 unknown customer
        ["T2", "37010200009999", "2026-10-01", "diesel", "1", "1", ""],  # 3 merged away
        ["T3", c, "2026-10-01", "kerosene", "1", "1", ""],  # 4 unknown product
        ["T4", c, "2026-10-01", "lubricant", "1", "1", ""],  # 5 inactive product
        ["T5", c, "2026-10-01", "diesel", "1", "1", "ZZ"],  # 6 unknown unit
        ["T6", c, "2026/10/01", "diesel", "1", "1", ""],  # 7 bad date
        ["T7", c, "2026-10-01", "diesel", "-1", "1", ""],  # 8 negative quantity
        ["T8", c, "2026-10-01", "diesel", "1", "abc", ""],  # 9 non-numeric amount
        ["T9", c, "2026-10-01", "diesel", "1.0001", "1", ""],  # 10 too many decimals for tonnes
        ["T10", c, "2026-10-01", "diesel", "1", "1.005", ""],  # 11 amount with 3 decimals
        ["", c, "2026-10-01", "diesel", "1", "1", ""],  # 12 no txn id
        ["T12", c, "2026-10-01", "card", "1.5", "1.5", ""],  # 13 fine: card takes fen
        ["T13", c, "2026-10-01", "diesel", "", "1", ""],  # 14 empty quantity
    ]
    result = run(world.people.head_p, txns(tmp_path, rows))
    got = [(e.row, e.field) for e in result.errors]
    assert got == [(2, "customer_code"), (3, "customer_code"), (4, "product"), (5, "product"), (6, "unit_code"),
                   (7, "date"), (8, "quantity"), (9, "amount"), (10, "quantity"), (11, "amount"), (12, "txn_id"),
                   (14, "quantity")]  # fmt: skip
    messages = {e.row: e.message for e in result.errors}
    assert "No customer with the code “99999999999999” within your scope" in messages[2]
    assert "merged into another" in messages[3]
    assert "Unknown product “kerosene”" in messages[4]
    assert "inactive" in messages[5]
    assert "negative" in messages[8]
    assert "At most 3 decimals" in messages[10]
    assert "At most 2 decimals" in messages[11]
    assert result.error_count == 12
    assert not SalesFact.objects.exists() and not FactBatch.objects.exists()


def test_customers_outside_the_importers_scope_are_unknown(world, tmp_path):
    rows = [["T1", world.a2.code, "2026-10-01", "diesel", "1", "1", ""],
            ["T2", world.b1.code, "2026-10-01", "diesel", "1", "1", ""]]  # fmt: skip
    result = run(world.people.head_a, txns(tmp_path, rows))
    assert [(e.row, e.field, e.value) for e in result.errors] == [(3, "customer_code", world.b1.code)]
    assert "within your scope" in result.errors[0].message
    assert not SalesFact.objects.exists()


def test_a_customer_manager_may_not_import_sales(world, tmp_path):
    with pytest.raises(NotAllowed):
        run(world.people.alice, txns(tmp_path, [["T1", world.a1.code, "2026-10-01", "diesel", "1", "1", ""]]))


def test_missing_columns_empty_file_and_header_only(world, tmp_path):
    result = run(
        world.people.head_p, write_csv(tmp_path / "cols.csv", [["T1", "x"]], header=["txn_id", "amount"])
    )
    assert {e.field for e in result.errors} == {"customer_code", "date", "product", "quantity"}
    assert all(e.row == 1 for e in result.errors)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ServiceError, match="empty"):
        run(world.people.head_p, empty)
    result = run(world.people.head_p, write_csv(tmp_path / "header.csv", []))
    assert "no transactions" in result.errors[0].message
    with pytest.raises(ServiceError, match="source"):
        run(world.people.head_p, write_csv(tmp_path / "header.csv", []), source="Bad Source!")


# ---------------------------------------------------------------------------------------------------
# Formats


def test_gbk_csv_with_chinese_headers(world, tmp_path):
    header = ["交易号", "客户编码", "日期", "产品", "数量", "金额", "单位编码"]
    rows = [["交易-1", world.a1.code, "2026-10-02", "gasoline", "1.25", "9750.00", "A1"]]
    path = write_csv(tmp_path / "gbk.csv", rows, header=header, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    result = run(world.people.head_p, path)
    assert result.ok, result.errors
    assert facts()[(world.a1.code, OCT, "gasoline")][:3] == (1250, 975000, 1)


def test_utf8_bom_csv(world, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(
        ("\ufeff" + ",".join(TXN_HEADER) + f"\r\nT1,{world.a1.code},2026-10-02,diesel,2,3,\r\n").encode()
    )
    assert run(world.people.head_p, path).ok
    assert facts()[(world.a1.code, OCT, "diesel")][:3] == (2000, 300, 1)


def test_xlsx_input(world, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(TXN_HEADER)
    sheet.append(["X1", world.a1.code, "2026-10-02", "diesel", 1.5, 12.5, None])
    sheet.append(["X2", world.a1.code, date(2026, 10, 3), "diesel", 2, "abc", None])
    path = tmp_path / "sales.xlsx"
    book.save(path)
    result = run(world.people.head_p, path)
    assert [(e.row, e.field) for e in result.errors] == [(3, "amount")]
    sheet.delete_rows(3)
    book.save(path)
    assert run(world.people.head_p, path).ok
    assert facts()[(world.a1.code, OCT, "diesel")][:3] == (1500, 1250, 1)


def test_parquet_input(world, tmp_path):
    path = tmp_path / "sales.parquet"
    pl.DataFrame({
        "txn_id": ["P1", "P2", "P3"], "customer_code": [world.a1.code, world.a2.code, world.a2.code],
        "date": [date(2026, 10, 1), date(2026, 10, 2), date(2026, 11, 2)], "product": ["diesel", "card", "card"],
        "quantity": ["0.5", "100", "1"], "amount": ["4.5", "100", "1"],
    }).write_parquet(path)  # fmt: skip
    result = run(world.people.head_p, path)
    assert result.ok, result.errors
    assert result.months == ["2026-10", "2026-11"]
    assert facts()[(world.a2.code, OCT, "card")][:3] == (100000, 10000, 1)
    assert version(date(2026, 11, 1)) == 1


# ---------------------------------------------------------------------------------------------------
# Monthly facts


def monthly(tmp_path, rows, name="monthly.csv"):
    return write_csv(tmp_path / name, rows, header=MONTHLY_HEADER)


def test_monthly_facts_replace_their_months(world, tmp_path):
    head = world.people.head_p
    rows = [[world.a1.code, "2026-09", "diesel", "10.5", "70000", "12"],
            [world.a2.code, "2026-09", "gasoline", "1", "8000", "3"],
            [world.b1.code, "2026-09", "card", "20000", "20000", ""]]  # fmt: skip
    result = monthly_facts_import(acting_user=head, path=monthly(tmp_path, rows))
    assert result.ok, result.errors
    assert (result.facts_written, result.facts_unchanged, result.facts_deleted) == (3, 0, 0)
    sep = date(2026, 9, 1)
    assert facts("monthly")[(world.b1.code, sep, "card")] == (20000000, 2000000, 0, None, None)
    assert version(sep) == 1

    again = monthly_facts_import(acting_user=head, path=monthly(tmp_path, rows))
    assert (again.facts_written, again.facts_unchanged, again.facts_deleted) == (0, 3, 0)
    assert version(sep) == 1

    changed = [rows[0][:3] + ["11", "70000", "12"], rows[2]]  # a1 changed, a2 gone
    result = monthly_facts_import(acting_user=head, path=monthly(tmp_path, changed, name="m2.csv"))
    assert (result.facts_written, result.facts_unchanged, result.facts_deleted) == (1, 1, 1)
    assert set(facts("monthly")) == {(world.a1.code, sep, "diesel"), (world.b1.code, sep, "card")}
    assert facts("monthly")[(world.a1.code, sep, "diesel")][0] == 11000
    assert version(sep) == 2
    assert sorted(facts_frame(months=[sep]).collect().rows()) == sorted(
        snapshot_from_db(sep).drop("source").rows()
    )

    # City A's head replaces city A's facts only: city B's customer keeps its row.
    mine = [[world.a2.code, "2026-09", "gasoline", "2", "16000", "4"]]
    result = monthly_facts_import(
        acting_user=world.people.head_a, path=monthly(tmp_path, mine, name="m3.csv")
    )
    assert (result.facts_written, result.facts_deleted) == (1, 1)
    assert set(facts("monthly")) == {(world.a2.code, sep, "gasoline"), (world.b1.code, sep, "card")}


def test_monthly_facts_do_not_touch_other_sources(world, tmp_path):
    run(world.people.head_p, txns(tmp_path, [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]]))
    rows = [[world.a1.code, "2026-10", "diesel", "4", "40", "4"]]
    monthly_facts_import(acting_user=world.people.head_p, path=monthly(tmp_path, rows))
    assert facts()[(world.a1.code, OCT, "diesel")][:3] == (1000, 1000, 1)
    assert facts("monthly")[(world.a1.code, OCT, "diesel")][:3] == (4000, 4000, 4)
    snap = facts_frame(months=[OCT]).collect()
    assert sorted(snap["quantity_milli"].to_list()) == [1000, 4000]


def test_monthly_facts_bad_rows(world, tmp_path):
    rows = [[world.a1.code, "2026-9", "diesel", "1", "1", "1"],
            [world.a1.code, "2026-10", "diesel", "1", "1", "x"],
            [world.a1.code, "2026-10", "gasoline", "1", "1", "1"],
            [world.a1.code, "2026-10", "gasoline", "2", "1", "1"]]  # fmt: skip
    header = ["客户编码", "月份", "产品", "数量", "金额", "笔数"]
    result = monthly_facts_import(acting_user=world.people.head_p,
                                  path=write_csv(tmp_path / "m.csv", rows, header=header))  # fmt: skip
    assert [(e.row, e.field) for e in result.errors] == [(2, "month"), (3, "txn_count"), (5, "product")]
    assert "row 4" in result.errors[2].message
    assert not SalesFact.objects.exists()


# ---------------------------------------------------------------------------------------------------
# Audit, scoping, snapshots, files


def test_import_is_audited_with_its_counts(world, tmp_path):
    rows = [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]]
    result = run(world.people.head_p, txns(tmp_path, rows), source="pos")
    event = AuditEvent.objects.get(action="sales.import")
    assert event.extra["source"] == "pos" and event.extra["new"] == 1 and event.extra["rows"] == 1
    assert event.extra["facts_written"] == 1 and event.extra["months"] == ["2026-10"]
    batch = FactBatch.objects.get(pk=result.batch_id)
    assert (batch.rows_read, batch.rows_new, batch.facts_written, batch.source) == (1, 1, 1, "pos")
    assert len(batch.sha256) == 64


def test_customer_sales_is_scoped(world, tmp_path):
    rows = [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""],
            ["T2", world.a1.code, "2026-09-03", "diesel", "2", "10", ""]]  # fmt: skip
    run(world.people.head_p, txns(tmp_path, rows))
    people = world.people
    for viewer in (people.alice, people.head_a, people.head_p):
        sales = customer_sales(viewer=viewer, customer=world.a1, today=date(2026, 11, 5))
        assert [(s.month, s.product, s.quantity_milli) for s in sales] == [(date(2026, 9, 1), "diesel", 2000),
                                                                           (OCT, "diesel", 1000)]  # fmt: skip
    assert (
        len(customer_sales(viewer=people.head_a, customer=world.a1, months=1, today=date(2026, 10, 5))) == 1
    )
    with pytest.raises(Http404):
        customer_sales(viewer=people.bob, customer=world.a1)
    assert not SalesFact.objects.visible_to(people.bob).exists()
    assert SalesFact.objects.visible_to(people.head_a).count() == 2


def test_missing_or_stale_snapshot_is_rebuilt(world, tmp_path):
    rows = [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]]
    run(world.people.head_p, txns(tmp_path, rows))
    month = FactMonth.objects.get()
    storage.delete(month.snapshot_file)
    frame = facts_frame(months=[OCT]).collect()
    assert frame.rows() == [(world.a1.id, OCT, "diesel", 1000, 1000, 1)]
    rebuilt = FactMonth.objects.get()
    assert rebuilt.snapshot_file != month.snapshot_file and storage.exists(rebuilt.snapshot_file)
    # A fact changed behind the snapshot's back (version bumped, file not rewritten) is read from the database.
    SalesFact.objects.update(quantity_milli=7000)
    FactMonth.objects.update(version=rebuilt.version + 1)
    assert facts_frame(months=[OCT]).collect()["quantity_milli"].to_list() == [7000]


def test_a_failed_write_deletes_the_new_files(world, tmp_path, facts_dir, monkeypatch):
    run(
        world.people.head_p,
        txns(tmp_path, [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]], name="a.csv"),
    )
    before, files_before, month = facts(), files(facts_dir), FactMonth.objects.get()

    def broken(**kwargs):
        raise RuntimeError("audit trail unavailable")

    monkeypatch.setattr("kehu.metrics.imports.audit_record", broken)
    with pytest.raises(RuntimeError):
        run(
            world.people.head_p,
            txns(tmp_path, [["T2", world.a1.code, "2026-10-04", "diesel", "1", "10", ""]]),
        )
    assert files(facts_dir) == files_before
    assert facts() == before
    assert FactMonth.objects.get().snapshot_file == month.snapshot_file


def test_products_load_is_idempotent_and_audited(org, people):
    assert (
        products_load(acting_user=people.sysadmin, products=CATALOGUES["postal-key-accounts"])["created"] == 8
    )
    again = products_load(acting_user=people.sysadmin, products=CATALOGUES["postal-key-accounts"])
    assert again == {"created": 0, "updated": 0, "unchanged": 8}
    changed = [{**CATALOGUES["postal-key-accounts"][0], "name": "储蓄"}]
    assert products_load(acting_user=people.sysadmin, products=changed)["updated"] == 1
    assert AuditEvent.objects.filter(action="product.create").count() == 8
    assert AuditEvent.objects.filter(action="product.update").count() == 1
    with pytest.raises(NotAllowed):
        products_load(acting_user=people.alice, products=CATALOGUES["tobacco-retail"])
    with pytest.raises(ServiceError):
        products_load(acting_user=people.sysadmin, products=[{"code": "x", "scale": 4}])


# ---------------------------------------------------------------------------------------------------
# The command


def test_import_command_end_to_end(world, tmp_path):
    path = txns(tmp_path, [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""]])
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import", "transactions", str(path), "--as", "head_p", "--source", "pos", stdout=out, stderr=err
    )
    assert "Imported txns.csv as head_p" in out.getvalue() and "new 1" in out.getvalue()
    assert SalesFact.objects.get().source == "pos"
    call_command(
        "import", "transactions", str(path), "--as", "head_p", "--source", "pos", stdout=out, stderr=err
    )
    assert "duplicates 1" in out.getvalue()

    bad = txns(tmp_path, [["T2", "00000000000000", "2026-10-03", "diesel", "1", "10", ""]], name="bad.csv")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 error in bad.csv"):
        call_command("import", "transactions", str(bad), "--as", "head_p", stdout=io.StringIO(), stderr=err)
    assert "row 2, field customer_code" in err.getvalue()

    rows = [[world.a1.code, "2026-08", "diesel", "3", "30", "2"]]
    out = io.StringIO()
    call_command("import", "monthly-facts", str(monthly(tmp_path, rows)), "--as", "head_p", stdout=out)
    assert SalesFact.objects.filter(source="monthly").count() == 1
    out = io.StringIO()
    call_command(
        "import", "monthly-facts", str(monthly(tmp_path, rows)), "--as", "head_p", "--dry-run", stdout=out
    )
    assert "Dry run" in out.getvalue()
    with pytest.raises(CommandError, match="may not import"):
        call_command("import", "transactions", str(path), "--as", "alice", stdout=io.StringIO())


def test_dry_run_counts_and_writes_nothing(world, tmp_path, facts_dir):
    rows = [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""],
            ["T2", world.a2.code, "2026-10-04", "gasoline", "2", "20", ""]]  # fmt: skip
    result = run(world.people.head_p, txns(tmp_path, rows), dry_run=True)
    assert result.ok and result.dry_run and (result.rows, result.new) == (2, 2)
    assert (
        not SalesFact.objects.exists() and not FactMonth.objects.exists() and not FactBatch.objects.exists()
    )
    assert files(facts_dir) == set()
    run(world.people.head_p, txns(tmp_path, rows))
    again = run(world.people.head_p, txns(tmp_path, rows), dry_run=True)
    assert (again.new, again.duplicates) == (0, 2)


def test_parquet_rows_are_numbered_like_a_sheet(world, tmp_path):
    path = tmp_path / "bad.parquet"
    pl.DataFrame({
        "txn_id": ["P1", "P2"], "customer_code": [world.a1.code, "nope"], "date": ["2026-10-01", "2026-10-02"],
        "product": ["diesel", "diesel"], "quantity": [0.5, 1.0], "amount": [4.5, 9.0],
    }).write_parquet(path)  # fmt: skip
    result = run(world.people.head_p, path)
    assert [(e.row, e.field, e.value) for e in result.errors] == [(3, "customer_code", "nope")]


def test_a_ledger_hashed_by_another_polars_is_rehashed(world, tmp_path):
    rows = [["T1", world.a1.code, "2026-10-03", "diesel", "1", "10", ""],
            ["T2", world.a1.code, "2026-10-04", "diesel", "2", "10", ""]]  # fmt: skip
    path = txns(tmp_path, rows)
    run(world.people.head_p, path)
    ledger = TransactionLedger.objects.get()
    frame = storage.scan(ledger.file_name).collect()
    assert frame.columns == ["txn_id", "id_hash", "content_hash"]
    # As if written by a Polars whose hash differs: the stored id hashes mean nothing now.
    storage.file_path(ledger.file_name).unlink()
    frame.with_columns(pl.col("id_hash") + 1).write_parquet(storage.file_path(ledger.file_name))
    TransactionLedger.objects.update(hash_scheme="polars-0.0-1")
    again = run(world.people.head_p, path)
    assert (again.new, again.duplicates) == (0, 2)
    assert facts()[(world.a1.code, OCT, "diesel")][:3] == (3000, 2000, 2)
