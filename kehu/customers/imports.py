"""Importing customers, contacts and agreements from CSV or XLSX files.

``kehu import customers FILE`` / ``contacts`` / ``agreements``, the upload page and its background
jobs reach the three functions at the bottom of this module; the formats are described in
``docs/import-formats.md``. Reading the file is shared with the other imports (``kehu.core.tabular``).

Every import is all-or-nothing and runs in one transaction, in two steps:

1. **Check** — every cell is parsed; references are resolved within the importer's scope (units,
   managers, customers: out of scope is the same as unknown); rows are compared with each other (the
   same code, credit code, phone, contact or agreement twice is an error naming both rows) and with
   the archive (a credit code or phone held by another customer, with the services' messages).
2. **Apply** — the rows that passed are written as the services write them. Records that exist and
   differ go through the services one by one (``customer_update``, ``phone_add``,
   ``customer_set_id_number``, ``contact_update``, ``agreement_update``). New records — most of a big
   file — are written a batch at a time exactly as ``customer_create`` (with ``phone_add`` and
   ``customer_set_id_number``), ``contact_create`` and ``agreement_create`` would write them: the same
   checks, the same code allocation under the same counter locks, the same rows and the same audit
   events, appended with ``audit_record_many``. One by one, 10,000 customers took minutes (tens of
   queries each; on PostgreSQL every event also rewrites the audit chain head and every customer the
   division counter, rows that grow ever longer version chains inside one transaction).
   Each new customer is still checked for similar names (``similar_customers``) after the rows before
   it were inserted, so rows of the same file are compared too; a similar name is a row *warning* that
   stops the import unless a reason is given, audited as ``customer_create`` audits it.

A row a service refuses becomes a row error and the other rows are still tried, so one pass reports
every problem and a dry run (which always rolls back) counts what the file would do. Any error rolls
the whole transaction back. Customers are matched by code, or — with the code cell empty — by credit
code, never by name; contacts by customer and name; agreements by customer and number. An empty cell
keeps the value; a matched row that differs in nothing writes nothing, so a file imported twice
changes nothing and writes no audit event the second time. Nothing is ever deleted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import PurePath

from django.db import IntegrityError, connection, models, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability, Role
from kehu.audit.services import AuditEntry, audit_record, audit_record_many, snapshot
from kehu.core.crypto import blind_index, mask_id_card, mask_phone
from kehu.core.divisions import division_code_error
from kehu.core.errors import ServiceError, require
from kehu.core.tabular import RowError, check_size, map_header, read_table, row_cells
from kehu.customers.codes import MAX_BRANCH, MAX_SEQUENCE, format_code, parse_code
from kehu.customers.creditcode import credit_code_error, normalise
from kehu.customers.duplicates import SimilarNamesFound, name_key, similar_customers
from kehu.customers.models import (
    Agreement,
    AgreementStatus,
    Contact,
    Customer,
    CustomerKind,
    CustomerPhone,
    CustomerStatus,
    CustomerSubType,
    DecisionRole,
    DivisionSequence,
    PaymentProfile,
    RetiredCustomerCode,
    SigningLevel,
)
from kehu.customers.personal import (
    ID_PURPOSE,
    PHONE_PURPOSE,
    customer_set_id_number,
    id_card_error,
    normalise_phone,
    phone_add,
    phone_error,
)
from kehu.customers.search import customer_search_tokens
from kehu.customers.services import agreement_update, contact_update, customer_update
from kehu.org.models import Unit

PROGRESS_EVERY = 200
BATCH = 500  # new records written (and audited) together
MAX_ERRORS = 10_000  # a file that is wrong on every row need not list a million problems
LOOKUP_CHUNK = 900  # ids or codes per IN (...) query

# Canonical column names and the headers accepted for each (English first: it is what exports write).
CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code", "客户编码", "编码"),
    "name": ("name", "客户名称", "名称"),
    "kind": ("kind", "客户属性", "属性"),
    "unit_code": ("unit_code", "所属单位编码", "单位编码"),
    "division_code": ("division_code", "行政区划代码"),
    "credit_code": ("credit_code", "统一社会信用代码", "信用代码"),
    "phone": ("phone", "电话", "联系电话"),
    "address": ("address", "地址"),
    "short_name": ("short_name", "简称"),
    "sub_type": ("sub_type", "细分类型", "子类型"),
    "legal_representative": ("legal_representative", "法定代表人", "负责人"),
    "id_number": ("id_number", "身份证号", "身份证号码"),
    "status": ("status", "状态"),
    "payment_profile": ("payment_profile", "付款方式", "结算方式"),
    "lead_manager": ("lead_manager", "主管客户经理", "A角"),
    "backup_manager": ("backup_manager", "协管客户经理", "B角"),
    "tags": ("tags", "标签"),
    "notes": ("notes", "备注"),
    "latitude": ("latitude", "纬度"),
    "longitude": ("longitude", "经度"),
    "business_scope": ("business_scope", "经营范围"),
    "floor_area": ("floor_area", "营业面积"),
    "parent_code": ("parent_code", "总部编码", "上级客户编码"),
}
CUSTOMER_REQUIRED = ("code", "name", "kind", "unit_code", "division_code", "credit_code", "phone", "address")

CONTACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_code": ("customer_code", "客户编码"),
    "name": ("name", "姓名", "联系人"),
    "title": ("title", "职务"),
    "decision_role": ("decision_role", "决策角色"),
    "phone": ("phone", "电话", "联系电话"),
    "birthday": ("birthday", "生日"),
    "preferences": ("preferences", "喜好", "偏好"),
    "relations": ("relations", "关系"),
    "notes": ("notes", "备注"),
}
CONTACT_REQUIRED = ("customer_code", "name")

AGREEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_code": ("customer_code", "客户编码"),
    "number": ("number", "协议编号"),
    "signing_level": ("signing_level", "签约层级", "签约级别"),
    "start_date": ("start_date", "开始日期", "起始日期"),
    "end_date": ("end_date", "结束日期", "截止日期"),
    "agreement_type": ("agreement_type", "协议类型"),
    "status": ("status", "状态"),
    "signing_unit_code": ("signing_unit_code", "签约单位编码"),
    "parties": ("parties", "签约方"),
}
AGREEMENT_REQUIRED = ("customer_code", "number", "signing_level", "start_date", "end_date")

# Chinese words accepted besides the stored values and their English labels.
KIND_WORDS = {
    "机构": "institution",
    "机构客户": "institution",
    "个人": "individual",
    "个人客户": "individual",
}
STATUS_WORDS = {
    "潜在": "prospect", "潜在客户": "prospect", "已报备": "registered", "报备": "registered",
    "在用": "active", "活跃": "active", "休眠": "dormant", "流失": "lost",
}  # fmt: skip
PAYMENT_WORDS = {"加油卡": "fuel_card", "油卡": "fuel_card", "银行卡": "bank_card", "现金": "cash"}
DECISION_WORDS = {
    "决策人": "decision_maker", "决策者": "decision_maker", "影响者": "influencer", "影响人": "influencer",
    "使用者": "user", "使用人": "user", "付款人": "payer", "付款方": "payer",
}  # fmt: skip
SIGNING_WORDS = {
    "省": "province", "省级": "province", "省公司": "province", "市": "city", "市级": "city", "地市": "city",
    "地市分公司": "city", "县": "county", "县级": "county", "区县": "county", "站": "station",
    "站级": "station", "加油站": "station",
}  # fmt: skip
AGREEMENT_STATUS_WORDS = {
    "草稿": "draft", "拟签": "draft", "生效": "active", "有效": "active", "执行中": "active",
    "到期": "ended", "已到期": "ended", "结束": "ended", "终止": "terminated", "已终止": "terminated",
}  # fmt: skip
AGREEMENT_TYPE_WORDS = {
    "供应": "supply", "供应协议": "supply", "供货协议": "supply", "框架": "framework", "框架协议": "framework",
}  # fmt: skip

_LIST_SPLIT = re.compile(r"\s*[;；、]\s*")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]00:00(?::00)?)?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def _max_length(model: type[models.Model], name: str) -> int:
    return model._meta.get_field(name).max_length


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class ImportResult:
    """What an import did (or, in a dry run, would do). ``errors`` and ``warnings`` are RowErrors."""

    kind: str = "customers"
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    reason: str = ""

    @property
    def rejected(self) -> int:
        """Rows with at least one error."""
        return len({e.row for e in self.errors})

    @property
    def needs_reason(self) -> bool:
        """Warnings (similar names) stop the import until a reason is given."""
        return bool(self.warnings) and not self.reason

    @property
    def ok(self) -> bool:
        return not self.errors and not self.needs_reason

    def summary(self) -> dict[str, object]:
        return {
            "rows": self.rows, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
            "rejected": self.rejected, "warnings": len(self.warnings),
        }  # fmt: skip

    def as_dict(self) -> dict[str, object]:
        """JSON-able, for a background job's result."""
        return {
            "kind": self.kind, "ok": self.ok, "dry_run": self.dry_run, "needs_reason": self.needs_reason,
            "reason": self.reason, **self.summary(),
            "errors": [e.as_dict() for e in self.errors], "error_count": len(self.errors),
            "warning_list": [w.as_dict() for w in self.warnings],
        }  # fmt: skip


