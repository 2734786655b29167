"""Importing and exporting the organisation tree (CSV/XLSX), the service and the CLI commands."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kehu.accounts.models import RoleAssignment
from kehu.accounts.roles import Role
from kehu.audit.models import AuditEvent
from kehu.core.errors import NotAllowed, ServiceError
from kehu.org import imports as imports_module
from kehu.org.exports import units_export
from kehu.org.imports import units_import
from kehu.org.models import MAX_DEPTH, Unit, UnitType, path_segment
from kehu.org.services import unit_set_active
from kehu.testing.factories import UserFactory


@pytest.fixture(autouse=True)
def english():
    # Messages are asserted in English, the source language (the deployment default is zh-hans).
    with translation.override("en"):
        yield


HEADER = ["code", "name", "type", "parent_code", "division_code"]
HEADER_ZH = ["编码", "名称", "类型", "上级编码", "行政区划代码"]


def csv_bytes(rows, header=HEADER, encoding="utf-8"):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows, header=HEADER, numbers=False, blank_row_at=None):
    import xlsxwriter

    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = workbook.add_worksheet("单位")
    sheet.write_row(0, 0, header)
    r = 1
    for row in rows:
        if r == blank_row_at:
            r += 1
        row = list(row)
        if numbers and row[4].isdigit():
            row[4] = int(row[4])  # a division code typed as a number
        sheet.write_row(r, 0, row)
        r += 1
    workbook.add_worksheet("other").write_row(0, 0, ["ignored"])
    workbook.close()
    return out.getvalue()


def run(user, rows=None, *, content=None, filename="units.csv", **kwargs):
    if content is None:
        content = csv_bytes(rows)
    return units_import(acting_user=user, filename=filename, content=content, **kwargs)


def by_code():
    return {u.code: u for u in Unit.objects.all()}


def assert_tree_consistent():
    """Every unit's path and depth are what unit_create / unit_move would have written."""
    units = {u.pk: u for u in Unit.objects.all()}
    for unit in units.values():
        parent = units.get(unit.parent_id)
        expected = (parent.path if parent else "") + path_segment(unit.pk)
        assert unit.path == expected, unit.code
        assert unit.depth == (parent.depth + 1 if parent else 0), unit.code


def audit_count(action=None):
    qs = AuditEvent.objects.all()
    return qs.filter(action=action).count() if action else qs.count()


def errors_at(result):
    return sorted((e.row, e.field) for e in result.errors)


# A four-level tree, listed children first.
SHANDONG = [
    ["S11", "历下一站", "station", "AR1", "370102"],
    ["AR1", "历下片区", "city", "JN", "370102"],
    ["S12", "历下二站", "加油站", "AR1", "370102"],  # type by name
    ["JN", "济南分公司", "city", "SD", "370100"],
    ["SD", "山东石油", "province", "", "370000"],
]


# ---------------------------------------------------------------------------------------------------
# Reading


def test_parents_after_children_are_created_in_dependency_order(people, org):
    result = run(people.sysadmin, SHANDONG)
    assert result.ok, result.errors
    assert (result.created, result.updated, result.moved, result.unchanged) == (5, 0, 0, 0)
    units = by_code()
    assert units["SD"].parent is None
    assert units["JN"].parent == units["SD"]
    assert units["AR1"].parent == units["JN"]
    assert units["S11"].parent == units["AR1"] and units["S12"].parent == units["AR1"]
    assert units["S12"].unit_type.code == "station"
    assert units["S11"].depth == 3 and units["S11"].path.startswith(units["SD"].path)
    assert_tree_consistent()
    assert audit_count("unit.create") == 5
    summary = AuditEvent.objects.get(action="unit.import")
    assert summary.extra["created"] == 5 and summary.extra["file"] == "units.csv"


def test_gbk_csv_with_chinese_headers(people, org):
    rows = [["JN", "济南分公司", "地市分公司", "P", "370100"], ["JN1", "济南一站", "加油站", "JN", "370102"]]
    result = run(people.sysadmin, content=csv_bytes(rows, HEADER_ZH, encoding="gbk"))
    assert result.ok, result.errors
    assert Unit.objects.get(code="JN1").name == "济南一站"
    assert Unit.objects.get(code="JN").unit_type == org.types.city


