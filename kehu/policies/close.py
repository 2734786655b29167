"""The monthly close: every customer in reach gets this month's outputs of the policy in force.

``close_run`` reads the customers, their agreements, the approved overrides and the sales facts into
Polars frames, has ``engine.policy_evaluate`` compute every output with its explanation (vectorised, a
million customers in seconds), then in ONE transaction replaces the month's results of those
customers, records each change against the previous month (upgrade / downgrade / new / lost) and
updates the customers' current values where they changed. A failure rolls all of it back: the
previous results stay as they were. Re-running a month writes the same rows again and no duplicate
changes. A partial unique index lets only one close of a month run at a time.

The design and its measured figures are in docs/decisions/0008-monthly-close.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Case, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from kehu.accounts.roles import Capability, Role
from kehu.audit.services import audit_record
from kehu.core.errors import ServiceError, require
from kehu.core.frames import frame_from_queryset, frame_insert
from kehu.policies.engine import policy_evaluate
from kehu.policies.language import policy_parse
from kehu.policies.models import CloseChange, CloseResult, CloseRun, CloseStatus, Override, OverrideStatus
from kehu.policies.selectors import policy_in_force

log = logging.getLogger(__name__)

# Facts this far back are read: the longest window of the packs is "previous calendar year" in January.
HISTORY_MONTHS = 24
# A close that has said "running" for this long died with its process: the next close may go ahead.
ABANDONED_AFTER = timedelta(hours=2)

Progress = Callable[[int, int], None]


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def close_reach(acting_user, unit=None):
    """The customers a close by ``acting_user`` covers: what they may see (the system administrator runs
    the deployment's operations over every customer without seeing one), within ``unit``'s subtree."""
    from kehu.customers.selectors import operations_scope_q

    reach = operations_scope_q(acting_user)
    if unit is not None:
        low, high = unit.subtree_path_range()
        reach &= Q(unit_path__gte=low, unit_path__lt=high)
    return reach


def _start(*, acting_user, month: date, policy, unit, job) -> CloseRun:
    stale = timezone.now() - ABANDONED_AFTER
    CloseRun.objects.filter(month=month, status=CloseStatus.RUNNING, started_at__lt=stale).update(
        status=CloseStatus.FAILED,
        finished_at=timezone.now(),
        error="abandoned: its process ended without finishing",
    )
    try:
        with transaction.atomic():
            return CloseRun.objects.create(
                month=month, policy=policy, unit=unit, started_by=acting_user, job=job
            )
    except IntegrityError:
        running = (
            CloseRun.objects.filter(month=month, status=CloseStatus.RUNNING)
            .select_related("started_by")
            .first()
        )
        raise ServiceError(
            _("A close of %(m)s is already running (started by %(u)s at %(t)s); wait for it to finish.")
            % {
                "m": f"{month:%Y-%m}",
                "u": running.started_by if running else "?",
                "t": timezone.localtime(running.started_at).strftime("%H:%M") if running else "?",
            },
            code="close_running",
        ) from None


def _customers_frame(reach: Q) -> pl.DataFrame:
    from kehu.customers.models import Customer

    in_reach = (
        Case(When(reach, then=Value(True)), default=Value(False), output_field=BooleanField())
        if reach != Q()
        else Value(True, output_field=BooleanField())
    )
    queryset = (
        Customer.objects.order_by()
        .annotate(in_reach=in_reach)
        .values_list(
            "id", "kind", "sub_type__code", "status", "payment_profile", "in_reach", "standing_month"
        )
    )
    schema = {
        "customer_id": pl.Int64, "kind": pl.Utf8, "sub_type": pl.Utf8, "status": pl.Utf8,
        "payment_profile": pl.Utf8, "in_reach": pl.Boolean, "standing_month": pl.Date,
    }  # fmt: skip
    return frame_from_queryset(queryset, schema)


def _agreements_frame() -> pl.DataFrame:
    from kehu.customers.models import Agreement

    queryset = Agreement.objects.order_by().values_list(
        "customer_id", "signing_level", "agreement_type", "status", "start_date", "end_date"
    )
    schema = {
        "customer_id": pl.Int64, "signing_level": pl.Utf8, "agreement_type": pl.Utf8, "status": pl.Utf8,
        "start_date": pl.Date, "end_date": pl.Date,
    }  # fmt: skip
    return frame_from_queryset(queryset, schema)


def _overrides_frame() -> pl.DataFrame:
    rows = (
        Override.objects.filter(status=OverrideStatus.APPROVED)
        .select_related("decided_by")
        .order_by("pk")
        .values_list("pk", "customer_id", "output", "value", "decided_by__username")
    )
    data = [
        (customer_id, output, value, _("override #%(n)s approved by %(u)s") % {"n": pk, "u": approver})
        for pk, customer_id, output, value, approver in rows
    ]
    schema = {"customer_id": pl.Int64, "output": pl.Utf8, "value": pl.Utf8, "note": pl.Utf8}
    return pl.DataFrame(data, schema=schema, orient="row")


@dataclass
class CloseInputs:
    """What a close or a simulation evaluates a policy on (every customer: totals are deployment-wide)."""

    month: date
    customers: pl.DataFrame  # with in_reach and standing_month
    agreements: pl.DataFrame
    overrides: pl.DataFrame
    facts: pl.LazyFrame

    def evaluate(self, parsed, *, overrides: bool = True) -> pl.DataFrame:
        return policy_evaluate(
            parsed, month=self.month, customers=self.customers.drop("in_reach", "standing_month"),
            facts=self.facts, agreements=self.agreements, overrides=self.overrides if overrides else None,
        )  # fmt: skip


def close_inputs(*, month: date, reach: Q) -> CloseInputs:
    from kehu.metrics.selectors import facts_frame

    return CloseInputs(
        month=month,
        customers=_customers_frame(reach),
        agreements=_agreements_frame(),
        overrides=_overrides_frame(),
        facts=facts_frame(months=[month_add(month, -k) for k in range(HISTORY_MONTHS - 1, -1, -1)]),
    )


def _previous_frame(month: date, reach: Q, tracked: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """Last month's tracked outputs of the customers in reach, or None when last month was never closed."""
    from kehu.customers.models import Customer

    previous = month_add(month, -1)
    if not CloseResult.objects.filter(month=previous).exists():
        return None
    queryset = CloseResult.objects.filter(
        month=previous, customer__in=Customer.objects.filter(reach).values("pk")
    ).values_list("customer_id", "outputs")
    frame = frame_from_queryset(queryset.order_by(), {"customer_id": pl.Int64, "outputs": pl.Utf8})
    struct = pl.Struct([pl.Field(name, dtype) for name, dtype in tracked.items()])
    decoded = frame.with_columns(pl.col("outputs").str.json_decode(struct)).unnest("outputs")
    for name, dtype in tracked.items():
        if name not in decoded.columns:
            decoded = decoded.with_columns(pl.lit(None, dtype=dtype).alias(name))
    return decoded.select("customer_id", *tracked)


def _tracked_outputs(parsed) -> dict[str, pl.DataType]:
    """Outputs whose changes are recorded: choices and yes/no outputs (scores change every month)."""
    kinds = {"choice": pl.Utf8, "boolean": pl.Boolean}
    return {o.name: kinds[o.type] for o in parsed.outputs if o.type in kinds and o.export}


def _changes(parsed, results: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    schema = {
        "customer_id": pl.Int64,
        "output": pl.Utf8,
        "before": pl.Utf8,
        "after": pl.Utf8,
        "kind": pl.Utf8,
    }
    tracked = _tracked_outputs(parsed)
    if previous is None or not tracked:
        return pl.DataFrame(schema=schema)
    joined = results.select("customer_id", *tracked).join(
        previous, on="customer_id", how="left", suffix="__before"
    )
    parts = []
    for name, dtype in tracked.items():
        after, before = pl.col(name), pl.col(f"{name}__before")
        if dtype == pl.Boolean:
            after_text = pl.when(after).then(pl.lit("true")).when(after.not_()).then(pl.lit("false"))
            before_text = pl.when(before).then(pl.lit("true")).when(before.not_()).then(pl.lit("false"))
            kind = (
                pl.when(after.fill_null(False) & before.fill_null(False).not_()).then(pl.lit("new"))
                .when(before.fill_null(False) & after.fill_null(False).not_()).then(pl.lit("lost"))
            )  # fmt: skip
        else:
            ranks = {value: index for index, value in enumerate(parsed.order(name))}
            rank_after = after.replace_strict(ranks, default=None, return_dtype=pl.Int64)
            rank_before = before.replace_strict(ranks, default=None, return_dtype=pl.Int64)
            after_text, before_text = after, before
            kind = (
                pl.when(after.is_not_null() & before.is_null()).then(pl.lit("new"))
                .when(after.is_null() & before.is_not_null()).then(pl.lit("lost"))
                .when(rank_after < rank_before).then(pl.lit("upgrade"))
                .when(rank_after > rank_before).then(pl.lit("downgrade"))
                .when(after != before).then(pl.lit("changed"))
            )  # fmt: skip
        parts.append(
            joined.select(
                "customer_id",
                pl.lit(name).alias("output"),
                before_text.fill_null("").cast(pl.Utf8).alias("before"),
                after_text.fill_null("").cast(pl.Utf8).alias("after"),
                kind.alias("kind"),
            ).filter(pl.col("kind").is_not_null())
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def _outputs_json(parsed, results: pl.DataFrame) -> pl.Expr:
    names = [o.name for o in parsed.outputs if o.export]
    return pl.struct([pl.col(n) for n in names]).struct.json_encode() if names else pl.lit("{}")


def _replace_results(
    *, run: CloseRun, month: date, reach: Q, results: pl.DataFrame, changes: pl.DataFrame
) -> None:
    from kehu.customers.models import Customer

    in_reach = Customer.objects.filter(reach).values("pk")
    old_results = CloseResult.objects.filter(month=month)
    old_changes = CloseChange.objects.filter(month=month)
    if reach != Q():
        old_results = old_results.filter(customer__in=in_reach)
        old_changes = old_changes.filter(customer__in=in_reach)
    old_results._raw_delete(old_results.db)
    old_changes._raw_delete(old_changes.db)
    frame_insert(
        CloseResult._meta.db_table,
        results.select(
            "customer_id",
            pl.lit(month).alias("month"),
            pl.lit(run.pk, dtype=pl.Int64).alias("run_id"),
            pl.lit(run.policy_id, dtype=pl.Int64).alias("policy_id"),
            pl.col("outputs_json").alias("outputs"),
            pl.col("responsible_level").fill_null(""),
            pl.col("metrics"),
            pl.col("explanation").fill_null(""),
        ),
    )
    frame_insert(
        CloseChange._meta.db_table,
        changes.select(
            "customer_id", pl.lit(month).alias("month"), "output", "before", "after", "kind",
            pl.lit(run.pk, dtype=pl.Int64).alias("run_id"),
        ),
    )  # fmt: skip


def _update_standing(*, month: date, results: pl.DataFrame, customers: pl.DataFrame) -> int:
    """Customers whose latest closed month is this one (or earlier) take this month's outputs."""
    from kehu.customers.models import Customer

    current = customers.filter(
        pl.col("in_reach") & (pl.col("standing_month").is_null() | (pl.col("standing_month") <= month))
    )
    rows = results.join(current.select("customer_id"), on="customer_id", how="semi").select(
        pl.col("customer_id").alias("id"),
        pl.col("outputs_json").alias("standing"),
        pl.col("responsible_level").fill_null(""),
    )
    if rows.height == 0:
        return 0
    table = Customer._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CREATE TEMP TABLE kehu_standing (id bigint PRIMARY KEY, standing text, "
                           "responsible_level varchar(16)) ON COMMIT DROP")  # fmt: skip
            frame_insert("kehu_standing", rows)
            cursor.execute(
                f"UPDATE {table} c SET standing = t.standing::jsonb, standing_month = %s, "
                "responsible_level = t.responsible_level FROM kehu_standing t WHERE c.id = t.id "
                "AND (c.standing_month IS DISTINCT FROM %s OR c.standing <> t.standing::jsonb "
                "OR c.responsible_level <> t.responsible_level)",
                [month, month],
            )
            updated = cursor.rowcount
            cursor.execute("DROP TABLE kehu_standing")
        else:
            cursor.execute(
                "CREATE TEMP TABLE kehu_standing (id integer PRIMARY KEY, standing text, responsible_level text)"
            )
            try:
                frame_insert("kehu_standing", rows)
                cursor.execute(
                    f"UPDATE {table} AS c SET standing = t.standing, standing_month = %s, "
                    "responsible_level = t.responsible_level FROM kehu_standing AS t WHERE c.id = t.id "
                    "AND (c.standing_month IS NOT %s OR c.standing <> t.standing "
                    "OR c.responsible_level <> t.responsible_level)",
                    [month.isoformat(), month.isoformat()],
                )
                updated = cursor.rowcount
            finally:
                cursor.execute("DROP TABLE kehu_standing")
    return updated


def _summary(parsed, results: pl.DataFrame, changes: pl.DataFrame) -> dict:
    distribution = {}
    for output in parsed.outputs:
        if not output.export or output.type not in ("choice", "boolean"):
            continue
        counts = results.group_by(output.name).len().sort(output.name, nulls_last=True)
        distribution[output.name] = {
            ("" if value is None else str(value).lower() if isinstance(value, bool) else str(value)): n
            for value, n in counts.iter_rows()
        }
    moves = {}
    if changes.height:
        for output, kind, n in changes.group_by("output", "kind").len().sort("output", "kind").iter_rows():
            moves.setdefault(output, {})[kind] = n
    return {"distribution": distribution, "changes": moves}


def close_run(*, acting_user, month: date, unit=None, progress: Progress | None = None, job=None) -> CloseRun:
    """Close ``month`` for the customers ``acting_user`` reaches (within ``unit``'s subtree if given)."""
    require(acting_user, Capability.RUN_CLOSE, _("You may not run the monthly close."))
    month = month.replace(day=1)
    if month > timezone.localdate().replace(day=1):
        raise ServiceError(_("%(m)s has not begun yet: only past and current months can be closed.")
                           % {"m": f"{month:%Y-%m}"}, field="month")  # fmt: skip
    if unit is not None:
        from kehu.org.models import Unit

        if (
            Role.SYSTEM_ADMIN not in acting_user.role_names()
            and not Unit.objects.visible_to(acting_user).filter(pk=unit.pk).exists()
        ):
            raise ServiceError(_("No such unit within your scope."), field="unit")
    policy = policy_in_force(month=month)
    if policy is None:
        raise ServiceError(
            _("No policy applies to %(m)s: activate one from that month or earlier (kehu policy activate).")
            % {"m": f"{month:%Y-%m}"},
            field="month",
        )
    parsed = policy_parse(policy.document)
    report = progress or (lambda done, total: None)
    run = _start(acting_user=acting_user, month=month, policy=policy, unit=unit, job=job)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        report(0, 100)
        reach = close_reach(acting_user, unit)
        inputs = close_inputs(month=month, reach=reach)
        customers = inputs.customers
        timings["read"] = time.perf_counter() - started
        report(20, 100)
        evaluated = inputs.evaluate(parsed)
        timings["evaluate"] = time.perf_counter() - started - timings["read"]
        report(60, 100)
        in_reach = customers.filter(pl.col("in_reach")).select("customer_id")
        # In the order of the results' unique index: inserting in index order is twice as fast on SQLite.
        results = (
            evaluated.join(in_reach, on="customer_id", how="semi")
            .with_columns(_outputs_json(parsed, evaluated).alias("outputs_json"))
            .sort("customer_id")
        )
        previous = _previous_frame(month, reach, _tracked_outputs(parsed))
        changes = _changes(parsed, results, previous)
        mark = time.perf_counter()
        with transaction.atomic():
            _replace_results(run=run, month=month, reach=reach, results=results, changes=changes)
            updated = _update_standing(month=month, results=results, customers=customers)
            run.status, run.finished_at = CloseStatus.SUCCEEDED, timezone.now()
            run.customers, run.changes = results.height, changes.height
            timings["write"] = time.perf_counter() - mark
            run.summary = {**_summary(parsed, results, changes), "standing_updated": updated,
                           "seconds": {k: round(v, 2) for k, v in timings.items()}}  # fmt: skip
            run.save()
            audit_record(actor=acting_user, action="close.run", obj=run,
                         extra={"month": f"{month:%Y-%m}", "policy": str(policy), "unit": unit.code if unit else "",
                                "customers": run.customers, "changes": run.changes})  # fmt: skip
        report(100, 100)
        return run
    except Exception as exc:
        message = (
            exc.message
            if isinstance(exc, ServiceError)
            else _("Internal error: %(e)s") % {"e": type(exc).__name__}
        )
        if not isinstance(exc, ServiceError):
            log.exception("close of %s failed", month)
        CloseRun.objects.filter(pk=run.pk).update(
            status=CloseStatus.FAILED, finished_at=timezone.now(), error=message
        )
        with transaction.atomic():
            audit_record(actor=acting_user, action="close.run", obj=run, outcome="failure",
                         extra={"month": f"{month:%Y-%m}", "error": message})  # fmt: skip
        raise