class _Problems:
    def __init__(self):
        self.errors: list[RowError] = []

    def add(self, row: int, column: str, value: str, message: str) -> None:
        self.errors.append(RowError(row, column, value, message))


# ---------------------------------------------------------------------------------------------------
# Cells


@cache
def _choice_words(choices: type[models.TextChoices], extra: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Every way a value may be written: the stored value, its English and Chinese labels, ``extra``."""
    words = {value.casefold(): value for value in choices.values}
    for language in ("en", "zh-hans"):
        with translation.override(language):
            for value, label in choices.choices:
                words.setdefault(str(label).casefold(), value)
    for word, value in extra:
        words.setdefault(word.casefold(), value)
    return words


def _choice(text: str, choices: type[models.TextChoices], extra: dict[str, str]) -> str | None:
    return _choice_words(choices, tuple(extra.items())).get(text.casefold())


def _choice_message(choices: type[models.TextChoices], extra: dict[str, str]) -> str:
    values = " / ".join(choices.values)
    words = "、".join(extra)
    return _("write one of %(values)s (or %(words)s)") % {"values": values, "words": words}


def parse_date(text: str) -> date | None:
    """2024-03-01, 2024/3/1, 2024.3.1, 20240301, 2024年3月1日; None when it is no such date."""
    match = _DATE.match(text) or _COMPACT_DATE.match(text)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_decimal(text: str, *, places: int) -> Decimal | None:
    """A plain number (full-width digits and thousands separators accepted), rounded to ``places``."""
    cleaned = "".join(chr(ord(c) - 0xFEE0) if "！" <= c <= "～" else c for c in text).replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def split_list(text: str) -> list[str]:
    """``a;b`` / ``a；b`` / ``a、b`` as a list without empty items or repeats, in order."""
    items: list[str] = []
    for item in _LIST_SPLIT.split(text.strip()):
        if item and item not in items:
            items.append(item)
    return items


def _is_masked(text: str) -> bool:
    return "*" in text


def _chunks(values, size: int = LOOKUP_CHUNK):
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _parse_phones(problems: _Problems, row: int, text: str) -> tuple[list[str], list[str]]:
    """(full numbers normalised, masked numbers as written) of a phone cell; bad numbers are problems.

    A bad number is shown masked: error lists are stored with the job and offered as a file.
    """
    numbers: list[str] = []
    masked: list[str] = []
    for item in split_list(text):
        if _is_masked(item):
            masked.append(item)
            continue
        number = normalise_phone(item)
        error = phone_error(number)
        if error:
            problems.add(row, "phone", mask_phone(item), _("Phone: %(e)s.") % {"e": error})
        elif number not in numbers:
            numbers.append(number)
    return numbers, masked


class _Phones:
    """Who already holds the file's numbers: blind index → (customer id, contact id), and the messages
    ``phone_add`` gives when a number is taken (naming the holder only if the importer may see it)."""

    def __init__(self, user, numbers):
        self.index = {n: blind_index(n, purpose=PHONE_PURPOSE) for n in set(numbers)}
        self.holders: dict[str, tuple[int, int | None]] = {}
        for chunk in _chunks(self.index.values()):
            rows = CustomerPhone.objects.filter(number_index__in=chunk).values_list(
                "number_index", "customer_id", "contact_id"
            )
            for index, customer_id, contact_id in rows:
                self.holders[index] = (customer_id, contact_id)
        self.visible: dict[int, tuple[str, str]] = {}
        for chunk in _chunks({c for c, _contact in self.holders.values()}):
            rows = Customer.objects.visible_to(user).filter(pk__in=chunk).values_list("pk", "name", "code")
            for pk, name, code in rows:
                self.visible[pk] = (name, code)

    def holder(self, number: str) -> tuple[int, int | None] | None:
        return self.holders.get(self.index[number])

    def taken(self, customer_id: int) -> str:
        if customer_id in self.visible:
            name, code = self.visible[customer_id]
            return _("This number belongs to %(name)s (%(code)s), already in the archive.") % {
                "name": name, "code": code,
            }  # fmt: skip
        return _("This number is already registered by another unit.")


def _masked_phones(customer_ids, attr: str = "customer_id") -> dict[int, set[str]]:
    """The masked numbers of these customers (or, with ``attr="contact_id"``, contacts), as exports write them."""
    found: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(set(customer_ids)):
        for owner, number in CustomerPhone.objects.filter(**{f"{attr}__in": chunk}).values_list(
            attr, "number"
        ):
            found[owner].add(mask_phone(number))
    return found


def _phone_rows(customer: Customer, numbers: list[str], contact: Contact | None = None):
    """The CustomerPhone rows and audit entries ``phone_add`` makes for each number."""
    phones, entries = [], []
    for number in numbers:
        phones.append(CustomerPhone(customer=customer, contact=contact, label="", number=number,
                                    number_index=blind_index(number, purpose=PHONE_PURPOSE)))  # fmt: skip
        entries.append(AuditEntry(action="customer.phone_add", obj=customer,
                                  extra={"phone": mask_phone(number), "label": "",
                                         "contact": contact.pk if contact else None}))  # fmt: skip
    return phones, entries


class _Abort(Exception):
    """A write refused by the database (another user registered the same code or number meanwhile)."""

    def __init__(self, error: RowError):
        super().__init__(error.message)
        self.error = error


# ---------------------------------------------------------------------------------------------------
# The importers: check, then apply


class _Importer:
    """Check every row (``check``), then write the good ones (``apply``); errors, warnings and counts
    go to the ImportResult. Records new to Kehu are written a batch at a time, as the services would
    write them one by one; records that change go through the services."""

    kind = ""
    columns: dict[str, tuple[str, ...]] = {}
    required: tuple[str, ...] = ()
    audit_action = ""
    object_type = ""
    FIELD_COLUMNS: dict[str, str] = {}

    def __init__(self, *, acting_user, reason: str = "", progress=None):
        self.user = acting_user
        self.reason = (reason or "").strip()
        self.problems = _Problems()
        self.progress = progress
        self.done = 0
        self.total = 0

    def no_rows(self) -> str:
        raise NotImplementedError

    def check(self, rows: list[tuple[int, dict[str, str]]]) -> list:
        raise NotImplementedError

    def apply(self, plan: list, result: ImportResult, failed: dict[int, bool]) -> None:
        raise NotImplementedError

    # -- helpers
    def advance(self, n: int = 1) -> None:
        before, self.done = self.done, self.done + n
        if self.progress and (
            self.done // PROGRESS_EVERY > before // PROGRESS_EVERY or self.done == self.total
        ):
            self.progress(self.done, self.total)

    def row_error(self, row: int, cells: dict[str, str], exc: ServiceError) -> RowError:
        column = self.FIELD_COLUMNS.get(exc.field or "", exc.field or "")
        if column not in self.columns:
            column = ""
        value = cells.get(column, "")
        if column == "phone":
            value = ";".join(mask_phone(v) for v in split_list(value))
        return RowError(row, column, value, exc.message)

    def visible_units(self, codes) -> dict[str, Unit]:
        found: dict[str, Unit] = {}
        for chunk in _chunks({c for c in codes if c}):
            for unit in Unit.objects.visible_to(self.user).filter(code__in=chunk):
                found[unit.code] = unit
        return found

    def visible_customers(self, codes) -> dict[str, Customer]:
        found: dict[str, Customer] = {}
        for chunk in _chunks({c for c in codes if c}):
            for customer in Customer.objects.visible_to(self.user).filter(code__in=chunk):
                found[customer.code] = customer
        return found

    def update_each(self, items, update, result: ImportResult, failed: dict[int, bool]) -> None:
        """Run ``update(item) -> changed`` through the services for each item, one savepoint each."""
        for item in items:
            try:
                with transaction.atomic():
                    changed = update(item)
            except ServiceError as exc:  # NotAllowed too: the change would leave the importer's scope
                self.problems.errors.append(self.row_error(item.row, item.cells, exc))
                failed[item.row] = True
            else:
                if changed:
                    result.updated += 1
                else:
                    result.unchanged += 1
            self.advance()

    def insert_batch(self, rows: list, build, result: ImportResult, failed: dict[int, bool]) -> None:
        """Write new records a batch at a time: ``build(batch, result, failed)`` inserts them and returns
        their audit entries, appended together (one lock of the audit chain per batch).

        One savepoint per batch, not per row (thousands of subtransactions slow PostgreSQL down). The
        checks before leave the database nothing to refuse but a race with another user registering the
        same code, credit code or phone at the same moment: that stops the import.
        """
        for i in range(0, len(rows), BATCH):
            batch = rows[i : i + BATCH]
            try:
                with transaction.atomic():
                    audit_record_many(actor=self.user, entries=build(batch, result, failed))
            except IntegrityError:
                message = _(
                    "Rows %(a)d to %(b)d could not be written: someone registered the same code, credit code "
                    "or phone at the same moment. Nothing was imported; import the file again."
                ) % {"a": batch[0].row, "b": batch[-1].row}
                raise _Abort(RowError(batch[0].row, "", "", message)) from None
            self.advance(len(batch))


# ---------------------------------------------------------------- customers


@dataclass
class _CustomerRow:
    row: int
    cells: dict[str, str]
    code: str = ""
    values: dict[str, object] = field(default_factory=dict)  # model field → value, non-empty cells only
    phones: list[str] = field(default_factory=list)
    masked_phones: list[str] = field(default_factory=list)
    id_number: str = ""
    id_masked: str = ""
    parent_code: str = ""
    existing: Customer | None = None
    parent: Customer | None = None  # the head office, when it is already in Kehu
    parent_row: _CustomerRow | None = None  # the head office, when it is a new row of this file
    created: Customer | None = None
    code_ok: bool = True  # False: the code cell is malformed or taken (already reported)


class _CustomerImporter(_Importer):
    kind = "customers"
    columns = CUSTOMER_COLUMNS
    required = CUSTOMER_REQUIRED
    audit_action = "customer.import"
    object_type = "customers.customer"
    FIELD_COLUMNS = {"owning_unit": "unit_code", "parent": "parent_code"}
    TEXT_FIELDS = ("name", "address", "short_name", "legal_representative", "notes", "business_scope")

    def no_rows(self) -> str:
        return _("The file has a header but no customers.")

    # ---- checking

    def check(self, rows):
        units = self.visible_units(cells.get("unit_code", "") for _n, cells in rows)
        usernames = {cells.get(c, "") for _n, cells in rows for c in ("lead_manager", "backup_manager")}
        managers = self._visible_users(usernames)
        sub_types = list(CustomerSubType.objects.all())
        codes = {cells.get(c, "") for _n, cells in rows for c in ("code", "parent_code")}
        by_code = self._customers_by("code", codes)
        by_credit = self._customers_by(
            "credit_code", {normalise(cells.get("credit_code", "")) for _n, cells in rows}
        )
        visible = self._visible_ids([c.pk for c in (*by_code.values(), *by_credit.values())])

        parsed: list[_CustomerRow] = []
        seen: dict[str, dict] = {"code": {}, "credit": {}, "phone": {}, "existing": {}}
        for n, cells in rows:
            r = _CustomerRow(row=n, cells=cells)
            self._parse(r, units, managers, sub_types)
            self._match(r, by_code, by_credit, visible, seen)
            parsed.append(r)
        phones = _Phones(self.user, [number for r in parsed for number in r.phones])
        masks = _masked_phones(r.existing.pk for r in parsed if r.existing is not None and r.masked_phones)
        for r in parsed:
            self._check_new_or_existing(r, phones, masks, by_credit, visible)
        self._place(parsed, by_code, visible)
        # Head offices before their new branches; given codes before assigned ones (an assigned code
        # must not take a number the file gives to a later row); otherwise the file's order.
        return sorted(parsed, key=lambda r: (r.parent_row is not None, not r.code, r.row))

    def _visible_users(self, usernames) -> dict[str, object]:
        from kehu.accounts.models import User

        found = {}
        for chunk in _chunks({u for u in usernames if u}):
            for user in (
                User.objects.visible_to(self.user)
                .filter(username__in=chunk)
                .prefetch_related("role_assignments")
            ):
                found[user.username] = user
        return found

    def _customers_by(self, attr: str, values) -> dict[str, Customer]:
        found: dict[str, Customer] = {}
        for chunk in _chunks({v for v in values if v}):
            for customer in Customer.objects.filter(**{f"{attr}__in": chunk}).select_related("parent"):
                found[getattr(customer, attr)] = customer
        return found

    def _visible_ids(self, ids) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks(set(ids)):
            found.update(
                Customer.objects.visible_to(self.user).filter(pk__in=chunk).values_list("pk", flat=True)
            )
        return found

    def _parse(self, r: _CustomerRow, units, managers, sub_types) -> None:
        add, cells, n, values = self.problems.add, r.cells, r.row, r.values
        r.code = cells.get("code", "")
        if r.code:
            try:
                r.code = str(parse_code(r.code))
            except ValueError as exc:
                add(n, "code", r.code, str(exc))
                r.code_ok = False
            else:
                problem = division_code_error(r.code[:6])
                if problem:
                    add(n, "code", r.code, _("Customer code: digits 1 to 6 %(e)s.") % {"e": problem})
                    r.code_ok = False
                elif RetiredCustomerCode.objects.filter(code=r.code).exists():
                    add(n, "code", r.code, _("This code belonged to a customer that was merged away; codes are "
                                             "never reused."))  # fmt: skip
                    r.code_ok = False
        for name in self.TEXT_FIELDS:
            text = cells.get(name, "")
            if not text:
                continue
            limit = _max_length(Customer, name)
            if limit and len(text) > limit:
                add(n, name, text, _("At most %(n)d characters.") % {"n": limit})
            values[name] = text
        if not cells.get("name"):
            add(n, "name", "", _("A customer name is required."))
        text = cells.get("kind", "")
        if text:
            kind = _choice(text, CustomerKind, KIND_WORDS)
            if kind is None:
                add(
                    n,
                    "kind",
                    text,
                    _("Unknown kind: %(how)s.") % {"how": _choice_message(CustomerKind, KIND_WORDS)},
                )
            else:
                values["kind"] = kind
        text = cells.get("unit_code", "")
        if text:
            unit = units.get(text)
            if unit is None:
                add(n, "unit_code", text, _("No unit with the code “%(c)s” in your scope.") % {"c": text})
            elif not unit.is_active:
                add(n, "unit_code", text, _("The unit “%(c)s” is deactivated.") % {"c": text})
            else:
                values["owning_unit"] = unit
        text = cells.get("division_code", "")
        if text:
            problem = division_code_error(text)
            if problem:
                add(n, "division_code", text, _("Division code %(e)s.") % {"e": problem})
            else:
                values["division_code"] = text
        text = cells.get("credit_code", "")
        if text:
            credit = normalise(text)
            problem = credit_code_error(credit)
            if problem:
                add(n, "credit_code", text, _("Unified social credit code: %(e)s.") % {"e": problem})
            else:
                values["credit_code"] = credit
        r.phones, r.masked_phones = _parse_phones(self.problems, n, cells.get("phone", ""))
        text = cells.get("id_number", "")
        if text and _is_masked(text):
            r.id_masked = text
        elif text:
            number = text.upper()
            problem = id_card_error(number)
            if problem:
                add(n, "id_number", mask_id_card(number), _("ID card number: %(e)s.") % {"e": problem})
            else:
                r.id_number = number
        text = cells.get("sub_type", "")
        if text:
            matches = [t for t in sub_types if t.code.casefold() == text.casefold()] or [
                t for t in sub_types if t.name == text
            ]
            if len(matches) == 1:
                values["sub_type"] = matches[0]
            elif matches:
                add(n, "sub_type", text, _("“%(v)s” names several sub-types; use the code.") % {"v": text})
            else:
                known = ", ".join(f"{t.code} ({t.name})" for t in sub_types[:20]) or _("none")
                add(
                    n,
                    "sub_type",
                    text,
                    _("Unknown sub-type “%(v)s”; known: %(known)s.") % {"v": text, "known": known},
                )
        for name, choices, words in (
            ("status", CustomerStatus, STATUS_WORDS),
            ("payment_profile", PaymentProfile, PAYMENT_WORDS),
        ):
            text = cells.get(name, "")
            if text:
                value = _choice(text, choices, words)
                if value is None:
                    add(
                        n, name, text, _("Unknown value: %(how)s.") % {"how": _choice_message(choices, words)}
                    )
                else:
                    values[name] = value
        for name in ("lead_manager", "backup_manager"):
            text = cells.get(name, "")
            if not text:
                continue
            user = managers.get(text)
            if user is None:
                add(n, name, text, _("No account “%(u)s” in your scope.") % {"u": text})
            elif not user.is_active or not user.has_role(Role.CUSTOMER_MANAGER):
                add(n, name, text, _("%(u)s is not an active customer manager.") % {"u": user})
            else:
                values[name] = user
        lead, backup = values.get("lead_manager"), values.get("backup_manager")
        if lead is not None and backup is not None and lead.pk == backup.pk:
            add(
                n,
                "backup_manager",
                cells["backup_manager"],
                _("The lead and the backup manager must be two people."),
            )
        text = cells.get("tags", "")
        if text:
            tags = split_list(text)
            too_long = [t for t in tags if len(t) > 50]
            if too_long:
                add(n, "tags", too_long[0], _("A tag has at most 50 characters."))
            values["tags"] = tags
        for name, places, low, high in (
            ("latitude", 6, Decimal(-90), Decimal(90)),
            ("longitude", 6, Decimal(-180), Decimal(180)),
            ("floor_area", 2, Decimal(0), Decimal("99999999.99")),
        ):
            text = cells.get(name, "")
            if not text:
                continue
            number = parse_decimal(text, places=places)
            if number is None:
                add(n, name, text, _("“%(v)s” is not a number.") % {"v": text})
            elif not low <= number <= high:
                add(n, name, text, _("The value must lie between %(a)s and %(b)s.") % {"a": low, "b": high})
            else:
                values[name] = number
        r.parent_code = cells.get("parent_code", "")

    def _match(self, r: _CustomerRow, by_code, by_credit, visible, seen) -> None:
        """By code, else by credit code — never by name; and no two rows for one code, credit code,
        phone or customer."""
        add, n = self.problems.add, r.row
        credit = r.values.get("credit_code", "")
        if r.code:
            if r.code in seen["code"]:
                add(
                    n,
                    "code",
                    r.code,
                    _("The code %(c)s is also in row %(n)d.") % {"c": r.code, "n": seen["code"][r.code]},
                )
            seen["code"].setdefault(r.code, n)
            existing = by_code.get(r.code)
            if existing is not None and existing.pk not in visible:
                add(n, "code", r.code, _("The customer code %(c)s is taken.") % {"c": r.code})
                r.code_ok = False
            elif existing is not None:
                r.existing = existing
        elif credit:
            existing = by_credit.get(credit)
            if existing is not None and existing.pk in visible:
                r.existing = existing  # (one outside the scope is reported with the credit code below)
        if credit:
            if credit in seen["credit"]:
                add(n, "credit_code", credit, _("The credit code %(c)s is also in row %(n)d.")
                    % {"c": credit, "n": seen["credit"][credit]})  # fmt: skip
            seen["credit"].setdefault(credit, n)
        if r.existing is not None:
            if r.existing.pk in seen["existing"]:
                add(n, "code" if r.code else "credit_code", r.code or credit,
                    _("Row %(n)d imports the same customer (%(c)s).")
                    % {"n": seen["existing"][r.existing.pk], "c": r.existing.code})  # fmt: skip
            seen["existing"].setdefault(r.existing.pk, n)
        for number in r.phones:
            if number in seen["phone"]:
                add(n, "phone", mask_phone(number), _("The phone %(p)s is also in row %(n)d.")
                    % {"p": mask_phone(number), "n": seen["phone"][number]})  # fmt: skip
            seen["phone"].setdefault(number, n)

    def _check_new_or_existing(self, r: _CustomerRow, phones: _Phones, masks, by_credit, visible) -> None:
        add, n = self.problems.add, r.row
        pk = r.existing.pk if r.existing is not None else None
        # Same credit code or phone as another customer: the checks customer_create and phone_add make.
        credit = r.values.get("credit_code", "")
        holder = by_credit.get(credit) if credit else None
        if holder is not None and holder.pk != pk:
            if holder.pk in visible:
                message = _("This credit code belongs to %(name)s (%(code)s), already in the archive.") % {
                    "name": holder.name, "code": holder.code,
                }  # fmt: skip
            else:
                message = _("This credit code is already registered by another unit.")
            add(n, "credit_code", credit, message)
        kept = []
        for number in r.phones:
            found = phones.holder(number)
            if found is None:
                kept.append(number)
            elif found[0] != pk:
                add(n, "phone", mask_phone(number), phones.taken(found[0]))
            # else: the customer has it already — nothing to add
        r.phones = kept
        if r.existing is None:
            if not r.code_ok:
                return  # a taken or malformed code: that is the problem to fix first
            for name, message in (
                ("kind", _("A new customer needs a kind (institution or individual).")),
                ("unit_code", _("A new customer needs the code of its owning unit.")),
                ("division_code", _("A new customer needs a division code.")),
            ):
                if not r.cells.get(name):
                    add(n, name, "", message)
            for masked in r.masked_phones:
                add(n, "phone", masked, _("%(p)s is masked, as exports write phones; write the full number "
                                          "or leave the cell empty.") % {"p": masked})  # fmt: skip
            if r.id_masked:
                add(n, "id_number", r.id_masked, _("The ID card number is masked, as exports write it; write "
                                                   "it in full or leave the cell empty."))  # fmt: skip
            return
        known = masks.get(r.existing.pk, set())
        for masked in r.masked_phones:
            if masked not in known:
                add(n, "phone", masked, _("%(p)s is masked and matches none of this customer's numbers; "
                                          "write the full number.") % {"p": masked})  # fmt: skip
        if r.id_masked and r.id_masked != mask_id_card(r.existing.id_number or ""):
            add(n, "id_number", r.id_masked, _("The masked ID card number is not this customer's; write it "
                                               "in full."))  # fmt: skip

    def _place(self, rows: list[_CustomerRow], by_code: dict[str, Customer], visible: set[int]) -> None:
        """Resolve head offices: a customer in Kehu, or a new head office on another row of the file."""
        add = self.problems.add
        new_heads = {r.code: r for r in rows if r.code and r.existing is None and not r.parent_code}
        for r in rows:
            p = r.parent_code
            if r.existing is not None:
                current = r.existing.parent.code if r.existing.parent_id else ""
                if p and p != current:
                    add(r.row, "parent_code", p,
                        _("An import does not change the head office of a customer in Kehu (it is “%(c)s”).")
                        % {"c": current or "—"})  # fmt: skip
                continue
            if not p:
                continue
            head = by_code.get(p)
            if head is not None and head.pk in visible:
                if head.parent_id is not None:
                    add(r.row, "parent_code", p, _("A branch cannot have branches: choose the head office."))
                else:
                    r.parent = head
            elif p in new_heads:
                r.parent_row = new_heads[p]
            else:
                add(r.row, "parent_code", p,
                    _("No head office with the code “%(c)s” in your scope or in the file.") % {"c": p})  # fmt: skip
            if r.code and r.code_ok and r.code.endswith("000"):
                add(r.row, "code", r.code, _("A branch's code ends in 001 to 999, not 000."))
        for r in rows:
            if (
                r.existing is None
                and not r.parent_code
                and r.code
                and r.code_ok
                and not r.code.endswith("000")
            ):
                add(
                    r.row,
                    "code",
                    r.code,
                    _("A code ending in 001 to 999 belongs to a branch: name its head office."),
                )

    # ---- applying

    def apply(self, plan, result, failed):
        new = [r for r in plan if r.existing is None and r.row not in failed]
        old = [r for r in plan if r.existing is not None and r.row not in failed]
        self.total = len(new) + len(old)
        self.counters: dict[str, list] = {}  # division → [last sequence, changed]
        self.heads: dict[int, list] = {}  # head office id → [last branch, changed]
        self.insert_batch(new, self._create_batch, result, failed)
        self.update_each(old, self._update, result, failed)

    def _counter(self, division: str) -> list:
        # The lock customer_create takes, held to the end of the import's transaction.
        if division not in self.counters:
            DivisionSequence.objects.get_or_create(division_code=division)
            last = DivisionSequence.objects.select_for_update().get(pk=division).last_sequence
            self.counters[division] = [last, False]
        return self.counters[division]

    def _head(self, parent: Customer) -> list:
        if parent.pk not in self.heads:
            last = (
                Customer.objects.select_for_update().values_list("last_branch", flat=True).get(pk=parent.pk)
            )
            self.heads[parent.pk] = [last, False]
        return self.heads[parent.pk]

    def _code(self, r: _CustomerRow, parent: Customer | None) -> str:
        """The code customer_create would give: the file's (moving the counters past it) or the next."""
        if r.code:
            parsed = parse_code(r.code)
            if parent is None:
                counter = self._counter(parsed.division)
                if parsed.sequence > counter[0]:
                    counter[:] = [parsed.sequence, True]
            else:
                if not parent.code.startswith(parsed.head):
                    raise ServiceError(_("A branch's code starts with its head office's first 11 digits (%(h)s).")
                                       % {"h": parent.code[:11]}, field="code")  # fmt: skip
                head = self._head(parent)
                if parsed.branch > head[0]:
                    head[:] = [parsed.branch, True]
            return r.code
        if parent is not None:
            head = self._head(parent)
            if head[0] >= MAX_BRANCH:
                raise ServiceError(
                    _("%(c)s has used all %(n)d branch numbers.") % {"c": parent.code, "n": MAX_BRANCH}
                )
            head[:] = [head[0] + 1, True]
            return parent.code[:11] + f"{head[0]:03d}"
        division = r.values["division_code"]
        counter = self._counter(division)
        if counter[0] >= MAX_SEQUENCE:
            raise ServiceError(_("Division %(d)s has used all %(n)d customer numbers.") % {"d": division, "n": MAX_SEQUENCE},
                               field="division_code")  # fmt: skip
        counter[:] = [counter[0] + 1, True]
        return format_code(division, counter[0])

    def _save_counters(self) -> None:
        for division, counter in self.counters.items():
            if counter[1]:
                DivisionSequence.objects.filter(pk=division).update(last_sequence=counter[0])
                counter[1] = False
        for pk, head in self.heads.items():
            if head[1]:
                Customer.objects.filter(pk=pk).update(last_branch=head[0])
                head[1] = False

    def _create_batch(self, batch: list[_CustomerRow], result: ImportResult, failed) -> list[AuditEntry]:
        """What customer_create (+ phone_add, customer_set_id_number) does, for a batch of new rows.

        Each customer is inserted at once, so that the next row's duplicate check sees it; phones, ID
        numbers, the scope re-check and the audit events follow for the whole batch.
        """
        errors = self.problems.errors
        is_manager = self.user.has_role(Role.CUSTOMER_MANAGER)
        made: list[tuple[_CustomerRow, Customer, object]] = []
        for r in batch:
            head_row = r.parent_row
            if head_row is not None and head_row.row in failed:
                if failed[head_row.row]:
                    errors.append(RowError(r.row, "parent_code", r.parent_code,
                                           _("Its head office on row %(n)d has errors.") % {"n": head_row.row}))  # fmt: skip
                    failed[r.row] = True
                else:
                    result.warnings.append(RowError(r.row, "parent_code", r.parent_code,
                                                    _("Its head office on row %(n)d waits for a reason (similar "
                                                      "names).") % {"n": head_row.row}))  # fmt: skip
                    failed[r.row] = False
                continue
            values = dict(r.values)
            similar = similar_customers(viewer=self.user, name=values["name"])
            if similar and not self.reason:
                result.warnings.append(
                    RowError(r.row, "name", values["name"], SimilarNamesFound(similar).message)
                )
                failed[r.row] = False
                continue
            parent = r.parent or (head_row.created if head_row is not None else None)
            try:
                code = self._code(r, parent)
            except ServiceError as exc:
                errors.append(self.row_error(r.row, r.cells, exc))
                failed[r.row] = True
                continue
            if values.get("lead_manager") is None and is_manager:
                values["lead_manager"] = self.user
            unit = values["owning_unit"]
            customer = Customer(code=code, parent=parent, unit_path=unit.path, created_by=self.user,
                                updated_by=self.user, **values)  # fmt: skip
            customer.name_key = name_key(customer.name)
            customer.search_tokens = customer_search_tokens(name=customer.name, short_name=customer.short_name,
                                                            tags=customer.tags)  # fmt: skip
            customer.save(force_insert=True)
            r.created = customer
            made.append((r, customer, similar))
        self._save_counters()
        in_scope = self._visible_ids(c.pk for _r, c, _s in made)
        entries: list[AuditEntry] = []
        phones: list[CustomerPhone] = []
        with_id: list[Customer] = []
        for r, customer, similar in made:
            if customer.pk not in in_scope:
                errors.append(RowError(r.row, "", "", _("The customer would fall outside your scope; ask someone "
                                                        "who covers that unit.")))  # fmt: skip
                failed[r.row] = True
                continue
            extra = {"duplicate_reason": self.reason, "similar_to": similar.codes} if similar else None
            entries.append(
                AuditEntry(action="customer.create", obj=customer, changes=snapshot(customer), extra=extra)
            )
            row_phones, row_entries = _phone_rows(customer, r.phones)
            phones += row_phones
            entries += row_entries
            if r.id_number:
                customer.id_number = r.id_number
                customer.id_number_index = blind_index(r.id_number, purpose=ID_PURPOSE)
                with_id.append(customer)
                entries.append(AuditEntry(action="customer.id_number_set", obj=customer,
                                          extra={"id_number": mask_id_card(r.id_number)}))  # fmt: skip
            result.created += 1
        CustomerPhone.objects.bulk_create(phones)
        Customer.objects.bulk_update(with_id, ["id_number", "id_number_index"])
        return entries

    def _update(self, r: _CustomerRow) -> bool:
        """customer_update with what differs; phone_add for new numbers; the ID number if it differs."""
        customer = r.existing
        changes = {}
        for name, value in r.values.items():
            if isinstance(value, models.Model):
                same = getattr(customer, f"{name}_id") == value.pk
            elif name == "tags":
                same = sorted(customer.tags or []) == sorted(value)
            else:
                same = getattr(customer, name) == value
            if not same:
                changes[name] = value
        if changes:
            customer = customer_update(acting_user=self.user, customer=customer, **changes)
        for number in r.phones:
            phone_add(acting_user=self.user, customer=customer, number=number)
        id_changed = bool(r.id_number) and r.id_number != (customer.id_number or "")
        if id_changed:
            customer_set_id_number(acting_user=self.user, customer=customer, id_number=r.id_number)
        return bool(changes) or bool(r.phones) or id_changed


# ---------------------------------------------------------------- contacts


@dataclass
class _ContactRow:
    row: int
    cells: dict[str, str]
    customer: Customer | None = None
    name: str = ""
    values: dict[str, object] = field(default_factory=dict)
    phones: list[str] = field(default_factory=list)
    masked_phones: list[str] = field(default_factory=list)
    existing: Contact | None = None


class _ContactImporter(_Importer):
    kind = "contacts"
    columns = CONTACT_COLUMNS
    required = CONTACT_REQUIRED
    audit_action = "contact.import"
    object_type = "customers.contact"
    TEXT_FIELDS = ("title", "preferences", "relations", "notes")

    def no_rows(self) -> str:
        return _("The file has a header but no contacts.")

    def check(self, rows):
        add = self.problems.add
        customers = self.visible_customers(cells.get("customer_code", "") for _n, cells in rows)
        contacts: dict[tuple[int, str], list[Contact]] = defaultdict(list)
        for chunk in _chunks(c.pk for c in customers.values()):
            for contact in Contact.objects.filter(customer_id__in=chunk).order_by("pk"):
                contacts[(contact.customer_id, contact.name)].append(contact)
        parsed: list[_ContactRow] = []
        seen: dict[tuple[str, str], int] = {}
        seen_phone: dict[str, int] = {}
        for n, cells in rows:
            r = _ContactRow(row=n, cells=cells, name=cells.get("name", ""))
            code = cells.get("customer_code", "")
            r.customer = customers.get(code)
            if not code:
                add(n, "customer_code", "", _("The customer's code is required."))
            elif r.customer is None:
                add(
                    n,
                    "customer_code",
                    code,
                    _("No customer with the code “%(c)s” in your scope.") % {"c": code},
                )
            if not r.name:
                add(n, "name", "", _("A contact needs a name."))
            elif len(r.name) > _max_length(Contact, "name"):
                add(n, "name", r.name, _("At most %(n)d characters.") % {"n": _max_length(Contact, "name")})
            self._parse(r)
            if code and r.name:
                if (code, r.name) in seen:
                    add(
                        n,
                        "name",
                        r.name,
                        _("Row %(n)d has the same contact of this customer.") % {"n": seen[(code, r.name)]},
                    )
                seen.setdefault((code, r.name), n)
            for number in r.phones:
                if number in seen_phone:
                    add(n, "phone", mask_phone(number), _("The phone %(p)s is also in row %(n)d.")
                        % {"p": mask_phone(number), "n": seen_phone[number]})  # fmt: skip
                seen_phone.setdefault(number, n)
            if r.customer is not None and r.name:
                same_name = contacts.get((r.customer.pk, r.name), [])
                if len(same_name) > 1:
                    add(n, "name", r.name, _("The customer has %(k)d contacts named %(name)s; the import cannot "
                                             "tell which one is meant.") % {"k": len(same_name), "name": r.name})  # fmt: skip
                elif same_name:
                    r.existing = same_name[0]
            parsed.append(r)
        self._check_phones(parsed)
        return parsed

    def _parse(self, r: _ContactRow) -> None:
        add, cells, n = self.problems.add, r.cells, r.row
        for name in self.TEXT_FIELDS:
            text = cells.get(name, "")
            limit = _max_length(Contact, name)
            if text and limit and len(text) > limit:
                add(n, name, text, _("At most %(n)d characters.") % {"n": limit})
            elif text:
                r.values[name] = text
        text = cells.get("decision_role", "")
        if text:
            value = _choice(text, DecisionRole, DECISION_WORDS)
            if value is None:
                add(n, "decision_role", text, _("Unknown role in decisions: %(how)s.")
                    % {"how": _choice_message(DecisionRole, DECISION_WORDS)})  # fmt: skip
            else:
                r.values["decision_role"] = value
        text = cells.get("birthday", "")
        if text:
            day = parse_date(text)
            if day is None:
                add(n, "birthday", text, _("“%(v)s” is not a date; write it as 1980-05-17.") % {"v": text})
            else:
                r.values["birthday"] = day
        r.phones, r.masked_phones = _parse_phones(self.problems, n, cells.get("phone", ""))

    def _check_phones(self, rows: list[_ContactRow]) -> None:
        add = self.problems.add
        phones = _Phones(self.user, [number for r in rows for number in r.phones])
        existing_ids = [r.existing.pk for r in rows if r.existing is not None and r.masked_phones]
        masks: dict[int, set[str]] = defaultdict(set)
        for chunk in _chunks(existing_ids):
            for contact_id, number in CustomerPhone.objects.filter(contact_id__in=chunk).values_list(
                "contact_id", "number"
            ):
                masks[contact_id].add(mask_phone(number))
        for r in rows:
            kept = []
            for number in r.phones:
                found = phones.holder(number)
                if found is None:
                    kept.append(number)
                elif r.customer is None or found[0] != r.customer.pk:
                    add(r.row, "phone", mask_phone(number), phones.taken(found[0]))
                elif r.existing is None or found[1] != r.existing.pk:
                    add(r.row, "phone", mask_phone(number), _("This customer has that number already."))
                # else: this contact has it already
            r.phones = kept
            own = masks.get(r.existing.pk, set()) if r.existing is not None else set()
            for masked in r.masked_phones:
                if masked not in own:
                    add(r.row, "phone", masked, _("%(p)s is masked and matches none of this contact's numbers; "
                                                  "write the full number.") % {"p": masked})  # fmt: skip

    def apply(self, plan, result, failed):
        new = [r for r in plan if r.existing is None and r.row not in failed]
        old = [r for r in plan if r.existing is not None and r.row not in failed]
        self.total = len(new) + len(old)
        self.insert_batch(new, self._create_batch, result, failed)
        self.update_each(old, self._update, result, failed)

    def _create_batch(self, batch: list[_ContactRow], result: ImportResult, failed) -> list[AuditEntry]:
        """What contact_create (+ phone_add with the contact) does, for a batch of new contacts."""
        contacts = [Contact(customer=r.customer, name=r.name, important_dates=[], **r.values) for r in batch]
        Contact.objects.bulk_create(contacts)
        entries: list[AuditEntry] = []
        phones: list[CustomerPhone] = []
        for r, contact in zip(batch, contacts, strict=True):
            entries.append(AuditEntry(action="contact.create", obj=contact, changes=snapshot(contact),
                                      extra={"customer": r.customer.code}))  # fmt: skip
            row_phones, row_entries = _phone_rows(r.customer, r.phones, contact)
            phones += row_phones
            entries += row_entries
            result.created += 1
        CustomerPhone.objects.bulk_create(phones)
        return entries

    def _update(self, r: _ContactRow) -> bool:
        contact = r.existing
        changes = {name: value for name, value in r.values.items() if getattr(contact, name) != value}
        if changes:
            contact = contact_update(acting_user=self.user, contact=contact, **changes)
        for number in r.phones:
            phone_add(acting_user=self.user, customer=r.customer, number=number, contact=contact)
        return bool(changes) or bool(r.phones)


# ---------------------------------------------------------------- agreements


@dataclass
class _AgreementRow:
    row: int
    cells: dict[str, str]
    customer: Customer | None = None
    number: str = ""
    values: dict[str, object] = field(default_factory=dict)
    existing: Agreement | None = None


class _AgreementImporter(_Importer):
    kind = "agreements"
    columns = AGREEMENT_COLUMNS
    required = AGREEMENT_REQUIRED
    audit_action = "agreement.import"
    object_type = "customers.agreement"
    FIELD_COLUMNS = {"signing_unit": "signing_unit_code"}

    def no_rows(self) -> str:
        return _("The file has a header but no agreements.")

    def check(self, rows):
        add = self.problems.add
        customers = self.visible_customers(cells.get("customer_code", "") for _n, cells in rows)
        units = self.visible_units(cells.get("signing_unit_code", "") for _n, cells in rows)
        existing: dict[tuple[int, str], Agreement] = {}
        for chunk in _chunks(c.pk for c in customers.values()):
            for agreement in Agreement.objects.filter(customer_id__in=chunk):
                existing[(agreement.customer_id, agreement.number)] = agreement
        parsed: list[_AgreementRow] = []
        seen: dict[tuple[str, str], int] = {}
        for n, cells in rows:
            r = _AgreementRow(row=n, cells=cells, number=cells.get("number", ""))
            code = cells.get("customer_code", "")
            r.customer = customers.get(code)
            if not code:
                add(n, "customer_code", "", _("The customer's code is required."))
            elif r.customer is None:
                add(
                    n,
                    "customer_code",
                    code,
                    _("No customer with the code “%(c)s” in your scope.") % {"c": code},
                )
            if not r.number:
                add(n, "number", "", _("An agreement needs a number."))
            elif len(r.number) > _max_length(Agreement, "number"):
                add(
                    n,
                    "number",
                    r.number,
                    _("At most %(n)d characters.") % {"n": _max_length(Agreement, "number")},
                )
            elif code:
                if (code, r.number) in seen:
                    add(n, "number", r.number, _("Row %(n)d has the same agreement of this customer.")
                        % {"n": seen[(code, r.number)]})  # fmt: skip
                seen.setdefault((code, r.number), n)
            self._parse(r, units)
            if r.customer is not None and r.number:
                r.existing = existing.get((r.customer.pk, r.number))
            parsed.append(r)
        return parsed

    def _parse(self, r: _AgreementRow, units) -> None:
        add, cells, n, values = self.problems.add, r.cells, r.row, r.values
        text = cells.get("signing_level", "")
        if not text:
            add(n, "signing_level", "", _("The signing level is required."))
        else:
            level = _choice(text, SigningLevel, SIGNING_WORDS)
            if level is None:
                add(n, "signing_level", text, _("Unknown signing level: %(how)s.")
                    % {"how": _choice_message(SigningLevel, SIGNING_WORDS)})  # fmt: skip
            else:
                values["signing_level"] = level
        for name in ("start_date", "end_date"):
            text = cells.get(name, "")
            if not text:
                if name == "start_date":
                    add(n, name, "", _("The start date is required."))
                else:
                    values[name] = None  # open-ended
                continue
            day = parse_date(text)
            if day is None:
                add(n, name, text, _("“%(v)s” is not a date; write it as 2025-01-31.") % {"v": text})
            else:
                values[name] = day
        start, end = values.get("start_date"), values.get("end_date")
        if start and end and end < start:
            add(n, "end_date", cells["end_date"], _("The agreement cannot end before it starts."))
        text = cells.get("status", "")
        if text:
            status = _choice(text, AgreementStatus, AGREEMENT_STATUS_WORDS)
            if status is None:
                add(n, "status", text, _("Unknown agreement status: %(how)s.")
                    % {"how": _choice_message(AgreementStatus, AGREEMENT_STATUS_WORDS)})  # fmt: skip
            else:
                values["status"] = status
        text = cells.get("agreement_type", "")
        if text:
            value = AGREEMENT_TYPE_WORDS.get(text, text)
            if len(value) > _max_length(Agreement, "agreement_type"):
                add(n, "agreement_type", text, _("At most %(n)d characters.")
                    % {"n": _max_length(Agreement, "agreement_type")})  # fmt: skip
            else:
                values["agreement_type"] = value
        text = cells.get("signing_unit_code", "")
        if text:
            unit = units.get(text)
            if unit is None:
                add(
                    n,
                    "signing_unit_code",
                    text,
                    _("No unit with the code “%(c)s” in your scope.") % {"c": text},
                )
            else:
                values["signing_unit"] = unit
        text = cells.get("parties", "")
        if text:
            values["parties"] = text

    def apply(self, plan, result, failed):
        new = [r for r in plan if r.existing is None and r.row not in failed]
        old = [r for r in plan if r.existing is not None and r.row not in failed]
        self.total = len(new) + len(old)
        self.insert_batch(new, self._create_batch, result, failed)
        self.update_each(old, self._update, result, failed)

    def _create_batch(self, batch: list[_AgreementRow], result: ImportResult, failed) -> list[AuditEntry]:
        """What agreement_create does, for a batch of new agreements."""
        agreements = [Agreement(customer=r.customer, number=r.number, **r.values) for r in batch]
        Agreement.objects.bulk_create(agreements)
        result.created += len(agreements)
        return [
            AuditEntry(action="agreement.create", obj=agreement, changes=snapshot(agreement),
                       extra={"customer": r.customer.code})
            for r, agreement in zip(batch, agreements, strict=True)
        ]  # fmt: skip

    def _update(self, r: _AgreementRow) -> bool:
        agreement = r.existing
        changes = {}
        for name, value in r.values.items():
            current = agreement.signing_unit_id if name == "signing_unit" else getattr(agreement, name)
            if current != (value.pk if name == "signing_unit" else value):
                changes[name] = value
        if changes:
            agreement_update(acting_user=self.user, agreement=agreement, **changes)
        return bool(changes)


# ---------------------------------------------------------------------------------------------------
# Running an import


def _tune_planner() -> None:
    """On PostgreSQL, for this transaction only: always use the indexes.

    The planner's row counts are those of the last ANALYZE; rows this transaction inserts are not in
    them. Into an empty archive (the first import) it would read the whole growing table for every
    duplicate check — the search-token query even casts each row's tokens — so 10,000 new customers
    took quadratic time. Every query of an import has an index to use.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL gin_pending_list_limit = 64")


def _run(importer: _Importer, *, filename: str, content: bytes, dry_run: bool) -> ImportResult:
    require(importer.user, Capability.MANAGE_CUSTOMERS, _("Your roles do not allow importing customers."))
    result = ImportResult(kind=importer.kind, dry_run=dry_run, reason=importer.reason)
    check_size(len(content))
    table = read_table(filename, content)
    header_row, header = table[0]
    index, header_errors = map_header(header, importer.columns, row=header_row, required=importer.required)
    if header_errors:
        result.errors = header_errors
        return result
    rows = [(n, row_cells(cells, index)) for n, cells in table[1:]]
    result.rows = len(rows)
    if not rows:
        result.errors = [RowError(header_row, "", "", importer.no_rows())]
        return result
    if importer.progress:
        importer.progress(0, len(rows))

    order = {name: i for i, name in enumerate(importer.columns)}
    try:
        with transaction.atomic():
            _tune_planner()
            # Checked inside the transaction: on SQLite no one else writes until it ends; on PostgreSQL
            # the unique constraints settle what changes meanwhile.
            plan = importer.check(rows)
            failed: dict[int, bool] = dict.fromkeys((e.row for e in importer.problems.errors), True)
            # The rows that passed go on even when others failed (all is rolled back then): one pass
            # reports every problem, and a dry run counts what the good rows would do.
            importer.apply(plan, result, failed)
            result.errors = sorted(importer.problems.errors, key=lambda e: (e.row, order.get(e.field, 99)))[
                :MAX_ERRORS
            ]
            result.warnings.sort(key=lambda w: w.row)
            if not result.ok or dry_run:
                transaction.set_rollback(True)
            elif result.created or result.updated:
                name = PurePath(filename).name
                audit_record(
                    actor=importer.user, action=importer.audit_action, object_type=importer.object_type,
                    object_repr=name, extra={"file": name, **result.summary(), "reason": importer.reason},
                )  # fmt: skip
    except _Abort as abort:
        return ImportResult(kind=importer.kind, dry_run=dry_run, rows=len(rows), reason=importer.reason,
                            errors=[abort.error])  # fmt: skip
    if not result.ok and not dry_run:
        result.created = result.updated = result.unchanged = 0  # nothing was written
    return result


def customers_import(*, acting_user, filename: str, content: bytes, dry_run: bool = False, reason: str = "",
                     progress: Callable[[int, int], None] | None = None) -> ImportResult:  # fmt: skip
    """Check a customers file and, when every row is right, apply it in one transaction.

    Problems with the file itself (type, encoding, size, empty) raise ServiceError; problems with the
    header or rows come back in ``ImportResult.errors`` and nothing is written. Names like existing
    customers' come back in ``warnings`` and stop the import unless ``reason`` says why these are
    other customers (``customer_create`` audits it). ``dry_run`` does everything, then rolls back.
    """
    importer = _CustomerImporter(acting_user=acting_user, reason=reason, progress=progress)
    return _run(importer, filename=filename, content=content, dry_run=dry_run)


def contacts_import(*, acting_user, filename: str, content: bytes, dry_run: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> ImportResult:  # fmt: skip
    """Check a contacts file and add or change its contacts and phones in one transaction."""
    importer = _ContactImporter(acting_user=acting_user, progress=progress)
    return _run(importer, filename=filename, content=content, dry_run=dry_run)


def agreements_import(*, acting_user, filename: str, content: bytes, dry_run: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> ImportResult:  # fmt: skip
    """Check an agreements file and add or change its agreements in one transaction."""
    importer = _AgreementImporter(acting_user=acting_user, progress=progress)
    return _run(importer, filename=filename, content=content, dry_run=dry_run)


IMPORTERS = {"customers": customers_import, "contacts": contacts_import, "agreements": agreements_import}