def test_utf8_csv_with_bom_and_extra_columns_and_blank_lines(people, org):
    content = ("\ufeffcode,name,type,parent_code,division_code,备注\r\n"
               "\r\n"
               "X1, 新站 ,station,A1 ,370102,whatever\r\n").encode()  # fmt: skip
    result = run(people.sysadmin, content=content)
    assert result.ok, result.errors
    unit = Unit.objects.get(code="X1")
    assert unit.name == "新站" and unit.parent == org.a1


def test_xlsx_first_sheet_with_numeric_division_codes(people, org):
    rows = [["JN", "济南分公司", "city", "P", "370100"], ["JN1", "济南一站", "station", "JN", "370102"]]
    result = run(people.sysadmin, content=xlsx_bytes(rows, numbers=True), filename="单位.XLSX")
    assert result.ok, result.errors
    assert Unit.objects.get(code="JN1").division_code == "370102"


def test_xlsx_row_numbers_are_the_sheets(people, org):
    rows = [["JN", "济南分公司", "city", "P", "370100"], ["JN1", "济南一站", "station", "JN", "999999"]]
    result = run(people.sysadmin, content=xlsx_bytes(rows, HEADER_ZH, blank_row_at=2), filename="u.xlsx")
    assert errors_at(result) == [(4, "division_code")]
    assert not Unit.objects.filter(code__in=["JN", "JN1"]).exists()


def test_missing_column_is_one_clear_error(people, org):
    content = csv_bytes([["JN", "济南", "city", "370100"]], header=["code", "name", "type", "division_code"])
    result = run(people.sysadmin, content=content)
    assert [(e.row, e.field) for e in result.errors] == [(1, "parent_code")]
    assert "parent_code" in result.errors[0].message and "上级编码" in result.errors[0].message


def test_unsupported_or_unreadable_files(people, org):
    with pytest.raises(ServiceError, match=r"\.xlsx"):
        run(people.sysadmin, content=b"x", filename="units.xls")
    with pytest.raises(ServiceError):
        run(people.sysadmin, content=b"x", filename="units.txt")
    with pytest.raises(ServiceError):
        run(people.sysadmin, content=b"not a zip", filename="units.xlsx")
    with pytest.raises(ServiceError):
        run(people.sysadmin, content=b"", filename="units.csv")
    with pytest.raises(ServiceError, match="UTF-8"):
        run(people.sysadmin, content=b"code,name\xff\xff\n", filename="units.csv")
    result = run(people.sysadmin, [])
    assert errors_at(result) == [(1, "")]


def test_import_needs_manage_units(people, org):
    with pytest.raises(NotAllowed):
        run(people.head_a, SHANDONG)
    assert not Unit.objects.filter(code="SD").exists()


# ---------------------------------------------------------------------------------------------------
# Checking: every problem, with its row, before anything is written


def test_every_row_error_is_reported_with_its_row_and_field(people, org):
    rows = [
        ["", "无编码", "station", "A1", "370102"],  # 2: empty code
        ["N1", "", "station", "A1", "370102"],  # 3: empty name
        ["N2", "二", "station", "A1", "370102"],  # 4: fine
        ["N2", "二again", "station", "A1", "370102"],  # 5: duplicate code
        ["N3", "三", "no-such-type", "A1", "370102"],  # 6: unknown type
        ["N4", "四", "station", "A1", "37010"],  # 7: malformed division code
        ["N5", "五", "station", "A1", "999999"],  # 8: unknown division code
        ["N6", "六", "station", "NOPE", "370102"],  # 9: unknown parent
        ["N7", "七", "station", "N7", "370102"],  # 10: its own parent
        ["N8", "八", "station", "N9", "370102"],  # 11: cycle N8 → N9 → N8
        ["N9", "九", "station", "N8", "370102"],  # 12: cycle
        ["N 10", "十", "station", "A1", "370102"],  # 13: space in code
        ["N11", "长" * 101, "station", "A1", "370102"],  # 14: name too long
        ["N12", "十二", "", "A1", "370102"],  # 15: no type
        ["N13", "十三", "station", "", ""],  # 16: no division code (a root is fine)
    ]
    before_units, before_audit = Unit.objects.count(), audit_count()
    result = run(people.sysadmin, rows)
    assert errors_at(result) == [
        (2, "code"), (3, "name"), (5, "code"), (6, "type"), (7, "division_code"), (8, "division_code"),
        (9, "parent_code"), (10, "parent_code"), (11, "parent_code"), (12, "parent_code"), (13, "code"),
        (14, "name"), (15, "type"), (16, "division_code"),
    ]  # fmt: skip
    messages = {(e.row, e.field): e for e in result.errors}
    assert "row 4" in messages[(5, "code")].message
    assert messages[(6, "type")].value == "no-such-type" and "station" in messages[(6, "type")].message
    assert "N8 → N9 → N8" in messages[(11, "parent_code")].message
    assert "NOPE" in messages[(9, "parent_code")].message
    assert str(messages[(7, "division_code")]).startswith("row 7, field division_code: ")
    assert (Unit.objects.count(), audit_count()) == (before_units, before_audit)
    assert result.created == 0


