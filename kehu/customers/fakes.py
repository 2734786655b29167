"""Realistic, deterministic fake customers for the demo (``kehu demo``) and benchmarks (``kehu gen-data``).

Everything comes from one seeded ``random.Random``: the same seed gives the same customers.

**Institutions** are named the way Chinese companies are registered: a place prefix (山东省, 济南市,
济南, 历下区, 济南市历下区), a trade name (字号) of two or three characters, an industry (物流, 客运,
建材…) and a legal form (有限公司, 有限责任公司, 股份有限公司…); cooperatives (…农机专业合作社), public
bodies (…交通运输局, …人民医院) and associations (…物流行业协会) appear too. **Individuals** are a
person's name with their vehicle's plate, 王建国（鲁A3K7F2）, as fuel retailers file private-car,
taxi and truck customers.

**No two names share a duplicate key** (``duplicates.name_key``) within one ``CustomerFaker``, by
construction rather than by remembering every name (a million names would not fit a small memory):

* a key is ``prefix + trade name + industry`` (the legal form is what ``name_key`` strips);
* trade names use only ``TRADE_CHARS``, which no industry starts with and no place prefix ends
  with, so a key splits back into its three parts in one way only (``_check_prefixes`` drops a
  prefix form that would make the split ambiguous);
* within each (prefix, industry) the k-th name takes trade name ``(k * A + offset) mod T``, a
  permutation of the T trade names, so it never repeats;
* an individual's key holds their plate, and plates are a permutation per (province, city letter).

Credit codes (GB 32100-2015) carry the registration authority and type (91 company, 93 cooperative,
11 government body, 12 public institution, 51 association), the 6-digit division code of the
customer's place, a GB 11714 organisation code with its own check character, and the GB 32100
check character. Organisation codes, mobile numbers and landlines are permutations of a counter,
so they never repeat within one faker either.

``near_duplicate`` makes the deliberate exceptions: the same customer written another way
(another legal form, full-width brackets, a space), which the duplicate check must catch.

Nothing here touches the database; the pinyin of each name part is computed once per part and
cached, so a bulk loader can pass ``syllables`` to ``search.customer_search_tokens``.
"""

from __future__ import annotations

import random
import zlib
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from kehu.customers.creditcode import ALPHABET as CREDIT_ALPHABET
from kehu.customers.creditcode import check_character

# ------------------------------------------------------------------ people

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
_SURNAME_WEIGHTS = [1.0 / (i + 4) for i in range(len(SURNAMES))]
_SURNAME_CUM = [sum(_SURNAME_WEIGHTS[: i + 1]) for i in range(len(SURNAMES))]

# ------------------------------------------------------------------ institutions

# Trade-name characters (字号): none of them starts an industry or a public body's name, none is a
# place-name ending (市区县旗州省盟): that is what keeps generated names apart (see the module doc).
TRADE_CHARS = "顺宏鑫恒金泰华瑞丰德盛隆昌祥福康宁泽润嘉信诚永鸿宇博众联创伟巨腾骏凯龙翔辉光明星天远达源汇荣亿佳益茂万盈佰旺富瀚峰豪海晟"
# Where a place name ends; a prefix always ends in one, or is a whole short place name.
PLACE_ENDINGS = "市区县旗州省盟"

