"""Seeded synthetic organisations for benchmarks and load tests (``kehu gen-data``).

A tree of ``units`` units, ``depth`` levels deep (province → city → county → area → station by
default), with the fan-out chosen so the levels grow geometrically and add up to exactly ``units``.
Leaves get ``people_per_leaf`` customer managers on average, every other unit a unit head.

Rows are written with ``bulk_create`` level by level (a unit's path needs its parent's path and its
own id) and the paths are computed exactly as ``kehu.org.services.unit_create`` does. Everyone gets
the same precomputed password hash. One audit row (``gen_data.run``) records the run.

The same seed always gives the same codes, names, division codes and people.

``generate_customers`` then adds customers over the units of a run (``kehu gen-data --customers``),
made by ``kehu.customers.fakes`` and bulk-loaded: see its docstring and docs/demo.md.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import DEFAULT_SCOPE, ManagerGrade, Role
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError
from kehu.customers.fakes import GIVEN_FEMALE, GIVEN_MALE, PHONE_PREFIXES, SURNAMES
from kehu.org.models import MAX_DEPTH, Unit, UnitType, path_segment

DEFAULT_PASSWORD = "Kehu@2026"
BATCH_SIZE = 5000

# (code, name, English name) of the levels, top to bottom, for the default five-level tree.
LEVEL_TYPES = [
    ("province", "省公司", "Province company"),
    ("city", "地市分公司", "City branch"),
    ("county", "区县分公司", "County branch"),
    ("area", "片区", "Area"),
    ("station", "加油站", "Station"),
]

# ------------------------------------------------------------------ Chinese names


# The name pools live with the customer fakes (kehu.customers.fakes), shared by the demo and gen-data.
class NameMaker:
    """Deterministic, plausible Chinese full names and mobile numbers from a seeded RNG."""

    def __init__(self, rng: random.Random, *, unique: bool = False):
        self.rng = rng
        self.unique = unique
        self.used: set[str] = set()
        self._weights = [1.0 / (i + 4) for i in range(len(SURNAMES))]

    def full_name(self) -> str:
        for _attempt in range(50):
            surname = self.rng.choices(SURNAMES, weights=self._weights)[0]
            pool = GIVEN_MALE if self.rng.random() < 0.55 else GIVEN_FEMALE
            given_len = 1 if self.rng.random() < 0.3 else 2
            name = surname + "".join(self.rng.choice(pool) for _ in range(given_len))
            if not self.unique or name not in self.used:
                self.used.add(name)
                return name
        return name  # pragma: no cover - 50 collisions in a row

    def phone(self) -> str:
        return self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"


# ------------------------------------------------------------------ tree shape


def level_sizes(units: int, depth: int) -> list[int]:
    """How many units on each level: 1 at the top, growing geometrically, adding up to ``units``.

    Each level has at least as many units as the one above, so every unit above the last level has a
    child and all leaves are on the last level.
    """
    if depth < 2 or depth > MAX_DEPTH:
        raise ServiceError(_("--depth must be between 2 and %(max)d.") % {"max": MAX_DEPTH}, field="depth")
    if units < depth:
        raise ServiceError(
            _("--units must be at least the depth (%(depth)d).") % {"depth": depth}, field="units"
        )
    low, high = 1.0, float(units)
    for _step in range(200):  # the fan-out f with 1 + f + … + f^(depth-1) = units
        mid = (low + high) / 2
        if sum(mid**k for k in range(depth)) < units:
            low = mid
        else:
            high = mid
    fan = (low + high) / 2
    sizes = [1]
    for k in range(1, depth - 1):
        sizes.append(max(sizes[-1], round(fan**k)))
    sizes.append(units - sum(sizes))
    while sizes[-1] < sizes[-2]:  # rounding overshot: take units back from the middle levels
        for k in range(depth - 2, 0, -1):
            if sizes[k] > sizes[k - 1]:
                sizes[k] -= 1
                sizes[-1] += 1
                break
        else:  # pragma: no cover - impossible while units >= depth
            raise ServiceError(_("Cannot shape the tree; use more units or fewer levels."), field="units")
    return sizes


def level_types(depth: int) -> list[tuple[str, str, str]]:
    if depth == len(LEVEL_TYPES):
        return list(LEVEL_TYPES)
    middle = LEVEL_TYPES[1:-1][: depth - 2]
    extra = [(f"level{k}", f"第{k}级", f"Level {k}") for k in range(len(middle) + 1, depth - 1)]
    return [LEVEL_TYPES[0], *middle, *extra, LEVEL_TYPES[-1]]


class _Divisions:
    """Real GB/T 2260 codes: a province for the root, its cities, their counties below."""

    def __init__(self, rng: random.Random):
        from kehu.core.divisions import _table

        codes = sorted(_table())
        self.rng = rng
        self.provinces = [c for c in codes if c.endswith("0000")]
        self.children: dict[str, list[str]] = {}
        for c in codes:
            if c.endswith("0000"):
                continue
            if c.endswith("00"):
                self.children.setdefault(c[:2] + "0000", []).append(c)
            else:
                self.children.setdefault(c[:4] + "00", []).append(c)
                self.children.setdefault(c[:2] + "0000:counties", []).append(c)

    def province(self) -> str:
        # Provinces that have cities with counties under them.
        usable = [p for p in self.provinces if any(self.children.get(c) for c in self.children.get(p, []))]
        return self.rng.choice(usable)

    def below(self, parent_code: str, level: int) -> str:
        if level == 1:
            options = self.children.get(parent_code, [])
        elif parent_code.endswith("0000"):
            options = self.children.get(parent_code + ":counties", [])
        elif parent_code.endswith("00"):
            options = self.children.get(parent_code, [])
        else:
            return parent_code  # below a county: the same county
        return self.rng.choice(options) if options else parent_code


PLACE_CHARS = "东西南北中青山河湖海泉石林桥园新兴安平和康宁华阳光明金水云龙凤鹤松柏梅兰长乐福寿丰"
ROAD_WORDS = ("路", "大街", "大道", "街")


NAME_SUFFIX = {"province": "销售公司", "city": "市分公司", "county": "县分公司", "area": "片区"}


def _unit_name(rng: random.Random, unit_type: UnitType, last: bool) -> str:
    place = rng.choice(PLACE_CHARS) + rng.choice(PLACE_CHARS)
    if last:
        road = rng.choice(PLACE_CHARS) + rng.choice(PLACE_CHARS) + rng.choice(ROAD_WORDS)
        return f"{place}{road}{unit_type.name}"
    return place + NAME_SUFFIX.get(unit_type.code, unit_type.name)


# ------------------------------------------------------------------ generation


@dataclass
class GenResult:
    prefix: str
    seed: int
    depth: int
    level_sizes: list[int]
    units: int
    users: int
    role_assignments: int
    seconds: float
    root_code: str = ""
    by_role: dict[str, int] = field(default_factory=dict)


_PREFIX = re.compile(r"^[A-Za-z0-9_]{1,12}$")


def unit_code(prefix: str, level: int, index: int) -> str:
    return f"{prefix}-{level}-{index:06d}"


def _check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix or ""):
        raise ServiceError(_("--prefix must be 1 to 12 letters, digits or underscores."), field="prefix")
    if Unit.objects.filter(code__startswith=f"{prefix}-").exists():
        raise ServiceError(
            _(
                "Units with the code prefix “%(prefix)s” exist already (a previous gen-data run); "
                "choose another --prefix."
            )
            % {"prefix": f"{prefix}-"},
            field="prefix",
        )
    if User.objects.filter(username__startswith=f"{prefix.lower()}-").exists():
        raise ServiceError(
            _("Accounts with the username prefix “%(prefix)s” exist already; choose another --prefix.")
            % {"prefix": f"{prefix.lower()}-"},
            field="prefix",
        )
    return prefix


def _insert_units(objs: list[Unit], batch_size: int) -> list[Unit]:
    created = Unit.objects.bulk_create(objs, batch_size=batch_size)
    if any(o.pk is None for o in created):  # a backend that cannot return ids from a bulk insert
        ids = dict(Unit.objects.filter(code__in=[o.code for o in created]).values_list("code", "pk"))
        for o in created:
            o.pk = ids[o.code]
    return created


def _set_paths(units: list[Unit], batch_size: int) -> None:
    # executemany of one small UPDATE is far cheaper than bulk_update's CASE expressions.
    table = connection.ops.quote_name(Unit._meta.db_table)
    sql = f"UPDATE {table} SET path = %s WHERE id = %s"
    with connection.cursor() as cursor:
        for start in range(0, len(units), batch_size):
            cursor.executemany(sql, [(u.path, u.pk) for u in units[start : start + batch_size]])


def generate_org(
    *,
    units: int = 20000,
    people_per_leaf: float = 1.0,
    seed: int = 1,
    depth: int = len(LEVEL_TYPES),
    prefix: str = "G",
    password: str = DEFAULT_PASSWORD,
    batch_size: int = BATCH_SIZE,
    stdout=None,
) -> GenResult:
    """Create a synthetic organisation; refuses when units with ``prefix`` exist already."""
    started = time.perf_counter()
    if people_per_leaf < 0:
        raise ServiceError(_("--people-per-unit must not be negative."), field="people_per_leaf")
    sizes = level_sizes(units, depth)
    rng = random.Random(seed)
    names = NameMaker(random.Random(seed + 1))
    divisions = _Divisions(random.Random(seed + 2))
    password_hash = make_password(password)  # once: argon2 is deliberately slow
    now = timezone.now()
    types_spec = level_types(depth)

    def say(msg: str) -> None:
        if stdout is not None:
            stdout.write(msg)

    with transaction.atomic():
        _check_prefix(prefix)
        types = []
        for rank, (code, name, name_en) in enumerate(types_spec):
            unit_type, _created = UnitType.objects.get_or_create(
                code=code, defaults={"name": name, "name_en": name_en, "rank": rank}
            )
            types.append(unit_type)

        levels: list[list[Unit]] = []
        for level, size in enumerate(sizes):
            last = level == depth - 1
            parents = levels[-1] if levels else []
            objs = []
            for index in range(size):
                parent = parents[index * len(parents) // size] if parents else None
                code = unit_code(prefix, level, index)
                division = (
                    divisions.province() if parent is None else divisions.below(parent.division_code, level)
                )
                objs.append(Unit(
                    code=code, name=_unit_name(rng, types[level], last), unit_type=types[level],
                    parent=parent, division_code=division, path=f"~{code}", depth=level,
                    created_at=now, updated_at=now,
                ))  # fmt: skip
            created = _insert_units(objs, batch_size)
            for unit in created:
                unit.path = (unit.parent.path if unit.parent else "") + path_segment(unit.pk)
            _set_paths(created, batch_size)
            levels.append(created)
            say(
                "  "
                + ngettext(
                    "level %(level)d (%(type)s): %(n)d unit", "level %(level)d (%(type)s): %(n)d units", size
                )
                % {"level": level, "type": types[level].name, "n": size}
            )

        # People: a unit head on every unit above the leaves; customer managers on the leaves.
        people: list[tuple[User, str]] = []
        grades = [g for g, _label in ManagerGrade.choices]
        for level, level_units in enumerate(levels):
            last = level == depth - 1
            for index, unit in enumerate(level_units):
                if last:
                    count = int((index + 1) * people_per_leaf) - int(index * people_per_leaf)
                    role, position = Role.CUSTOMER_MANAGER, "客户经理"
                else:
                    count, role, position = 1, Role.UNIT_HEAD, "负责人"
                for n in range(1, count + 1):
                    user = User(
                        username=f"{prefix.lower()}-{level}-{index:06d}.{n}", full_name=names.full_name(),
                        unit_id=unit.pk, position=position, phone=names.phone(),
                        manager_grade=rng.choice(grades) if role == Role.CUSTOMER_MANAGER else "",
                        password=password_hash, must_change_password=False, password_changed_at=now,
                        date_joined=now,
                    )  # fmt: skip
                    people.append((user, role))
        users = User.objects.bulk_create([u for u, _r in people], batch_size=batch_size)
        if any(u.pk is None for u in users):
            ids = dict(
                User.objects.filter(username__in=[u.username for u in users]).values_list("username", "pk")
            )
            for u in users:
                u.pk = ids[u.username]
        assignments = RoleAssignment.objects.bulk_create(
            [RoleAssignment(user_id=u.pk, role=role, scope=DEFAULT_SCOPE[role] or "", granted_at=now)
             for u, role in people],
            batch_size=batch_size,
        )  # fmt: skip
        by_role: dict[str, int] = {}
        for _u, role in people:
            by_role[str(role)] = by_role.get(str(role), 0) + 1
        root = levels[0][0]
        seconds = time.perf_counter() - started
        result = GenResult(
            prefix=prefix, seed=seed, depth=depth, level_sizes=sizes, units=sum(sizes), users=len(users),
            role_assignments=len(assignments), seconds=seconds, root_code=root.code, by_role=by_role,
        )  # fmt: skip
        audit_record(
            actor=None, actor_username="(gen-data)", action="gen_data.run", obj=root,
            extra={"prefix": prefix, "seed": seed, "depth": depth, "level_sizes": sizes, "units": result.units,
                   "users": result.users, "role_assignments": result.role_assignments,
                   "people_per_leaf": people_per_leaf, "by_role": by_role},
        )  # fmt: skip
    result.seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------ customers

CUSTOMER_BATCH = 5000
NON_LEAF_SHARE = 0.05  # customers kept by a unit above the stations (city or county key accounts)


@dataclass
class CustomerGenResult:
    prefix: str
    seed: int
    customers: int = 0
    institutions: int = 0
    individuals: int = 0
    branches: int = 0
    contacts: int = 0
    agreements: int = 0
    phones: int = 0
    divisions: int = 0
    credit_codes_dropped: int = 0
    phones_dropped: int = 0
    load_seconds: float = 0.0
    index_seconds: float = 0.0
    analyze_seconds: float = 0.0
    seconds: float = 0.0
    by_status: dict[str, int] = field(default_factory=dict)


class _Writer:
    """Bulk inserts of plain row tuples, the fastest way each database offers: executemany on SQLite's
    own connection, COPY on PostgreSQL; values are prepared once with the fields' own conversions."""

    def __init__(self, model, columns: list[str]):
        self.table = model._meta.db_table
        self.fields = [model._meta.get_field(c) for c in columns]
        self.columns = [f.column for f in self.fields]
        quoted = ", ".join(connection.ops.quote_name(c) for c in self.columns)
        if connection.vendor == "sqlite":
            self.sql = f'INSERT INTO "{self.table}" ({quoted}) VALUES ({", ".join("?" * len(self.columns))})'
        elif connection.vendor == "postgresql":
            self.sql = f'COPY "{self.table}" ({quoted}) FROM STDIN'
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            self.sql = (
                f'INSERT INTO "{self.table}" ({quoted}) VALUES ({", ".join(["%s"] * len(self.columns))})'
            )

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        connection.ensure_connection()
        raw = connection.connection
        if connection.vendor == "sqlite":
            raw.executemany(self.sql, rows)
        elif connection.vendor == "postgresql":
            with raw.cursor() as cursor, cursor.copy(self.sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:  # pragma: no cover
            with connection.cursor() as cursor:
                cursor.executemany(self.sql, rows)


def _customer_ids(count: int, state: dict) -> list[int]:
    """``count`` new primary keys for customers (the rows are inserted with them, so that branches,
    contacts and phones can point at their customer without reading anything back)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('customers_customer', 'id')) FROM generate_series(1, %s)",
                [count],
            )
            return [row[0] for row in cursor.fetchall()]
    if "next_id" not in state:
        # SQLite: the transaction is BEGIN IMMEDIATE (settings), so nobody else inserts meanwhile;
        # AUTOINCREMENT's high-water mark keeps the ids of deleted rows from coming back.
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM customers_customer")
            top = cursor.fetchone()[0]
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = 'customers_customer'")
            row = cursor.fetchone()
        state["next_id"] = max(top, row[0] if row else 0) + 1
    first = state["next_id"]
    state["next_id"] += count
    return list(range(first, first + count))


def _search_tokens(name, syllables, short_name, short_syllables, tags, tag_tokens) -> str:
    """``search.customer_search_tokens`` with the pinyin of both names given (a bulk load must not call
    pypinyin a million times); tests check that both produce the same text."""
    from kehu.customers.search import name_tokens

    tokens = name_tokens(name, syllables)
    if short_name:
        tokens |= name_tokens(short_name, short_syllables)
    tokens.update(tag_tokens[t] for t in tags)
    return " " + " ".join(sorted(tokens)) + " "


class _SearchIndexPause:
    """Take the full-text index off the table during a bulk load and build it once afterwards.

    SQLite: the FTS5 insert trigger goes, and the new rows are added to the index with one INSERT …
    SELECT (the same entries the trigger makes; ``'rebuild'`` would re-read every row, old ones too;
    the load neither updates nor deletes, so the other two triggers stay). PostgreSQL:
    the GIN index is dropped and created again by ``search.ensure_search_index``. Both happen inside
    the load's transaction, so a failed load leaves the index as it was.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def drop(self) -> None:
        from kehu.customers.search import PG_INDEX

        if not self.enabled:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER IF EXISTS customers_customer_fts_insert")
            elif connection.vendor == "postgresql":
                cursor.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")

    def restore(self, first_id: int | None) -> None:
        from kehu.customers.search import FTS_TABLE, SQLITE_DDL, ensure_search_index

        if not self.enabled:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                if first_id is not None:
                    cursor.execute(
                        f"INSERT INTO {FTS_TABLE}(rowid, search_tokens) "
                        "SELECT id, search_tokens FROM customers_customer WHERE id >= %s",
                        [first_id],
                    )
                insert_trigger = next(s for s in SQLITE_DDL if "customers_customer_fts_insert" in s)
                cursor.execute(insert_trigger)
            elif connection.vendor == "postgresql":
                # The deferred foreign-key checks of the load run now: CREATE INDEX refuses a table with
                # pending trigger events.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
                ensure_search_index()


def _unit_plan(units: list[dict], rng: random.Random) -> list[float]:
    """Cumulative weights: how customers spread over the units. Stations get most (unevenly: a busy
    station has four times the customers of a quiet one); units above keep ``NON_LEAF_SHARE``."""
    leaf_depth = max(u["depth"] for u in units)
    leaves = [i for i, u in enumerate(units) if u["depth"] == leaf_depth]
    inner = [i for i, u in enumerate(units) if u["depth"] < leaf_depth]
    weights = [0.0] * len(units)
    for i in leaves:
        weights[i] = rng.uniform(0.4, 1.6)
    if inner and leaves:
        leaf_total = sum(weights[i] for i in leaves)
        share = leaf_total * NON_LEAF_SHARE / (1 - NON_LEAF_SHARE)
        inner_weights = [rng.uniform(0.5, 1.5) for _ in inner]
        scale = share / sum(inner_weights)
        for i, w in zip(inner, inner_weights, strict=True):
            weights[i] = w * scale
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    return cum


def _managers(units: list[dict], prefix: str) -> tuple[dict[int, list[int]], dict[int, list[int]], int]:
    """(customer managers at each unit, customer managers in each unit's subtree (up to 50), any user
    of the run for ``created_by`` when a unit has no manager)."""
    by_pk = {u["pk"]: u for u in units}
    at_unit: dict[int, list[int]] = {}
    for user_id, unit_id in (
        User.objects.filter(unit_id__in=by_pk, is_active=True, role_assignments__role=Role.CUSTOMER_MANAGER)
        .order_by("pk")
        .values_list("pk", "unit_id")
    ):
        at_unit.setdefault(unit_id, []).append(user_id)
    below: dict[int, list[int]] = {}
    for unit_id, managers in at_unit.items():
        parent = by_pk[unit_id]["parent_id"]
        while parent in by_pk:
            bucket = below.setdefault(parent, [])
            if len(bucket) < 50:
                bucket.extend(managers[: 50 - len(bucket)])
            parent = by_pk[parent]["parent_id"]
    fallback = User.objects.filter(unit_id__in=by_pk).order_by("pk").values_list("pk", flat=True).first()
    if fallback is None:
        raise ServiceError(
            _("The units with the prefix “%(prefix)s” have no people; run gen-data with --people-per-unit.")
            % {"prefix": f"{prefix}-"},
            field="prefix",
        )
    return at_unit, below, fallback


def _lock_sequences(divisions: set[str]) -> dict[str, int]:
    """The divisions' counters, locked for the load: {division: last sequence handed out}."""
    from kehu.customers.models import DivisionSequence

    existing = set(
        DivisionSequence.objects.filter(division_code__in=divisions).values_list("division_code", flat=True)
    )
    DivisionSequence.objects.bulk_create(
        [DivisionSequence(division_code=d, last_sequence=0) for d in sorted(divisions - existing)],
        ignore_conflicts=True,
    )
    return dict(
        DivisionSequence.objects.select_for_update()
        .filter(division_code__in=divisions)
        .values_list("division_code", "last_sequence")
    )


def _save_sequences(before: dict[str, int], after: dict[str, int]) -> None:
    from kehu.customers.models import DivisionSequence

    table = connection.ops.quote_name(DivisionSequence._meta.db_table)
    changed = [(after[d], d) for d in sorted(after) if after[d] != before.get(d)]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET last_sequence = %s WHERE division_code = %s", changed)


def ensure_sub_types() -> tuple[dict[str, int], int]:
    """The fakes' sub-type vocabulary in the database: ({code: pk}, how many were added). Existing
    sub-types with the same code are used as they are."""
    from kehu.customers.fakes import SUB_TYPES
    from kehu.customers.models import CustomerSubType

    existing = dict(CustomerSubType.objects.values_list("code", "pk"))
    missing = [CustomerSubType(code=c, name=n, kind=k) for c, n, k in SUB_TYPES if c not in existing]
    if missing:
        CustomerSubType.objects.bulk_create(missing)
        existing = dict(CustomerSubType.objects.values_list("code", "pk"))
    return {c: existing[c] for c, _n, _k in SUB_TYPES}, len(missing)


def _prepared_defaults(model, columns: list[str]) -> dict[str, object]:
    """Each column's default, already converted for the database."""
    values = {}
    for name in columns:
        f = model._meta.get_field(name)
        default = f.get_default()
        values[name] = None if default is None else f.get_db_prep_save(default, connection)
    return values


def _taken(sql_column: str, table: str, values: list[str]) -> set[str]:
    """Which of ``values`` the column holds already (checked only when the table had rows before)."""
    found: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(values), 2000):
            chunk = values[start : start + 2000]
            cursor.execute(
                f"SELECT {sql_column} FROM {table} WHERE {sql_column} IN ({', '.join(['%s'] * len(chunk))})",
                chunk,
            )
            found.update(row[0] for row in cursor.fetchall())
    return found