def test_cycle_through_the_database_is_caught(people, org):
    # P is A1's ancestor in Kehu; making P a child of A1 would close a loop.
    result = run(people.sysadmin, [["P", "山东销售公司", "province", "A1", "370000"]])
    assert errors_at(result) == [(2, "parent_code")]
    assert "cycle" in result.errors[0].message
    assert Unit.objects.get(code="P").parent is None


def test_tree_deeper_than_max_depth_is_refused(people, org):
    rows = [[f"D{i}", f"层{i}", "station", f"D{i - 1}" if i else "", "370102"] for i in range(MAX_DEPTH + 1)]
    result = run(people.sysadmin, rows)
    assert errors_at(result) == [(MAX_DEPTH + 2, "parent_code")]
    assert not Unit.objects.filter(code="D0").exists()
    rows.pop()
    assert run(people.sysadmin, rows).created == MAX_DEPTH


def test_move_that_pushes_existing_sub_units_too_deep_is_refused(people, org):
    chain = [[f"D{i}", f"层{i}", "station", f"D{i - 1}" if i else "", "370102"] for i in range(MAX_DEPTH - 1)]
    assert run(people.sysadmin, chain).ok
    # D0 has 28 levels below it; putting it under A1 (level 3) would make D28 level 32.
    result = run(people.sysadmin, [["D0", "层0", "station", "A1", "370102"]])
    assert errors_at(result) == [(2, "parent_code")]
    assert "D28" in result.errors[0].message


def test_unit_may_not_be_put_under_a_deactivated_one(people, org):
    unit_set_active(acting_user=people.sysadmin, unit=org.a2, active=False)
    result = run(people.sysadmin, [["X", "新站", "station", "A2", "370102"]])
    assert errors_at(result) == [(2, "parent_code")]
    assert "deactivated" in result.errors[0].message


def test_one_bad_row_among_a_hundred_writes_nothing(people, org):
    rows = [[f"S{i:03d}", f"站{i}", "station", "CA", "370102"] for i in range(100)]
    rows[63][4] = "123"
    rows.append(["CA", "济南分公司（改）", "city", "P", "370100"])  # an update that must not happen
    before = list(Unit.objects.order_by("pk").values_list("code", "name", "path"))
    before_audit = audit_count()
    result = run(people.sysadmin, rows)
    assert errors_at(result) == [(65, "division_code")]
    assert list(Unit.objects.order_by("pk").values_list("code", "name", "path")) == before
    assert audit_count() == before_audit


def snapshot_db():
    return (
        list(Unit.objects.order_by("pk").values_list("code", "name", "path", "depth", "unit_type")),
        UnitType.objects.count(),
        audit_count(),
    )


def test_a_service_refusing_a_row_midway_rolls_everything_back(people, org, monkeypatch):
    def refusing_update(**kwargs):
        raise ServiceError("refused", field="name")

    monkeypatch.setattr(imports_module, "unit_update", refusing_update)
    rows = [[f"S{i:03d}", f"站{i}", "新类型", "CA", "370102"] for i in range(60)]
    rows.append(["A2", "市中加油站（改）", "station", "CA", "370103"])  # updated after the 60 are created
    before = snapshot_db()
    result = run(people.sysadmin, rows, create_types=True)
    assert [(e.row, e.field, e.value, e.message) for e in result.errors] == [
        (62, "name", "市中加油站（改）", "refused")
    ]
    assert result.created == 0
    assert snapshot_db() == before