# industry, sub-type code, weight, business scope (经营范围)
INDUSTRIES = [
    (
        "物流",
        "freight_logistics",
        14,
        "普通货运；货物专用运输（集装箱）；仓储服务（不含危险化学品）；装卸搬运",
    ),
    ("运输", "freight_logistics", 10, "道路普通货物运输；货物专用运输（罐式）；国内货运代理"),
    ("汽车运输", "freight_logistics", 5, "道路普通货物运输；大型物件运输；汽车租赁"),
    ("冷链物流", "freight_logistics", 3, "冷藏车道路运输；低温仓储；农产品冷链配送"),
    ("货运代理", "freight_logistics", 3, "国内货物运输代理；道路货物运输站经营；物流信息咨询"),
    ("客运", "passenger_transport", 6, "道路旅客运输；班车客运；旅游客运；客运站经营"),
    ("旅游客运", "passenger_transport", 3, "省际包车客运；市际包车客运；旅游咨询服务"),
    ("出租汽车", "taxi_company", 4, "出租汽车客运；汽车租赁；机动车维修"),
    ("汽车租赁", "taxi_company", 2, "小型客车租赁；汽车销售；二手车经纪"),
    ("建材", "construction", 6, "建筑材料、装饰材料销售；混凝土预制构件生产"),
    ("建筑工程", "construction", 6, "房屋建筑工程施工；市政公用工程施工；土石方工程"),
    ("路桥工程", "construction", 3, "公路工程施工；桥梁工程施工；工程机械租赁"),
    ("混凝土", "construction", 3, "商品混凝土生产、销售；混凝土泵送服务"),
    ("土石方工程", "construction", 2, "土石方工程施工；渣土运输；工程机械租赁"),
    ("化工", "factory", 4, "化工原料及产品（不含危险化学品）生产、销售"),
    ("机械制造", "factory", 4, "通用机械设备制造、销售；金属结构件加工"),
    ("食品", "factory", 3, "食品生产；预包装食品销售；农副产品收购"),
    ("纺织", "factory", 2, "棉纱、坯布生产、销售；纺织品进出口"),
    ("水泥", "factory", 2, "水泥及水泥制品生产、销售"),
    ("矿业", "factory", 2, "建筑用石料开采、加工、销售"),
    ("环保科技", "factory", 2, "环保设备研发、销售；固体废物处理；环境工程施工"),
    ("热力", "factory", 1, "集中供热；热力管网维护；供热设备安装"),
    ("港口装卸", "freight_logistics", 1, "港口货物装卸、仓储；集装箱堆存"),
    ("石油化工销售", "redistribution", 2, "成品油批发（限分支机构经营）；润滑油销售；化工产品销售"),
    ("能源", "redistribution", 2, "成品油零售（限分支机构）；燃气经营；新能源技术开发"),
    ("农机专业合作社", "agriculture", 3, "组织收购、销售成员种植的农产品；农业机械服务；农业技术咨询"),
    ("果蔬专业合作社", "agriculture", 2, "蔬菜、水果种植、销售；农业技术推广服务"),
    ("粮食种植专业合作社", "agriculture", 2, "小麦、玉米种植、销售；农机作业服务"),
]
_INDUSTRY_CUM = [sum(w for _i, _s, w, _b in INDUSTRIES[: k + 1]) for k in range(len(INDUSTRIES))]
# legal form, weight (cooperatives have none: 专业合作社 is their form)
LEGAL_FORMS = [("有限公司", 60), ("有限责任公司", 25), ("股份有限公司", 10), ("集团有限公司", 5)]
_LEGAL_CUM = [sum(w for _f, w in LEGAL_FORMS[: k + 1]) for k in range(len(LEGAL_FORMS))]

# Public bodies, at most one of each per place: name after the prefix, sub-type, credit-code type, scope.
PUBLIC_BODIES = [
    ("交通运输局", "government", "11", "负责本行政区域道路运输、公路管理"),
    ("公安局交通警察支队", "government", "11", "道路交通安全管理"),
    ("人民医院", "public_institution", "12", "医疗、预防、保健、急救"),
    ("第一中学", "public_institution", "12", "高级中学教育"),
    ("环境卫生服务中心", "public_institution", "12", "城市道路清扫保洁、垃圾清运"),
    ("公共交通集团有限公司", "bus_company", "91", "城市公共交通客运；公交场站经营"),
    ("城市建设投资集团有限公司", "construction", "91", "城市基础设施投资、建设与运营"),
    ("物流行业协会", "association", "51", "行业自律、行业培训、信息交流"),
    ("邮政分公司", "freight_logistics", "91", "邮政普遍服务；快递服务；报刊发行"),
    ("供电公司", "factory", "91", "电力供应；电力设施运行维护"),
]

# (code, name, kind): the sub-type vocabulary the fakes use; a deployment may have its own as well.
SUB_TYPES = [
    ("freight_logistics", "货运物流", "institution"),
    ("passenger_transport", "客运", "institution"),
    ("bus_company", "公交", "institution"),
    ("taxi_company", "出租车公司", "institution"),
    ("construction", "建筑施工", "institution"),
    ("factory", "工矿企业", "institution"),
    ("agriculture", "农业生产", "institution"),
    ("redistribution", "油品分销", "institution"),
    ("government", "机关", "institution"),
    ("public_institution", "事业单位", "institution"),
    ("association", "社会团体", "institution"),
    ("private_car", "私家车", "individual"),
    ("taxi", "出租车", "individual"),
    ("freight_fixed_route", "个体货运（固定线路）", "individual"),
    ("freight_scattered", "个体货运（短途零散）", "individual"),
    ("individual_passenger", "个体客运", "individual"),
    ("farm_vehicle", "农用车辆", "individual"),
]
# individual sub-type, weight, business scope
INDIVIDUAL_KINDS = [
    ("private_car", 50, ""),
    ("taxi", 12, "出租汽车营运"),
    ("freight_fixed_route", 12, "个体道路货物运输（固定线路）"),
    ("freight_scattered", 12, "个体道路货物运输（短途零散）"),
    ("individual_passenger", 5, "个体道路旅客运输"),
    ("farm_vehicle", 9, "农业机械作业、农用车辆运输"),
]
_INDIVIDUAL_CUM = [sum(w for _c, w, _b in INDIVIDUAL_KINDS[: k + 1]) for k in range(len(INDIVIDUAL_KINDS))]

