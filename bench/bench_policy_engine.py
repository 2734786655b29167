#!/usr/bin/env python
"""Policy-engine benchmark: ``policy_evaluate`` of each pack over synthetic in-memory frames.

    python bench/bench_policy_engine.py                       # 1,000,000 customers, 13 months x 2,000,000 facts
    python bench/bench_policy_engine.py --customers 100000 --facts-per-month 200000 --runs 3

No database: the frames are built with Polars (seeded hashes) as the close would hand them over, and each pack
is timed ``--runs`` times (best and median wall-clock seconds, best and median CPU time of the process:
steadier than the wall clock on a busy machine, and peak RSS). Writes the
JSON report of bench/README.md (``--json``; default bench/results/policy_engine-<backend>.json, the
backend being the one ``DATABASE_URL`` names, although nothing is stored).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

PACKS = ("fuel-retail", "postal-key-accounts", "tobacco-retail")


def _setup_django() -> None:
    # Only gettext is needed from Django; minimal settings keep the benchmark free of any database.
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_I18N=False)


def _months_back(month: datetime.date, count: int) -> list[datetime.date]:
    index = month.year * 12 + month.month - 1
    return [datetime.date((index - k) // 12, (index - k) % 12 + 1, 1) for k in range(count)]


def _uniform(n: int, seed: int):
    """n pseudo-random floats in [0, 1) from Polars' seeded hash (no numpy needed)."""
    import polars as pl

    return (pl.int_range(n, dtype=pl.UInt64).hash(seed) % (1 << 53)).cast(pl.Float64) / float(1 << 53)


def _pick(choices: list[str], n: int, seed: int):
    import polars as pl

    return pl.lit(pl.Series(choices)).gather((_uniform(n, seed) * len(choices)).cast(pl.UInt32))


def build_frames(
    policy, *, customers: int, facts_per_month: int, months: int, month: datetime.date, seed: int
):
    """Customers, facts over ``months`` months ending with ``month``, and agreements for 6 % of customers."""
    import polars as pl

    def frame(n: int, **columns) -> pl.DataFrame:
        return pl.select(**columns) if n else pl.DataFrame()

    n = customers
    customer_frame = frame(
        n,
        customer_id=pl.int_range(1, n + 1, dtype=pl.Int64),
        kind=pl.when(_uniform(n, seed) < 0.3).then(pl.lit("institution")).otherwise(pl.lit("individual")),
        sub_type=_pick(
            ["supermarket", "convenience_store", "grocery", "tobacco_shop", "factory"], n, seed + 1
        ),
        status=pl.lit("active"),
        payment_profile=pl.lit(""),
    )
    products = list(policy.products)
    chunks = []
    for k, month_start in enumerate(_months_back(month, months)):
        n = facts_per_month
        s = seed + 100 * (k + 1)
        # Skewed volumes (Pareto-like): most customers buy little, a few a lot, so every bracket is reached.
        chunks.append(
            frame(
                n,
                customer_id=(_uniform(n, s) * customers).cast(pl.Int64) + 1,
                month=pl.lit(month_start, dtype=pl.Date),
                product=_pick(products, n, s + 1),
                quantity_milli=(500 * (1 - _uniform(n, s + 2)).pow(-1.2)).cast(pl.Int64),
                amount_fen=(20_000 * (1 - _uniform(n, s + 3)).pow(-1.3)).cast(pl.Int64),
                txn_count=(_uniform(n, s + 4) * 40).cast(pl.Int64) + 1,
            )
        )
    facts = pl.concat(chunks)
    n = customers * 6 // 100
    start = pl.lit(month - datetime.timedelta(days=900)) + pl.duration(
        days=(_uniform(n, seed + 5) * 1000).cast(pl.Int64)
    )
    agreements = frame(
        n,
        customer_id=(_uniform(n, seed + 6) * customers).cast(pl.Int64) + 1,
        signing_level=_pick(["province", "city", "city", "county", "county", "station"], n, seed + 7),
        agreement_type=pl.lit("supply"),
        status=_pick(["active"] * 8 + ["draft", "ended"], n, seed + 8),
        start_date=start,
        end_date=pl.when(_uniform(n, seed + 9) < 0.5).then(start + pl.duration(days=730)),
    )
    overrides = pl.DataFrame(
        {
            "customer_id": list(range(1, customers + 1, max(1, customers // 100)))[:100],
            "output": policy.exported_outputs()[0],
            "value": "",
            "note": "override #1 approved by bench",
        }
    )
    return customer_frame, facts, agreements, overrides


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="where to write the JSON report")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--facts-per-month", type=int, default=2_000_000)
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--pack", action="append", choices=PACKS, help="only this pack (repeatable)")
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"(arguments for other benchmarks ignored: {' '.join(ignored)})")
    _setup_django()
    from kehu.policies.engine import policy_evaluate
    from kehu.policies.language import policy_parse

    month = datetime.date(2026, 10, 1)
    results = {}
    print(f"{args.customers:,} customers, {args.months} months x {args.facts_per_month:,} fact rows")
    print(f"{'pack':22} {'build s':>8} {'best s':>8} {'median s':>9} {'cpu s':>7} {'cpu med':>8} {'rows':>9}")
    for pack in args.pack or PACKS:
        policy = policy_parse((ROOT / "kehu/policies/packs" / f"{pack}.yaml").read_text(encoding="utf-8"))
        started = time.perf_counter()
        customers, facts, agreements, overrides = build_frames(
            policy,
            customers=args.customers,
            facts_per_month=args.facts_per_month,
            months=args.months,
            month=month,
            seed=args.seed,
        )
        built = time.perf_counter() - started
        rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        timings, cpu = [], []
        for _run in range(args.runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            result = policy_evaluate(
                policy,
                month=month,
                customers=customers,
                facts=facts,
                agreements=agreements,
                overrides=overrides,
            )
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        del facts
        print(
            f"{pack:22} {built:8.2f} {min(timings):8.2f} {statistics.median(timings):9.2f} {min(cpu):7.2f}"
            f" {statistics.median(cpu):8.2f} {result.height:9,}"
        )
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{'':22} peak RSS {rss_built:,.0f} MB with the frames built, {rss_after:,.0f} MB after evaluating"
        )
        results[f"evaluate {pack}"] = {
            "n": len(timings),
            "p50_ms": statistics.median(timings) * 1000,
            "p95_ms": max(timings) * 1000,
            "max_ms": max(timings) * 1000,
            "best_ms": min(timings) * 1000,
            "best_cpu_ms": min(cpu) * 1000,
            "p50_cpu_ms": statistics.median(cpu) * 1000,
        }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB (the synthetic frames included)")
    backend = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    report = {
        "benchmark": "policy_engine",
        "backend": backend,
        "results": results,
        "customers": args.customers,
        "facts_per_month": args.facts_per_month,
        "months": args.months,
        "peak_rss_mb": round(peak_mb),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    path = args.json or RESULTS / f"policy_engine-{backend}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