def test_a_crash_midway_leaves_nothing(people, org, monkeypatch):
    # The crash comes after the new units were inserted, while their audit rows are being written.
    calls = []

    def crashing_record_many(**kwargs):
        calls.append(len(kwargs["entries"]))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(imports_module, "audit_record_many", crashing_record_many)
    rows = [[f"S{i:03d}", f"站{i}", "station", "CA", "370102"] for i in range(60)]
    before = snapshot_db()
    with pytest.raises(RuntimeError):
        run(people.sysadmin, rows)
    assert calls == [60]
    assert snapshot_db() == before


def test_a_code_taken_meanwhile_is_a_row_error(people, org, monkeypatch):
    # Another session adds a unit with a code from the file between the check and the insert.
    real_units = imports_module._Units

    def racing_units(codes):
        Unit.objects.create(code="S001", name="抢先", unit_type=org.types.station, division_code="370102",
                            parent=org.city_a, path="~race")  # fmt: skip
        return real_units(codes)

    monkeypatch.setattr(imports_module, "_Units", racing_units)
    rows = [[f"S{i:03d}", f"站{i}", "station", "CA", "370102"] for i in range(3)]
    result = run(people.sysadmin, rows)
    assert [(e.row, e.field, e.value) for e in result.errors] == [(3, "code", "S001")]
    assert not Unit.objects.filter(code__in=["S000", "S002"]).exists()


# ---------------------------------------------------------------------------------------------------
# Updating: idempotent, moves whole subtrees


def test_importing_twice_changes_nothing_the_second_time(people, org):
    first = run(people.sysadmin, SHANDONG)
    assert first.created == 5
    before = list(Unit.objects.order_by("pk").values_list("code", "name", "path", "depth", "updated_at"))
    per_unit = AuditEvent.objects.filter(object_type="org.unit").exclude(action="unit.import").count()
    second = run(people.sysadmin, SHANDONG)
    assert (second.created, second.updated, second.moved, second.unchanged) == (0, 0, 0, 5)
    assert (
        list(Unit.objects.order_by("pk").values_list("code", "name", "path", "depth", "updated_at")) == before
    )
    assert AuditEvent.objects.filter(object_type="org.unit").exclude(action="unit.import").count() == per_unit
    assert audit_count("unit.import") == 2


def test_reimport_updates_name_type_and_division(people, org):
    rows = [["A1", "历下加油站（新）", "city", "CA", "370103"]]
    result = run(people.sysadmin, rows)
    assert (result.created, result.updated, result.moved, result.unchanged) == (0, 1, 0, 0)
    a1 = Unit.objects.get(code="A1")
    assert (a1.name, a1.unit_type.code, a1.division_code) == ("历下加油站（新）", "city", "370103")
    event = AuditEvent.objects.get(action="unit.update")
    assert set(event.changes) == {"name", "unit_type", "division_code"}


def test_reimport_with_changed_parent_moves_the_subtree(people, org):
    # City A moves under city B; its stations go with it. A new station is created under A1's new place.
    rows = [
        ["NEW", "新站", "station", "A1", "370102"],
        ["CA", "济南分公司", "city", "CB", "370100"],
    ]
    result = run(people.sysadmin, rows)
    assert (result.created, result.updated, result.moved, result.unchanged) == (1, 0, 1, 0)
    units = by_code()
    assert units["CA"].parent == units["CB"]
    assert units["A1"].path.startswith(units["CB"].path) and units["A1"].depth == 3
    assert units["A2"].path.startswith(units["CA"].path)
    assert units["NEW"].path.startswith(units["A1"].path) and units["NEW"].depth == 4
    assert_tree_consistent()
    assert AuditEvent.objects.get(action="unit.move").changes == {"parent": [org.province.pk, org.city_b.pk]}


def test_reimport_can_turn_a_branch_upside_down(people, org):
    # CA becomes a child of its former child A1, which becomes a root: moves must go top-down.
    rows = [["CA", "济南分公司", "city", "A1", "370100"], ["A1", "历下加油站", "station", "", "370102"]]
    result = run(people.sysadmin, rows)
    assert result.ok, result.errors
    assert result.moved == 2
    units = by_code()
    assert units["A1"].parent is None and units["CA"].parent == units["A1"]
    assert units["A2"].parent == units["CA"] and units["A2"].depth == 2
    assert_tree_consistent()