# tag, weight
TAGS = [("加油卡", 25), ("柴油", 15), ("汽油", 15), ("车队", 10), ("长期合作", 10), ("重点客户", 6), ("价格敏感", 6),
        ("新开发", 5), ("夜间加油", 3), ("团购", 3), ("洗车", 3), ("非油品", 3), ("流失预警", 2), ("政府采购", 1)]  # fmt: skip
_TAG_CUM = [sum(w for _t, w in TAGS[: k + 1]) for k in range(len(TAGS))]
TAG_NAMES = [t for t, _w in TAGS]

STATUSES = [("active", 55), ("registered", 15), ("prospect", 15), ("dormant", 10), ("lost", 5)]
_STATUS_CUM = [sum(w for _s, w in STATUSES[: k + 1]) for k in range(len(STATUSES))]

# Contacts: (title, decision role) per kind; notes and preferences are what a manager writes down.
INSTITUTION_CONTACTS = [
    ("总经理", "decision_maker"), ("董事长", "decision_maker"), ("分管副总", "decision_maker"),
    ("车队队长", "influencer"), ("设备科科长", "influencer"), ("采购经理", "influencer"),
    ("办公室主任", "influencer"), ("调度员", "user"), ("驾驶员", "user"), ("财务主管", "payer"),
    ("会计", "payer"),
]  # fmt: skip
INDIVIDUAL_CONTACTS = [("车主", "decision_maker"), ("家属", "payer"), ("司机", "user")]
PREFERENCES = ["喜欢喝茶，关注优惠活动", "对价格敏感，常比较周边油站", "习惯月底集中加油", "重视开票及时",
               "偏好电话联系，不看短信", "关注积分兑换", "喜欢钓鱼", "关心车辆保养", "只在工作日上午有空",
               "对服务速度要求高"]  # fmt: skip
RELATIONS = ["与站长是老乡", "原为我司员工", "与分公司经理相识多年", "其亲属在站内工作", "由老客户介绍",
             "同时是车队负责人", ""]  # fmt: skip
IMPORTANT_DATES = ["公司成立纪念日", "结婚纪念日", "车队年审", "合同续签提醒", "孩子生日"]

# Where the demo cities are (their centres), and a centre per province for everything else.
CITY_CENTRES = {
    "3701": (36.651, 117.120), "3702": (36.067, 120.383), "3703": (36.813, 118.055),
    "3706": (37.464, 121.448), "3707": (36.707, 119.162), "3713": (35.104, 118.356),
}  # fmt: skip
PROVINCES = {
    # code: (plate abbreviation, latitude, longitude of the capital)
    "11": ("京", 39.904, 116.407), "12": ("津", 39.125, 117.190), "13": ("冀", 38.042, 114.515),
    "14": ("晋", 37.870, 112.549), "15": ("蒙", 40.842, 111.749), "21": ("辽", 41.806, 123.432),
    "22": ("吉", 43.817, 125.324), "23": ("黑", 45.803, 126.535), "31": ("沪", 31.230, 121.474),
    "32": ("苏", 32.060, 118.797), "33": ("浙", 30.274, 120.155), "34": ("皖", 31.821, 117.227),
    "35": ("闽", 26.075, 119.306), "36": ("赣", 28.682, 115.858), "37": ("鲁", 36.651, 117.120),
    "41": ("豫", 34.747, 113.625), "42": ("鄂", 30.593, 114.305), "43": ("湘", 28.228, 112.939),
    "44": ("粤", 23.129, 113.264), "45": ("桂", 22.817, 108.366), "46": ("琼", 20.044, 110.199),
    "50": ("渝", 29.563, 106.551), "51": ("川", 30.572, 104.066), "52": ("贵", 26.647, 106.630),
    "53": ("云", 25.038, 102.718), "54": ("藏", 29.652, 91.172), "61": ("陕", 34.341, 108.940),
    "62": ("甘", 36.061, 103.834), "63": ("青", 36.617, 101.778), "64": ("宁", 38.487, 106.231),
    "65": ("新", 43.825, 87.617), "71": ("台", 25.033, 121.565), "81": ("港", 22.320, 114.170),
    "82": ("澳", 22.199, 113.544),
}  # fmt: skip
# Area codes of the demo cities' landlines.
AREA_CODES = {"3701": "0531", "3702": "0532", "3703": "0533", "3706": "0535", "3707": "0536", "3713": "0539"}
ROAD_CHARS = "东西南北中青山河湖海泉石林桥园新兴安平和康宁华阳光明金水云龙凤鹤松柏梅兰长乐福寿丰"
ROAD_WORDS = ("路", "大街", "大道", "街")
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on Chinese plates
PLATE_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_PLATE_SPACE = len(PLATE_CHARS) ** 5
_PHONE_SPACE = len(PHONE_PREFIXES) * 10**8
_ORG_DIGIT_SPACE = 10**8
_ORG_MA_SPACE = len(CREDIT_ALPHABET) ** 6
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714


