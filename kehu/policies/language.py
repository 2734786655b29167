"""The policy language: a YAML document of metrics, outputs and a responsibility table, parsed into an
immutable ``Policy``.

Parsing never evaluates anything: the YAML is composed into nodes (so every value keeps its line), the
nodes are checked against the grammar documented in docs/policy-language.md and turned into frozen
dataclasses that ``kehu.policies.engine`` compiles into Polars expressions. Validation collects every
problem before raising, so an author fixes a document in one go. Numeric constants are read from the
scalar's text as exact decimals (YAML's own ``0.1`` float is never built).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from math import lcm

import yaml
from django.utils.translation import gettext as _

from kehu.core.errors import ServiceError

LEVELS = ("province", "city", "county", "station")
ATTRIBUTES = ("kind", "sub_type", "status", "payment_profile")
MEASURES = {"quantity": "quantity", "amount": "amount", "transactions": "count"}
OUTPUT_TYPES = ("choice", "boolean", "integer", "points", "number")
RESERVED_COLUMNS = ("customer_id", "responsible_level", "metrics", "explanation")
COMPARATORS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<", "eq": "=", "ne": "≠"}
NEGATED = {"gte": "lt", "gt": "lte", "lte": "gt", "lt": "gte", "eq": "ne", "ne": "eq"}
# Digits after the point a constant may have, by the unit it is compared with (the engine's scales).
UNIT_DECIMALS = {"quantity": 3, "amount": 2, "count": 0, "integer": 0}
UNIT_SCALES = {"quantity": 1000, "amount": 100, "count": 1, "integer": 1}
MAX_NODES = 50_000  # YAML nodes in one document, aliases expanded
MAX_CONSTANT = 10**15  # larger thresholds are typos, and keep every cross-product inside Int128

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DECIMAL = re.compile(r"^[+-]?\d[\d_]*(\.\d+)?$")
_RATIO_CONSTANT = re.compile(r"^(?P<number>[+-]?\d[\d_]*(\.\d+)?)(?P<suffix>‰|%)?$")
_FRACTION = re.compile(r"^\s*(?P<p>\d+(\.\d+)?)\s*(/\s*(?P<q>\d+(\.\d+)?))?\s*$")


# ------------------------------------------------------------------ problems


@dataclass(frozen=True)
class PolicyProblem:
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line else []
        if self.path:
            where.append(self.path)
        return f"{', '.join(where)}: {self.message}" if where else self.message


class PolicyInvalid(ServiceError):
    """A policy document that cannot be used; ``problems`` lists every problem found, in document order."""

    def __init__(self, problems: list[PolicyProblem]):
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
        super().__init__("\n".join(str(p) for p in self.problems), field="policy", code="policy_invalid")


# ------------------------------------------------------------------ the parsed policy


@dataclass(frozen=True)
class Constant:
    """An exact number written in the document; ``text`` is shown in explanations as the author wrote it."""

    text: str
    value: Fraction
    path: str


@dataclass(frozen=True)
class Window:
    """Months a sum covers: the ``last`` N months ending ``offset`` months before the closed month, or a
    calendar span (``previous_year``, ``year_to_date``)."""

    last: int = 1
    offset: int = 0
    calendar: str | None = None

    def months(self, month: date) -> list[date]:
        if self.calendar == "previous_year":
            return [date(month.year - 1, m, 1) for m in range(1, 13)]
        if self.calendar == "year_to_date":
            return [date(month.year, m, 1) for m in range(1, month.month + 1)]
        return [_add_months(month, -(self.offset + k)) for k in range(self.last)]

    def describe(self) -> str:
        if self.calendar:
            return self.calendar
        if self.last == 1 and self.offset == 0:
            return "month"
        return f"last {self.last}" + (f", offset {self.offset}" if self.offset else "")


def _add_months(month: date, delta: int) -> date:
    index = month.year * 12 + month.month - 1 + delta
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Metric:
    """A per-customer value. ``kind``: sum, count_products, count_months, total, ratio, agreement.
    ``unit``: quantity, amount, count, ratio or boolean."""

    name: str
    kind: str
    unit: str
    measure: str | None = None  # quantity / amount / transactions, for sums and counts
    products: tuple[str, ...] = ()
    window: Window | None = None
    of: str | None = None  # total: the metric summed over all customers
    parts: tuple[str, str] | None = None  # ratio: numerator, denominator
    levels: tuple[str, ...] = ()  # agreement
    types: tuple[str, ...] = ()  # agreement
    shown_as: str = "permille"  # ratio display: permille, percent or plain

    @property
    def scale(self) -> int:
        return UNIT_SCALES.get(self.unit, 1)


@dataclass(frozen=True)
class Ref:
    kind: str  # metric / output
    name: str


@dataclass(frozen=True)
class Operand:
    """``{metric: Y, times: "1/6"}`` on the right of a comparison."""

    ref: Ref
    factor: Fraction
    factor_text: str


@dataclass(frozen=True)
class Compare:
    subject: Ref
    op: str  # a key of COMPARATORS
    rhs: Constant | Operand | str  # str: a choice value (eq/ne on a choice output)


@dataclass(frozen=True)
class IsTrue:
    subject: Ref
    value: bool


@dataclass(frozen=True)
class InValues:
    """``{output: X, in: [...]}`` on a choice output, or ``{attribute: A, equals|in: ...}``."""

    subject: Ref | str  # str: an attribute name
    values: tuple[str, ...]


@dataclass(frozen=True)
class AllOf:
    items: tuple


@dataclass(frozen=True)
class AnyOf:
    items: tuple


@dataclass(frozen=True)
class NotOf:
    item: object


@dataclass(frozen=True)
class Rule:
    value: object  # str for choice, int for integer/points, bool for boolean
    condition: object | None  # None: otherwise
    path: str


@dataclass(frozen=True)
class Bracket:
    min: Constant
    max: Constant | None
    points: int


@dataclass(frozen=True)
class Weight:
    of: str
    weight: Constant


@dataclass(frozen=True)
class Output:
    name: str
    type: str
    label: str
    values: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    export: bool = True
    applies_if: object | None = None
    rules: tuple[Rule, ...] = ()  # first_match
    condition: object | None = None  # boolean ``if``
    brackets_of: str | None = None
    brackets: tuple[Bracket, ...] = ()  # highest first
    weighted: tuple[Weight, ...] = ()
    decimals: int = 0

    @property
    def scale(self) -> int:
        return 10**self.decimals if self.type == "number" else 1


@dataclass(frozen=True)
class ResponsibilityRow:
    when: tuple[tuple[str, tuple[object, ...]], ...]  # (output, accepted values); empty = otherwise
    level: str


@dataclass(frozen=True)
class Responsibility:
    sources: tuple[str, ...]
    table: tuple[ResponsibilityRow, ...]


@dataclass(frozen=True)
class Policy:
    name: str
    title: str
    products: tuple[str, ...]
    metrics: tuple[Metric, ...]
    outputs: tuple[Output, ...]
    responsibility: Responsibility | None
    source: str = field(repr=False, compare=False)
    constants: tuple[tuple[str, int, int], ...] = field(
        default=(), repr=False, compare=False
    )  # path, start, end

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def output(self, name: str) -> Output:
        found = next((o for o in self.outputs if o.name == name), None)
        if found is None:
            raise ServiceError(_("The policy has no output “%(name)s”.") % {"name": name}, field="output")
        return found

    def exported_outputs(self) -> list[str]:
        return [o.name for o in self.outputs if o.export]

    def value_labels(self, output: str | Output) -> dict[str, str]:
        out = output if isinstance(output, Output) else self.output(output)
        return dict(out.labels)

    def order(self, output: str | Output) -> list[str]:
        """Rank of a choice output's values, best first; [] for other types (they have no rank)."""
        out = output if isinstance(output, Output) else self.output(output)
        return list(out.values)

    def threshold_paths(self) -> list[str]:
        return [path for path, _start, _end in self.constants]

    def with_thresholds(self, edits: dict[str, str]) -> Policy:
        """The same document with some constants replaced (keyed by their problem path), re-validated."""
        spans = {path: (start, end) for path, start, end in self.constants}
        problems = []
        for path, new in edits.items():
            text = str(new).strip()
            if path not in spans:
                problems.append(PolicyProblem(None, None, path, _("there is no threshold at this path")))
            elif not _RATIO_CONSTANT.match(text):
                problems.append(
                    PolicyProblem(None, None, path, _("“%(text)s” is not a decimal") % {"text": text})
                )
        if problems:
            raise PolicyInvalid(problems)
        source = self.source
        for path in sorted(edits, key=lambda p: spans[p][0], reverse=True):
            start, end = spans[path]
            source = source[:start] + str(edits[path]).strip() + source[end:]
        return policy_parse(source)


