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
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta

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
from kehu.customers.fakes import CustomerFaker, FakeCustomer
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
    customers_created: int = 0
    customers_total: int = 0
    contacts_created: int = 0
    agreements_created: int = 0
    phones_created: int = 0
    seconds: float = 0.0
    logins: list[Login] = field(default_factory=list)
    password: str = DEMO_PASSWORD
    url: str = DEMO_URL

    @property
    def changed(self) -> bool:
        return bool(
            self.unit_types_created or self.units_created or self.users_created or self.customers_created
        )


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


def demo_load(*, stdout=None, customers: bool = True) -> DemoResult:
    """Load the demo province; creates only what is missing. ``stdout`` receives progress lines.
    ``customers=False`` loads the organisation and the people only."""
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

        # 7. The customers, with their contacts, agreements and phones.
        if customers:
            load_customers(units=units, acting=system, result=result)
            say(
                _("Customers: %(created)d created, %(existing)d already there.")
                % {
                    "created": result.customers_created,
                    "existing": result.customers_total - result.customers_created,
                }
            )

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


# ------------------------------------------------------------------ customers

# How many customers the demo files where: a range per station, a fixed number per area (county-level
# key accounts), per city and at the province. About 3,000 in all.
STATION_CUSTOMERS = (22, 42)
AREA_CUSTOMERS = 8
CITY_CUSTOMERS = 20
PROVINCE_CUSTOMERS = 30
BRANCH_HEADS = 25  # institutions with one to three branches (分公司) in other cities
NEAR_DUPLICATES = 8  # the same customer filed twice under another legal form: shows the duplicate warning
DUPLICATE_REASON = "演示数据：两个单位分别报备，待核实是否同一客户"


@dataclass
class DemoCustomerSpec:
    fake: FakeCustomer
    unit_code: str
    lead: str  # username of the lead manager (A)
    backup: str | None  # and of the backup manager (B)
    contacts: list = field(default_factory=list)  # FakeContact
    phones: list = field(default_factory=list)  # (label, number) of the customer itself
    agreements: list = field(default_factory=list)  # (FakeAgreement, signing level, signing unit code)
    id_number: str = ""
    parent: int | None = None  # index of the head office in the plan
    similar_to: int | None = None  # index of the customer this one near-duplicates