# ------------------------------------------------------------------ helpers


def _coprime_step(n: int, salt: int) -> int:
    """A multiplier that makes ``k -> (k * step + c) mod n`` a permutation of range(n)."""
    from math import gcd

    step = (n * 0.6180339887 + salt) // 1 % n or 1
    step = int(step)
    while gcd(step, n) != 1:
        step += 1
    return step


def _crc(*parts) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def org_code_check(body: str) -> str:
    """GB 11714 check character of an 8-character organisation code body (digits and capitals)."""
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    value = 11 - total % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


def credit_code(authority_type: str, division_code: str, org_body: str) -> str:
    """A unified social credit code: 2 characters of authority and type, 6 of division, 8+1 of
    organisation code, and the GB 32100 check character."""
    first17 = authority_type + division_code + org_body + org_code_check(org_body)
    return first17 + check_character(first17)


@lru_cache(maxsize=65536)
def _syllables(part: str) -> tuple[str, ...]:
    """One pinyin syllable per Chinese character of a name part (cached: parts repeat endlessly)."""
    from kehu.customers.search import CJK_RUN, pinyin_syllables

    return tuple(s for run in CJK_RUN.findall(part) for s in pinyin_syllables(run))


def _division_names(code: str) -> tuple[str, str | None, str | None]:
    """(province, city or None, county or None) names of a GB/T 2260 code."""
    from kehu.core.divisions import _table

    table = _table()
    province = table.get(code[:2] + "0000", "")
    city = table.get(code[:4] + "00") if code[2:] != "0000" else None
    county = table.get(code) if not code.endswith("00") else None
    return province, city, county


@lru_cache(maxsize=4096)
def _place_name(code: str) -> str:
    from kehu.core.divisions import division_name

    return division_name(code) or ""


@lru_cache(maxsize=4096)
def _prefix_table(code: str) -> tuple[tuple[tuple[str, int], ...], list[int]]:
    forms = place_prefixes(code)
    return forms, [sum(w for _p, w in forms[: k + 1]) for k in range(len(forms))]


@lru_cache(maxsize=4096)
def place_prefixes(code: str) -> tuple[tuple[str, int], ...]:
    """The ways a company in division ``code`` names its place, with weights: 济南市历下区, 济南市, 济南,
    历下区, 山东省, 山东."""
    province, city, county = _division_names(code)
    province_short = province.removesuffix("省").removesuffix("市")
    for ending in ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "特别行政区"):
        province_short = province_short.removesuffix(ending)
    forms: list[tuple[str, int]] = []
    if city and county:
        forms.append((city + county, 20))
    if county:
        forms.append((county, 12))
    if city:
        forms.append((city, 30))
        short = city.removesuffix("市")
        if short != city and len(short) >= 2:
            forms.append((short, 25))
    if province and not city:  # a municipality (北京市) or a county directly under the province
        forms.append(((province + county) if county else province, 30))
    if province:
        forms.append((province, 5))
        if len(province_short) >= 2:
            forms.append((province_short, 5))
    return _check_prefixes(forms)


