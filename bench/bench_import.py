#!/usr/bin/env python
"""Unit-import benchmark: `units_import` of a 20,000-unit file (children listed before parents), then
the same file again (idempotent: nothing to change).

    python bench/bench_import.py                   # SQLite in a temporary directory
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres python bench/bench_import.py

Database handling as in bench_org.py (its own SQLite file, or the PostgreSQL database
``kehu_bench_import``, created afresh and dropped afterwards).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_org import RESULTS, ROOT, drop_database, prepare_database  # noqa: E402


def build_file(units: int) -> bytes:
    """Province → 16 cities → 20 areas each → stations, written children first."""
    rows = [["P", "省公司", "province", "", "370000"]]
    for c in range(16):
        rows.append([f"C{c}", f"市{c}", "city", "P", "370100"])
        rows += [[f"C{c}A{a}", f"片区{a}", "area", f"C{c}", "370102"] for a in range(20)]
    i = 0
    while len(rows) < units:
        rows.append([f"S{i:06d}", f"站{i}", "station", f"C{i % 16}A{(i // 16) % 20}", "370102"])
        i += 1
    rows.reverse()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "name", "type", "parent_code", "division_code"])
    writer.writerows(rows)
    return out.getvalue().encode()


def run(units: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    from kehu.accounts.models import RoleAssignment, User
    from kehu.audit.selectors import audit_chain_verify
    from kehu.org.imports import units_import
    from kehu.org.models import Unit, UnitType

    admin = User.objects.create(username="bench.sysadmin", full_name="基准", must_change_password=False)
    RoleAssignment.objects.create(user=admin, role="system_admin", scope="")
    for rank, code in enumerate(["province", "city", "area", "station"]):
        UnitType.objects.create(code=code, name=code, rank=rank)
    content = build_file(units)

    results, figures = {}, {}
    for label in ("first import", "same file again"):
        started = time.perf_counter()
        result = units_import(acting_user=admin, filename="units.csv", content=content)
        elapsed = time.perf_counter() - started
        if result.errors:
            raise SystemExit(f"import reported errors: {result.errors[:3]}")
        ms = round(elapsed * 1000, 1)
        results[label] = {"n": 1, "p50_ms": ms, "p95_ms": ms, "max_ms": ms}
        figures[label] = {"created": result.created, "updated": result.updated, "moved": result.moved}
    started = time.perf_counter()
    verified = audit_chain_verify()
    verify_ms = round((time.perf_counter() - started) * 1000, 1)
    results["audit verify (whole trail)"] = {
        "n": 1,
        "p50_ms": verify_ms,
        "p95_ms": verify_ms,
        "max_ms": verify_ms,
    }
    assert verified.ok, verified.problems

    backend = connection.vendor
    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()" if backend == "sqlite" else "show server_version")
        db_version = cursor.fetchone()[0]
    return {
        "benchmark": "import",
        "backend": backend,
        "db_version": db_version,
        "units": Unit.objects.count(),
        "audit_events": verified.checked,
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
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument(
        "--postgres", default=None, help="PostgreSQL URL (default: $DATABASE_URL; unset: SQLite)"
    )
    parser.add_argument(
        "--pg-dbname", default="kehu_bench_import", help="bench database name (dropped first!)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    # bench/run.py passes the same extra arguments to every benchmark; these belong to others.
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--moves", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    pg_url = args.postgres if args.postgres is not None else os.environ.get("DATABASE_URL")
    backend, tmp = prepare_database(pg_url or None, args.pg_dbname)
    try:
        report = run(args.units)
    finally:
        if not args.keep:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            if backend == "postgresql":
                drop_database(pg_url, args.pg_dbname)
    print(f"\nimport benchmark — {report['backend']} {report['db_version']}: {report['units']} units, "
          f"{report['audit_events']} audit events (load average {report['load_average'][0]})")  # fmt: skip
    for name, r in report["results"].items():
        print(f"{name:32} {r['p50_ms'] / 1000:>8.2f} s")
    out = args.json or RESULTS / f"import-{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