def demo_customer_plan(unit_specs: list[UnitSpec] | None = None, people: list[PersonSpec] | None = None):
    """Every customer of the demo, head offices before their branches; the same on every call."""
    if unit_specs is None or people is None:
        unit_specs, people = demo_plan()
    rng = random.Random(SEED + 2)
    faker = CustomerFaker(SEED + 3)
    units = {u.code: u for u in unit_specs}
    roads = {
        district_division: road_list for *_c, areas in CITIES for *_a, district_division, road_list in areas
    }
    managers: dict[str, list[str]] = {}  # unit code -> customer managers there and below
    for p in people:
        if p.role == Role.CUSTOMER_MANAGER:
            code = p.unit_code
            while code is not None:
                managers.setdefault(code, []).append(p.username)
                code = units[code].parent_code
    plan: list[DemoCustomerSpec] = []

    def pair(unit_code: str) -> tuple[str, str | None]:
        pool = managers[unit_code]
        lead = rng.choice(pool)
        others = [m for m in pool if m != lead]
        return lead, (rng.choice(others) if others and rng.random() < 0.7 else None)

    def add(fake: FakeCustomer, unit: UnitSpec, manager_unit: str, level: str, agreement_share: float) -> int:
        lead, backup = pair(manager_unit)
        spec = DemoCustomerSpec(fake=fake, unit_code=unit.code, lead=lead, backup=backup)
        for n in range(1 + int(rng.random() * 3)):
            spec.contacts.append(faker.contact(fake, first=n == 0))
        if fake.kind == "institution":
            if rng.random() < 0.7:
                spec.phones.append(("办公电话", faker.landline(fake.division_code)))
        else:
            spec.phones.append(("手机", spec.contacts[0].phone))  # the owner's own mobile
            if rng.random() < 0.4 and spec.contacts[0].birthday:
                spec.id_number = faker.id_card(fake.division_code, spec.contacts[0].birthday)
        if rng.random() < agreement_share:
            signing = {"station": unit.code, "county": unit.code if unit.type_code == "area" else unit.parent_code,
                       "city": unit.code, "province": unit.code}[level]  # fmt: skip
            spec.agreements.append((faker.agreement(unit_tag=signing), level, signing))
            if level in ("city", "province") and rng.random() < 0.3:
                spec.agreements.append((faker.agreement(unit_tag=signing, framework=True), level, signing))
        plan.append(spec)
        return len(plan) - 1

    for unit in unit_specs:
        if unit.type_code == "station":
            for _n in range(rng.randint(*STATION_CUSTOMERS)):
                fake = faker.customer(
                    unit.division_code, institution_share=0.5, roads=roads.get(unit.division_code)
                )
                county = fake.kind == "institution" and rng.random() < 0.3
                add(fake, unit, unit.code, "county" if county else "station",
                    0.3 if fake.kind == "institution" else 0.05)  # fmt: skip
        elif unit.type_code == "area":
            for _n in range(AREA_CUSTOMERS):
                fake = faker.institution(unit.division_code, roads=roads.get(unit.division_code))
                add(fake, unit, unit.code, "county", 0.7)
        elif unit.type_code == "city":
            districts = [u for u in unit_specs if u.parent_code == unit.code]
            for _n in range(CITY_CUSTOMERS):
                place = rng.choice(districts).division_code
                add(faker.institution(place, roads=roads.get(place)), unit, unit.code, "city", 0.8)
    province = next(u for u in unit_specs if u.type_code == "province")
    areas = [u for u in unit_specs if u.type_code == "area"]
    for _n in range(PROVINCE_CUSTOMERS):
        place = rng.choice(areas).division_code
        add(faker.institution(place, roads=roads.get(place)), province, province.code, "province", 1.0)

    # Branches: a few institutions have offices in other cities, each owned by a station there.
    stations = [u for u in unit_specs if u.type_code == "station"]
    heads = [i for i, s in enumerate(plan) if s.fake.kind == "institution"]
    for head_index in rng.sample(heads, BRANCH_HEADS):
        head = plan[head_index]
        elsewhere = [s for s in stations if s.division_code[:4] != head.fake.division_code[:4]]
        places: Counter[str] = Counter()
        for station in rng.sample(elsewhere, rng.randint(1, 3)):
            places[station.division_code] += 1
            name, syllables = faker.branch_name(
                head.fake, station.division_code, places[station.division_code]
            )
            lat, lon = faker.location(station.division_code)
            branch = replace(head.fake, name=name, syllables=syllables, short_name="", short_syllables=(),
                             division_code=station.division_code, credit_code=faker.credit_code(station.division_code),
                             address=faker.address(station.division_code, roads.get(station.division_code)),
                             latitude=lat, longitude=lon, status="active")  # fmt: skip
            index = add(branch, station, station.code, "station", 0.0)
            plan[index].parent = head_index

    # Near-duplicates: another station of the same city files an existing company again.
    companies = [i for i, s in enumerate(plan) if s.fake.credit_code.startswith("91") and s.parent is None]
    for original_index in rng.sample(companies, NEAR_DUPLICATES):
        original = plan[original_index]
        same_city = [s for s in stations if s.division_code[:4] == original.fake.division_code[:4]
                     and s.code != original.unit_code]  # fmt: skip
        station = rng.choice(same_city)
        index = add(faker.near_duplicate(original.fake), station, station.code, "station", 0.0)
        plan[index].similar_to = original_index
    return plan


