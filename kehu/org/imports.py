"""Importing the organisation tree from a CSV or XLSX file (``kehu import units FILE``).

One row per unit: ``code,name,type,parent_code,division_code`` (or the Chinese headers
编码,名称,类型,上级编码,行政区划代码). The format is described in ``docs/import-formats.md``.

The import is all-or-nothing: every row is checked first and all the problems are returned, each with
its row number (the header is row 1), field and reason; nothing is written unless there are none. Then
the whole file is applied in one transaction through the ordinary services (``unit_create``,
``unit_update``, ``unit_move``, ``unit_type_create``), so paths, depths and the audit trail are exactly
what the web form would produce. A unit whose code exists is updated and, if its parent changed, moved
with its subtree; importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import PurePath

from django.db import IntegrityError, connection, transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import AuditEntry, audit_record, audit_record_many, snapshot
from kehu.core.divisions import division_code_error
from kehu.core.errors import ServiceError, require
from kehu.core.tabular import FORMULA_START, RowError, decode_text, map_header, read_table  # noqa: F401 (shared reader)
from kehu.org.models import MAX_DEPTH, Unit, UnitType, path_segment
from kehu.org.services import unit_create, unit_move, unit_type_create, unit_update

# Canonical column names and the headers accepted for each (English first: it is what exports write).
UNIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code", "编码"),
    "name": ("name", "名称"),
    "type": ("type", "类型"),
    "parent_code": ("parent_code", "上级编码"),
    "division_code": ("division_code", "行政区划代码"),
}
CODE_MAX = Unit._meta.get_field("code").max_length
NAME_MAX = Unit._meta.get_field("name").max_length
TYPE_NAME_MAX = UnitType._meta.get_field("name").max_length
TYPE_CODE_MAX = UnitType._meta.get_field("code").max_length
PROGRESS_EVERY = 500
MAX_ERRORS = 10_000  # a file that is wrong on every row need not list a million problems

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0  # name, type or division code changed
    moved: int = 0  # parent changed (a unit can be both updated and moved)
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    rows: int = 0
    types_created: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, object]:
        return {
            "rows": self.rows, "created": self.created, "updated": self.updated, "moved": self.moved,
            "unchanged": self.unchanged, "types_created": list(self.types_created),
        }  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Checking


@dataclass
class _Row:
    row: int
    code: str
    name: str
    type_value: str
    parent_code: str
    division_code: str
    type_id: int | None = None  # None: a type to create, keyed by type_value
    existing: _DbUnit | None = None
    depth: int | None = None  # final depth; None when it cannot be placed (cycle, unknown parent)


@dataclass(frozen=True)
class _DbUnit:
    id: int
    code: str
    parent_id: int | None
    depth: int
    name: str
    unit_type_id: int
    division_code: str
    is_active: bool


class _Checker:
    def __init__(self, rows: list[_Row], *, create_types: bool):
        self.errors: list[RowError] = []
        self.rows = rows
        self.create_types = create_types
        self.new_types: dict[str, int | None] = {}  # value → rank (the shallowest level using it)

    def add(self, row: int, field_name: str, value: str, message: str) -> None:
        self.errors.append(RowError(row, field_name, value, message))

    def run(self) -> list[_Row]:
        """The rows to apply, parents before children; ``self.errors`` says what is wrong."""
        self._load()
        by_code = self._check_cells()
        self._place(by_code)
        return sorted((r for r in by_code.values() if r.depth is not None), key=lambda r: (r.depth, r.row))

    def _load(self) -> None:
        self.db_by_code: dict[str, _DbUnit] = {}
        self.db_by_id: dict[int, _DbUnit] = {}
        fields = ("id", "code", "parent_id", "depth", "name", "unit_type_id", "division_code", "is_active")
        for values in Unit.objects.order_by().values_list(*fields).iterator(chunk_size=5000):
            unit = _DbUnit(*values)
            self.db_by_code[unit.code] = unit
            self.db_by_id[unit.id] = unit
        self.types = list(UnitType.objects.order_by("rank", "code"))

    def _resolve_type(self, r: _Row) -> None:
        value = r.type_value
        if not value:
            self.add(r.row, "type", value, _("A unit type is required."))
            return
        exact = [t for t in self.types if t.code == value]
        by_code = exact or [t for t in self.types if t.code.casefold() == value.casefold()]
        by_name = [t for t in self.types if t.name == value]
        candidates = by_code[:1] if len(by_code) >= 1 else by_name
        if len(candidates) == 1:
            r.type_id = candidates[0].pk
        elif len(candidates) > 1:
            self.add(r.row, "type", value, _("“%(v)s” names several unit types (%(codes)s); use the type's code.")
                     % {"v": value, "codes": ", ".join(t.code for t in candidates)})  # fmt: skip
        elif not self.create_types:
            known = ", ".join(f"{t.code} ({t.name})" for t in self.types[:20]) or _("none")
            self.add(r.row, "type", value, _("Unknown unit type “%(v)s”; known types: %(known)s.")
                     % {"v": value, "known": known})  # fmt: skip
        elif len(value) > TYPE_NAME_MAX:
            self.add(r.row, "type", value, _("A new unit type's name has at most %(n)d characters.")
                     % {"n": TYPE_NAME_MAX})  # fmt: skip
        else:
            self.new_types.setdefault(value, None)

    def _check_cells(self) -> dict[str, _Row]:
        by_code: dict[str, _Row] = {}
        for r in self.rows:
            if not r.code:
                self.add(r.row, "code", r.code, _("A unit code is required."))
            elif len(r.code) > CODE_MAX or any(c.isspace() for c in r.code):
                self.add(r.row, "code", r.code, _("A unit code has at most 32 characters and no spaces."))
            elif r.code in by_code:
                self.add(r.row, "code", r.code, _("The code “%(c)s” is also in row %(n)d.")
                         % {"c": r.code, "n": by_code[r.code].row})  # fmt: skip
            else:
                by_code[r.code] = r
                r.existing = self.db_by_code.get(r.code)
            if not r.name:
                self.add(r.row, "name", r.name, _("A unit name is required."))
            elif len(r.name) > NAME_MAX:
                self.add(
                    r.row, "name", r.name, _("A unit name has at most %(n)d characters.") % {"n": NAME_MAX}
                )
            self._resolve_type(r)
            problem = division_code_error(r.division_code)
            if problem:
                self.add(r.row, "division_code", r.division_code, _("Division code %(e)s.") % {"e": problem})
        return by_code

    # -- the tree after the import: file rows take their parent from the file, other units keep theirs

    def _final_parent(self, code: str, by_code: dict[str, _Row]) -> str | None:
        row = by_code.get(code)
        if row is not None:
            return row.parent_code or None
        unit = self.db_by_code[code]
        return self.db_by_id[unit.parent_id].code if unit.parent_id else None

    def _place(self, by_code: dict[str, _Row]) -> None:
        unknown: set[str] = set()
        for r in by_code.values():
            p = r.parent_code
            if p and p not in by_code and p not in self.db_by_code:
                unknown.add(r.code)
                self.add(r.row, "parent_code", p, _("No unit has the code “%(c)s”, in the file or in Kehu.")
                         % {"c": p})  # fmt: skip

        # Final depth of every unit (None: not placeable), computed without recursion.
        depth: dict[str, int | None] = {}
        in_cycle: set[str] = set()
        for start in list(by_code) + list(self.db_by_code):
            if start in depth:
                continue
            chain: list[str] = []
            on_chain: dict[str, int] = {}
            node: str | None = start
            base: int | None = -1  # depth of the node above the chain's top (-1: the chain starts at a root)
            while node is not None:
                if node in depth:
                    base = depth[node]
                    break
                if node in on_chain:  # a cycle: the part of the chain from node onwards
                    cycle = chain[on_chain[node] :]
                    in_cycle.update(cycle)
                    self._report_cycle(cycle, by_code)
                    base = None
                    break
                on_chain[node] = len(chain)
                chain.append(node)
                if node in unknown:
                    base = None
                    break
                node = self._final_parent(node, by_code)
            for code in reversed(chain):
                if base is None:
                    depth[code] = None
                else:
                    base += 1
                    depth[code] = base

        for r in by_code.values():
            r.depth = depth.get(r.code)
        self._check_depth(depth, by_code)
        self._check_parents_active(by_code)
        for r in by_code.values():
            if r.depth is not None and r.type_id is None and r.type_value in self.new_types:
                rank = self.new_types[r.type_value]
                self.new_types[r.type_value] = r.depth if rank is None else min(rank, r.depth)

    def _report_cycle(self, cycle: list[str], by_code: dict[str, _Row]) -> None:
        # cycle is child → parent → …; show it top-down as the file would describe it.
        shown = " → ".join([*cycle, cycle[0]])
        for code in cycle:
            r = by_code.get(code)
            if r is None:
                continue
            if r.parent_code == r.code:
                message = _("A unit cannot be its own parent.")
            else:
                message = _("The parent codes form a cycle: %(cycle)s.") % {"cycle": shown}
            self.add(r.row, "parent_code", r.parent_code, message)

    def _check_depth(self, depth: dict[str, int | None], by_code: dict[str, _Row]) -> None:
        deepest: dict[str, tuple[int, str]] = {}  # file row's code → (deepest level, unit at it)
        for code, d in depth.items():
            if d is None or d < MAX_DEPTH:
                continue
            # Blame the file row for the unit itself or, for a unit not in the file, its nearest
            # ancestor in the file (the row that moved it down).
            node: str | None = code
            while node is not None and node not in by_code:
                node = self._final_parent(node, by_code)
            if node is None:  # pragma: no cover - the database was already too deep
                continue
            if node not in deepest or d > deepest[node][0]:
                deepest[node] = (d, code)
        for node, (d, code) in deepest.items():
            r = by_code[node]
            if node == code:
                message = _("This unit would be at level %(d)d; the tree may be at most %(n)d levels deep.")
            else:
                message = _("Its sub-unit “%(u)s” would be at level %(d)d; the tree may be at most "
                            "%(n)d levels deep.")  # fmt: skip
            self.add(r.row, "parent_code", r.parent_code, message % {"u": code, "d": d + 1, "n": MAX_DEPTH})

    def _check_parents_active(self, by_code: dict[str, _Row]) -> None:
        # An active unit may not be put under a deactivated one (as unit_set_active keeps it).
        for r in by_code.values():
            if not r.parent_code or r.depth is None:
                continue
            parent = self.db_by_code.get(r.parent_code)
            if parent is None or parent.is_active:
                continue
            placed = r.existing is not None and r.existing.parent_id == parent.id
            if not placed and (r.existing is None or r.existing.is_active):
                self.add(r.row, "parent_code", r.parent_code,
                         _("The parent unit “%(c)s” is deactivated; reactivate it first.")
                         % {"c": r.parent_code})  # fmt: skip


def _parse_rows(table: list[tuple[int, list[str]]], index: dict[str, int]) -> list[_Row]:
    def cell(cells: list[str], name: str) -> str:
        i = index[name]
        return cells[i].strip() if i < len(cells) else ""

    return [
        _Row(row=n, code=cell(cells, "code"), name=cell(cells, "name"), type_value=cell(cells, "type"),
             parent_code=cell(cells, "parent_code"), division_code=cell(cells, "division_code"))
        for n, cells in table
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Applying


class _Abort(Exception):
    def __init__(self, error: RowError):
        self.error = error


def _new_type_code(value: str, taken: set[str]) -> str:
    candidates = []
    if _SLUG.match(value) and len(value) <= TYPE_CODE_MAX:
        candidates.append(value)
    slug = slugify(value)[:TYPE_CODE_MAX]
    if slug:
        candidates.append(slug)
    for candidate in candidates:
        if candidate.casefold() not in taken:
            return candidate
    n = 1
    while f"type-{n}" in taken:
        n += 1
    return f"type-{n}"


def _planned_types(checker: _Checker) -> dict[str, tuple[str, int]]:
    """The unit types to create: value → (code, rank), shallowest first."""
    planned: dict[str, tuple[str, int]] = {}
    taken = {t.code.casefold() for t in checker.types}
    for value, rank in sorted(checker.new_types.items(), key=lambda kv: (kv[1] or 0, kv[0])):
        code = _new_type_code(value, taken)
        taken.add(code.casefold())
        planned[value] = (code, rank or 0)
    return planned


class _Units:
    """Unit objects by code, refreshed from the database when a move may have changed their path."""

    def __init__(self, codes: Iterable[str]):
        self.moves = 0
        self._cache: dict[str, tuple[Unit, int]] = {}
        codes = list(codes)
        for i in range(0, len(codes), 2000):
            for unit in Unit.objects.filter(code__in=codes[i : i + 2000]):
                self._cache[unit.code] = (unit, 0)

    def get(self, code: str) -> Unit:
        unit, seen = self._cache[code]
        if seen < self.moves:
            unit.refresh_from_db()
            self._cache[code] = (unit, self.moves)
        return unit

    def put(self, unit: Unit) -> None:
        self._cache[unit.code] = (unit, self.moves)


class _Applier:
    """Applies a checked plan level by level, parents first, in the caller's transaction.

    New units are inserted a batch at a time (``bulk_create``) and given the path and depth
    ``unit_create`` would give them, with the same ``unit.create`` audit row each; existing units go
    through ``unit_move`` and ``unit_update`` one by one (few, in practice). Level by level is what
    makes moves safe: when a unit is moved, its new parent and everything above it are already where
    the file wants them, so no move can hit a transient cycle.
    """

    def __init__(self, *, acting_user, checker: _Checker, result: ImportResult, progress):
        self.user = acting_user
        self.checker = checker
        self.result = result
        self.progress = progress
        self.done = 0
        self.bulk = connection.features.can_return_rows_from_bulk_insert

    def run(self, plan: list[_Row]) -> None:
        self._create_types()
        self.types = {t.pk: t for t in UnitType.objects.all()}
        needed = {r.code for r in plan if r.existing} | {r.parent_code for r in plan if r.parent_code}
        self.units = _Units(needed & set(self.checker.db_by_code))
        self.total = len(plan)
        for _depth, level in groupby(plan, key=lambda r: r.depth):
            level = list(level)
            new = [r for r in level if r.existing is None]
            for i in range(0, len(new), PROGRESS_EVERY):
                self._create(new[i : i + PROGRESS_EVERY])
            for r in level:
                if r.existing is not None:
                    self._update(r)
                    self._advance(1)

    def _create_types(self) -> None:
        self.type_ids: dict[str, int] = {}
        for value, (code, rank) in _planned_types(self.checker).items():
            unit_type = unit_type_create(acting_user=self.user, code=code, name=value, rank=rank)
            self.type_ids[value] = unit_type.pk
            self.result.types_created.append(code)

    def _type(self, r: _Row) -> UnitType:
        return self.types[r.type_id if r.type_id is not None else self.type_ids[r.type_value]]

    def _advance(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if self.progress and (
            self.done // PROGRESS_EVERY > before // PROGRESS_EVERY or self.done == self.total
        ):
            self.progress(self.done, self.total)

    @contextmanager
    def _row(self, r: _Row):
        try:
            yield
        except ServiceError as exc:
            field_name = {"parent": "parent_code"}.get(exc.field or "", exc.field or "")
            value = getattr(r, field_name, "") if field_name else ""
            raise _Abort(RowError(r.row, field_name, value, exc.message)) from exc

    def _create(self, rows: list[_Row]) -> None:
        if not self.bulk:  # pragma: no cover - SQLite < 3.35 cannot return the new ids
            for r in rows:
                parent = self.units.get(r.parent_code) if r.parent_code else None
                with self._row(r):
                    unit = unit_create(acting_user=self.user, code=r.code, name=r.name, unit_type=self._type(r),
                                       division_code=r.division_code, parent=parent)  # fmt: skip
                self.units.put(unit)
            self.result.created += len(rows)
            self._advance(len(rows))
            return
        parents = [self.units.get(r.parent_code) if r.parent_code else None for r in rows]
        objs = [
            # The path needs the id: insert with unit_create's unique placeholder, then set it.
            Unit(code=r.code, name=r.name, unit_type=self._type(r), division_code=r.division_code,
                 parent=parent, path=f"~{r.code}", depth=0 if parent is None else parent.depth + 1)
            for r, parent in zip(rows, parents, strict=True)
        ]  # fmt: skip
        try:
            with transaction.atomic():
                Unit.objects.bulk_create(objs)
        except IntegrityError:
            taken = set(Unit.objects.filter(code__in=[r.code for r in rows]).values_list("code", flat=True))
            r = next((r for r in rows if r.code in taken), rows[0])
            message = _("The unit code “%(c)s” is taken.") % {"c": r.code}
            raise _Abort(RowError(r.row, "code", r.code, message)) from None
        for unit, parent in zip(objs, parents, strict=True):
            unit.path = (parent.path if parent else "") + path_segment(unit.pk)
        Unit.objects.bulk_update(objs, ["path"])
        self._audit_created(objs)
        for unit in objs:
            self.units.put(unit)
        self.result.created += len(objs)
        self._advance(len(objs))

    def _audit_created(self, units: list[Unit]) -> None:
        # The same event unit_create writes, appended as one batch (one lock of the chain head).
        audit_record_many(
            actor=self.user,
            entries=[AuditEntry(action="unit.create", obj=unit, changes=snapshot(unit)) for unit in units],
        )

    def _update(self, r: _Row) -> None:
        units, result = self.units, self.result
        parent = units.get(r.parent_code) if r.parent_code else None
        unit = units.get(r.code)
        unit_type = self._type(r)
        changed = False
        with self._row(r):
            if unit.parent_id != (parent.pk if parent else None):
                unit = unit_move(acting_user=self.user, unit=unit, new_parent=parent)
                units.moves += 1
                units.put(unit)
                result.moved += 1
                changed = True
            fields: dict[str, object] = {}
            if unit.name != r.name:
                fields["name"] = r.name
            if unit.unit_type_id != unit_type.pk:
                fields["unit_type"] = unit_type
            if unit.division_code != r.division_code:
                fields["division_code"] = r.division_code
            if fields:
                unit_update(acting_user=self.user, unit=unit, **fields)
                result.updated += 1
                changed = True
        if not changed:
            result.unchanged += 1


def units_import(*, acting_user, filename: str, content: bytes, create_types: bool = False,
                 dry_run: bool = False, progress: Callable[[int, int], None] | None = None) -> ImportResult:  # fmt: skip
    """Check a units file and, when every row is right, apply it in one transaction.

    Problems with the file itself (unsupported type, undecodable, empty) raise ServiceError; problems
    with the header or the rows come back in ``ImportResult.errors`` and nothing is written.
    ``dry_run`` checks and counts without writing anything.
    """
    require(acting_user, Capability.MANAGE_UNITS, _("Only the system administrator imports units."))
    result = ImportResult(dry_run=dry_run)
    table = read_table(filename, content)
    header_row, header = table[0]
    index, header_errors = map_header(header, UNIT_COLUMNS, row=header_row)
    if header_errors:
        result.errors = header_errors
        return result
    rows = _parse_rows(table[1:], index)
    result.rows = len(rows)
    if not rows:
        result.errors = [RowError(header_row, "", "", _("The file has a header but no units."))]
        return result
    if progress:
        progress(0, len(rows))

    order = {name: i for i, name in enumerate(UNIT_COLUMNS)}
    try:
        with transaction.atomic():
            checker = _Checker(rows, create_types=create_types)
            plan = checker.run()
            if checker.errors:
                errors = sorted(checker.errors, key=lambda e: (e.row, order.get(e.field, 99)))
                result.errors = errors[:MAX_ERRORS]
                return result
            if dry_run:
                _count_dry_run(plan, checker, result)
                result.types_created = [code for code, _rank in _planned_types(checker).values()]
                if progress:
                    progress(len(rows), len(rows))
                return result
            _Applier(acting_user=acting_user, checker=checker, result=result, progress=progress).run(plan)
            audit_record(
                actor=acting_user, action="unit.import", object_type="org.unit",
                object_repr=PurePath(filename).name, extra={"file": PurePath(filename).name, **result.summary()},
            )  # fmt: skip
    except _Abort as abort:
        return ImportResult(dry_run=dry_run, rows=len(rows), errors=[abort.error])
    return result


def _count_dry_run(plan: list[_Row], checker: _Checker, result: ImportResult) -> None:
    for r in plan:
        if r.existing is None:
            result.created += 1
            continue
        if not r.parent_code:
            moved = r.existing.parent_id is not None
        else:
            parent = checker.db_by_code.get(r.parent_code)
            moved = parent is None or r.existing.parent_id != parent.id
        updated = (
            r.existing.name != r.name
            or r.type_id != r.existing.unit_type_id
            or r.existing.division_code != r.division_code
        )
        result.moved += moved
        result.updated += updated
        result.unchanged += not (moved or updated)
