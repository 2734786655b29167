"""Seeded synthetic organisations for benchmarks and load tests (``kehu gen-data``).

A tree of ``units`` units, ``depth`` levels deep (province → city → county → area → station by
default), with the fan-out chosen so the levels grow geometrically and add up to exactly ``units``.
Leaves get ``people_per_leaf`` customer managers on average, every other unit a unit head.

Rows are written with ``bulk_create`` level by level (a unit's path needs its parent's path and its
own id) and the paths are computed exactly as ``kehu.org.services.unit_create`` does. Everyone gets
the same precomputed password hash. One audit row (``gen_data.run``) records the run.

The same seed always gives the same codes, names, division codes and people.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import DEFAULT_SCOPE, ManagerGrade, Role
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError
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

# Common surnames, most frequent first; drawn with weights falling off with rank.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔"
)
GIVEN_MALE = (
    "建国志明海军伟华强磊涛鹏飞宇浩杰斌超勇峰亮俊文博凯鑫晨阳刚辉东林波振永德庆学成立新兴安祥福民荣嘉子昊泽"
)
GIVEN_FEMALE = "静丽敏燕芳娟婷雪琳慧颖倩红霞梅玲洁蕾晶萍欣悦佳怡楠彤晓春秋玉秀桂兰凤云翠丹瑞思雨梓涵"
PHONE_PREFIXES = (
    "130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 176 177 180 182 183 "
    "185 186 187 188 189 199"
).split()


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