def _check_prefixes(forms: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Drop a prefix that extends another with a trade-name character (济南 + 华… vs 济南华…)."""
    kept = []
    for prefix, weight in forms:
        ambiguous = any(
            other != prefix and prefix.startswith(other) and prefix[len(other)] in TRADE_CHARS
            for other, _w in forms
        )
        if not ambiguous and prefix and prefix[-1] not in TRADE_CHARS:
            kept.append((prefix, weight))
    return tuple(dict.fromkeys(kept))


def _payment(status: str, draw: float, *, card: float, bank: float) -> str:
    if status == "prospect":
        return ""
    return "fuel_card" if draw < card else "bank_card" if draw < bank else "cash"


def _pick(rng: random.Random, cum: list[int]) -> int:
    """Index drawn with cumulative weights ``cum`` (faster than random.choices for one draw)."""
    return bisect_right(cum, rng.random() * cum[-1])


# ------------------------------------------------------------------ what the faker returns


@dataclass
class FakeContact:
    name: str
    title: str
    decision_role: str
    birthday: date | None
    phone: str
    preferences: str = ""
    relations: str = ""
    important_dates: list = field(default_factory=list)


@dataclass
class FakeCustomer:
    name: str
    kind: str  # "institution" or "individual"
    sub_type: str  # a code of SUB_TYPES
    division_code: str
    short_name: str = ""
    credit_code: str = ""
    legal_representative: str = ""
    address: str = ""
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    payment_profile: str = ""
    business_scope: str = ""
    floor_area: Decimal | None = None
    status: str = "active"
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    # One pinyin syllable per Chinese character of ``name`` and ``short_name``, for the search tokens.
    syllables: tuple[str, ...] = ()
    short_syllables: tuple[str, ...] = ()


@dataclass
class FakeAgreement:
    number: str
    agreement_type: str  # "supply" or "framework"
    start_date: date
    end_date: date | None
    status: str


# ------------------------------------------------------------------ the faker


class CustomerFaker:
    """Deterministic customers, contacts, phones and codes. One instance = one generation: names,
    credit codes, phones and plates never repeat within it (see the module doc)."""

    def __init__(self, seed: int, *, today: date | None = None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.today = today or date(2026, 6, 30)
        self._name_buckets: dict[tuple[str, int], list[int]] = {}  # (prefix, industry) -> [count, offset]
        self._public_buckets: dict[str, int] = {}
        self._plate_buckets: dict[tuple[str, str], int] = {}
        self._city_letters: dict[str, str] = {}
        self._counters = {"org": 0, "mobile": 0, "landline": 0, "agreement": 0}
        self._trade_space = len(TRADE_CHARS) * (len(TRADE_CHARS) - 1)
        self._trade_step = _coprime_step(self._trade_space, seed)
        self._plate_step = _coprime_step(_PLATE_SPACE, seed + 1)
        self._phone_step = _coprime_step(_PHONE_SPACE, seed + 2)
        self._org_digit_step = _coprime_step(_ORG_DIGIT_SPACE, seed + 3)
        self._org_ma_step = _coprime_step(_ORG_MA_SPACE, seed + 4)
        self._landline_step = _coprime_step(10**7, seed + 5)
        self._offset = _crc("offset", seed)

    # -------------------------------------------------------------- people and numbers

    def person_name(self) -> tuple[str, str, str]:
        """(full name, surname, given name): a common surname, one or two given characters."""
        rng = self.rng
        surname = SURNAMES[_pick(rng, _SURNAME_CUM)]
        pool = GIVEN_MALE if rng.random() < 0.55 else GIVEN_FEMALE
        given = pool[int(rng.random() * len(pool))]
        if rng.random() >= 0.3:
            given += pool[int(rng.random() * len(pool))]
        return surname + given, surname, given

    def mobile(self) -> str:
        """A mobile number (digits only, as ``personal.normalise_phone`` stores it), unique in this faker."""
        k = self._counters["mobile"]
        self._counters["mobile"] += 1
        prefix, body = divmod((k * self._phone_step + self._offset) % _PHONE_SPACE, 10**8)
        return f"{PHONE_PREFIXES[prefix]}{body:08d}"

    def landline(self, division_code: str) -> str:
        """A landline with the city's area code (0531 + 8 digits), unique in this faker."""
        k = self._counters["landline"]
        self._counters["landline"] += 1
        area = AREA_CODES.get(division_code[:4], "0" + division_code[:3])
        body = (k * self._landline_step + self._offset) % 10**7
        return f"{area}{[6, 8, 5, 2][k % 4]}{body:07d}"

    def org_body(self) -> str:
        """An 8-character organisation code body: old style (8 digits) or since 2015 (MA + 6)."""
        k = self._counters["org"]
        self._counters["org"] += 1
        if k % 5 < 2:
            return f"{(k * self._org_digit_step + self._offset) % _ORG_DIGIT_SPACE:08d}"
        n = (k * self._org_ma_step + self._offset) % _ORG_MA_SPACE
        chars = []
        for _ in range(6):
            n, r = divmod(n, len(CREDIT_ALPHABET))
            chars.append(CREDIT_ALPHABET[r])
        return "MA" + "".join(reversed(chars))

    def credit_code(self, division_code: str, authority_type: str = "91") -> str:
        return credit_code(authority_type, division_code, self.org_body())

    def id_card(self, division_code: str, birthday: date) -> str:
        """A resident ID card number (GB 11643) registered in ``division_code``, with its check character."""
        first17 = f"{division_code}{birthday:%Y%m%d}{int(self.rng.random() * 1000):03d}"
        weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
        return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights, strict=True)) % 11]

    def plate(self, division_code: str) -> str:
        """A licence plate of the place: 鲁A3K7F2; unique in this faker."""
        abbr = PROVINCES.get(division_code[:2], ("鲁", 0, 0))[0]
        city = division_code[:4]
        letter = self._city_letters.get(city)
        if letter is None:
            letter = PLATE_LETTERS[_crc("city", city) % len(PLATE_LETTERS)]
            if city.startswith("37"):  # the demo province's own cities: 济南 A, 青岛 B, 淄博 C …
                letter = {"3701": "A", "3702": "B", "3703": "C", "3706": "F", "3707": "G", "3713": "Q"}.get(
                    city, letter
                )
            self._city_letters[city] = letter
        key = (abbr, letter)
        k = self._plate_buckets.get(key, 0)
        self._plate_buckets[key] = k + 1
        if k >= _PLATE_SPACE:  # pragma: no cover - 45 million plates in one city
            raise ValueError(f"no more plates for {abbr}{letter}")
        n = (k * self._plate_step + _crc("plate", self.seed, key)) % _PLATE_SPACE
        chars = []
        for _ in range(5):
            n, r = divmod(n, len(PLATE_CHARS))
            chars.append(PLATE_CHARS[r])
        return abbr + letter + "".join(chars)

    # -------------------------------------------------------------- places

    def address(self, division_code: str, roads: list[str] | tuple[str, ...] | None = None) -> str:
        rng = self.rng
        if roads:
            road = roads[int(rng.random() * len(roads))]
        else:
            road = (ROAD_CHARS[int(rng.random() * len(ROAD_CHARS))] + ROAD_CHARS[int(rng.random() * len(ROAD_CHARS))]
                    + ROAD_WORDS[int(rng.random() * len(ROAD_WORDS))])  # fmt: skip
        return f"{_place_name(division_code)}{road}{int(rng.random() * 899) + 1}号"

    def location(self, division_code: str) -> tuple[Decimal, Decimal]:
        """Latitude and longitude near the city of ``division_code``."""
        centre = CITY_CENTRES.get(division_code[:4])
        if centre is None:
            _abbr, lat, lon = PROVINCES.get(division_code[:2], ("", 36.0, 117.0))
            # A fixed spot per city within about 150 km of the provincial capital.
            h = _crc("centre", division_code[:4])
            centre = (lat + ((h % 2001) - 1000) / 800, lon + (((h >> 11) % 2001) - 1000) / 800)
        lat = centre[0] + (self.rng.random() - 0.5) * 0.2
        lon = centre[1] + (self.rng.random() - 0.5) * 0.25
        return Decimal(f"{lat:.6f}"), Decimal(f"{lon:.6f}")

    # -------------------------------------------------------------- customers

    def _trade_name(self, index: int) -> str:
        n = len(TRADE_CHARS)
        first, second = divmod(index, n - 1)
        if second >= first:
            second += 1  # two different characters
        name = TRADE_CHARS[first] + TRADE_CHARS[second]
        if index % 8 == 7:  # one in eight has a third character (the first two already make it unique)
            name += TRADE_CHARS[(index * 31 + 7) % n]
        return name

    def _company_name(self, division_code: str) -> tuple[str, str, tuple[str, ...], tuple[str, ...], int]:
        """(name, short name, its syllables, the name's syllables, industry index) of a new company,
        unique in this faker."""
        rng = self.rng
        forms, cum = _prefix_table(division_code)
        first_form, first_industry = _pick(rng, cum), _pick(rng, _INDUSTRY_CUM)
        for f in range(len(forms)):
            prefix = forms[(first_form + f) % len(forms)][0]
            for i in range(len(INDUSTRIES)):
                industry = (first_industry + i) % len(INDUSTRIES)
                key = (prefix, industry)
                bucket = self._name_buckets.get(key)
                if bucket is None:
                    bucket = self._name_buckets[key] = [0, _crc("trade", self.seed, prefix, industry)]
                k, offset = bucket
                if k < self._trade_space:
                    bucket[0] = k + 1
                    trade = self._trade_name((k * self._trade_step + offset) % self._trade_space)
                    word = INDUSTRIES[industry][0]
                    legal = "" if word.endswith("合作社") else LEGAL_FORMS[_pick(rng, _LEGAL_CUM)][0]
                    short_syllables = _syllables(trade) + _syllables(word)
                    syllables = _syllables(prefix) + short_syllables + _syllables(legal)
                    return prefix + trade + word + legal, trade + word, short_syllables, syllables, industry
        raise ValueError(f"no more company names for division {division_code}")  # pragma: no cover

    def institution(self, division_code: str, *, roads=None, public_share: float = 0.02) -> FakeCustomer:
        """A company, cooperative, public body or association located in ``division_code``."""
        rng = self.rng
        public = None
        if rng.random() < public_share:
            forms = place_prefixes(division_code)
            prefix = forms[0][0]
            k = self._public_buckets.get(prefix, 0)
            if k < len(PUBLIC_BODIES):
                self._public_buckets[prefix] = k + 1
                public = (prefix, PUBLIC_BODIES[(k + _crc("public", self.seed, prefix)) % len(PUBLIC_BODIES)])
        person = self.person_name()[0]
        if public is not None:
            prefix, (body, sub_type, authority, scope) = public
            name, short, short_syllables = prefix + body, "", ()
            syllables = _syllables(prefix) + _syllables(body)
            credit = self.credit_code(division_code, authority)
            floor = Decimal(int(rng.random() * 20000) + 2000)
        else:
            name, short, short_syllables, syllables, industry = self._company_name(division_code)
            _word, sub_type, _w, scope = INDUSTRIES[industry]
            authority = "93" if name.endswith("合作社") else "91"
            credit = self.credit_code(division_code, authority) if rng.random() < 0.92 else ""
            if rng.random() < 0.5:
                short, short_syllables = "", ()
            floor = Decimal(int(rng.random() * 8000) + 80) if rng.random() < 0.7 else None
        lat, lon = self.location(division_code)
        status = STATUSES[_pick(rng, _STATUS_CUM)][0]
        pay = rng.random()
        payment = _payment(status, pay, card=0.6, bank=0.75)
        return FakeCustomer(
            name=name, kind="institution", sub_type=sub_type, division_code=division_code, short_name=short,
            credit_code=credit, legal_representative=person, address=self.address(division_code, roads),
            latitude=lat, longitude=lon, payment_profile=payment, business_scope=scope, floor_area=floor,
            status=status, tags=self.tags(institution=True), syllables=syllables, short_syllables=short_syllables,
        )  # fmt: skip

    def individual(self, division_code: str, *, roads=None) -> FakeCustomer:
        """A private car owner, taxi driver, truck or farm-vehicle owner: 王建国（鲁A3K7F2）."""
        rng = self.rng
        person, surname, given = self.person_name()
        plate = self.plate(division_code)
        sub_type, _w, scope = INDIVIDUAL_KINDS[_pick(rng, _INDIVIDUAL_CUM)]
        lat, lon = self.location(division_code)
        status = STATUSES[_pick(rng, _STATUS_CUM)][0]
        pay = rng.random()
        payment = _payment(status, pay, card=0.45, bank=0.75)
        return FakeCustomer(
            name=f"{person}（{plate}）", kind="individual", sub_type=sub_type, division_code=division_code,
            legal_representative=person, address=self.address(division_code, roads), latitude=lat,
            longitude=lon, payment_profile=payment, business_scope=scope, status=status,
            tags=self.tags(institution=False), notes=f"车牌 {plate}",
            syllables=_syllables(surname) + _syllables(given) + _syllables(plate[0]),
        )  # fmt: skip

    def customer(self, division_code: str, *, institution_share: float = 0.6, roads=None) -> FakeCustomer:
        if self.rng.random() < institution_share:
            return self.institution(division_code, roads=roads)
        return self.individual(division_code, roads=roads)

    def tags(self, *, institution: bool) -> list[str]:
        rng = self.rng
        n = int(rng.random() * 4) if institution else int(rng.random() * 2.5)
        if not n:
            return []
        return [TAG_NAMES[i] for i in sorted({_pick(rng, _TAG_CUM) for _ in range(n)})]

    def branch_name(
        self, head: FakeCustomer, division_code: str, nth: int = 1
    ) -> tuple[str, tuple[str, ...]]:
        """A branch of ``head`` in ``division_code``: 济南顺达物流有限公司青岛分公司; the second one of the
        same head office in the same place is …青岛第二分公司."""
        _province, city, county = _division_names(division_code)
        place = (county or city or "").removesuffix("区").removesuffix("县").removesuffix("市")
        if len(place) < 2:
            place = county or city or ""
        if nth > 1:
            place += "第" + ("二三四五六七八九"[nth - 2] if nth <= 9 else str(nth))
        return f"{head.name}{place}分公司", head.syllables + _syllables(place) + _syllables("分公司")

    def near_duplicate(self, original: FakeCustomer) -> FakeCustomer:
        """The same customer written another way (same ``name_key``): another legal form, full-width
        brackets around the place, or a stray space. The duplicate check is there for exactly this."""
        name = original.name
        variant = None
        for legal, _w in sorted(LEGAL_FORMS, key=lambda f: -len(f[0])):  # 股份有限公司 before 有限公司
            if name.endswith(legal):
                others = [f for f, _w2 in LEGAL_FORMS if f != legal and not f.startswith("集团")]
                variant = name.removesuffix(legal) + others[int(self.rng.random() * len(others))]
                break
        if variant is None:
            variant = name[:2] + " " + name[2:]
        return FakeCustomer(
            name=variant, kind=original.kind, sub_type=original.sub_type, division_code=original.division_code,
            legal_representative=original.legal_representative, address=original.address,
            latitude=original.latitude, longitude=original.longitude, business_scope=original.business_scope,
            status="prospect", tags=["新开发"],
        )  # fmt: skip

    # -------------------------------------------------------------- contacts and agreements

    def contact(self, customer: FakeCustomer, *, first: bool = False) -> FakeContact:
        rng = self.rng
        if customer.kind == "individual":
            title, role = INDIVIDUAL_CONTACTS[0 if first else 1 + int(rng.random() * 2)]
            name = customer.legal_representative if first else self.person_name()[0]
        else:
            title, role = INSTITUTION_CONTACTS[0 if first else int(rng.random() * len(INSTITUTION_CONTACTS))]
            name = customer.legal_representative if first else self.person_name()[0]
        birthday = None
        if rng.random() < 0.7:
            birthday = date(1960, 1, 1) + timedelta(days=int(rng.random() * 35 * 365))
        important = []
        if rng.random() < 0.3:
            when = self.today + timedelta(days=int(rng.random() * 365) - 180)
            important.append(
                {"date": when.isoformat(), "label": IMPORTANT_DATES[int(rng.random() * len(IMPORTANT_DATES))]}
            )
        return FakeContact(
            name=name, title=title, decision_role=role, birthday=birthday, phone=self.mobile(),
            preferences=PREFERENCES[int(rng.random() * len(PREFERENCES))] if rng.random() < 0.6 else "",
            relations=RELATIONS[int(rng.random() * len(RELATIONS))], important_dates=important,
        )  # fmt: skip

    def agreement(self, *, unit_tag: str, framework: bool = False) -> FakeAgreement:
        """A supply or framework agreement: number SD-JN-2025-GY00012, one to three years or open-ended."""
        rng = self.rng
        self._counters["agreement"] += 1
        start = self.today - timedelta(days=int(rng.random() * 4 * 365))
        kind = "framework" if framework else "supply"
        number = f"{unit_tag}-{start.year}-{'KJ' if framework else 'GY'}{self._counters['agreement']:05d}"
        end = (
            None
            if framework or rng.random() < 0.15
            else start + timedelta(days=365 * (1 + int(rng.random() * 3)) - 1)
        )
        if end is not None and end < self.today:
            status = "ended" if rng.random() < 0.85 else "terminated"
        else:
            status = "draft" if rng.random() < 0.05 else "active"
        return FakeAgreement(
            number=number, agreement_type=kind, start_date=start, end_date=end, status=status
        )
