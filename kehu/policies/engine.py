"""Evaluate a parsed policy for every customer of a month with Polars: a compiler from the policy's
constructs to vectorised expressions, one function per construct, no per-customer Python.

Numbers are scaled integers (``MONEY_SCALE`` fen, ``QUANTITY_SCALE`` thousandths of the product's unit)
and every comparison is exact: a scaled value against a constant compares integers, ratios and operands
cross-multiply in Int128 (a value is a numerator over a positive denominator). So ``0.1 t`` fifty times
is exactly ``5 t`` and ``a/b ≥ 3‰`` is ``1000·a ≥ 3·b``. docs/policy-language.md describes the language.
"""

from __future__ import annotations

import datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import reduce

import numpy as np
import polars as pl
from django.utils.translation import gettext as _

from kehu.core.errors import ServiceError
from kehu.policies.language import (
    COMPARATORS,
    NEGATED,
    AllOf,
    AnyOf,
    Compare,
    Constant,
    InValues,
    IsTrue,
    Metric,
    NotOf,
    Operand,
    Output,
    Policy,
    Ref,
)

MONEY_SCALE = 100
QUANTITY_SCALE = 1000
MEASURE_COLUMNS = {"quantity": "quantity_milli", "amount": "amount_fen", "transactions": "txn_count"}
ATTRIBUTE_COLUMNS = ("kind", "sub_type", "status", "payment_profile")
I128 = pl.Int128
# "any" explanations list every false branch up to this many, then just count them.
MAX_LISTED_FAILURES = 4


def _lit(value: int) -> pl.Expr:
    return pl.lit(value, dtype=I128)


def _metric_col(name: str) -> str:
    return f"m:{name}"


def _output_col(name: str) -> str:
    return f"o:{name}"


def _text_col(ref: Ref) -> str:
    return f"t:{ref.kind}:{ref.name}"


def _why_col(name: str) -> str:
    return f"w:{name}"


def _month_end(month: datetime.date) -> datetime.date:
    following = datetime.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return following - datetime.timedelta(days=1)


# ------------------------------------------------------------------ decimal text


def decimal_text(expr: pl.Expr, decimals: int) -> pl.Expr:
    """A scaled integer (``decimals`` digits after the point) as exact decimal text, e.g. 5000 → "5.000".
    The integer as a Decimal of scale 0 times the Decimal 10^-decimals is the same digits at that scale:
    exact, no division, and several times faster than assembling the text from quotient and remainder."""
    if decimals == 0:
        return expr.cast(pl.Utf8)
    unit = pl.lit(Decimal(1).scaleb(-decimals), dtype=pl.Decimal(38, decimals))
    return (expr.cast(pl.Decimal(38, 0)) * unit).cast(pl.Utf8)