def test_create_types(people, org):
    rows = [["AR", "历下片区", "片区", "CA", "370102"], ["AR2", "槐荫片区", "片区", "CA", "370104"],
            ["S", "站", "kiosk", "AR", "370102"]]  # fmt: skip
    result = run(people.sysadmin, rows)
    assert errors_at(result) == [(2, "type"), (3, "type"), (4, "type")]
    planned = run(people.sysadmin, rows, create_types=True, dry_run=True)
    assert planned.ok and not UnitType.objects.filter(name="片区").exists()
    result = run(people.sysadmin, rows, create_types=True)
    assert result.ok, result.errors
    assert result.types_created == planned.types_created == ["type-1", "kiosk"]
    area = UnitType.objects.get(name="片区")
    kiosk = UnitType.objects.get(name="kiosk")
    assert (area.rank, kiosk.code, kiosk.rank) == (2, "kiosk", 3)
    assert sorted(result.types_created) == sorted([area.code, "kiosk"])
    assert Unit.objects.get(code="AR2").unit_type == area
    assert audit_count("unit_type.create") == 2
    assert run(people.sysadmin, rows).unchanged == 3  # the new types are matched by name now


def test_dry_run_counts_and_writes_nothing(people, org):
    rows = [
        *SHANDONG,
        ["CA", "济南分公司", "city", "SD", "370100"],
        ["A2", "市中站", "station", "CA", "370103"],
    ]
    before_audit = audit_count()
    result = run(people.sysadmin, rows, dry_run=True)
    assert result.ok and result.dry_run
    assert (result.created, result.updated, result.moved, result.unchanged) == (5, 1, 1, 0)
    assert not Unit.objects.filter(code="SD").exists() and audit_count() == before_audit
    real = run(people.sysadmin, rows)
    assert (real.created, real.updated, real.moved, real.unchanged) == (5, 1, 1, 0)
    assert_tree_consistent()  # A2 was updated after its parent moved: its path must follow


def test_progress_is_reported(people, org):
    rows = [[f"S{i:04d}", f"站{i}", "station", "CA", "370102"] for i in range(1200)]
    seen = []
    assert run(people.sysadmin, rows, progress=lambda done, total: seen.append((done, total))).ok
    assert seen == [(0, 1200), (500, 1200), (1000, 1200), (1200, 1200)]


# ---------------------------------------------------------------------------------------------------
# Exporting


