"""The demo data set (``kehu demo``): a fuel-retail province company in Shandong with staff in every role.

Idempotent: units are recognised by code and people by username, so running it again creates nothing
and changes nothing. Everything goes through the real services, acting as the demo's administrators
(the security administrator creates the people, the system administrator the units), so the audit
trail shows what a real set-up would. The demo accounts then get the known password ``Kehu@2026``
with no forced change at first login; that step is audited once as ``demo.load``.

Argon2 is deliberately slow (about 0.15 s a hash): the loader hashes the demo password once and
passes that hash to ``user_create(password_hash=...)``, so a few hundred people load in seconds.
"""

from __future__ import annotations

import random
import time
import unicodedata
from dataclasses import dataclass, field

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from kehu.accounts.models import RoleAssignment, User
from kehu.accounts.roles import ManagerGrade, Role
from kehu.accounts.services import RoleGrant, bootstrap_security_admin, user_create, user_update
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError
from kehu.core.gendata import NameMaker
from kehu.org.models import Unit, UnitType
from kehu.org.services import unit_create, unit_type_create

DEMO_PASSWORD = "Kehu@2026"
DEMO_URL = "http://127.0.0.1:8000"
SEED = 2026

# (code, name, English name, rank)
UNIT_TYPES = [
    ("province", "省公司", "Province company", 0),
    ("city", "地市分公司", "City branch", 1),
    ("area", "片区", "Area", 2),
    ("station", "加油站", "Station", 3),
]

PROVINCE = ("SD", "中国石油山东销售分公司", "370000")

# city code, short name, division, [(area code, district, division, [roads — one station on each])]
CITIES = [
    ("JN", "济南", "370100", [
        ("LX", "历下区", "370102", ["经十路", "解放路", "山大路", "历山路", "旅游路"]),
        ("SZ", "市中区", "370103", ["英雄山路", "舜耕路", "二环南路", "经四路", "阳光新路"]),
        ("HY", "槐荫区", "370104", ["经十西路", "张庄路", "日照路", "齐州路"]),
        ("LC", "历城区", "370112", ["工业北路", "花园路", "二环东路", "华信路", "唐冶西路"]),
    ]),
    ("QD", "青岛", "370200", [
        ("SN", "市南区", "370202", ["香港中路", "东海西路", "南京路", "延安三路"]),
        ("SB", "市北区", "370203", ["辽宁路", "重庆南路", "鞍山路", "福州北路", "敦化路"]),
        ("HD", "黄岛区", "370211", ["长江中路", "江山中路", "滨海大道", "井冈山路", "漓江西路"]),
        ("LS", "崂山区", "370212", ["海尔路", "松岭路", "深圳路", "辽阳东路"]),
    ]),
    ("ZB", "淄博", "370300", [
        ("ZD", "张店区", "370303", ["人民西路", "华光路", "柳泉路", "共青团西路", "金晶大道"]),
        ("ZC", "淄川区", "370302", ["般阳路", "松龄路", "张博路", "淄城路"]),
        ("LZ", "临淄区", "370305", ["临淄大道", "桓公路", "齐兴路", "晏婴路"]),
    ]),
    ("YT", "烟台", "370600", [
        ("ZF", "芝罘区", "370602", ["南大街", "西大街", "只楚路", "幸福南路", "胜利路"]),
        ("LS", "莱山区", "370613", ["观海路", "港城东大街", "迎春大街", "山海路"]),
        ("FS", "福山区", "370611", ["福海路", "永达街", "河滨路", "松山路"]),
    ]),
    ("WF", "潍坊", "370700", [
        ("KW", "奎文区", "370705", ["东风东街", "胜利东街", "北海路", "新华路", "健康东街"]),
        ("WC", "潍城区", "370702", ["胜利西街", "和平路", "向阳路", "西环路"]),
        ("HT", "寒亭区", "370703", ["通亭街", "民主街", "泰祥街", "渤海路"]),
    ]),
    ("LY", "临沂", "371300", [
        ("LS", "兰山区", "371302", ["沂蒙路", "解放路", "通达路", "北京路", "金雀山路"]),
        ("LZ", "罗庄区", "371311", ["罗庄大道", "湖北路", "双月湖路", "盛庄路"]),
        ("HD", "河东区", "371312", ["东兴路", "人民大街", "凤凰大街", "沂河东路"]),
    ]),
]  # fmt: skip

