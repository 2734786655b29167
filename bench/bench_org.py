#!/usr/bin/env python
"""Organisation-tree benchmark: subtree, ancestors, scoped lists and subtree moves over 20,000 units.

    python bench/bench_org.py                      # SQLite in a temporary directory
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres python bench/bench_org.py
                                                   # PostgreSQL, in a database of its own (kehu_bench)

The database is the benchmark's own: a temporary SQLite file, or on PostgreSQL the database
``kehu_bench`` (created afresh next to the one DATABASE_URL names, dropped afterwards). The schema
is built with ``migrate``, the organisation with ``kehu gen-data``. Prints a table and writes JSON
to bench/results/ (or ``--json``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------ database set-up (before Django)


def prepare_database(pg_url: str | None, pg_dbname: str) -> tuple[str, str | None]:
    """Point the settings at a fresh database; returns (backend, directory to delete afterwards)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "kehu.settings"
    # Production settings (DEBUG off: no query log), with what a bench machine cannot provide.
    os.environ.setdefault("KEHU_SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ.setdefault("KEHU_ALLOWED_HOSTS", "localhost")
    os.environ.setdefault("KEHU_HTTPS", "0")
    os.environ.setdefault("KEHU_LOG_LEVEL", "WARNING")
    if not pg_url:
        tmp = tempfile.mkdtemp(prefix="kehu-bench-")
        os.environ["KEHU_DATA_DIR"] = tmp
        os.environ.pop("DATABASE_URL", None)
        return "sqlite", tmp

    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(pg_dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg_dbname)))
    parts = urlsplit(pg_url)
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + pg_dbname))
    os.environ.setdefault("KEHU_DATA_DIR", tempfile.mkdtemp(prefix="kehu-bench-"))
    return "postgresql", os.environ["KEHU_DATA_DIR"]


def drop_database(pg_url: str, pg_dbname: str) -> None:
    import psycopg
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(pg_dbname)))


# ------------------------------------------------------------------ measuring


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)

    def pct(p: float) -> float:
        # nearest-rank percentile
        k = max(0, min(len(ms) - 1, int(round(p / 100 * len(ms) + 0.5)) - 1))
        return ms[k]

    return {
        "n": len(ms),
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "max_ms": round(ms[-1], 3),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(units: int, samples: int, moves: int, seed: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    gen_started = time.perf_counter()
    call_command("gen_data", "--units", str(units), "--seed", str(seed), stdout=io.StringIO())
    gen_seconds = time.perf_counter() - gen_started
    if connection.vendor == "postgresql":
        # Fresh statistics, as autovacuum would have gathered them after a bulk load in production.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    from kehu.accounts.models import RoleAssignment, User
    from kehu.accounts.roles import Role
    from kehu.org.models import Unit
    from kehu.org.services import unit_move

    rng = random.Random(seed)
    all_ids = list(Unit.objects.values_list("pk", flat=True))
    sample = list(Unit.objects.filter(pk__in=rng.sample(all_ids, min(samples, len(all_ids)))))
    rng.shuffle(sample)
    city_heads = list(
        User.objects.filter(role_assignments__role=Role.UNIT_HEAD, unit__depth=1).select_related("unit")
    )
    for head in city_heads:
        head.role_names()  # roles are cached per request in the app too
    sysadmin = User.objects.create(
        username="bench.sysadmin", full_name="基准系统管理员", must_change_password=False
    )
    RoleAssignment.objects.create(user=sysadmin, role=Role.SYSTEM_ADMIN, scope="")

    ops = {
        "subtree count": lambda u, h: Unit.objects.subtree_of(u).count(),
        "ancestors": lambda u, h: list(Unit.objects.ancestors_of(u)),
        "visible units [:50] (city head)": lambda u, h: list(Unit.objects.visible_to(h)[:50]),
        "visible people count (city head)": lambda u, h: User.objects.visible_to(h).count(),
    }
    results: dict[str, dict] = {}
    for name, op in ops.items():
        for unit in sample[:10]:  # warm-up
            op(unit, city_heads[0])
        pairs = [(unit, rng.choice(city_heads)) for unit in sample]
        times = [timed(lambda u=u, h=h, f=op: f(u, h)) for u, h in pairs]
        results[name] = summarise(times)

    # Moves: a county-level subtree to another city, 20 times.
    cities = list(Unit.objects.filter(depth=1))
    counties = list(Unit.objects.filter(depth=2))
    move_times, sizes = [], []
    for county in rng.sample(counties, min(moves, len(counties))):
        county.refresh_from_db()
        target = rng.choice([c for c in cities if c.pk != county.parent_id] or cities)
        sizes.append(Unit.objects.subtree_of(county).count())
        move_times.append(
            timed(lambda c=county, t=target: unit_move(acting_user=sysadmin, unit=c, new_parent=t))
        )
    results["unit_move (county subtree)"] = summarise(move_times) | {
        "avg_subtree": round(sum(sizes) / len(sizes), 1)
    }

    backend = connection.vendor
    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()" if backend == "sqlite" else "show server_version")
        db_version = cursor.fetchone()[0]
    return {
        "benchmark": "org",
        "backend": "postgresql" if backend == "postgresql" else backend,
        "db_version": db_version,
        "units": Unit.objects.count(),
        "people": User.objects.count(),
        "gen_data_seconds": round(gen_seconds, 2),
        "samples": len(sample),
        "results": results,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "django": django.get_version(),
    }


def print_table(report: dict) -> None:
    print(
        f"\norg benchmark — {report['backend']} {report['db_version']}: {report['units']} units, "
        f"{report['people']} people (gen-data {report['gen_data_seconds']} s; "
        f"load average {report['load_average'][0]} on {report['cpus']} CPUs)"
    )
    print(f"{'operation':36} {'n':>4} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for name, r in report["results"].items():
        print(f"{name:36} {r['n']:>4} {r['p50_ms']:>9.2f} {r['p95_ms']:>9.2f} {r['max_ms']:>9.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=200, help="random units per read operation")
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL URL to create the bench database next to (default: $DATABASE_URL; "
                             "unset: SQLite)")  # fmt: skip
    parser.add_argument("--pg-dbname", default="kehu_bench", help="bench database name (dropped first!)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON result")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args(argv)

    pg_url = args.postgres if args.postgres is not None else os.environ.get("DATABASE_URL")
    backend, tmp = prepare_database(pg_url or None, args.pg_dbname)
    try:
        report = run(args.units, args.samples, args.moves, args.seed)
    finally:
        if not args.keep:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            if backend == "postgresql":
                drop_database(pg_url, args.pg_dbname)
    print_table(report)
    out = args.json or RESULTS / f"org-{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
