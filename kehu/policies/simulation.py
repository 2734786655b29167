"""Trying a policy out before adopting it: evaluate a draft (or the policy in force with edited
thresholds) for a month and compare it with the policy in force, writing nothing.

The answer holds, for the customers the user reaches: each exported output's distribution now and
under the draft, a move matrix for choice and yes/no outputs (how many go from gold to silver…), and
the customers whose outputs would change (a frame the web page filters, pages and exports).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

import polars as pl
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError, require
from kehu.policies.close import close_inputs, close_reach
from kehu.policies.language import policy_parse
from kehu.policies.selectors import policy_in_force


@dataclass
class Simulation:
    month: date
    current_name: str
    draft_name: str
    outputs: list[str]
    distribution: dict[str, dict[str, dict[str, int]]]  # output -> value -> {"now": n, "draft": n}
    moves: dict[str, list[tuple[str, str, int]]]  # output -> (now, draft, customers) where they differ
    changed: pl.DataFrame  # customer_id, then <output>_now / <output>_draft, explanation_draft
    customers: int
    seconds: float
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_dict(self, *, changed_limit: int = 100) -> dict:
        return {
            "month": f"{self.month:%Y-%m}", "policy_now": self.current_name, "policy_draft": self.draft_name,
            "customers": self.customers, "changed_count": self.changed.height,
            "distribution": self.distribution,
            "moves": {o: [{"now": a, "draft": b, "customers": n} for a, b, n in rows] for o, rows in self.moves.items()},
            "seconds": round(self.seconds, 2),
        }  # fmt: skip


def _text(column: pl.Expr) -> pl.Expr:
    return column.cast(pl.Utf8).str.to_lowercase().fill_null("")


def policy_simulate(*, acting_user, month: date, draft_text: str | None = None,
                    edits: dict[str, str] | None = None, unit=None) -> Simulation:  # fmt: skip
    """Compare ``draft_text`` (or the policy in force with ``edits`` to its constants) with the policy in
    force for ``month``, over the customers ``acting_user`` reaches. Nothing is written but one audit row."""
    require(acting_user, Capability.MANAGE_POLICIES, _("You may not simulate policies."))
    started = time.perf_counter()
    month = month.replace(day=1)
    current_row = policy_in_force(month=month)
    if draft_text is None and current_row is None:
        raise ServiceError(
            _("No policy applies to %(m)s; give a draft to simulate.") % {"m": f"{month:%Y-%m}"}
        )
    current = policy_parse(current_row.document) if current_row else None
    if draft_text is not None:
        draft = policy_parse(draft_text)
    else:
        draft = current.with_thresholds(edits or {})
    reach = close_reach(acting_user, unit)
    inputs = close_inputs(month=month, reach=reach)
    in_reach = inputs.customers.filter(pl.col("in_reach")).select("customer_id")
    after = inputs.evaluate(draft).join(in_reach, on="customer_id", how="semi")
    outputs = [o.name for o in draft.outputs if o.export]
    if current is not None:
        before = inputs.evaluate(current).join(in_reach, on="customer_id", how="semi")
    else:
        before = after.select("customer_id")
    now_cols = [(_text(pl.col(n)) if n in before.columns else pl.lit("")).alias(f"{n}_now") for n in outputs]
    draft_cols = [_text(pl.col(n)).alias(f"{n}_draft") for n in outputs]
    both = before.select("customer_id", *now_cols).join(
        after.select("customer_id", *draft_cols, pl.col("explanation").alias("explanation_draft")),
        on="customer_id",
    )
    distribution: dict[str, dict[str, dict[str, int]]] = {}
    moves: dict[str, list[tuple[str, str, int]]] = {}
    differs = pl.lit(False)
    choice_like = {o.name for o in draft.outputs if o.type in ("choice", "boolean")}
    for name in outputs:
        now, new = pl.col(f"{name}_now"), pl.col(f"{name}_draft")
        differs = differs | (now != new)
        counts: dict[str, dict[str, int]] = {}
        for value, n in both.group_by(f"{name}_now").len().iter_rows():
            counts.setdefault(value, {"now": 0, "draft": 0})["now"] = n
        for value, n in both.group_by(f"{name}_draft").len().iter_rows():
            counts.setdefault(value, {"now": 0, "draft": 0})["draft"] = n
        if name in choice_like:
            order = {v: i for i, v in enumerate(draft.order(name) if draft.outputs else [])}
            distribution[name] = dict(
                sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
            )
            matrix = (
                both.filter(now != new)
                .group_by(f"{name}_now", f"{name}_draft")
                .len()
                .sort("len", descending=True)
            )
            moves[name] = [(a, b, n) for a, b, n in matrix.iter_rows()]
        else:
            distribution[name] = {}
    changed = both.filter(differs).sort("customer_id")
    labels = {o.name: draft.value_labels(o.name) for o in draft.outputs if o.type == "choice" and o.export}
    simulation = Simulation(
        month=month, current_name=str(current_row) if current_row else "", draft_name=f"{draft.name} (draft)",
        outputs=outputs, distribution=distribution, moves=moves, changed=changed, customers=both.height,
        seconds=time.perf_counter() - started, labels=labels,
    )  # fmt: skip
    audit_record(actor=acting_user, action="policy.simulate", object_type="policy", object_id=draft.name,
                 extra={"month": f"{month:%Y-%m}", "edits": edits or {}, "draft": draft_text is not None,
                        "customers": simulation.customers, "changed": changed.height})  # fmt: skip
    return simulation