def read_export(fmt, content):
    if fmt == "csv":
        assert content.startswith(b"\xef\xbb\xbf")
        return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    return [[c or "" for c in row] for row in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_round_trip(people, org, fmt):
    Unit.objects.filter(code="A2").update(name='=HYPERLINK("http://x")')  # must come back as text
    filename, content, count = units_export(acting_user=people.sysadmin, fmt=fmt)
    assert filename.startswith("units-") and filename.endswith("." + fmt)
    assert count == 6
    table = read_export(fmt, content)
    assert table[0] == HEADER
    assert table[1] == ["P", "山东销售公司", "province", "", "370000"]
    assert [row[0] for row in table[1:]] == ["P", "CA", "A1", "A2", "CB", "B1"]
    before = list(Unit.objects.order_by("pk").values_list("code", "name", "path", "unit_type", "updated_at"))
    result = run(people.sysadmin, content=content, filename=filename)
    assert result.ok, result.errors
    assert (result.created, result.updated, result.moved, result.unchanged) == (0, 0, 0, 6)
    assert (
        list(Unit.objects.order_by("pk").values_list("code", "name", "path", "unit_type", "updated_at"))
        == before
    )
    event = AuditEvent.objects.get(action="unit.export")
    assert event.extra == {"format": fmt, "count": 6, "within": None}


def test_export_into_an_empty_database_rebuilds_the_tree(people, org):
    _name, content, _count = units_export(acting_user=people.sysadmin, fmt="csv")
    table = read_export("csv", content)
    renamed = [table[0]] + [[f"X{r[0]}", r[1], r[2], f"X{r[3]}" if r[3] else "", r[4]] for r in table[1:]]
    result = run(people.sysadmin, content=csv_bytes(renamed[1:]))
    assert result.created == 6
    assert Unit.objects.get(code="XB1").parent.code == "XCB"
    assert_tree_consistent()


def test_export_is_scoped_to_what_the_user_sees(people, org):
    _name, content, count = units_export(acting_user=people.head_a, fmt="csv")
    codes = [row[0] for row in read_export("csv", content)[1:]]
    assert codes == ["P", "CA", "A1", "A2"] and count == 4
    _name, content, _count = units_export(acting_user=people.head_a, fmt="xlsx", within=org.city_a)
    assert [row[0] for row in read_export("xlsx", content)[1:]] == ["CA", "A1", "A2"]
    with pytest.raises(ServiceError):
        units_export(acting_user=people.head_a, fmt="csv", within=org.city_b)
    with pytest.raises(ServiceError):
        units_export(acting_user=people.head_a, fmt="pdf")


def test_export_needs_the_capability(people, org):
    for user in (people.bob, people.auditor, people.secadmin, None):
        with pytest.raises(NotAllowed):
            units_export(acting_user=user, fmt="csv")
    assert audit_count("unit.export") == 0
    RoleAssignment.objects.create(user=people.bob, role=Role.ANALYST, scope="subtree")
    people.bob.forget_roles()
    _name, content, _count = units_export(acting_user=people.bob, fmt="csv")
    assert [row[0] for row in read_export("csv", content)[1:]] == ["P", "CB", "B1"]


# ---------------------------------------------------------------------------------------------------
# The commands


def call(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_cli_import_and_export(people, org, tmp_path):
    source = tmp_path / "units.csv"
    source.write_bytes(csv_bytes(SHANDONG))
    out, _err = call("import", "units", str(source), "--dry-run")
    assert "Dry run" in out and "created 5" in out
    assert not Unit.objects.filter(code="SD").exists()
    out, _err = call("import", "units", str(source))
    assert "created 5" in out and "as sysadmin" in out
    event = AuditEvent.objects.get(action="unit.import")
    assert event.channel == "cli" and event.actor_username == "sysadmin"

    target = tmp_path / "out.xlsx"
    out, _err = call("export", "units", str(target), "--within", "SD")
    assert "Exported 5 units" in out
    assert [row[0] for row in read_export("xlsx", target.read_bytes())[1:]] == [
        "SD",
        "JN",
        "AR1",
        "S11",
        "S12",
    ]
    out, _err = call("import", "units", str(target))
    assert "unchanged 5" in out

    target = tmp_path / "mine.csv"
    call("export", "units", str(target), "--as", "head_a")
    assert [row[0] for row in read_export("csv", target.read_bytes())[1:]] == ["P", "CA", "A1", "A2"]
    assert AuditEvent.objects.filter(action="unit.export", actor_username="head_a", channel="cli").exists()


def test_cli_import_errors_exit_1_and_list_rows(people, org, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(
        csv_bytes([["X1", "站", "station", "A1", "370102"], ["X2", "站", "station", "NO", "1"]])
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("import", "units", str(source), stdout=out, stderr=err)
    assert exc.value.returncode == 1
    assert "nothing was imported" in str(exc.value)
    lines = err.getvalue().splitlines()
    assert "row 3, field parent_code: " in "\n".join(lines)
    assert any(line.startswith("row 3, field division_code: ") for line in lines)
    assert not Unit.objects.filter(code="X1").exists()


def test_cli_caps_the_error_list(people, org, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(csv_bytes([[f"X{i}", "站", "station", "A1", "1"] for i in range(250)]))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import", "units", str(source), stdout=io.StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert sum(line.startswith("row ") for line in lines) == 200
    assert "50 more" in lines[-1]


def test_cli_acting_user(people, org, tmp_path):
    source = tmp_path / "units.csv"
    source.write_bytes(csv_bytes(SHANDONG))
    with pytest.raises(CommandError, match="may not import"):
        call("import", "units", str(source), "--as", "bob")
    with pytest.raises(CommandError, match="No active account"):
        call("import", "units", str(source), "--as", "nobody")
    with pytest.raises(CommandError, match="Cannot read"):
        call("import", "units", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="may not export"):
        call("export", "units", str(tmp_path / "x.csv"), "--as", "bob")
    with pytest.raises(CommandError, match=r"\.csv or \.xlsx"):
        call("export", "units", str(tmp_path / "x.pdf"))
    UserFactory(username="sysadmin2", unit=org.province, roles=[Role.SYSTEM_ADMIN])
    with pytest.raises(CommandError, match="--as"):
        call("import", "units", str(source))
    out, _err = call("import", "units", str(source), "--as", "sysadmin2", "--create-types")
    assert "as sysadmin2" in out


def test_cli_subcommand_is_required(people, org):
    with pytest.raises(CommandError):
        call("import")