def _rounded_quotient(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator rounded half up (denominator > 0), in Int128."""
    return (numerator * 2 + denominator) // (denominator * 2)


# ------------------------------------------------------------------ the compiler


class _Compiler:
    """Turns the policy's constructs into expressions over the frame of metric and output columns."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.metrics = {m.name: m for m in policy.metrics}
        self.outputs = {o.name: o for o in policy.outputs}

    # -------------------------------------------------------------- values

    def unit(self, ref: Ref) -> str:
        if ref.kind == "metric":
            return self.metrics[ref.name].unit
        out = self.outputs[ref.name]
        return {"points": "integer"}.get(out.type, out.type)

    def rational(self, ref: Ref) -> tuple[pl.Expr, pl.Expr]:
        """(numerator, denominator > 0) of a numeric metric or output, both Int128."""
        if ref.kind == "output":
            out = self.outputs[ref.name]
            return pl.col(_output_col(ref.name)).cast(I128), _lit(out.scale)
        metric = self.metrics[ref.name]
        if metric.unit != "ratio":
            return pl.col(_metric_col(ref.name)).cast(I128), _lit(metric.scale)
        top, bottom = (self.metrics[p] for p in metric.parts)
        num = pl.col(_metric_col(top.name)).cast(I128) * bottom.scale
        den = pl.col(_metric_col(bottom.name)).cast(I128) * top.scale
        # b = 0 gives a ratio of 0; a negative denominator flips both signs so the denominator stays positive.
        sign = pl.when(den < 0).then(_lit(-1)).otherwise(_lit(1))
        return (
            pl.when(den == 0).then(_lit(0)).otherwise(num * sign),
            pl.when(den == 0).then(_lit(1)).otherwise(den * sign),
        )

    def display(self, ref: Ref) -> pl.Expr:
        """A metric's or output's value as text ("5.000", "1200.00", "1.23‰", "true", "n/a"); computed once
        per customer into a ``t:`` column that explanations and the metrics JSON reuse."""
        unit = self.unit(ref)
        if ref.kind == "output":
            out = self.outputs[ref.name]
            return _value_text(out, pl.col(_output_col(ref.name)))
        metric = self.metrics[ref.name]
        col = pl.col(_metric_col(ref.name))
        if unit == "boolean":
            return pl.when(col).then(pl.lit("true")).otherwise(pl.lit("false"))
        if unit in ("quantity", "amount"):
            return decimal_text(col, 3 if unit == "quantity" else 2)
        if unit == "count":
            return col.cast(pl.Utf8)
        num, den = self.rational(ref)
        factor, suffix, decimals = {
            "permille": (1000, "‰", 2),
            "percent": (100, "%", 2),
            "plain": (1, "", 4),
        }[metric.shown_as]
        scaled = _rounded_quotient(num * (factor * 10**decimals), den)
        return pl.concat_str([decimal_text(scaled, decimals), pl.lit(suffix)])

    def shown(self, ref: Ref) -> pl.Expr:
        return pl.col(_text_col(ref))

    def label(self, ref: Ref) -> str:
        """The name before a value in explanations, with the currency sign for amounts."""
        return ref.name + (" ¥" if self.unit(ref) == "amount" else " ")

    # -------------------------------------------------------------- conditions

    def condition(self, cond) -> pl.Expr:
        """A Boolean expression, never null (a comparison with a not-applicable output is false)."""
        if isinstance(cond, AllOf):
            return reduce(lambda a, b: a & b, (self.condition(c) for c in cond.items))
        if isinstance(cond, AnyOf):
            return reduce(lambda a, b: a | b, (self.condition(c) for c in cond.items))
        if isinstance(cond, NotOf):
            return ~self.condition(cond.item)
        if isinstance(cond, IsTrue):
            col = self._subject_col(cond.subject)
            return (col == cond.value).fill_null(False)
        if isinstance(cond, InValues):
            col = pl.col(cond.subject) if isinstance(cond.subject, str) else self._subject_col(cond.subject)
            return col.is_in(list(cond.values)).fill_null(False)
        if isinstance(cond, Compare):
            return self.comparison(cond)
        raise TypeError(cond)

    def _subject_col(self, ref: Ref) -> pl.Expr:
        return pl.col(_metric_col(ref.name) if ref.kind == "metric" else _output_col(ref.name))

    def comparison(self, cond: Compare) -> pl.Expr:
        if isinstance(cond.rhs, str):  # a choice output against one of its values
            col = self._subject_col(cond.subject)
            return (col == cond.rhs if cond.op == "eq" else col != cond.rhs).fill_null(False)
        if isinstance(cond.rhs, Constant) and self.unit(cond.subject) != "ratio":
            # A constant with no more decimals than the subject's scale: compare the scaled integers as they are.
            scale = (
                self.outputs[cond.subject.name].scale
                if cond.subject.kind == "output"
                else (self.metrics[cond.subject.name].scale)
            )
            scaled = cond.rhs.value * scale
            if scaled.denominator == 1:
                col = self._subject_col(cond.subject)
                bound = pl.lit(int(scaled.numerator), dtype=pl.Int64)
                return {
                    "gte": col >= bound,
                    "gt": col > bound,
                    "lte": col <= bound,
                    "lt": col < bound,
                    "eq": col == bound,
                    "ne": col != bound,
                }[cond.op].fill_null(False)
        left_num, left_den = self.rational(cond.subject)
        if isinstance(cond.rhs, Constant):
            right_num, right_den = _lit(cond.rhs.value.numerator), _lit(cond.rhs.value.denominator)
        else:
            num, den = self.rational(cond.rhs.ref)
            right_num, right_den = num * cond.rhs.factor.numerator, den * cond.rhs.factor.denominator
        left, right = left_num * right_den, right_num * left_den
        result = {
            "gte": left >= right,
            "gt": left > right,
            "lte": left <= right,
            "lt": left < right,
            "eq": left == right,
            "ne": left != right,
        }[cond.op]
        return result.fill_null(False)

    # -------------------------------------------------------------- explanations
    #
    # An explanation is a set of mutually exclusive branches: (guard, pieces), the pieces being literal
    # texts and names of text columns. ``assemble`` turns them into ONE concat_str whose slots pick a
    # piece per row, so no string is built for a branch a row does not take.

    def why(self, cond, truth: bool) -> list[tuple[pl.Expr | None, tuple]]:
        """The branches explaining why ``cond`` has the value ``truth`` (on rows where it has)."""
        if isinstance(cond, NotOf):
            return self.why(cond.item, not truth)
        if isinstance(cond, AllOf | AnyOf):
            if isinstance(cond, AllOf) == truth:  # all true / any false: every branch counts
                return self._every(cond, truth)
            branches = []  # all false / any true: the first item with that value decides
            for item in cond.items:
                takes = self.condition(item) == truth
                branches += [(_and(takes, sub), pieces) for sub, pieces in self.why(item, truth)]
            return branches
        if isinstance(cond, IsTrue):
            return [(None, (("lit", cond.subject.name + " "), ("col", _text_col(cond.subject))))]
        if isinstance(cond, InValues):
            if isinstance(cond.subject, str):
                name, column = cond.subject, _attribute_text_col(cond.subject)
            else:
                name, column = cond.subject.name, _text_col(cond.subject)
            if len(cond.values) == 1:
                relation = (" = " if truth else " ≠ ") + cond.values[0]
            else:
                relation = (" in " if truth else " not in ") + "[" + ", ".join(cond.values) + "]"
            return [(None, (("lit", name + " "), ("col", column), ("lit", relation)))]
        op = cond.op if truth else NEGATED[cond.op]
        pieces = [
            ("lit", self.label(cond.subject)),
            ("col", _text_col(cond.subject)),
            ("lit", f" {COMPARATORS[op]} "),
        ]
        if isinstance(cond.rhs, str):
            pieces.append(("lit", cond.rhs))
        elif isinstance(cond.rhs, Constant):
            pieces.append(("lit", cond.rhs.text))
        else:
            pieces += [("lit", self.label(cond.rhs.ref)), ("col", _text_col(cond.rhs.ref))]
            if cond.rhs.factor != 1:
                pieces.append(("lit", f" × {cond.rhs.factor_text}"))
        return [(None, tuple(pieces))]

    def _every(self, cond, truth: bool) -> list[tuple[pl.Expr | None, tuple]]:
        """Every item of an all (true) or an any (false), joined with "and"; summarised when too many."""
        summary = [(None, (("lit", _("none of the %(n)s conditions holds") % {"n": len(cond.items)}),))]
        if not truth and len(cond.items) > MAX_LISTED_FAILURES:
            return summary
        combined = [(None, ())]
        for i, item in enumerate(cond.items):
            joiner = (("lit", " and "),) if i else ()
            combined = [
                (_and(guard, sub), pieces + joiner + more)
                for guard, pieces in combined
                for sub, more in self.why(item, truth)
            ]
            if len(combined) > MAX_BRANCHES:
                return (
                    summary
                    if not truth
                    else [(None, (("lit", _("all %(n)s conditions hold") % {"n": len(cond.items)}),))]
                )
        return combined

    def assemble(self, branches: list[tuple[pl.Expr | None, tuple]], index: str) -> tuple[pl.Expr, pl.Expr]:
        """(branch number, text) from ordered branches: the first whose guard holds explains the row.

        The branch number is computed first (column ``index``); each slot of the text then picks its
        piece by that number, so guards are evaluated once and no text is built for branches not taken."""
        branches = [(guard, _merge_literals(pieces)) for guard, pieces in branches]
        chosen = None
        for k, (guard, _pieces) in enumerate(branches):
            number = pl.lit(k, dtype=pl.UInt16)
            if guard is None:
                chosen = number if chosen is None else chosen.otherwise(number)
                branches = branches[: k + 1]
                break
            chosen = (pl.when(guard) if chosen is None else chosen.when(guard)).then(number)
        else:
            chosen = chosen.otherwise(pl.lit(len(branches), dtype=pl.UInt16))
        width = max(len(pieces) for _guard, pieces in branches)
        slots = []
        for j in range(width):
            options: dict[tuple, list[int]] = {}
            for k, (_guard, pieces) in enumerate(branches):
                options.setdefault(pieces[j] if j < len(pieces) else ("lit", ""), []).append(k)
            if len(options) == 1:
                slots.append(_piece(next(iter(options))))
                continue
            # Literal pieces come from one gather by branch number (the last entry: no branch); a column
            # piece replaces it on the rows of its branches.
            literal = [""] * (len(branches) + 1)
            for piece, numbers in options.items():
                if piece[0] == "lit":
                    for k in numbers:
                        literal[k] = piece[1]
            chain = pl.lit(pl.Series(literal, dtype=pl.Utf8)).gather(pl.col(index))
            for piece, numbers in options.items():
                if piece[0] == "col":
                    test = pl.col(index).is_in(numbers) if len(numbers) > 1 else pl.col(index) == numbers[0]
                    chain = pl.when(test).then(_piece(piece)).otherwise(chain)
            slots.append(chain)
        return chosen, pl.concat_str(slots) if len(slots) > 1 else slots[0]

    # -------------------------------------------------------------- outputs

    def output(self, out: Output) -> tuple[pl.Expr, list[tuple[pl.Expr | None, tuple]]]:
        """(value, explanation branches) before ``applies_if`` and overrides."""
        if out.rules:
            return self.first_match(out)
        if out.condition is not None:
            holds = self.condition(out.condition)
            branches = [(_and(holds, g), p) for g, p in self.why(out.condition, True)]
            branches += [(_and(~holds, g), p) for g, p in self.why(out.condition, False)]
            return holds, branches
        if out.brackets:
            return self.brackets(out)
        return self.weighted(out)

    def first_match(self, out: Output) -> tuple[pl.Expr, list]:
        dtype = pl.Utf8 if out.type == "choice" else pl.Int64
        value, branches, last_condition = None, [], None
        for rule in out.rules:  # branches are ordered: a rule's explanation is reached only if it matched
            constant = pl.lit(rule.value, dtype=dtype)
            if rule.condition is None:
                value = constant if value is None else value.otherwise(constant)
                if last_condition is None:
                    branches.append((None, (("lit", _("always")),)))
                else:
                    branches += self.why(last_condition, False)
                break
            holds = self.condition(rule.condition)
            branches += [(_and(holds, g), p) for g, p in self.why(rule.condition, True)]
            value = pl.when(holds).then(constant) if value is None else value.when(holds).then(constant)
            last_condition = rule.condition
        return value, branches

    def brackets(self, out: Output) -> tuple[pl.Expr, list]:
        subject = Ref("metric", out.brackets_of)
        value, branches = None, []
        head = (("lit", self.label(subject)), ("col", _text_col(subject)))
        for bracket in out.brackets:  # highest first; the table chains, so "≥ min" picks the bracket
            holds = self.comparison(Compare(subject, "gte", bracket.min))
            span = (
                f" ≥ {bracket.min.text}"
                if bracket.max is None
                else f" in [{bracket.min.text}, {bracket.max.text})"
            )
            branches.append((holds, (*head, ("lit", span))))
            points = pl.lit(bracket.points, dtype=pl.Int64)
            value = pl.when(holds).then(points) if value is None else value.when(holds).then(points)
        branches.append((None, (*head, ("lit", f" < {out.brackets[-1].min.text}"))))
        return value.otherwise(pl.lit(0, dtype=pl.Int64)), branches

    def weighted(self, out: Output) -> tuple[pl.Expr, list]:
        terms, pieces = [], []
        for i, item in enumerate(out.weighted):
            source = self.outputs[item.of]
            coefficient = item.weight.value * out.scale / source.scale  # an integer: validated by the parser
            terms.append(pl.col(_output_col(item.of)).cast(pl.Int64) * int(coefficient))
            percent = item.weight.value * 100
            weight_text = f"{percent.numerator}%" if percent.denominator == 1 else item.weight.text
            pieces += [
                ("lit", (" + " if i else "") + item.of + " "),
                ("col", _text_col(Ref("output", item.of))),
                ("lit", f" × {weight_text}"),
            ]
        return reduce(lambda a, b: a + b, terms), [(None, tuple(pieces))]


MAX_BRANCHES = 64


def _and(guard: pl.Expr | None, other: pl.Expr | None) -> pl.Expr | None:
    if guard is None:
        return other
    return guard if other is None else guard & other


def _merge_literals(pieces: tuple) -> tuple:
    merged: list = []
    for kind, text in pieces:
        if kind == "lit" and merged and merged[-1][0] == "lit":
            merged[-1] = ("lit", merged[-1][1] + text)
        elif not (kind == "lit" and text == ""):
            merged.append((kind, text))
    return tuple(merged) or (("lit", ""),)


def _piece(piece: tuple) -> pl.Expr:
    kind, text = piece
    return pl.lit(text, dtype=pl.Utf8) if kind == "lit" else pl.col(text)


def _attribute_text_col(attribute: str) -> str:
    return f"t:attribute:{attribute}"


# ------------------------------------------------------------------ metrics


# The (cell, customer) matrix of window sums is filled this many Int64 entries at a time (512 MB); a policy
# with more cells per customer than fit is summed in several passes, so memory stays bounded.
MAX_ACCUMULATOR_CELLS = 64_000_000


def _metric_frame(
    policy: Policy,
    month: datetime.date,
    customers: pl.DataFrame,
    facts: pl.LazyFrame,
    agreements: pl.DataFrame,
) -> pl.LazyFrame:
    """One row per customer (in ``customers``' order) with its attributes and every metric as a column
    ``m:<name>``: window sums and counts from one pass over the facts (``_windowed_metrics``), agreement
    flags, then totals over the customers."""
    frame = customers.select("customer_id", *ATTRIBUTE_COLUMNS)
    windowed = [m for m in policy.metrics if m.kind in ("sum", "count_products", "count_months")]
    if windowed:
        frame = frame.with_columns(
            _windowed_metrics(windowed, list(policy.products), month, customers, facts)
        )
    agreement_flags = [
        pl.col("customer_id")
        .is_in(_agreement_holders(m, month, agreements).implode())
        .alias(_metric_col(m.name))
        for m in policy.metrics
        if m.kind == "agreement"
    ]
    frame = frame.lazy()
    if agreement_flags:
        frame = frame.with_columns(agreement_flags)
    for metric in _totals_in_order(policy):
        # A total is over every customer being evaluated; Int128 so that a province's sum cannot overflow.
        frame = frame.with_columns(
            pl.col(_metric_col(metric.of)).cast(I128).sum().alias(_metric_col(metric.name))
        )
    return frame


def _windowed_metrics(
    metrics: list[Metric],
    products: list[str],
    month: datetime.date,
    customers: pl.DataFrame,
    facts: pl.LazyFrame,
) -> list[pl.Series]:
    """The sums and counts over windows of months, in ONE pass over the facts.

    The months the policy reads are cut into segments: runs of days that belong to the same windows (and,
    in a ``count_months`` window, each month on its own). Every fact row adds its figure to the cell
    (segment × product, customer) of a dense integer matrix (``numpy.add.at``: exact Int64, no hashing, the
    customer's row found through an array indexed by customer_id); a sum is then the sum of some cells, a
    ``count_products`` the number of products whose cells sum to a positive figure, a ``count_months`` the
    number of its months that do. The matrix follows ``customers``' rows, so no join either.
    """
    windows = {m.name: m.window.months(month) for m in metrics}
    first, last = min(min(w) for w in windows.values()), max(max(w) for w in windows.values())
    bounds = sorted({(min(w), max(w)) for w in windows.values()})
    counted = [(min(windows[m.name]), max(windows[m.name])) for m in metrics if m.kind == "count_months"]
    segments: dict[tuple, int] = {}
    runs: list[tuple[datetime.date, int]] = []  # (first day, segment) of each run of days, in order
    day = first
    while day <= last:  # a window covers the days from its first month's first day to its last month's
        signature = (
            tuple(low <= day <= high for low, high in bounds),
            day.replace(day=1) if any(low <= day <= high for low, high in counted) else None,
        )
        segment = segments.setdefault(signature, len(segments)) if any(signature[0]) else -1
        if not runs or runs[-1][1] != segment:
            runs.append((day, segment))
        day += datetime.timedelta(days=1)

    # The cells each metric adds up: the segments of its window × its product codes.
    parts = {}
    for metric in metrics:
        column = bounds.index((min(windows[metric.name]), max(windows[metric.name])))
        parts[metric.name] = (
            [s for signature, s in segments.items() if signature[0][column]],
            [products.index(p) for p in metric.products],
        )
    width = len(segments) * len(products)  # cells per customer: segment × product
    month_of_segment = {s: signature[1] for signature, s in segments.items()}

    ids = customers["customer_id"].cast(pl.Int64).to_numpy()
    n = len(ids)
    rows = facts.filter(pl.col("month").is_between(first, last))
    if n and ids.min() >= 0 and ids.max() <= 8 * n + 1_000_000:
        # Customer ids are database keys, dense from 1: an array indexed by id gives a customer's row.
        lookup = np.full(int(ids.max()) + 2, -1, dtype=np.int32 if n < 2**31 else np.int64)
        lookup[ids] = np.arange(n)
        row_of = lookup[ids]  # a customer listed twice takes its last row's figures
        customer_id = pl.col("customer_id").cast(pl.Int64)
        position = pl.lit(pl.Series(lookup)).gather(
            pl.when(customer_id.is_between(0, len(lookup) - 2)).then(customer_id).otherwise(len(lookup) - 1)
        )
    else:
        keys, row_of = np.unique(ids, return_inverse=True)
        n = len(keys)
        rows = rows.with_columns(pl.col("customer_id").cast(pl.Int64)).join(
            pl.LazyFrame({"customer_id": keys, "position": np.arange(n, dtype=np.int64)}),
            on="customer_id",
            how="left",
        )
        position = pl.col("position")
    segment = pl.lit(-1, dtype=pl.Int32)
    for start, number in runs:  # later runs override: the last run starting on or before the day wins
        segment = pl.when(pl.col("month") >= start).then(pl.lit(number, dtype=pl.Int32)).otherwise(segment)
    code = pl.lit(-1, dtype=pl.Int32)
    for index, product in enumerate(products):
        code = pl.when(pl.col("product") == product).then(pl.lit(index, dtype=pl.Int32)).otherwise(code)
    slot = pl.when((segment >= 0) & (code >= 0)).then(segment * len(products) + code).otherwise(-1)
    position = position.fill_null(-1)
    # The matrix is filled in passes of at most MAX_ACCUMULATOR_CELLS cells (one pass at a million
    # customers and up to 64 cells each); every pass has its key column, the row of a fact in that pass's
    # slice of the matrix (slot-major: a metric then adds whole contiguous rows), or a spare entry.
    per_pass = max(1, MAX_ACCUMULATOR_CELLS // max(n, 1))
    passes = [(start, min(start + per_pass, width)) for start in range(0, width, per_pass)]
    key_type = pl.Int32 if per_pass * n < 2**31 else pl.Int64  # half the memory traffic of Int64 keys
    measures = sorted({MEASURE_COLUMNS[m.measure] for m in metrics})
    # slot and position first, as columns, so that the key expressions do not evaluate them again.
    rows = rows.select(
        slot.cast(key_type).alias("slot"),
        position.cast(key_type).alias("position"),
        *[pl.col(c).cast(pl.Int64).fill_null(0).alias(c) for c in measures],
    )
    slot, position = pl.col("slot"), pl.col("position")
    rows = rows.select(
        *[
            pl.when(slot.is_between(start, stop - 1) & (position >= 0))
            .then((slot - start) * n + position)
            .otherwise(pl.lit((stop - start) * n, dtype=key_type))
            .alias(f"key{k}")
            for k, (start, stop) in enumerate(passes)
        ],
        *measures,
    ).collect()
    keys = [rows[f"key{k}"].to_numpy() for k in range(len(passes))]
    sums: dict[str, dict[int, np.ndarray]] = {}  # per measure, per cell: the sums per customer row
    for measure in measures:
        values = rows[measure].to_numpy()
        in_use = np.zeros(width, dtype=bool)  # the cells this measure's metrics read
        for metric in metrics:
            if MEASURE_COLUMNS[metric.measure] == measure:
                in_window, codes = parts[metric.name]
                in_use[[s * len(products) + c for s in in_window for c in codes]] = True
        sums[measure] = {}
        for k, (start, stop) in enumerate(passes):
            if not in_use[start:stop].any():
                continue
            key, added = keys[k], values
            if n and 2 * in_use[start:stop].sum() <= stop - start:
                # Most cells are another measure's (fuel: amounts only for the card): drop their rows first.
                keep = np.append(in_use[start:stop], False)[key // n]  # the spare entry: slot stop - start
                key, added = key[keep], values[keep]
            part = np.zeros((stop - start) * n + 1, dtype=np.int64)
            np.add.at(part, key, added)  # exact Int64 sums, unbuffered
            for cell in range(start, stop):
                sums[measure][cell] = part[(cell - start) * n : (cell - start + 1) * n]

    identity = np.array_equal(row_of, np.arange(len(row_of)))
    columns = []
    for metric in metrics:
        cells = sums[MEASURE_COLUMNS[metric.measure]]
        in_window, codes = parts[metric.name]
        if metric.kind == "sum":
            value = _add_rows(cells, [s * len(products) + c for s in in_window for c in codes], n)
        else:
            if metric.kind == "count_products":
                groups = [[s * len(products) + c for s in in_window] for c in codes]
            else:  # the segments of one month (days of a month may fall in different windows) count once
                by_month: dict[datetime.date, list[int]] = {}
                for s in in_window:
                    by_month.setdefault(month_of_segment[s], []).append(s)
                groups = [
                    [s * len(products) + c for s in group for c in codes] for group in by_month.values()
                ]
            value = np.zeros(n, dtype=np.int64)
            for group in groups:
                value += _add_rows(cells, group, n) > 0
        columns.append(
            pl.Series(_metric_col(metric.name), value if identity else value[row_of], dtype=pl.Int64)
        )
    return columns


def _add_rows(cells: dict[int, np.ndarray], chosen: list[int], n: int) -> np.ndarray:
    total = np.zeros(n, dtype=np.int64)
    for cell in chosen:
        total += cells[cell]
    return total


def _totals_in_order(policy: Policy) -> list[Metric]:
    by_name = {m.name: m for m in policy.metrics}
    ordered: list[Metric] = []

    def add(metric: Metric) -> None:
        if metric in ordered:
            return
        if by_name[metric.of].kind == "total":
            add(by_name[metric.of])
        ordered.append(metric)

    for metric in policy.metrics:
        if metric.kind == "total":
            add(metric)
    return ordered


def _agreement_holders(metric: Metric, month: datetime.date, agreements: pl.DataFrame) -> pl.Series:
    """Customers with an agreement active in the month: not a draft, started on or before its last day,
    not ended before its first day; optionally only some signing levels and types."""
    active = (
        (pl.col("status") != "draft")
        & (pl.col("start_date") <= _month_end(month))
        & (pl.col("end_date").is_null() | (pl.col("end_date") >= month))
    )
    if metric.levels:
        active &= pl.col("signing_level").is_in(list(metric.levels))
    if metric.types:
        active &= pl.col("agreement_type").is_in(list(metric.types))
    return agreements.lazy().filter(active).select(pl.col("customer_id").unique()).collect()["customer_id"]


# ------------------------------------------------------------------ overrides


def _override_values(policy: Policy, overrides: pl.DataFrame | None) -> dict[str, tuple[dict, pl.DataFrame]]:
    """Per output: the typed forced value of each distinct override text, and the overrides themselves.

    Overrides of outputs this policy does not have are left out (a draft or a new version may drop an
    output); of two overrides of one customer's output the later row wins. A value the output cannot
    take is refused, naming the override."""
    if overrides is None or overrides.height == 0:
        return {}
    names = {o.name for o in policy.outputs}
    overrides = overrides.filter(pl.col("output").is_in(list(names))).unique(
        subset=["customer_id", "output"], keep="last", maintain_order=True
    )
    result = {}
    for output in overrides["output"].unique().to_list():
        out = policy.output(output)
        rows = overrides.filter(pl.col("output") == output)
        typed = {}
        for text in rows["value"].unique().to_list():
            try:
                typed[text] = _forced_value(out, text or "")
            except ServiceError as exc:
                note = rows.filter(pl.col("value") == text)["note"][0]
                raise ServiceError(f"{exc.message} ({note})", field="overrides") from exc
        result[output] = (typed, rows)
    return result


def _forced_value(out: Output, text: str):
    text = text.strip()
    if text == "":
        return None
    problem = None
    if out.type == "choice":
        if text in out.values:
            return text
        problem = _("“%(v)s” is not a value of %(o)s") % {"v": text, "o": out.name}
    elif out.type == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        problem = _("%(o)s is overridden with true or false") % {"o": out.name}
    else:
        try:
            value = Fraction(Decimal(text)) * out.scale
        except (InvalidOperation, ValueError):
            value = None
        if value is not None and value.denominator == 1:
            return int(value)
        problem = _("“%(v)s” is not a valid %(o)s (at most %(d)s decimals)") % {
            "v": text,
            "o": out.name,
            "d": out.decimals,
        }
    raise ServiceError(problem, field="overrides")


def _apply_override(frame: pl.DataFrame, out: Output, forced: tuple[dict, pl.DataFrame]) -> pl.DataFrame:
    """Force the output's value on the overridden customers; their explanation keeps what the rules gave.

    A handful of overrides against a million customers: the rows are found by id and only they are
    rewritten (scattered back), rather than joining and rebuilding every explanation."""
    typed, rows = forced
    dtype = {"choice": pl.Utf8, "boolean": pl.Boolean}.get(out.type, pl.Int64)
    rows = rows.filter(pl.col("customer_id").is_not_null())
    ids = rows["customer_id"].cast(pl.Int64)
    where = frame.select(pl.col("customer_id").cast(pl.Int64).is_in(ids.implode())).to_series().arg_true()
    if where.len() == 0:
        return frame
    output, why = _output_col(out.name), _why_col(out.name)
    customer_id = pl.col("customer_id").cast(pl.Int64)
    changed = frame.select("customer_id", output, why)[where].select(
        customer_id.replace_strict(
            ids, rows["value"].replace_strict(typed, return_dtype=dtype), return_dtype=dtype
        ).alias(output),
        pl.concat_str(
            [
                pl.lit(" (override: "),
                customer_id.replace_strict(ids, rows["note"].fill_null(""), return_dtype=pl.Utf8),
                pl.lit(_("; rules gave ")),
                _value_text(out, pl.col(output)),
                pl.col(why),
                pl.lit(")"),
            ]
        ).alias(why),
    )
    return frame.with_columns(
        frame[output].scatter(where, changed[output]),
        frame[why].scatter(where, changed[why]),
    )


# ------------------------------------------------------------------ evaluation


def _referenced_metrics(policy: Policy) -> list[str]:
    """Metrics the outputs read (with a ratio's parts), in declaration order: the ``metrics`` JSON."""
    used: set[str] = set()

    def walk(cond) -> None:
        if isinstance(cond, AllOf | AnyOf):
            for c in cond.items:
                walk(c)
        elif isinstance(cond, NotOf):
            walk(cond.item)
        elif isinstance(cond, Compare | IsTrue | InValues):
            for ref in (cond.subject, getattr(cond, "rhs", None)):
                ref = ref.ref if isinstance(ref, Operand) else ref
                if isinstance(ref, Ref) and ref.kind == "metric":
                    used.add(ref.name)

    for out in policy.outputs:
        for cond in (out.applies_if, out.condition, *(r.condition for r in out.rules)):
            if cond is not None:
                walk(cond)
        if out.brackets_of:
            used.add(out.brackets_of)
    by_name = {m.name: m for m in policy.metrics}
    for name in list(used):
        if by_name[name].kind == "ratio":
            used.update(by_name[name].parts)
    return [m.name for m in policy.metrics if m.name in used]


def _value_text(out: Output, col: pl.Expr) -> pl.Expr:
    if out.type == "boolean":
        return pl.when(col).then(pl.lit("true")).otherwise(pl.lit("false")).fill_null(pl.lit("n/a"))
    if out.type == "number":
        return decimal_text(col, out.decimals).fill_null(pl.lit("n/a"))
    return col.cast(pl.Utf8).fill_null(pl.lit("n/a"))


def policy_evaluate(
    policy: Policy,
    *,
    month: datetime.date,
    customers: pl.DataFrame,
    facts: pl.LazyFrame | pl.DataFrame,
    agreements: pl.DataFrame,
    overrides: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every output of ``policy`` for every customer in ``customers`` for the closed ``month``, with the
    responsible level, the metrics used (JSON) and a one-line explanation. See docs/policy-language.md."""
    if month.day != 1:
        raise ServiceError(_("The month is given by its first day."), field="month")
    facts = facts.lazy() if isinstance(facts, pl.DataFrame) else facts
    compiler = _Compiler(policy)
    forced = _override_values(policy, overrides)
    used = _referenced_metrics(policy)
    frame = _with_metric_texts(
        _metric_frame(policy, month, customers, facts, agreements).collect(), compiler, used
    )
    frame = frame.lazy().with_columns(
        [pl.col(a).fill_null(pl.lit("(none)")).alias(_attribute_text_col(a)) for a in ATTRIBUTE_COLUMNS]
    )
    for out in policy.outputs:
        frame = _evaluate_output(frame, compiler, out, forced.get(out.name))
    columns = [pl.col("customer_id")]
    for out in policy.outputs:
        col = pl.col(_output_col(out.name))
        if out.type == "number":  # its text column says "n/a" when empty; the result column is null
            col = pl.when(col.is_null()).then(None).otherwise(pl.col(_text_col(Ref("output", out.name))))
        columns.append(col.alias(out.name))
    columns += [
        _responsible_level(policy).alias("responsible_level"),
        _metrics_json(compiler, used).alias("metrics"),
        _explanation(policy).alias("explanation"),
    ]
    return frame.select(columns).collect()


def _with_metric_texts(frame: pl.DataFrame, compiler: _Compiler, used: list[str]) -> pl.DataFrame:
    """Add the display text (``t:``) of every metric the outputs use.

    A product line's or a single month's amount is zero for most customers: when at least a quarter of
    a column is zero, only its non-zero values are formatted and scattered over a column of "0.00"."""
    texts, sparse = [], []
    for name in used:
        ref = Ref("metric", name)
        values = frame[_metric_col(name)] if compiler.unit(ref) in ("quantity", "amount") else None
        if values is not None and values.null_count() == 0:
            nonzero = values != 0
            if 4 * nonzero.sum() <= 3 * len(values):
                sparse.append((ref, values, nonzero))
                continue
        texts.append(compiler.display(ref).alias(_text_col(ref)))
    frame = frame.with_columns(texts)
    columns = []
    for ref, values, nonzero in sparse:
        decimals = 3 if compiler.unit(ref) == "quantity" else 2
        zero = pl.select(decimal_text(pl.lit(0, dtype=pl.Int64), decimals)).item()
        shown = pl.select(decimal_text(pl.lit(values.filter(nonzero)), decimals)).to_series()
        column = pl.Series(_text_col(ref), [zero], dtype=pl.Utf8).new_from_index(0, len(values))
        columns.append(column.scatter(nonzero.arg_true(), shown))
    return frame.with_columns(columns)


def _evaluate_output(
    frame: pl.LazyFrame, compiler: _Compiler, out: Output, forced: tuple[dict, pl.DataFrame] | None
) -> pl.LazyFrame:
    """Add the output's value (``o:``), its explanation (``w:``) and its display text (``t:``)."""
    value, branches = compiler.output(out)
    if out.type == "number":
        value = value.cast(pl.Int64)
    if out.applies_if is not None:
        applies = compiler.condition(out.applies_if)
        value = pl.when(applies).then(value).otherwise(None)
        branches = [(_and(applies, g), p) for g, p in branches] + [
            (_and(~applies, g), p) for g, p in compiler.why(out.applies_if, False)
        ]
    chosen, why = compiler.assemble([(g, (("lit", ": "), *p)) for g, p in branches], "b:chosen")
    frame = frame.with_columns(value.alias(_output_col(out.name)), chosen.alias("b:chosen"))
    frame = frame.with_columns(why.alias(_why_col(out.name))).drop("b:chosen")
    if forced is not None:
        frame = _apply_override(frame.collect(), out, forced).lazy()
    output_ref = Ref("output", out.name)
    frame = frame.with_columns(compiler.display(output_ref).alias(_text_col(output_ref)))
    # Collecting per output keeps each step's plan small and lets later outputs read this one's columns.
    return frame.collect().lazy()


def _responsible_level(policy: Policy) -> pl.Expr:
    """The first responsibility row whose outputs have one of its values; null when none does."""
    if policy.responsibility is None:
        return pl.lit(None, dtype=pl.Utf8)
    chain = None
    for row in policy.responsibility.table:
        holds = pl.lit(True)
        for output, accepted in row.when:
            col = pl.col(_output_col(output))
            options = [v for v in accepted if v is not None]
            test = col.is_in(options) if options else pl.lit(False)
            if None in accepted:
                test = test | col.is_null()
            holds = holds & test.fill_null(False)
        chain = (chain.when(holds) if chain is not None else pl.when(holds)).then(pl.lit(row.level))
    return chain.otherwise(pl.lit(None, dtype=pl.Utf8))


def _metrics_json(compiler: _Compiler, used: list[str]) -> pl.Expr:
    """One concat_str over the metrics' ``t:`` columns (adjacent literals merged)."""
    pieces: list[tuple[str, str]] = [("lit", "{")]
    for i, name in enumerate(used):
        quote = "" if compiler.metrics[name].unit == "boolean" else '"'
        pieces += [
            ("lit", ("," if i else "") + f'"{name}":{quote}'),
            ("col", _text_col(Ref("metric", name))),
            ("lit", quote),
        ]
    pieces.append(("lit", "}"))
    return pl.concat_str([_piece(p) for p in _merge_literals(tuple(pieces))])


def _explanation(policy: Policy) -> pl.Expr:
    """``name=value: why`` for every output, joined with "; "."""
    pieces: list[tuple[str, str]] = []
    for i, out in enumerate(policy.outputs):
        pieces += [
            ("lit", ("; " if i else "") + out.name + "="),
            ("col", _text_col(Ref("output", out.name))),
            ("col", _why_col(out.name)),
        ]
    return pl.concat_str([_piece(p) for p in _merge_literals(tuple(pieces))])