def generate_customers(
    *,
    customers: int,
    prefix: str = "G",
    seed: int = 1,
    batch_size: int = CUSTOMER_BATCH,
    phone_share: float = 0.15,
    contact_share: float = 0.2,
    agreement_share: float = 0.1,
    branch_share: float = 0.01,
    pause_index: bool = True,
    stdout=None,
) -> CustomerGenResult:
    """Add ``customers`` customers (branches included) over the units of a gen-data run (``prefix``).

    Fast by design, for benchmarks: rows go in as plain tuples (COPY on PostgreSQL, executemany on
    SQLite) in batches of ``batch_size``, so memory stays flat however many are made; no service and no
    per-row audit runs (one ``gen_data.customers`` event records the run). What the services would
    have computed is computed the same way: codes from each division's counter (``DivisionSequence``,
    locked for the load and moved past the last code at the end), ``name_key``, the search tokens (with
    the pinyin of each name part computed once), encrypted phones with their blind index. The
    full-text index is rebuilt once at the end (``pause_index``), then ``ANALYZE`` runs.
    """
    from kehu.core.crypto import blind_index
    from kehu.customers.codes import MAX_SEQUENCE
    from kehu.customers.duplicates import name_key
    from kehu.customers.fakes import CustomerFaker
    from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone
    from kehu.customers.personal import PHONE_PURPOSE
    from kehu.customers.search import tag_token

    started = time.perf_counter()
    if customers < 1:
        raise ServiceError(_("--customers must be at least 1."), field="customers")
    for name, value in (("phone_share", phone_share), ("contact_share", contact_share),
                        ("agreement_share", agreement_share), ("branch_share", branch_share)):  # fmt: skip
        if not 0 <= value <= 1:
            raise ServiceError(
                _("--%(option)s must lie between 0 and 1.") % {"option": name.replace("_", "-")}, field=name
            )
    batch_size = max(100, batch_size)
    result = CustomerGenResult(prefix=prefix, seed=seed)

    def say(msg: str) -> None:
        if stdout is not None:
            stdout.write(msg)

    units = list(
        Unit.objects.filter(code__startswith=f"{prefix}-", is_active=True)
        .order_by("path")
        .values("pk", "name", "path", "division_code", "depth", "parent_id")
    )
    if not units:
        raise ServiceError(
            _("No units with the code prefix “%(prefix)s”: generate an organisation first (--units).")
            % {"prefix": f"{prefix}-"},
            field="prefix",
        )
    rng = random.Random(seed + 7)
    faker = CustomerFaker(seed)
    cum = _unit_plan(units, rng)
    leaf_depth = max(u["depth"] for u in units)
    at_unit, below, fallback_user = _managers(units, prefix)
    levels = {0: "province", 1: "city", leaf_depth: "station"}
    unit_tags = {u["pk"]: f"{prefix}{u['pk']}" for u in units}
    now = timezone.now()
    span = 3 * 365 * 86400

    cust_columns = [f.attname for f in Customer._meta.concrete_fields]
    contact_columns = [f.attname for f in Contact._meta.concrete_fields if f.attname != "id"]
    agreement_columns = [f.attname for f in Agreement._meta.concrete_fields if f.attname != "id"]
    phone_columns = [f.attname for f in CustomerPhone._meta.concrete_fields if f.attname != "id"]
    writers = {
        "customer": _Writer(Customer, cust_columns),
        "contact": _Writer(Contact, contact_columns),
        "agreement": _Writer(Agreement, agreement_columns),
        "phone": _Writer(CustomerPhone, phone_columns),
    }
    defaults = {
        "customer": _prepared_defaults(Customer, cust_columns),
        "contact": _prepared_defaults(Contact, contact_columns),
        "agreement": _prepared_defaults(Agreement, agreement_columns),
        "phone": _prepared_defaults(CustomerPhone, phone_columns),
    }
    ops = connection.ops
    dt, day = ops.adapt_datetimefield_value, ops.adapt_datefield_value
    if connection.vendor == "sqlite" and settings.USE_TZ:
        # What the SQLite backend does to an aware datetime (UTC, naive, str), without its checks per call.
        def dt(value):
            return str(value.astimezone(UTC).replace(tzinfo=None))

    lat_field, area_field = Customer._meta.get_field("latitude"), Customer._meta.get_field("floor_area")

    def dec(value, f):
        return None if value is None else ops.adapt_decimalfield_value(value, f.max_digits, f.decimal_places)

    tags_field = Customer._meta.get_field("tags")
    dates_field = Contact._meta.get_field("important_dates")
    phone_field = CustomerPhone._meta.get_field("number")
    json_cache: dict[tuple, object] = {}

    def tags_json(tags: list[str]):
        key = tuple(tags)
        if key not in json_cache:
            json_cache[key] = tags_field.get_db_prep_save(list(tags), connection)
        return json_cache[key]

    tag_tokens: dict[str, str] = {}
    now_db = dt(now)
    customer_table = connection.ops.quote_name(Customer._meta.db_table)
    phone_table = connection.ops.quote_name(CustomerPhone._meta.db_table)
    previous_rows = Customer.objects.exists()
    id_state: dict = {}
    pause = _SearchIndexPause(pause_index)
    sqlite_cache = None

    with transaction.atomic():
        sub_types, _added = ensure_sub_types()
        sequences_before = _lock_sequences({u["division_code"] for u in units})
        sequences = dict(sequences_before)
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA cache_size")
                sqlite_cache = cursor.fetchone()[0]
                cursor.execute("PRAGMA cache_size = -524288")  # 512 MiB while the indexes grow
        pause.drop()
        first_id = None
        made = 0
        next_report = 100_000
        load_started = time.perf_counter()
        while made < customers:
            size = min(batch_size, customers - made)
            picks = rng.choices(range(len(units)), cum_weights=cum, k=size)
            ids = _customer_ids(size, id_state)
            if first_id is None:
                first_id = ids[0]
            rows, contacts, agreements, phones = [], [], [], []
            credit_rows: dict[str, dict] = {}
            k = 0
            while k < size:
                unit = units[picks[k]]
                cid = ids[k]
                k += 1
                division = unit["division_code"]
                seq = sequences[division] + 1
                if seq > MAX_SEQUENCE:
                    raise ServiceError(
                        _("Division %(d)s would need more than %(n)d customer numbers; use fewer customers or "
                          "more units.") % {"d": division, "n": MAX_SEQUENCE},
                        field="customers",
                    )  # fmt: skip
                sequences[division] = seq
                fake = faker.customer(division)
                code = f"{division}{seq:05d}000"
                row = _customer_row(fake, cid, code, unit, None, rng, at_unit, below, fallback_user, sub_types,
                                    now, span, dt, dec, lat_field, area_field, tags_json, tag_tokens, name_key,
                                    tag_token, defaults["customer"])  # fmt: skip
                rows.append(row)
                if fake.credit_code:
                    credit_rows[fake.credit_code] = row
                # Branches (分公司) of a few institutions, elsewhere in the province, numbered 001, 002…
                if fake.kind == "institution" and k < size and rng.random() < branch_share:
                    count = min(1 + int(rng.random() * 3), size - k)
                    row["last_branch"] = count
                    places: dict[str, int] = {}
                    for number in range(1, count + 1):
                        branch_unit = units[picks[k]]
                        bdiv = branch_unit["division_code"]
                        places[bdiv] = places.get(bdiv, 0) + 1
                        name, syllables = faker.branch_name(fake, bdiv, places[bdiv])
                        lat, lon = faker.location(bdiv)
                        branch = _replace(fake, name=name, syllables=syllables, short_name="", short_syllables=(),
                                          credit_code=faker.credit_code(bdiv), division_code=bdiv,
                                          address=faker.address(bdiv), latitude=lat, longitude=lon,
                                          status="active")  # fmt: skip
                        brow = _customer_row(branch, ids[k], code[:11] + f"{number:03d}", branch_unit, cid, rng,
                                             at_unit, below, fallback_user, sub_types, now, span, dt, dec,
                                             lat_field, area_field, tags_json, tag_tokens, name_key, tag_token,
                                             defaults["customer"])  # fmt: skip
                        k += 1
                        rows.append(brow)
                        credit_rows[branch.credit_code] = brow
                        result.branches += 1
                for current in rows[-1 - int(row["last_branch"]) :]:
                    _children(current, fake, faker, rng, unit, levels, leaf_depth, unit_tags, contact_share,
                              agreement_share, phone_share, contacts, agreements, phones, now_db, day,
                              dates_field, phone_field, blind_index, PHONE_PURPOSE)  # fmt: skip
            if previous_rows:
                for taken in _taken("credit_code", customer_table, list(credit_rows)):
                    credit_rows[taken]["credit_code"] = ""
                    result.credit_codes_dropped += 1
                taken_phones = _taken("number_index", phone_table, [p["number_index"] for p in phones])
                if taken_phones:
                    result.phones_dropped += len(taken_phones)
                    phones = [p for p in phones if p["number_index"] not in taken_phones]
            writers["customer"].write([tuple(r[c] for c in cust_columns) for r in rows])
            writers["contact"].write([tuple(r.get(c, defaults["contact"][c]) for c in contact_columns)
                                      for r in contacts])  # fmt: skip
            writers["agreement"].write([tuple(r.get(c, defaults["agreement"][c]) for c in agreement_columns)
                                        for r in agreements])  # fmt: skip
            writers["phone"].write(
                [tuple(r.get(c, defaults["phone"][c]) for c in phone_columns) for r in phones]
            )
            for r in rows:
                result.by_status[r["status"]] = result.by_status.get(r["status"], 0) + 1
                if r["kind"] == "institution":
                    result.institutions += 1
                else:
                    result.individuals += 1
            result.contacts += len(contacts)
            result.agreements += len(agreements)
            result.phones += len(phones)
            made += size
            if made >= next_report or made == customers:
                say(
                    _("  customers: %(n)d (%(s).0f s)") % {"n": made, "s": time.perf_counter() - load_started}
                )
                next_report += 100_000
        result.customers = made
        result.load_seconds = time.perf_counter() - load_started
        _save_sequences(sequences_before, sequences)
        result.divisions = sum(1 for d in sequences if sequences[d] != sequences_before.get(d))

        index_started = time.perf_counter()
        pause.restore(first_id)
        result.index_seconds = time.perf_counter() - index_started
        say(_("  search index: %(s).1f s") % {"s": result.index_seconds})
        analyze_started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            if sqlite_cache is not None:
                cursor.execute(f"PRAGMA cache_size = {int(sqlite_cache)}")
        result.analyze_seconds = time.perf_counter() - analyze_started
        root = Unit.objects.filter(code__startswith=f"{prefix}-").order_by("depth", "pk").first()
        audit_record(
            actor=None, actor_username="(gen-data)", action="gen_data.customers", obj=root,
            extra={"prefix": prefix, "seed": seed, "customers": result.customers, "branches": result.branches,
                   "institutions": result.institutions, "individuals": result.individuals,
                   "contacts": result.contacts, "agreements": result.agreements, "phones": result.phones,
                   "divisions": result.divisions, "by_status": result.by_status,
                   "credit_codes_dropped": result.credit_codes_dropped, "phones_dropped": result.phones_dropped},
        )  # fmt: skip
    result.seconds = time.perf_counter() - started
    return result