def load_customers(*, units: dict[str, Unit], acting: User, result: DemoResult) -> None:
    """Create the demo's customers that are missing (recognised by name); their contacts, agreements and
    phones come with them.

    Why not ``customer_create`` for each: with its checks, duplicate search, scope re-checks and one
    audit event per customer, contact, agreement and phone, 3,000 customers took about a minute. The
    rows are written with ``bulk_create`` instead, exactly as the services would write them: codes
    from each division's counter (``DivisionSequence``, row-locked and moved past the last code),
    branch codes from their head office, ``name_key`` and ``search_tokens`` from the same functions,
    phones encrypted with their blind index (numbers already in the archive are left out), and the
    trail still gets one ``customer.create`` event per customer (with a snapshot, written with
    ``audit_record_many`` by its lead manager) and one ``demo.customers`` event for the run.
    """
    from kehu.audit.services import AuditEntry, audit_record_many, snapshot
    from kehu.core.crypto import blind_index
    from kehu.core.gendata import ensure_sub_types
    from kehu.customers.codes import MAX_SEQUENCE, format_code
    from kehu.customers.duplicates import name_key
    from kehu.customers.models import Agreement, Contact, Customer, CustomerPhone, DivisionSequence
    from kehu.customers.personal import ID_PURPOSE, PHONE_PURPOSE
    from kehu.customers.search import customer_search_tokens

    plan = demo_customer_plan()
    names = [s.fake.name for s in plan]
    existing = dict(Customer.objects.filter(name__in=names).values_list("name", "pk"))
    result.customers_total = len(plan)
    todo = [i for i, s in enumerate(plan) if s.fake.name not in existing]
    if not todo:
        return
    sub_types, sub_types_added = ensure_sub_types()
    usernames = {s.lead for s in plan} | {s.backup for s in plan if s.backup}
    users = {u.username: u for u in User.objects.filter(username__in=usernames, is_active=True)}
    taken_credit = set(
        Customer.objects.filter(credit_code__in=[plan[i].fake.credit_code for i in todo if plan[i].fake.credit_code])
        .values_list("credit_code", flat=True)
    )  # fmt: skip

    # Codes: the next numbers of each division, under the counters' row locks.
    divisions = {plan[i].fake.division_code for i in todo if plan[i].parent is None}
    for code in sorted(divisions):
        DivisionSequence.objects.get_or_create(division_code=code)
    counters = {
        c.division_code: c
        for c in DivisionSequence.objects.select_for_update().filter(division_code__in=divisions)
    }
    heads = {i: Customer.objects.select_for_update().get(pk=existing[plan[i].fake.name])
             for i in {plan[j].parent for j in todo if plan[j].parent is not None}
             if plan[i].fake.name in existing}  # fmt: skip
    now = timezone.now()
    objects: dict[int, Customer] = {}
    for i in todo:
        spec, fake = plan[i], plan[i].fake
        if spec.parent is None:
            counter = counters[fake.division_code]
            if counter.last_sequence >= MAX_SEQUENCE:
                raise ServiceError(_("Division %(d)s has used all %(n)d customer numbers.")
                                   % {"d": fake.division_code, "n": MAX_SEQUENCE})  # fmt: skip
            counter.last_sequence += 1
            code = format_code(fake.division_code, counter.last_sequence)
        else:
            head = objects.get(spec.parent) or heads[spec.parent]
            head.last_branch += 1
            code = head.code[:11] + f"{head.last_branch:03d}"
        unit = units[spec.unit_code]
        lead, backup = users.get(spec.lead), users.get(spec.backup) if spec.backup else None
        created = now - timedelta(days=int(random.Random(i).random() * 900))
        customer = Customer(
            code=code, name=fake.name, short_name=fake.short_name, kind=fake.kind,
            sub_type_id=sub_types.get(fake.sub_type),
            credit_code="" if fake.credit_code in taken_credit else fake.credit_code,
            legal_representative=fake.legal_representative, address=fake.address, division_code=fake.division_code,
            latitude=fake.latitude, longitude=fake.longitude, payment_profile=fake.payment_profile,
            business_scope=fake.business_scope, floor_area=fake.floor_area, status=fake.status,
            owning_unit=unit, unit_path=unit.path, lead_manager=lead, backup_manager=backup, tags=fake.tags,
            notes=fake.notes, name_key=name_key(fake.name),
            search_tokens=customer_search_tokens(name=fake.name, short_name=fake.short_name, tags=fake.tags),
            id_number=spec.id_number, id_number_index=blind_index(spec.id_number, purpose=ID_PURPOSE) if spec.id_number else "",
            created_by=lead or acting, updated_by=lead or acting, created_at=created, updated_at=created,
        )  # fmt: skip
        if spec.parent is not None:
            customer.parent = objects.get(spec.parent) or heads[spec.parent]
        objects[i] = customer
    # Head offices first (a branch points at its head), then the branches.
    Customer.objects.bulk_create([objects[i] for i in todo if plan[i].parent is None], batch_size=500)
    Customer.objects.bulk_create([objects[i] for i in todo if plan[i].parent is not None], batch_size=500)
    for head in heads.values():  # head offices from an earlier run that got a missing branch back
        Customer.objects.filter(pk=head.pk).update(last_branch=head.last_branch)
    for counter in counters.values():
        counter.save(update_fields=["last_sequence"])

    contacts: list[tuple[int, Contact]] = []
    for i in todo:
        for n, c in enumerate(plan[i].contacts):
            contacts.append((n, Contact(
                customer=objects[i], name=c.name, title=c.title, decision_role=c.decision_role, birthday=c.birthday,
                important_dates=c.important_dates, preferences=c.preferences, relations=c.relations,
            )))  # fmt: skip
    Contact.objects.bulk_create([c for _n, c in contacts], batch_size=1000)
    agreements = [
        Agreement(customer=objects[i], number=a.number, agreement_type=a.agreement_type,
                  signing_unit=units[signing], signing_level=level,
                  parties=f"甲方：{units[signing].name}；乙方：{plan[i].fake.name}", start_date=a.start_date,
                  end_date=a.end_date, status=a.status)
        for i in todo for a, level, signing in plan[i].agreements
    ]  # fmt: skip
    Agreement.objects.bulk_create(agreements, batch_size=1000)
    phones = []
    for i in todo:
        phones += [
            CustomerPhone(customer=objects[i], label=label, number=number) for label, number in plan[i].phones
        ]
    position = 0
    for i in todo:
        for n, c in enumerate(plan[i].contacts):
            contact = contacts[position][1]
            position += 1
            if not (plan[i].fake.kind == "individual" and n == 0):  # an individual's own number is above
                phones.append(
                    CustomerPhone(customer=objects[i], contact=contact, label=c.title, number=c.phone)
                )
    for phone in phones:
        phone.number_index = blind_index(phone.number, purpose=PHONE_PURPOSE)
    taken_phones = set(
        CustomerPhone.objects.filter(number_index__in=[p.number_index for p in phones]).values_list(
            "number_index", flat=True
        )
    )
    phones = [p for p in phones if p.number_index not in taken_phones]
    CustomerPhone.objects.bulk_create(phones, batch_size=1000)

    # The trail: one creation event per customer, by its lead manager, and one for the run.
    by_actor: dict[int, list[AuditEntry]] = {}
    for i in todo:
        customer, spec = objects[i], plan[i]
        extra = {"source": "kehu demo", "contacts": len(spec.contacts), "agreements": len(spec.agreements)}
        if spec.similar_to is not None:
            original = objects.get(spec.similar_to)
            extra |= {"duplicate_reason": DUPLICATE_REASON, "similar_to": [original.code] if original else []}
        by_actor.setdefault(customer.created_by_id, []).append(
            AuditEntry(action="customer.create", obj=customer, changes=snapshot(customer), extra=extra)
        )
    actors = {u.pk: u for u in users.values()} | {acting.pk: acting}
    for actor_id, entries in by_actor.items():
        audit_record_many(actor=actors[actor_id], entries=entries)
    result.customers_created = len(todo)
    result.contacts_created = len(contacts)
    result.agreements_created = len(agreements)
    result.phones_created = len(phones)
    audit_record(
        actor=acting, action="demo.customers", object_type="customers.customer",
        extra={"customers_created": len(todo), "contacts": len(contacts), "agreements": len(agreements),
               "phones": len(phones), "phones_left_out": len(taken_phones), "sub_types_added": sub_types_added,
               "credit_codes_left_out": len(taken_credit)},
    )  # fmt: skip