ROLE_ZH = {
    Role.CUSTOMER_MANAGER: "客户经理",
    Role.MARKET_MANAGER: "市场经理",
    Role.AREA_MANAGER: "片区经理",
    Role.STATION_MANAGER: "加油站经理",
    Role.UNIT_HEAD: "单位负责人",
    Role.ANALYST: "数据分析员",
    Role.SYSTEM_ADMIN: "系统管理员",
    Role.SECURITY_ADMIN: "安全管理员",
    Role.AUDIT_ADMIN: "审计管理员",
}

# The accounts printed after loading: one per role, the same on every run.
LOGIN_TABLE = [
    (Role.SYSTEM_ADMIN, "sysadmin"),
    (Role.SECURITY_ADMIN, "secadmin"),
    (Role.AUDIT_ADMIN, "auditor"),
    (Role.UNIT_HEAD, "sd.head"),
    (Role.ANALYST, "jn.analyst"),
    (Role.MARKET_MANAGER, "jn.market"),
    (Role.AREA_MANAGER, "jn-lx.area"),
    (Role.STATION_MANAGER, "jn-lx-001.station"),
    (Role.CUSTOMER_MANAGER, "jn-lx-001.cm1"),
]


@dataclass(frozen=True)
class UnitSpec:
    code: str
    name: str
    type_code: str
    division_code: str
    parent_code: str | None


@dataclass(frozen=True)
class PersonSpec:
    username: str
    full_name: str
    role: str
    unit_code: str | None
    position: str
    phone: str
    manager_grade: str = ""


@dataclass(frozen=True)
class Login:
    role: str
    role_zh: str
    role_en: str
    username: str
    full_name: str
    unit: str


@dataclass
class DemoResult:
    unit_types_created: int = 0
    units_created: int = 0
    users_created: int = 0
    units_total: int = 0
    stations: int = 0
    users_total: int = 0
    seconds: float = 0.0
    logins: list[Login] = field(default_factory=list)
    password: str = DEMO_PASSWORD
    url: str = DEMO_URL

    @property
    def changed(self) -> bool:
        return bool(self.unit_types_created or self.units_created or self.users_created)


# ------------------------------------------------------------------ the plan (pure, deterministic)


def demo_plan() -> tuple[list[UnitSpec], list[PersonSpec]]:
    """Every unit (parents first) and every person of the demo; the same on every call."""
    rng = random.Random(SEED)
    names = NameMaker(random.Random(SEED + 1), unique=True)
    grades = [ManagerGrade.TRAINEE, ManagerGrade.GRADE_3, ManagerGrade.GRADE_2, ManagerGrade.GRADE_1]
    units: list[UnitSpec] = []
    people: list[PersonSpec] = []

    def person(username, role, unit_code, position, grade=""):
        people.append(PersonSpec(username=username, full_name=names.full_name(), role=role,
                                 unit_code=unit_code, position=position, phone=names.phone(),
                                 manager_grade=grade))  # fmt: skip

    # The three administrators (三员分立), distinct accounts; their unit is the province company.
    prov_code, prov_name, prov_division = PROVINCE
    person("secadmin", Role.SECURITY_ADMIN, None, "安全管理员")
    person("sysadmin", Role.SYSTEM_ADMIN, None, "系统管理员")
    person("auditor", Role.AUDIT_ADMIN, prov_code, "审计管理员")

    units.append(UnitSpec(prov_code, prov_name, "province", prov_division, None))
    person("sd.head", Role.UNIT_HEAD, prov_code, "总经理")
    person("sd.analyst", Role.ANALYST, prov_code, "数据分析员")
    for city_code, city, city_division, areas in CITIES:
        c_code = f"{prov_code}-{city_code}"
        c_user = city_code.lower()
        units.append(UnitSpec(c_code, f"{city}分公司", "city", city_division, prov_code))
        person(f"{c_user}.head", Role.UNIT_HEAD, c_code, "分公司经理")
        person(f"{c_user}.market", Role.MARKET_MANAGER, c_code, "市场经理")
        person(f"{c_user}.analyst", Role.ANALYST, c_code, "数据分析员")
        for area_code, district, district_division, roads in areas:
            a_code = f"{c_code}-{area_code}"
            a_user = f"{c_user}-{area_code.lower()}"
            short = district.removesuffix("区")
            units.append(UnitSpec(a_code, f"{short}片区", "area", district_division, c_code))
            person(f"{a_user}.area", Role.AREA_MANAGER, a_code, "片区经理")
            for n, road in enumerate(roads, start=1):
                s_code = f"{a_code}-{n:03d}"
                s_user = f"{a_user}-{n:03d}"
                units.append(
                    UnitSpec(s_code, f"{city}{short}{road}加油站", "station", district_division, a_code)
                )
                person(f"{s_user}.station", Role.STATION_MANAGER, s_code, "加油站经理")
                for m in range(1, rng.randint(1, 3) + 1):
                    grade = rng.choices(grades, weights=[2, 4, 3, 1])[0]
                    person(f"{s_user}.cm{m}", Role.CUSTOMER_MANAGER, s_code, "客户经理", grade)
    return units, people