def _replace(fake, **changes):
    from dataclasses import replace

    return replace(fake, **changes)


def _customer_row(fake, cid, code, unit, parent_id, rng, at_unit, below, fallback_user, sub_types, now, span, dt,
                  dec, lat_field, area_field, tags_json, tag_tokens, name_key, tag_token, defaults) -> dict:  # fmt: skip
    """One customer as {column: database value}."""
    from datetime import timedelta

    here = at_unit.get(unit["pk"]) or below.get(unit["pk"]) or ()
    lead = here[int(rng.random() * len(here))] if here else None
    backup = None
    if lead is not None and rng.random() < 0.5:
        pool = here if len(here) > 1 else below.get(unit["parent_id"], ())
        if len(pool) > 1:
            backup = pool[int(rng.random() * len(pool))]
            if backup == lead:
                backup = None
    created = now - timedelta(seconds=int(rng.random() * span))
    updated = created + (now - created) * rng.random()
    for tag in fake.tags:
        if tag not in tag_tokens:
            tag_tokens[tag] = tag_token(tag)
    row = dict(defaults)
    row.update(
        id=cid, code=code, name=fake.name, short_name=fake.short_name, kind=fake.kind,
        sub_type_id=sub_types.get(fake.sub_type), credit_code=fake.credit_code,
        legal_representative=fake.legal_representative, address=fake.address, division_code=fake.division_code,
        latitude=dec(fake.latitude, lat_field), longitude=dec(fake.longitude, lat_field),
        payment_profile=fake.payment_profile, business_scope=fake.business_scope,
        floor_area=dec(fake.floor_area, area_field), parent_id=parent_id, last_branch=0, status=fake.status,
        owning_unit_id=unit["pk"], unit_path=unit["path"], lead_manager_id=lead, backup_manager_id=backup,
        tags=tags_json(fake.tags), notes=fake.notes, name_key=name_key(fake.name),
        search_tokens=_search_tokens(fake.name, fake.syllables, fake.short_name, fake.short_syllables, fake.tags,
                                     tag_tokens),
        created_by_id=lead or fallback_user, updated_by_id=lead or fallback_user, created_at=dt(created),
        updated_at=dt(updated),
    )  # fmt: skip
    return row


