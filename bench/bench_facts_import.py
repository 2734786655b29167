#!/usr/bin/env python
"""Sales facts import benchmark: `kehu import transactions` of a 30,000,000-row month against a bare Polars
`scan_csv → group_by → collect` of the same file (issue 4: at most 2×), then the same file again (all
duplicates, nothing changed).

    python bench/bench_facts_import.py                        # SQLite in a temporary directory
    python bench/bench_facts_import.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
    KEHU_BENCH_TXNS=3000000 python bench/bench_facts_import.py --customers 100000   # smaller

The data comes from `kehu gen-data --units 2000 --customers 1000000 --transactions N --month 2026-10
--transactions-file … --history-months 12` (run in a child process, so that the peak memory reported is
the import's own). The Polars baseline also runs in a child process. Database handling as in
bench_org.py (its own SQLite file, or the PostgreSQL database ``kehu_bench_facts``, created afresh and
dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_org import RESULTS, ROOT, drop_database, prepare_database  # noqa: E402

MONTH = "2026-10"
BASELINE = """
import json, resource, sys, time
import polars as pl
started = time.perf_counter()
out = (pl.scan_csv(sys.argv[1]).group_by(["customer_code", "product"])
       .agg(pl.col("quantity").sum(), pl.col("amount").sum(), pl.len()).collect())
print(json.dumps({"seconds": time.perf_counter() - started, "groups": out.height,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def one(seconds: float) -> dict:
    ms = round(seconds * 1000, 1)
    return {"n": 1, "p50_ms": ms, "p95_ms": ms, "max_ms": ms}


def run(*, customers: int, units: int, transactions: int, history_months: int, workdir: Path) -> dict:
    csv_path = workdir / "transactions.csv"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kehu.cli", "gen-data", "--units", str(units), "--customers", str(customers),
         "--seed", "1", "--contact-share", "0.05", "--agreement-share", "0.05", "--phone-share", "0.05",
         "--transactions", str(transactions), "--month", MONTH, "--transactions-file", str(csv_path),
         "--history-months", str(history_months)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    generate_s = time.perf_counter() - started

    import django

    django.setup()
    from django.db import connection

    from kehu.accounts.models import RoleAssignment, User
    from kehu.metrics.imports import transactions_import
    from kehu.metrics.models import FactMonth, SalesFact
    from kehu.org.models import Unit

    root = Unit.objects.filter(code__startswith="G-").order_by("depth", "pk").first()
    analyst = User.objects.create(
        username="bench.analyst", full_name="分析", unit=root, must_change_password=False
    )
    RoleAssignment.objects.create(user=analyst, role="analyst", scope="subtree")

    done = subprocess.run(
        [sys.executable, "-c", BASELINE, str(csv_path)], check=True, capture_output=True, text=True
    )
    baseline = json.loads(done.stdout)

    results = {"polars scan_csv → group_by → collect": one(baseline["seconds"])}
    figures: dict[str, object] = {}
    for label in ("import", "same file again"):
        started = time.perf_counter()
        result = transactions_import(acting_user=analyst, path=csv_path)
        elapsed = time.perf_counter() - started
        if result.errors:
            raise SystemExit(f"import reported errors: {[str(e) for e in result.errors[:3]]}")
        results[label] = one(elapsed)
        figures[label] = {**result.summary(), "timings_s": result.timings}
    version = FactMonth.objects.get(month=date(2026, 10, 1)).version
    assert version == 1, f"the second import changed the month (version {version})"
    facts = SalesFact.objects.count()

    backend = connection.vendor
    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()" if backend == "sqlite" else "show server_version")
        db_version = cursor.fetchone()[0]
    ratio = results["import"]["p50_ms"] / results["polars scan_csv → group_by → collect"]["p50_ms"]
    return {
        "benchmark": "facts_import",
        "backend": backend,
        "db_version": db_version,
        "customers": customers,
        "transactions": transactions,
        "csv_mb": round(csv_path.stat().st_size / 1024 / 1024, 1),
        "history_months": history_months,
        "facts_in_db": facts,
        "generate_s": round(generate_s, 1),
        "ratio_import_to_polars": round(ratio, 2),
        "second_import_ratio": round(
            results["same file again"]["p50_ms"] / results["polars scan_csv → group_by → collect"]["p50_ms"],
            2,
        ),
        "peak_rss_mb_import": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mb_polars": round(baseline["rss_mb"]),
        "figures": figures,
        "results": results,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "django": django.get_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--history-months", type=int, default=12, dest="history_months")
    parser.add_argument(
        "--postgres", default=None, help="PostgreSQL URL (default: $DATABASE_URL; unset: SQLite)"
    )
    parser.add_argument(
        "--pg-dbname", default="kehu_bench_facts", help="bench database name (dropped first!)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    # bench/run.py passes the same extra arguments to every benchmark; these belong to others.
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--moves", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    transactions = int(os.environ.get("KEHU_BENCH_TXNS", "30000000"))

    pg_url = args.postgres if args.postgres is not None else os.environ.get("DATABASE_URL")
    backend, tmp = prepare_database(pg_url or None, args.pg_dbname)
    workdir = Path(tmp)
    try:
        subprocess.run(
            [sys.executable, "-m", "kehu.cli", "migrate", "--verbosity", "0"], check=True, cwd=ROOT
        )
        report = run(customers=args.customers, units=args.units, transactions=transactions,
                     history_months=args.history_months, workdir=workdir)  # fmt: skip
    finally:
        if not args.keep:
            if backend == "postgresql":
                drop_database(pg_url, args.pg_dbname)
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nfacts import benchmark — {report['backend']} {report['db_version']}: {report['transactions']:,} "
          f"transactions ({report['csv_mb']} MB) over {report['customers']:,} customers, {report['facts_in_db']:,} "
          f"facts in the database (load average {report['load_average'][0]})")  # fmt: skip
    for name, r in report["results"].items():
        print(f"{name:40} {r['p50_ms'] / 1000:>8.2f} s")
    print(f"import / polars: {report['ratio_import_to_polars']:.2f}× (target ≤ 2×); "
          f"peak RSS: import {report['peak_rss_mb_import']} MB, polars {report['peak_rss_mb_polars']} MB")  # fmt: skip
    print(json.dumps({k: report[k] for k in ("benchmark", "backend", "transactions", "customers",
                                             "ratio_import_to_polars", "peak_rss_mb_import")}))  # fmt: skip
    out = args.json or RESULTS / f"facts_import-{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