# ------------------------------------------------------------------ loading


def _admin(role: str, preferred: str) -> User | None:
    """The account to act as for ``role``: the demo's own if it holds the role, else any active holder."""
    holders = User.objects.filter(is_active=True, role_assignments__role=role)
    return holders.filter(username=preferred).first() or holders.order_by("pk").first()


def demo_load(*, stdout=None) -> DemoResult:
    """Load the demo province; creates only what is missing. ``stdout`` receives progress lines."""
    started = time.perf_counter()
    unit_specs, people = demo_plan()
    by_username = {p.username: p for p in people}
    result = DemoResult()

    def say(msg: str) -> None:
        if stdout is not None:
            stdout.write(msg)

    # Argon2 is slow by design: hash the one demo password once and give every account that hash.
    password_hash = make_password(DEMO_PASSWORD)
    with transaction.atomic():
        existing_users = set(
            User.objects.filter(username__in=list(by_username)).values_list("username", flat=True)
        )
        created: list[User] = []

        def create_person(spec: PersonSpec, acting: User, units: dict[str, Unit]) -> User | None:
            if spec.username in existing_users:
                return None
            user = user_create(
                acting_user=acting, username=spec.username, full_name=spec.full_name, password_hash=password_hash,
                unit=units.get(spec.unit_code) if spec.unit_code else None, position=spec.position,
                manager_grade=spec.manager_grade, phone=spec.phone, roles=[RoleGrant(spec.role)],
            )  # fmt: skip
            existing_users.add(spec.username)
            created.append(user)
            return user

        # 1. The security administrator: the first one is bootstrapped, exactly as `kehu createsuperuser`.
        security = _admin(Role.SECURITY_ADMIN, "secadmin")
        spec = by_username["secadmin"]
        if security is None:
            if "secadmin" in existing_users:
                raise ServiceError(
                    _("The account “%(username)s” exists but is not an active security administrator.")
                    % {"username": "secadmin"}
                )
            security = bootstrap_security_admin(
                username=spec.username, full_name=spec.full_name, password=DEMO_PASSWORD
            )
            existing_users.add(spec.username)
            created.append(security)
        else:
            create_person(spec, security, {})
            security = _admin(Role.SECURITY_ADMIN, "secadmin")

        # 2. The system administrator, who builds the tree.
        create_person(by_username["sysadmin"], security, {})
        system = _admin(Role.SYSTEM_ADMIN, "sysadmin")
        if system is None:
            raise ServiceError(
                _("The account “%(username)s” exists but is not an active system administrator.")
                % {"username": "sysadmin"}
            )

        # 3. Unit types and units.
        types = {t.code: t for t in UnitType.objects.filter(code__in=[c for c, *_ in UNIT_TYPES])}
        for code, name, name_en, rank in UNIT_TYPES:
            if code not in types:
                types[code] = unit_type_create(
                    acting_user=system, code=code, name=name, name_en=name_en, rank=rank
                )
                result.unit_types_created += 1
        units = {u.code: u for u in Unit.objects.filter(code__in=[s.code for s in unit_specs])}
        for s in unit_specs:
            if s.code not in units:
                units[s.code] = unit_create(
                    acting_user=system, code=s.code, name=s.name, unit_type=types[s.type_code],
                    division_code=s.division_code, parent=units[s.parent_code] if s.parent_code else None,
                )  # fmt: skip
                result.units_created += 1
        say(
            _("Units: %(created)d created, %(existing)d already there.")
            % {"created": result.units_created, "existing": len(unit_specs) - result.units_created}
        )

        # 4. Administrators created before the province existed now join it.
        province = units[PROVINCE[0]]
        for user in list(created):
            if user.unit_id is None:
                user_update(acting_user=security, user=user, unit=province)

        # 5. Everyone else.
        for spec in people:
            create_person(spec, security, units)
        result.users_created = len(created)
        say(
            _("People: %(created)d created, %(existing)d already there.")
            % {"created": result.users_created, "existing": len(people) - result.users_created}
        )

        # 6. Known password, no forced change: only for accounts created now, so a re-run changes nothing.
        if created:
            now = timezone.now()
            User.objects.filter(pk__in=[u.pk for u in created]).update(
                password=password_hash, must_change_password=False, password_changed_at=now
            )
            audit_record(
                actor=security, action="demo.load", object_type="accounts.user",
                changes={"must_change_password": [True, False]},
                extra={"units_created": result.units_created, "users_created": result.users_created,
                       "usernames": sorted(u.username for u in created)},
            )  # fmt: skip

    result.units_total = Unit.objects.filter(code__in=[s.code for s in unit_specs]).count()
    result.stations = sum(1 for s in unit_specs if s.type_code == "station")
    result.users_total = User.objects.filter(username__in=list(by_username)).count()
    result.logins = demo_logins()
    result.seconds = time.perf_counter() - started
    return result