def _children(row, fake, faker, rng, unit, levels, leaf_depth, unit_tags, contact_share, agreement_share,
              phone_share, contacts, agreements, phones, now_db, day, dates_field, phone_field, blind_index,
              phone_purpose) -> None:  # fmt: skip
    """Contacts, agreements and phones of one customer row, appended to the batch's lists."""
    cid = row["id"]
    if rng.random() < contact_share:
        for n in range(1 + int(rng.random() * 3)):
            c = faker.contact(fake, first=n == 0)
            contacts.append({
                "customer_id": cid, "name": c.name, "title": c.title, "decision_role": c.decision_role,
                "birthday": day(c.birthday) if c.birthday else None,
                "important_dates": dates_field.get_db_prep_save(c.important_dates, connection),
                "preferences": c.preferences, "relations": c.relations, "created_at": now_db,
            })  # fmt: skip
    if row["kind"] == "institution" and rng.random() < agreement_share:
        a = faker.agreement(unit_tag=unit_tags[unit["pk"]], framework=rng.random() < 0.15)
        depth = unit["depth"]
        agreements.append({
            "customer_id": cid, "number": a.number, "agreement_type": a.agreement_type,
            "signing_unit_id": unit["pk"], "signing_level": levels.get(depth, "county"),
            "parties": f"甲方：{unit['name']}；乙方：{row['name']}", "start_date": day(a.start_date),
            "end_date": day(a.end_date) if a.end_date else None, "status": a.status, "created_at": now_db,
        })  # fmt: skip
    if rng.random() < phone_share:
        number = faker.mobile()
        phones.append({
            "customer_id": cid, "contact_id": None, "label": "",
            "number": phone_field.get_db_prep_save(number, connection),
            "number_index": blind_index(number, purpose=phone_purpose), "created_at": now_db,
        })  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Sales: a month of transactions as CSV, and monthly facts for the months before it

