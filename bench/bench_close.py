#!/usr/bin/env python
"""The monthly close and the simulation at 1,000,000 customers (issue 4: close < 10 s, simulation < 5 s,
peak memory < 3 GB, on SQLite and on PostgreSQL).

    python bench/bench_close.py                                   # SQLite in a temporary directory
    python bench/bench_close.py --postgres postgresql://postgres@127.0.0.1/postgres
    python bench/bench_close.py --existing                        # a database gen-data filled already
    KEHU_BENCH_CUSTOMERS=100000 python bench/bench_close.py       # smaller

Without ``--existing``: ``kehu gen-data --units 2000 --customers N`` then ``kehu gen-data --units 0
--history-months 13 --month 2026-11`` (monthly facts of gasoline, diesel and the fuel card for Oct 2025 to
Oct 2026), each in a child process so that this process's peak memory is the close's. Then, as the
system administrator (every customer): ``kehu setup --pack fuel-retail``, close 2026-09 (not timed:
the previous month), close 2026-10 (timed: results, changes against September, current values), the
same again (timed: a re-run replaces the month), and a simulation of the fuel pack with the large
gasoline bound raised from 5 t to 6 t (timed). Peak RSS from ``getrusage``.
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
from bench_customer_search import setup_existing  # noqa: E402
from bench_org import RESULTS, ROOT, drop_database, prepare_database  # noqa: E402

TARGETS = {"close": 10.0, "re-run": 10.0, "simulation": 5.0}
MEMORY_TARGET_MB = 3072


def generate(customers: int, units: int) -> float:
    env = dict(os.environ)
    kehu = [sys.executable, "-m", "kehu.cli"]
    started = time.perf_counter()
    subprocess.run([*kehu, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    subprocess.run([*kehu, "gen-data", "--units", str(units), "--customers", str(customers)], env=env, check=True,
                   cwd=ROOT)  # fmt: skip
    subprocess.run([*kehu, "gen-data", "--units", "0", "--history-months", "13", "--month", "2026-11"], env=env,
                   check=True, cwd=ROOT)  # fmt: skip
    return time.perf_counter() - started


def db_version(connection) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT sqlite_version()")
        return str(cursor.fetchone()[0]).split(" on ")[0]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(backend: str) -> dict:
    import django

    django.setup()
    from django.db import connection

    from kehu.accounts.models import RoleAssignment, User
    from kehu.accounts.roles import Role
    from kehu.customers.models import Customer
    from kehu.policies.close import close_run
    from kehu.policies.packs import pack_install, pack_text
    from kehu.policies.simulation import policy_simulate

    operator, created = User.objects.get_or_create(
        username="bench.operator", defaults={"full_name": "基准运维"}
    )
    if created:
        RoleAssignment.objects.create(user=operator, role=Role.SYSTEM_ADMIN)
    operator = User.objects.get(pk=operator.pk)
    pack_install(acting_user=operator, name="fuel-retail")
    customers = Customer.objects.count()
    results: dict[str, dict] = {}
    close_run(acting_user=operator, month=date(2026, 9, 1))
    for name in ("close", "re-run"):
        started = time.perf_counter()
        run = close_run(acting_user=operator, month=date(2026, 10, 1))
        seconds = time.perf_counter() - started
        results[name] = {"seconds": round(seconds, 2), "customers": run.customers, "changes": run.changes,
                         "parts": run.summary.get("seconds", {})}  # fmt: skip
        print(f"  {name:12} {seconds:6.2f} s  ({run.customers} customers, {run.changes} changes, "
              f"{run.summary.get('seconds')})", flush=True)  # fmt: skip
    draft = pack_text("fuel-retail").replace("{metric: gasoline_t, gte: 5}", "{metric: gasoline_t, gte: 6}")
    started = time.perf_counter()
    simulation = policy_simulate(acting_user=operator, month=date(2026, 10, 1), draft_text=draft)
    seconds = time.perf_counter() - started
    results["simulation"] = {"seconds": round(seconds, 2), "customers": simulation.customers,
                             "changed": simulation.changed.height}  # fmt: skip
    print(f"  {'simulation':12} {seconds:6.2f} s  ({simulation.changed.height} would change)", flush=True)
    for name, target in TARGETS.items():
        results[name]["target_s"] = target
        results[name]["ok"] = results[name]["seconds"] < target
    memory = peak_mb()
    return {
        "benchmark": "close", "backend": backend, "db_version": db_version(connection),
        "customers": customers, "results": results, "peak_rss_mb": round(memory),
        "memory_ok": memory < MEMORY_TARGET_MB, "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
        "python": platform.python_version(), "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="a PostgreSQL server URL: the benchmark creates and drops its own database there")  # fmt: skip
    parser.add_argument("--pg-dbname", default="kehu_bench_close")
    parser.add_argument("--existing", action="store_true",
                        help="use the database the environment names, filled by gen-data already")  # fmt: skip
    parser.add_argument(
        "--customers", type=int, default=int(os.environ.get("KEHU_BENCH_CUSTOMERS", 1_000_000))
    )
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", metavar="FILE", default=None)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    temporary = None
    if args.existing:
        backend = setup_existing()
    else:
        backend, temporary = prepare_database(args.postgres, args.pg_dbname)
    try:
        generated = None
        if not args.existing:
            generated = generate(args.customers, args.units)
            print(f"  data generated in {generated:.0f} s", flush=True)
        report = measure(backend)
        report["gen_data_seconds"] = round(generated, 1) if generated else None
    finally:
        if not args.existing and not args.keep:
            if backend == "postgresql":
                drop_database(args.postgres, args.pg_dbname)
            if temporary:
                shutil.rmtree(temporary, ignore_errors=True)
    print(f"close — {backend}: {report['customers']:,} customers, peak RSS {report['peak_rss_mb']} MB "
          f"(load average {report['load_average']:.2f} on {report['cpus']} CPUs)")  # fmt: skip
    for name, r in report["results"].items():
        print(
            f"  {name:12} {r['seconds']:6.2f} s   target < {r['target_s']:.0f} s   {'ok' if r['ok'] else 'MISS'}"
        )
    out = Path(args.json) if args.json else RESULTS / f"close-{backend}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(f"-> {out}")
    ok = all(r["ok"] for r in report["results"].values()) and report["memory_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