def demo_logins() -> list[Login]:
    """The printed login table: one account per role."""
    users = {
        u.username: u
        for u in User.objects.filter(username__in=[n for _r, n in LOGIN_TABLE]).select_related("unit")
    }
    logins = []
    with translation.override("en"):
        for role, username in LOGIN_TABLE:
            user = users.get(username)
            if user is None:
                continue
            logins.append(Login(role=str(role), role_zh=ROLE_ZH[role], role_en=str(Role(role).label),
                                username=username, full_name=user.full_name,
                                unit=user.unit.name if user.unit else ""))  # fmt: skip
    return logins


# ------------------------------------------------------------------ the printed table


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def format_logins(result: DemoResult) -> str:
    header = ("角色 Role", "用户名 Username", "姓名 Name", "单位 Unit")
    rows = [(f"{x.role_zh} {x.role_en}", x.username, x.full_name, x.unit) for x in result.logins]
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(_pad(c, w) for c, w in zip(header, widths, strict=True)).rstrip(), line]
    out += ["  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    out += [
        "",
        f"密码 Password: {result.password}   (every demo account 所有演示账号)",
        f"打开 Open: {result.url}",
        "Other accounts follow the same pattern 其他账号同理: <city>.head / .market / .analyst (jn, qd, zb, yt, "
        "wf, ly), <city>-<area>.area, <station>.station and <station>.cm1…cm3 (e.g. qd-hd-002.cm1).",
    ]
    return "\n".join(out)


def role_holders() -> dict[str, int]:
    """Active users per role (for checks and the summary line)."""
    counts: dict[str, int] = {}
    for role in RoleAssignment.objects.filter(user__is_active=True).values_list("role", flat=True):
        counts[role] = counts.get(role, 0) + 1
    return counts