SALES_CHUNK = 2_000_000  # transactions generated and written at a time
# (share of transactions, quantity range in thousandths, price in fen per unit of quantity); card is money.
FUEL_MIX = (
    ("gasoline", 0.55, (20, 200), 980_000),  # 0.020–0.200 t a fill, ¥9,800/t
    ("diesel", 0.30, (50, 2000), 860_000),  # 0.050–2.000 t, ¥8,600/t
    ("card", 0.15, (10_000, 500_000), 100),  # ¥100.00–¥5,000.00 (quantity in fen: money only)
)


@dataclass
class SalesGenResult:
    transactions: int = 0
    customers: int = 0
    csv_path: str = ""
    csv_seconds: float = 0.0
    history_months: int = 0
    history_facts: int = 0
    history_seconds: float = 0.0


def _uniform(seed: int, n: int, offset: int = 0):
    """``n`` seeded uniform floats in [0, 1) as a Polars expression (no numpy needed): the hash of the
    row number, scaled."""
    import polars as pl

    return pl.int_range(offset, offset + n, dtype=pl.Int64).hash(seed).cast(pl.Float64) / float(2**64)


def _sales_customers(prefix: str):
    """Id, code and unit code of the generated customers of ``prefix``, in a seeded shuffled order so that
    the large customers are spread over the tree."""
    import polars as pl

    from kehu.customers.models import Customer

    queryset = (
        Customer.objects.filter(owning_unit__code__startswith=f"{prefix}-")
        .order_by("pk")
        .values_list("pk", "code", "owning_unit__code")
    )
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        raise ServiceError(
            _("No generated customers under the prefix “%(prefix)s”: generate them first (--customers).")
            % {"prefix": f"{prefix}-"},
            field="prefix",
        )
    return pl.DataFrame(rows, schema={"customer_id": pl.Int64, "customer_code": pl.Utf8, "unit_code": pl.Utf8},
                        orient="row")  # fmt: skip