# ------------------------------------------------------------------ located YAML


@dataclass
class _Node:
    kind: str  # map / seq / scalar
    value: object  # dict[str, _Node] / list[_Node] / str
    tag: str
    line: int
    column: int
    start: int
    end: int
    key_lines: dict = field(default_factory=dict)

    def is_bool(self) -> bool:
        return self.kind == "scalar" and self.tag.endswith(":bool")

    def as_bool(self) -> bool:
        return str(self.value).lower() in ("true", "yes", "on")

    def is_null(self) -> bool:
        return self.kind == "scalar" and self.tag.endswith(":null")


class _Reader:
    """Walks the node tree, building the policy and collecting problems."""

    def __init__(self, text: str):
        self.text = text
        self.problems: list[PolicyProblem] = []
        self.constants: list[tuple[str, int, int]] = []
        self.nodes = 0
        self.current: str | None = None  # the output being read (to report self-references)
        self.broken_outputs: set[str] = (
            set()
        )  # outputs with problems: references to them are not reported again
        self.metric_nodes: dict[str, _Node] = {}
        self.output_order: list[str] = []

    # -------------------------------------------------------------- plumbing

    def problem(self, node: _Node | None, path: str, message: str) -> None:
        line = node.line if node is not None else None
        column = node.column if node is not None else None
        self.problems.append(PolicyProblem(line, column, path, message))

    def convert(self, node: yaml.Node, path: str) -> _Node:
        # YAML aliases can make a small text expand exponentially ("billion laughs"): cap the node count.
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise PolicyInvalid([PolicyProblem(None, None, "", _("the document is too large"))])
        mark = node.start_mark
        base = dict(
            tag=node.tag,
            line=mark.line + 1,
            column=mark.column + 1,
            start=mark.index,
            end=node.end_mark.index,
        )
        if isinstance(node, yaml.MappingNode):
            items, key_lines = {}, {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = f"{path}.{key}" if path else key
                if key in items:
                    self.problem(
                        self.convert(key_node, sub), sub, _("duplicate name “%(name)s”") % {"name": key}
                    )
                    continue
                key_lines[key] = key_node.start_mark.line + 1
                items[key] = self.convert(value_node, sub)
            return _Node("map", items, key_lines=key_lines, **base)
        if isinstance(node, yaml.SequenceNode):
            return _Node("seq", [self.convert(v, f"{path}[{i}]") for i, v in enumerate(node.value)], **base)
        return _Node("scalar", node.value, **base)

    def keys(self, node: _Node, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> bool:
        """Check a mapping's keys; False when the node is not a mapping at all."""
        if node.kind != "map":
            self.problem(node, path, _("expected a mapping"))
            return False
        for key in node.value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (_(" (did you mean “%(name)s”?)") % {"name": close[0]}) if close else ""
                self.problem(
                    node.value[key], f"{path}.{key}", _("unknown key “%(key)s”") % {"key": key} + hint
                )
        for key in required:
            if key not in node.value:
                self.problem(node, path, _("“%(key)s” is missing") % {"key": key})
        return True

    def text_of(self, node: _Node, path: str) -> str | None:
        if node.kind != "scalar" or node.is_null():
            self.problem(node, path, _("expected a text"))
            return None
        return str(node.value)

    def name_list(self, node: _Node, path: str) -> list[tuple[str, _Node, str]]:
        """A list of plain scalars (one scalar is accepted as a list of one)."""
        items = node.value if node.kind == "seq" else [node]
        result = []
        for i, item in enumerate(items):
            sub = f"{path}[{i}]" if node.kind == "seq" else path
            if item.kind != "scalar" or item.is_null():
                self.problem(item, sub, _("expected a name"))
                continue
            result.append((str(item.value), item, sub))
        return result

    def integer(self, node: _Node, path: str, minimum: int = 0) -> int | None:
        text = str(node.value) if node.kind == "scalar" else ""
        if not re.fullmatch(r"[+-]?\d+", text) or int(text) < minimum:
            self.problem(node, path, _("expected a whole number ≥ %(min)s") % {"min": minimum})
            return None
        return int(text)

    def constant(self, node: _Node, path: str, unit: str, decimals: int | None = None) -> Constant | None:
        """An exact constant compared with a value of ``unit`` (ratios accept ‰ and %)."""
        text = str(node.value).strip() if node.kind == "scalar" and not node.is_bool() else ""
        match = _RATIO_CONSTANT.match(text) if unit == "ratio" else _DECIMAL.match(text)
        if not match:
            self.problem(
                node, path, _("expected an exact decimal, not “%(text)s”") % {"text": text or node.kind}
            )
            return None
        number = match.group("number") if unit == "ratio" else text
        try:
            value = Fraction(Decimal(number.replace("_", "")))
        except (InvalidOperation, ValueError):
            self.problem(node, path, _("expected an exact decimal, not “%(text)s”") % {"text": text})
            return None
        if unit == "ratio":
            value /= {"‰": 1000, "%": 100}.get(match.group("suffix") or "", 1)
        allowed = decimals if decimals is not None else UNIT_DECIMALS.get(unit)
        if allowed is not None and "." in number and len(number.split(".")[1]) > allowed:
            self.problem(
                node, path, _("too many decimals for %(unit)s: at most %(n)s") % {"unit": unit, "n": allowed}
            )
            return None
        if abs(value) > MAX_CONSTANT:
            self.problem(node, path, _("the constant is too large"))
            return None
        self.constants.append((path, node.start, node.end))
        return Constant(text, value, path)

    # -------------------------------------------------------------- the document

    def read(self, root: _Node) -> Policy | None:
        top = ("policy", "title", "products", "metrics", "outputs", "responsibility")
        if not self.keys(root, "", top, required=("policy", "products", "outputs")):
            return None
        doc = root.value
        name = ""
        if "policy" in doc:
            name = self.text_of(doc["policy"], "policy") or ""
            if name and not _SLUG.match(name):
                self.problem(doc["policy"], "policy", _("a policy name uses a-z, 0-9 and “-”"))
        title = (self.text_of(doc["title"], "title") or "") if "title" in doc else name
        products: list[str] = []
        if "products" in doc:
            for product, node, path in self.name_list(doc["products"], "products"):
                if product in products:
                    self.problem(node, path, _("duplicate name “%(name)s”") % {"name": product})
                elif not re.match(r"^[A-Za-z0-9_.-]+$", product):
                    self.problem(node, path, _("a product code uses letters, digits, “_”, “.” and “-”"))
                products.append(product)
        if len(products) > 60:
            self.problem(doc["products"], "products", _("a policy reads at most 60 products"))
        self.products = tuple(products)
        self.metrics: dict[str, Metric] = {}
        self.metric_nodes: dict[str, _Node] = {}
        if "metrics" in doc:
            self.read_metrics(doc["metrics"])
        self.outputs: dict[str, Output] = {}
        self.output_order: list[str] = []
        if "outputs" in doc:
            self.output_order = list(doc["outputs"].value) if doc["outputs"].kind == "map" else []
            self.read_outputs(doc["outputs"])
        responsibility = None
        if "responsibility" in doc:
            responsibility = self.read_responsibility(doc["responsibility"])
        if self.problems:
            return None
        return Policy(
            name=name,
            title=title,
            products=self.products,
            metrics=tuple(self.metrics.values()),
            outputs=tuple(self.outputs.values()),
            responsibility=responsibility,
            source=self.text,
            constants=tuple(self.constants),
        )

    # -------------------------------------------------------------- metrics

    def read_metrics(self, node: _Node) -> None:
        if node.kind != "map":
            self.problem(node, "metrics", _("expected a mapping"))
            return
        for name, spec in node.value.items():
            path = f"metrics.{name}"
            if not _NAME.match(name):
                self.problem(spec, path, _("a name uses a-z, 0-9 and “_” and starts with a letter"))
            self.metric_nodes[name] = spec
            metric = self.read_metric(name, spec, path)
            if metric is not None:
                self.metrics[name] = metric
        self.resolve_metric_units()

    def read_metric(self, name: str, spec: _Node, path: str) -> Metric | None:
        kinds = ("sum", "count_products", "count_months", "total", "ratio", "agreement")
        if spec.kind != "map":
            self.problem(spec, path, _("expected a mapping"))
            return None
        kind = next((k for k in kinds if k in spec.value), None)
        if kind is None:
            self.problem(spec, path, _("a metric needs one of: %(kinds)s") % {"kinds": ", ".join(kinds)})
            return None
        extra = [k for k in kinds if k in spec.value and k != kind]
        if extra:
            self.problem(
                spec, path, _("a metric has exactly one of: %(kinds)s") % {"kinds": ", ".join(kinds)}
            )
        v = spec.value
        if kind in ("sum", "count_products", "count_months"):
            self.keys(spec, path, (kind, "products", "window"))
            measure = self.text_of(v[kind], f"{path}.{kind}") or ""
            if measure and measure not in MEASURES:
                close = difflib.get_close_matches(measure, MEASURES, n=1)
                hint = (_(" (did you mean “%(name)s”?)") % {"name": close[0]}) if close else ""
                self.problem(v[kind], f"{path}.{kind}", _("unknown measure “%(m)s”") % {"m": measure} + hint)
            products = self.products
            if "products" in v:
                chosen = []
                for product, pnode, ppath in self.name_list(v["products"], f"{path}.products"):
                    if product not in self.products:
                        self.problem(
                            pnode,
                            ppath,
                            _("product “%(p)s” is not in the policy's products") % {"p": product},
                        )
                    chosen.append(product)
                products = tuple(chosen)
            window = self.read_window(v["window"], f"{path}.window") if "window" in v else Window()
            if kind == "count_months" and len(window.months(date(2000, 1, 1))) > 60:
                self.problem(v["window"], f"{path}.window", _("count_months counts at most 60 months"))
            unit = MEASURES.get(measure, "count") if kind == "sum" else "count"
            return Metric(name, kind, unit, measure=measure, products=products, window=window)
        if kind == "total":
            self.keys(spec, path, ("total",))
            of = self.text_of(v["total"], f"{path}.total")
            return Metric(name, kind, "", of=of)
        if kind == "ratio":
            self.keys(spec, path, ("ratio", "shown_as"))
            parts = self.name_list(v["ratio"], f"{path}.ratio")
            if v["ratio"].kind != "seq" or len(parts) != 2:
                self.problem(v["ratio"], f"{path}.ratio", _("a ratio is [numerator, denominator]"))
                return None
            shown_as = "permille"
            if "shown_as" in v:
                shown_as = self.text_of(v["shown_as"], f"{path}.shown_as") or "permille"
                if shown_as not in ("permille", "percent", "plain"):
                    self.problem(
                        v["shown_as"], f"{path}.shown_as", _("shown_as is permille, percent or plain")
                    )
            return Metric(name, kind, "ratio", parts=(parts[0][0], parts[1][0]), shown_as=shown_as)
        self.keys(spec, path, ("agreement",))
        body = v["agreement"]
        levels: tuple[str, ...] = ()
        types: tuple[str, ...] = ()
        if body.is_null():
            return Metric(name, kind, "boolean")
        if self.keys(body, f"{path}.agreement", ("levels", "types")):
            if "levels" in body.value:
                found = self.name_list(body.value["levels"], f"{path}.agreement.levels")
                for level, lnode, lpath in found:
                    if level not in LEVELS:
                        self.problem(
                            lnode,
                            lpath,
                            _("unknown level “%(l)s” (levels: %(all)s)")
                            % {"l": level, "all": ", ".join(LEVELS)},
                        )
                levels = tuple(level for level, _n, _p in found)
            if "types" in body.value:
                types = tuple(
                    t for t, _n, _p in self.name_list(body.value["types"], f"{path}.agreement.types")
                )
        return Metric(name, kind, "boolean", levels=levels, types=types)

    def read_window(self, node: _Node, path: str) -> Window:
        if node.kind == "scalar":
            text = str(node.value)
            if text == "month":
                return Window()
            if text in ("previous_year", "year_to_date"):
                return Window(calendar=text)
            self.problem(
                node, path, _("a window is month, previous_year, year_to_date or {last: N, offset: K}")
            )
            return Window()
        if not self.keys(node, path, ("last", "offset"), required=("last",)):
            return Window()
        last = self.integer(node.value["last"], f"{path}.last", 1) if "last" in node.value else 1
        offset = self.integer(node.value["offset"], f"{path}.offset", 0) if "offset" in node.value else 0
        if last and last > 120 or offset and offset > 120:
            self.problem(node, path, _("a window reaches at most 120 months back"))
        return Window(last=last or 1, offset=offset or 0)

    def resolve_metric_units(self) -> None:
        """Check totals' and ratios' references (unknown names, cycles) and give them their units."""
        state: dict[str, str] = {}

        def visit(name: str) -> str:
            metric = self.metrics.get(name)
            if metric is None or metric.kind not in ("total", "ratio"):
                return metric.unit if metric else ""
            if state.get(name) == "done":
                return self.metrics[name].unit
            path = f"metrics.{name}"
            node = self.metric_nodes[name]
            if state.get(name) == "visiting":
                self.problem(
                    node, path, _("metric “%(name)s” refers to itself through a cycle") % {"name": name}
                )
                state[name] = "done"
                return ""
            state[name] = "visiting"
            refs = [metric.of] if metric.kind == "total" else list(metric.parts)
            units = []
            for ref in refs:
                if ref is None:
                    continue
                if ref not in self.metric_nodes:
                    self.problem(
                        node, path, _("unknown metric “%(name)s”") % {"name": ref} + self.hint(ref, "metric")
                    )
                    units.append("")
                    continue
                units.append(visit(ref))
            if state.get(name) == "done":
                return ""
            state[name] = "done"
            if metric.kind == "total":
                unit = units[0] if units else ""
                if unit and unit not in ("quantity", "amount", "count"):
                    self.problem(
                        node,
                        path,
                        _("a total sums a quantity, an amount or a count, not a %(u)s") % {"u": unit},
                    )
                self.metrics[name] = dataclasses.replace(metric, unit=unit)
                return unit
            for unit in units:
                if unit and unit not in ("quantity", "amount", "count"):
                    self.problem(
                        node,
                        path,
                        _("a ratio divides quantities, amounts or counts, not a %(u)s") % {"u": unit},
                    )
            return "ratio"

        for name in list(self.metrics):
            visit(name)

    def hint(self, name: str, kind: str) -> str:
        pool = list(self.metric_nodes) if kind == "metric" else self.output_order
        close = difflib.get_close_matches(name, pool, n=1)
        return (_(" (did you mean “%(name)s”?)") % {"name": close[0]}) if close else ""

    # -------------------------------------------------------------- outputs

    def read_outputs(self, node: _Node) -> None:
        if node.kind != "map":
            self.problem(node, "outputs", _("expected a mapping"))
            return
        for name, spec in node.value.items():
            path = f"outputs.{name}"
            if not _NAME.match(name):
                self.problem(spec, path, _("a name uses a-z, 0-9 and “_” and starts with a letter"))
            if name in RESERVED_COLUMNS:
                self.problem(
                    spec, path, _("“%(name)s” is reserved for a column of the results") % {"name": name}
                )
            if name in self.metric_nodes:
                self.problem(spec, path, _("“%(name)s” is already the name of a metric") % {"name": name})
            self.current = name
            output = self.read_output(name, spec, path)
            if output is not None:
                self.outputs[name] = output
            else:
                self.outputs.pop(name, None)
                self.broken_outputs.add(name)

    def read_output(self, name: str, spec: _Node, path: str) -> Output | None:
        allowed = (
            "label",
            "type",
            "values",
            "export",
            "applies_if",
            "first_match",
            "if",
            "brackets",
            "weighted",
            "decimals",
        )
        if not self.keys(spec, path, allowed, required=("type",)):
            return None
        v = spec.value
        if "type" not in v:
            return None
        kind = self.text_of(v["type"], f"{path}.type")
        if kind not in OUTPUT_TYPES:
            self.problem(
                v["type"],
                f"{path}.type",
                _("unknown type “%(t)s” (types: %(all)s)") % {"t": kind, "all": ", ".join(OUTPUT_TYPES)},
            )
            return None
        label = (self.text_of(v["label"], f"{path}.label") or name) if "label" in v else name
        export = True
        if "export" in v:
            if not v["export"].is_bool():
                self.problem(v["export"], f"{path}.export", _("expected true or false"))
            export = v["export"].as_bool()
        values: list[str] = []
        labels: list[tuple[str, str]] = []
        if kind == "choice":
            if "values" not in v:
                self.problem(spec, path, _("a choice output needs its values"))
                return None
            vnode = v["values"]
            if vnode.kind == "map":
                for value, lnode in vnode.value.items():
                    values.append(value)
                    labels.append(
                        (value, str(lnode.value) if lnode.kind == "scalar" and not lnode.is_null() else value)
                    )
            else:
                for value, _n, _p in self.name_list(vnode, f"{path}.values"):
                    values.append(value)
                    labels.append((value, value))
        elif "values" in v:
            self.problem(v["values"], f"{path}.values", _("only a choice output has values"))
        decimals = 0
        if "decimals" in v:
            if kind != "number":
                self.problem(v["decimals"], f"{path}.decimals", _("only a number output has decimals"))
            decimals = self.integer(v["decimals"], f"{path}.decimals") or 0
            if decimals > 6:
                self.problem(v["decimals"], f"{path}.decimals", _("at most 6 decimals"))
        out = Output(
            name, kind, label, values=tuple(values), labels=tuple(labels), export=export, decimals=decimals
        )
        applies_if = self.read_condition(v["applies_if"], f"{path}.applies_if") if "applies_if" in v else None
        out = dataclasses.replace(out, applies_if=applies_if)
        bodies = [k for k in ("first_match", "if", "brackets", "weighted") if k in v]
        expected = {
            "choice": ("first_match",),
            "boolean": ("if",),
            "integer": ("first_match", "brackets"),
            "points": ("first_match", "brackets"),
            "number": ("weighted",),
        }[kind]
        if len(bodies) != 1 or bodies[0] not in expected:
            self.problem(
                spec,
                path,
                _("a %(type)s output is computed by exactly one of: %(keys)s")
                % {"type": kind, "keys": ", ".join(expected)},
            )
            return None
        body = bodies[0]
        if body == "first_match":
            rules = self.read_first_match(out, v["first_match"], f"{path}.first_match")
            return dataclasses.replace(out, rules=rules) if rules is not None else None
        if body == "if":
            return dataclasses.replace(out, condition=self.read_condition(v["if"], f"{path}.if"))
        if body == "brackets":
            return self.read_brackets(out, v["brackets"], f"{path}.brackets")
        return self.read_weighted(out, v["weighted"], f"{path}.weighted")

    def read_first_match(self, out: Output, node: _Node, path: str) -> tuple[Rule, ...] | None:
        if node.kind != "seq" or not node.value:
            self.problem(node, path, _("first_match is a list of rules"))
            return None
        rules = []
        for i, rule_node in enumerate(node.value):
            sub = f"{path}[{i}]"
            if not self.keys(rule_node, sub, ("value", "if", "otherwise"), required=("value",)):
                continue
            r = rule_node.value
            value = None
            if "value" in r:
                value = self.rule_value(out, r["value"], f"{sub}.value")
            if ("if" in r) == ("otherwise" in r):
                self.problem(rule_node, sub, _("a rule has either “if” or “otherwise: true”"))
                continue
            if "otherwise" in r:
                if not (r["otherwise"].is_bool() and r["otherwise"].as_bool()):
                    self.problem(r["otherwise"], f"{sub}.otherwise", _("write “otherwise: true”"))
                if i != len(node.value) - 1:
                    self.problem(rule_node, sub, _("rules after “otherwise” can never match"))
                rules.append(Rule(value, None, sub))
            else:
                rules.append(Rule(value, self.read_condition(r["if"], f"{sub}.if"), sub))
        if rules and rules[-1].condition is not None:
            self.problem(
                node, path, _("an output that can match no rule: the last rule must be “otherwise: true”")
            )
        return tuple(rules)

    def rule_value(self, out: Output, node: _Node, path: str) -> object:
        text = str(node.value) if node.kind == "scalar" else ""
        if out.type == "choice":
            if text not in out.values:
                self.problem(
                    node,
                    path,
                    _("“%(v)s” is not among the values: %(all)s") % {"v": text, "all": ", ".join(out.values)},
                )
            return text
        if out.type in ("integer", "points"):
            return self.integer(node, path, minimum=-(10**9))
        self.problem(node, path, _("a %(type)s output has no first_match") % {"type": out.type})
        return None

    def read_brackets(self, out: Output, node: _Node, path: str) -> Output | None:
        if not self.keys(node, path, ("of", "table"), required=("of", "table")) or "of" not in node.value:
            return None
        of = self.text_of(node.value["of"], f"{path}.of")
        unit = self.operand_unit(Ref("metric", of or ""), node.value["of"], f"{path}.of") if of else ""
        if unit and unit not in ("quantity", "amount", "count", "ratio"):
            self.problem(
                node.value["of"], f"{path}.of", _("brackets need a number, not a %(u)s") % {"u": unit}
            )
            unit = ""
        table_node = node.value.get("table")
        if table_node is None:
            return None
        if table_node.kind != "seq" or not table_node.value:
            self.problem(table_node, f"{path}.table", _("a bracket table is a list of {min, max, points}"))
            return None
        rows = []
        for i, row in enumerate(table_node.value):
            sub = f"{path}.table[{i}]"
            if not self.keys(row, sub, ("min", "max", "points"), required=("min", "points")):
                continue
            r = row.value
            if "min" not in r or "points" not in r:
                continue
            low = self.constant(r["min"], f"{sub}.min", unit) if unit else None
            high = self.constant(r["max"], f"{sub}.max", unit) if unit and "max" in r else None
            points = self.integer(r["points"], f"{sub}.points", minimum=0)
            if (unit and low is None) or points is None or ("max" in r and unit and high is None):
                continue
            if low is not None and high is not None and high.value <= low.value:
                self.problem(row, sub, _("max must be above min"))
                continue
            rows.append((row, sub, low, high, points))
        if len(rows) != len(table_node.value) or not unit:
            return None
        ascending = len(rows) < 2 or rows[0][2].value < rows[1][2].value
        ordered = rows if ascending else list(reversed(rows))
        for k in range(len(ordered) - 1):
            if ordered[k + 1][2].value <= ordered[k][2].value:
                self.problem(
                    ordered[k + 1][0],
                    ordered[k + 1][1],
                    _("brackets must be written in order of min, without overlaps"),
                )
                return None
        for k in range(len(ordered) - 1):
            (row, sub, low, high, points), nxt = ordered[k], ordered[k + 1]
            if high is None or high.value != nxt[2].value:
                self.problem(
                    row,
                    sub,
                    _("a gap or an overlap: max %(max)s must equal the next bracket's min %(min)s")
                    % {"max": high.text if high else "(none)", "min": nxt[2].text},
                )
                return None
            if nxt[4] < points:
                self.problem(nxt[0], nxt[1], _("points must not fall as the value rises"))
        top = ordered[-1]
        if top[3] is not None:
            self.problem(
                top[0], top[1], _("the highest bracket has no max (it takes every value above its min)")
            )
        return dataclasses.replace(
            out,
            brackets_of=of,
            brackets=tuple(Bracket(low, high, pts) for _r, _s, low, high, pts in reversed(ordered)),
        )

    def read_weighted(self, out: Output, node: _Node, path: str) -> Output | None:
        if node.kind != "seq" or not node.value:
            self.problem(node, path, _("weighted is a list of {of, weight}"))
            return None
        weights = []
        for i, item in enumerate(node.value):
            sub = f"{path}[{i}]"
            if not self.keys(item, sub, ("of", "weight"), required=("of", "weight")):
                continue
            if "of" not in item.value or "weight" not in item.value:
                continue
            of = self.text_of(item.value["of"], f"{sub}.of") or ""
            unit = self.operand_unit(Ref("output", of), item.value["of"], f"{sub}.of")
            if unit and unit not in ("integer", "number"):
                self.problem(
                    item.value["of"],
                    f"{sub}.of",
                    _("a weighted score adds points or numbers, not a %(u)s") % {"u": unit},
                )
            weight = self.constant(item.value["weight"], f"{sub}.weight", "ratio")
            if weight is not None and weight.value <= 0:
                self.problem(item.value["weight"], f"{sub}.weight", _("a weight is above 0"))
            if weight is not None:
                weights.append(Weight(of, weight))
        if len(weights) == len(node.value):
            total = sum((w.weight.value for w in weights), Fraction(0))
            if total != 1:
                self.problem(
                    node, path, _("the weights add up to %(total)s, not 1") % {"total": _fraction_text(total)}
                )
            denominators = [w.weight.value.denominator * self.output_scale(w.of) for w in weights]
            needed = lcm(*denominators)
            if 10**out.decimals % needed:
                self.problem(
                    node,
                    path,
                    _("decimals: %(d)s cannot show this weighted score exactly; use more")
                    % {"d": out.decimals},
                )
        return dataclasses.replace(out, weighted=tuple(weights))

    def output_scale(self, name: str) -> int:
        out = self.outputs.get(name)
        return out.scale if out else 1

    # -------------------------------------------------------------- conditions

    def operand_unit(self, ref: Ref, node: _Node, path: str) -> str:
        """The unit of a referenced metric or output, reporting unknown and forward references."""
        if ref.kind == "metric":
            if ref.name not in self.metric_nodes:
                self.problem(
                    node,
                    path,
                    _("unknown metric “%(name)s”") % {"name": ref.name} + self.hint(ref.name, "metric"),
                )
                return ""
            metric = self.metrics.get(ref.name)
            return metric.unit if metric else ""
        if ref.name == self.current:
            self.problem(node, path, _("output “%(name)s” refers to itself") % {"name": ref.name})
            return ""
        if ref.name not in self.output_order:
            self.problem(
                node,
                path,
                _("unknown output “%(name)s”") % {"name": ref.name} + self.hint(ref.name, "output"),
            )
            return ""
        if ref.name not in self.outputs:
            if ref.name in self.broken_outputs:
                return ""
            self.problem(
                node,
                path,
                _("output “%(name)s” is defined later (outputs are computed in document order)")
                % {"name": ref.name},
            )
            return ""
        out = self.outputs[ref.name]
        return {"points": "integer"}.get(out.type, out.type)

    def read_condition(self, node: _Node, path: str):
        if node.kind != "map":
            self.problem(
                node, path, _("a condition is a mapping (all, any, not, metric, output or attribute)")
            )
            return None
        v = node.value
        for combinator, cls in (("all", AllOf), ("any", AnyOf)):
            if combinator in v:
                self.keys(node, path, (combinator,))
                items = v[combinator]
                if items.kind != "seq" or not items.value:
                    self.problem(items, f"{path}.{combinator}", _("expected a list of conditions"))
                    return None
                return cls(
                    tuple(
                        self.read_condition(item, f"{path}.{combinator}[{i}]")
                        for i, item in enumerate(items.value)
                    )
                )
        if "not" in v:
            self.keys(node, path, ("not",))
            return NotOf(self.read_condition(v["not"], f"{path}.not"))
        if "attribute" in v:
            return self.read_attribute(node, path)
        subject_key = "metric" if "metric" in v else "output" if "output" in v else None
        if subject_key is None:
            self.problem(
                node, path, _("a condition is all, any, not, or starts with metric, output or attribute")
            )
            return None
        operators = (*COMPARATORS, "is", "in")
        self.keys(node, path, (subject_key, *operators))
        ops = [k for k in operators if k in v]
        if len(ops) != 1:
            self.problem(
                node, path, _("a condition has exactly one operator: %(ops)s") % {"ops": ", ".join(operators)}
            )
            return None
        op = ops[0]
        name = self.text_of(v[subject_key], f"{path}.{subject_key}") or ""
        subject = Ref(subject_key, name)
        unit = self.operand_unit(subject, v[subject_key], f"{path}.{subject_key}")
        rhs = v[op]
        sub = f"{path}.{op}"
        if op == "is":
            if not rhs.is_bool():
                self.problem(rhs, sub, _("“is” takes true or false"))
                return None
            if unit and unit != "boolean":
                self.problem(
                    rhs,
                    sub,
                    _("“is” applies to a yes/no value, and %(name)s is a %(u)s") % {"name": name, "u": unit},
                )
            return IsTrue(subject, rhs.as_bool())
        if op == "in":
            if unit and unit != "choice":
                self.problem(
                    rhs,
                    sub,
                    _("“in” applies to a choice output, and %(name)s is a %(u)s") % {"name": name, "u": unit},
                )
                return None
            values = tuple(value for value, _n, _p in self.name_list(rhs, sub))
            self.check_choice_values(name, rhs, sub, values)
            return InValues(subject, values)
        if unit == "choice":
            if op not in ("eq", "ne"):
                self.problem(rhs, sub, _("a choice is compared with eq, ne or in"))
                return None
            text = str(rhs.value)
            self.check_choice_values(name, rhs, sub, (text,))
            return Compare(subject, op, text)
        if unit == "boolean":
            self.problem(
                rhs,
                sub,
                _("%(name)s is a yes/no value: compare it with “is: true” or “is: false”") % {"name": name},
            )
            return None
        if rhs.kind == "map":
            return self.read_operand(subject, unit, op, rhs, sub)
        if not unit:
            return None
        decimals = None
        if subject.kind == "output" and unit == "number":
            decimals = self.outputs[name].decimals
        constant = self.constant(rhs, sub, unit, decimals)
        return Compare(subject, op, constant) if constant is not None else None

    def read_operand(self, subject: Ref, unit: str, op: str, node: _Node, path: str):
        if not self.keys(node, path, ("metric", "output", "times")):
            return None
        v = node.value
        key = "metric" if "metric" in v else "output" if "output" in v else None
        if key is None:
            self.problem(node, path, _("an operand names a metric or an output"))
            return None
        ref = Ref(key, self.text_of(v[key], f"{path}.{key}") or "")
        other = self.operand_unit(ref, v[key], f"{path}.{key}")
        factor, factor_text = Fraction(1), "1"
        if "times" in v:
            factor_text = str(v["times"].value).strip()
            match = _FRACTION.match(factor_text) if v["times"].kind == "scalar" else None
            if not match or (match.group("q") and Fraction(Decimal(match.group("q"))) == 0):
                self.problem(v["times"], f"{path}.times", _("times is a decimal or a fraction such as “1/6”"))
                return None
            factor = Fraction(Decimal(match.group("p"))) / Fraction(Decimal(match.group("q") or "1"))
        numeric = {"quantity", "amount", "count", "integer", "number", "ratio"}
        if (
            unit
            and other
            and (
                unit not in numeric
                or other not in numeric
                or (unit != other and {unit, other} - {"count", "integer", "number"})
            )
        ):
            self.problem(node, path, _("cannot compare a %(a)s with a %(b)s") % {"a": unit, "b": other})
            return None
        return Compare(subject, op, Operand(ref, factor, factor_text))

    def check_choice_values(self, output: str, node: _Node, path: str, values: tuple[str, ...]) -> None:
        out = self.outputs.get(output)
        if out is None or out.type != "choice":
            return
        for value in values:
            if value not in out.values:
                self.problem(
                    node,
                    path,
                    _("“%(v)s” is not a value of %(o)s (%(all)s)")
                    % {"v": value, "o": output, "all": ", ".join(out.values)},
                )

    def read_attribute(self, node: _Node, path: str):
        self.keys(node, path, ("attribute", "equals", "in"))
        v = node.value
        attribute = self.text_of(v["attribute"], f"{path}.attribute") or ""
        if attribute not in ATTRIBUTES:
            close = difflib.get_close_matches(attribute, ATTRIBUTES, n=1)
            hint = (_(" (did you mean “%(name)s”?)") % {"name": close[0]}) if close else ""
            self.problem(
                v["attribute"], f"{path}.attribute", _("unknown attribute “%(a)s”") % {"a": attribute} + hint
            )
            return None
        if ("equals" in v) == ("in" in v):
            self.problem(node, path, _("an attribute condition has “equals” or “in”"))
            return None
        key = "equals" if "equals" in v else "in"
        if key == "equals":
            values = (self.text_of(v[key], f"{path}.equals") or "",)
        else:
            values = tuple(value for value, _n, _p in self.name_list(v[key], f"{path}.in"))
        return InValues(attribute, values)

    # -------------------------------------------------------------- responsibility

    def read_responsibility(self, node: _Node) -> Responsibility | None:
        path = "responsibility"
        if not self.keys(node, path, ("from", "table"), required=("from", "table")):
            return None
        v = node.value
        if "from" not in v or "table" not in v:
            return None
        sources = []
        for name, nnode, npath in self.name_list(v["from"], f"{path}.from"):
            if name not in self.output_order:
                self.problem(
                    nnode, npath, _("unknown output “%(name)s”") % {"name": name} + self.hint(name, "output")
                )
            sources.append(name)
        table_node = v["table"]
        if table_node.kind != "seq" or not table_node.value:
            self.problem(table_node, f"{path}.table", _("the table is a list of {when, level}"))
            return None
        rows = []
        for i, row in enumerate(table_node.value):
            sub = f"{path}.table[{i}]"
            if not self.keys(row, sub, ("when", "otherwise", "level"), required=("level",)):
                continue
            r = row.value
            level = self.text_of(r["level"], f"{sub}.level") if "level" in r else None
            if level is not None and level not in LEVELS:
                self.problem(
                    r["level"],
                    f"{sub}.level",
                    _("unknown level “%(l)s” (levels: %(all)s)") % {"l": level, "all": ", ".join(LEVELS)},
                )
            if ("when" in r) == ("otherwise" in r):
                self.problem(row, sub, _("a row has either “when” or “otherwise: true”"))
                continue
            when = []
            if "when" in r:
                if r["when"].kind != "map" or not r["when"].value:
                    self.problem(r["when"], f"{sub}.when", _("“when” maps outputs to their values"))
                    continue
                for output, vnode in r["when"].value.items():
                    wpath = f"{sub}.when.{output}"
                    if output not in sources:
                        self.problem(
                            vnode, wpath, _("“%(o)s” is not listed in responsibility.from") % {"o": output}
                        )
                        continue
                    out = self.outputs.get(output)
                    items = vnode.value if vnode.kind == "seq" else [vnode]
                    accepted = []
                    for item in items:
                        if item.is_null():
                            accepted.append(None)
                        elif item.is_bool():
                            accepted.append(item.as_bool())
                            if out is not None and out.type != "boolean":
                                self.problem(item, wpath, _("%(o)s is not a yes/no output") % {"o": output})
                        else:
                            accepted.append(str(item.value))
                            if out is not None and out.type == "choice" and str(item.value) not in out.values:
                                self.problem(
                                    item,
                                    wpath,
                                    _("“%(v)s” is not a value of %(o)s (%(all)s)")
                                    % {"v": item.value, "o": output, "all": ", ".join(out.values)},
                                )
                    when.append((output, tuple(accepted)))
            elif not (r["otherwise"].is_bool() and r["otherwise"].as_bool()):
                self.problem(r["otherwise"], f"{sub}.otherwise", _("write “otherwise: true”"))
            if level is not None:
                rows.append(ResponsibilityRow(tuple(when), level))
        return Responsibility(tuple(sources), tuple(rows))


def _fraction_text(value: Fraction) -> str:
    if 10**12 % value.denominator == 0:
        return str(Decimal(value.numerator) / Decimal(value.denominator))
    return f"{value.numerator}/{value.denominator}"


def policy_parse(text: str) -> Policy:
    """Parse and validate a YAML policy document; raise PolicyInvalid listing every problem found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        message = _("malformed YAML: %(problem)s") % {"problem": exc.problem or exc.context or "?"}
        raise PolicyInvalid([PolicyProblem(line, column, "", message)]) from exc
    except yaml.YAMLError as exc:
        raise PolicyInvalid([PolicyProblem(None, None, "", _("malformed YAML: %(e)s") % {"e": exc})]) from exc
    if root is None:
        raise PolicyInvalid([PolicyProblem(None, None, "", _("the document is empty"))])
    reader = _Reader(text)
    policy = reader.read(reader.convert(root, ""))
    if policy is None or reader.problems:
        raise PolicyInvalid(
            reader.problems or [PolicyProblem(None, None, "", _("the document is not a policy"))]
        )
    return policy