def _month_days(month) -> int:
    import calendar

    return calendar.monthrange(month.year, month.month)[1]


def write_transactions_csv(*, customers, month, transactions: int, path, seed: int = 1) -> int:
    """Write ``transactions`` seeded transactions of ``month`` over ``customers`` as CSV
    (``txn_id,customer_code,date,product,quantity,amount,unit_code``), vectorised, in chunks.

    Skewed like real sales: the customer is drawn as ``u³`` over the (shuffled) customer list, so a tenth
    of the customers make nearly half the transactions and most make a handful or none.
    """
    import polars as pl

    count = customers.height
    days = _month_days(month)
    thresholds, acc = [], 0.0
    for _code, share, _range, _price in FUEL_MIX:
        acc += share
        thresholds.append(acc)
    with open(path, "wb") as handle:
        for start in range(0, transactions, SALES_CHUNK):
            n = min(SALES_CHUNK, transactions - start)
            pick = pl.select(
                pl.int_range(start, start + n, dtype=pl.Int64).alias("n"),
                (_uniform(seed * 7 + 1, n, start) ** 3 * count)
                .cast(pl.Int64)
                .clip(0, count - 1)
                .alias("index"),
                (_uniform(seed * 7 + 2, n, start) * days).cast(pl.Int32).alias("day0"),
                _uniform(seed * 7 + 3, n, start).alias("kind"),
                _uniform(seed * 7 + 4, n, start).alias("size"),
            )
            product = pl.when(pl.col("kind") < thresholds[0]).then(pl.lit(0))
            for i, limit in enumerate(thresholds[1:-1], start=1):
                product = product.when(pl.col("kind") < limit).then(pl.lit(i))
            product = product.otherwise(pl.lit(len(FUEL_MIX) - 1))
            frame = pick.with_columns(product.alias("p")).with_columns(
                pl.col("p").replace_strict({i: m[0] for i, m in enumerate(FUEL_MIX)}, return_dtype=pl.Utf8).alias("product"),
                (pl.col("p").replace_strict({i: m[2][0] for i, m in enumerate(FUEL_MIX)}, return_dtype=pl.Float64)
                 + pl.col("size") * pl.col("p").replace_strict({i: m[2][1] - m[2][0] for i, m in enumerate(FUEL_MIX)},
                                                               return_dtype=pl.Float64)).cast(pl.Int64).alias("qty"),
                pl.col("p").replace_strict({i: m[3] for i, m in enumerate(FUEL_MIX)}, return_dtype=pl.Int64).alias("price"),
            )  # fmt: skip
            frame = frame.with_columns(
                pl.when(pl.col("product") == "card").then(pl.col("qty"))
                .otherwise(pl.col("qty") * pl.col("price") // 1000).alias("fen"),
            ).join(customers.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64)), on="index",
                   how="left").sort("n")  # fmt: skip
            card = pl.col("product") == "card"
            out = frame.select(
                pl.format("{}-{}-{}", pl.lit(f"{month:%Y%m}"), pl.lit(seed), pl.col("n")).alias("txn_id"),
                "customer_code",
                (pl.lit(month) + pl.duration(days=pl.col("day0"))).dt.to_string("%Y-%m-%d").alias("date"),
                "product",
                pl.when(card).then(pl.format("{}.{}", pl.col("qty") // 100, (pl.col("qty") % 100).cast(pl.Utf8).str.zfill(2)))
                .otherwise(pl.format("{}.{}", pl.col("qty") // 1000, (pl.col("qty") % 1000).cast(pl.Utf8).str.zfill(3)))
                .alias("quantity"),
                pl.format("{}.{}", pl.col("fen") // 100, (pl.col("fen") % 100).cast(pl.Utf8).str.zfill(2)).alias("amount"),
                "unit_code",
            )  # fmt: skip
            out.write_csv(handle, include_header=start == 0)
    return transactions


def history_facts(*, customers, month, seed: int = 1):
    """Seeded facts of one month for the history: 60% of the customers buy gasoline, 40% diesel, 15% use
    the card (the same customers every month, skipping one month in twenty); a customer's size (u³, stable
    across months) scales its volumes, varying ±30% by month."""
    import polars as pl

    n = customers.height
    salt = month.year * 12 + month.month
    base = customers.select("customer_id").with_columns(
        (_uniform(seed * 11 + 1, n) ** 3 * 400 + 0.05).alias("size"),  # tonnes a month for the largest ≈ 400
    )
    parts = []
    for i, (code, share, _range, price) in enumerate(FUEL_MIX):
        # Whether a customer buys a product is its own and stable; one month in twenty it buys none of it.
        buys = _uniform(seed * 11 + 10 + i, n) < min(1.0, share + 0.05 if code != "gasoline" else 0.6)
        skips = _uniform(seed * 11 + 100 * salt + 10 + i, n) < 0.05
        factor = 0.7 + 0.6 * _uniform(seed * 11 + 100 * salt + 20 + i, n)
        frame = base.with_columns((buys & ~skips).alias("active"), factor.alias("factor")).filter(
            pl.col("active")
        )
        quantity = (pl.col("size") * pl.col("factor") * (1000 if code != "card" else 300_000)).cast(
            pl.Int64
        ) + 1
        parts.append(frame.select(
            "customer_id", pl.lit(code).alias("product"), quantity.alias("quantity_milli"),
            (quantity * price // 1000 if code != "card" else quantity // 10).alias("amount_fen"),
            (pl.col("factor") * 20).cast(pl.Int64).alias("txn_count"),
            pl.lit(None, dtype=pl.Date).alias("first_date"), pl.lit(None, dtype=pl.Date).alias("last_date"),
        ))  # fmt: skip
    return pl.concat(parts)


def generate_sales(
    *,
    prefix: str = "G",
    seed: int = 1,
    month,
    transactions: int = 0,
    transactions_file=None,
    history_months: int = 0,
    source: str = "history",
    stdout=None,
) -> SalesGenResult:
    """Sales for the generated customers of ``prefix``: ``transactions`` transactions of ``month`` written
    to ``transactions_file`` (to import with ``kehu import transactions``), and monthly facts of the
    ``history_months`` months before ``month`` loaded straight through the facts' bulk path
    (``metrics.services.write_month_facts``, source ``history``). The fuel-retail catalogue is created
    when missing."""
    from kehu.metrics.catalogues import CATALOGUES
    from kehu.metrics.models import BatchKind, FactBatch, Product
    from kehu.metrics.services import write_month_facts
    from kehu.metrics.storage import FileSwap

    result = SalesGenResult()
    customers = _sales_customers(prefix)
    result.customers = customers.height
    for item in CATALOGUES["fuel-retail"]:
        Product.objects.get_or_create(code=item["code"], defaults={
            "name": item["name"], "unit": item["unit"], "group": item["group"], "quantity_decimals": item["scale"],
        })  # fmt: skip
    if transactions > 0:
        if not transactions_file:
            raise ServiceError(_("--transactions needs --transactions-file PATH."), field="transactions_file")
        started = time.perf_counter()
        result.transactions = write_transactions_csv(customers=customers, month=month, transactions=transactions,
                                                     path=transactions_file, seed=seed)  # fmt: skip
        result.csv_path = str(transactions_file)
        result.csv_seconds = time.perf_counter() - started
        if stdout is not None:
            stdout.write(f"{transactions:,} transactions → {transactions_file} in {result.csv_seconds:.1f} s")
    if history_months > 0:
        started = time.perf_counter()
        products = dict(Product.objects.values_list("code", "pk"))
        months = []
        for back in range(history_months, 0, -1):
            index = month.year * 12 + month.month - 1 - back
            months.append(month.replace(year=index // 12, month=index % 12 + 1, day=1))
        swap = FileSwap()
        try:
            with transaction.atomic():
                batch = FactBatch.objects.create(kind=BatchKind.MONTHLY_FACTS, source=source, file_name="gen-data",
                                                 sha256="", months=[f"{m:%Y-%m}" for m in months])  # fmt: skip
                for m in months:
                    facts = history_facts(customers=customers, month=m, seed=seed)
                    change = write_month_facts(month=m, source=source, batch=batch, facts=facts, mode="replace",
                                               swap=swap, products=products)  # fmt: skip
                    result.history_facts += change.written
                    if stdout is not None:
                        stdout.write(f"history {m:%Y-%m}: {facts.height:,} facts")
                batch.facts_written = result.history_facts
                batch.save(update_fields=["facts_written"])
                audit_record(actor=None, actor_username="(gen-data)", action="gen_data.sales", object_type="metrics.factbatch", object_id=batch.pk,
                             extra={"prefix": prefix, "seed": seed, "months": batch.months,
                                    "facts": result.history_facts})  # fmt: skip
                transaction.on_commit(swap.committed)
        except BaseException:
            swap.rolled_back()
            raise
        result.history_months = history_months
        result.history_seconds = time.perf_counter() - started
    return result
