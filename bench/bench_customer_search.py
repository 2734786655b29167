#!/usr/bin/env python
"""Customer-search benchmark: the list page (``customers.selectors.customer_page``) over 1,000,000 customers.

    python bench/bench_customer_search.py                 # SQLite in a temporary directory (gen-data first)
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres python bench/bench_customer_search.py
                                                          # PostgreSQL, database kehu_bench_search (dropped!)
    python bench/bench_customer_search.py --existing      # the database the environment names, already
                                                          # filled by `kehu gen-data --customers …`

Without ``--existing`` the database is the benchmark's own, as in bench_org.py: created, migrated,
filled with ``kehu gen-data --units 20000 --customers 1000000`` and dropped afterwards (``--keep``
keeps it). With ``--existing`` nothing is created or dropped: point ``KEHU_DATA_DIR`` (SQLite) or
``DATABASE_URL`` (PostgreSQL) at a database that gen-data filled; the benchmark adds one account
(``bench.station``, a station manager) if it is missing.

Every sample is one call of ``customer_page`` — the rows of one page (50) and the capped count, the
ORM included — for one of four viewers in turn (province head, city head, station manager, customer
manager). The query classes are listed in bench/README.md. Search terms are drawn from the data
itself (a sample of names, codes, credit codes and decrypted phones), so every class asks for things
that exist, common and rare. Prints a table and writes JSON to bench/results/ (or ``--json``); with
``--explain`` the JSON also holds the query plan of the slowest sample of each class over the target.
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
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_org import RESULTS, ROOT, drop_database, prepare_database, summarise  # noqa: E402

TARGET_MS = 100.0
VIEWERS = ("province head", "city head", "station manager", "customer manager")


def setup_existing() -> str:
    """Settings for a database gen-data filled: the environment names it; production settings otherwise."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "kehu.settings"
    os.environ.setdefault("KEHU_SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ.setdefault("KEHU_ALLOWED_HOSTS", "localhost")
    os.environ.setdefault("KEHU_HTTPS", "0")
    os.environ.setdefault("KEHU_LOG_LEVEL", "WARNING")
    return "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"


# ------------------------------------------------------------------ the data to ask for


def viewers(prefix: str, rng: random.Random) -> dict[str, object]:
    from django.db.models import Count

    from kehu.accounts.models import RoleAssignment, User
    from kehu.accounts.roles import Role
    from kehu.customers.models import Customer
    from kehu.org.models import Unit

    p = prefix.lower()
    province = User.objects.select_related("unit").get(username=f"{p}-0-000000.1")
    cities = list(
        User.objects.select_related("unit").filter(username__startswith=f"{p}-1-", username__endswith=".1")
    )
    city = rng.choice(cities)
    leaf_depth = (
        Unit.objects.filter(code__startswith=f"{prefix}-")
        .order_by("-depth")
        .values_list("depth", flat=True)[0]
    )
    # The station manager sits at a station with a typical number of customers (the median of a sample).
    stations = list(
        Unit.objects.filter(code__startswith=f"{prefix}-", depth=leaf_depth)
        .order_by("?")
        .values_list("pk", flat=True)[:50]
    )
    counted = sorted(
        Customer.objects.filter(owning_unit_id__in=stations)
        .values("owning_unit_id")
        .annotate(n=Count("id"))
        .values_list("n", "owning_unit_id")
    )
    station = Unit.objects.get(pk=counted[len(counted) // 2][1])
    manager, created = User.objects.get_or_create(
        username="bench.station",
        defaults={
            "full_name": "基准站长",
            "unit": station,
            "position": "加油站经理",
            "must_change_password": False,
        },
    )
    if created:
        RoleAssignment.objects.create(user=manager, role=Role.STATION_MANAGER, scope="subtree")
    manager = User.objects.select_related("unit").get(pk=manager.pk)
    # The customer manager with the most customers among a sample (a busy one).
    cm_ids = list(
        User.objects.filter(username__startswith=f"{p}-", role_assignments__role=Role.CUSTOMER_MANAGER)
        .order_by("?")
        .values_list("pk", flat=True)[:200]
    )
    busiest = (
        Customer.objects.filter(lead_manager_id__in=cm_ids)
        .values("lead_manager_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("lead_manager_id", flat=True)
        .first()
    )
    cm = User.objects.select_related("unit").get(pk=busiest or cm_ids[0])
    found = {"province head": province, "city head": city, "station manager": manager, "customer manager": cm}
    for user in found.values():
        user.role_names()  # cached per request in the app too
    return found


def vocabulary(rng: random.Random, sample_size: int = 20000) -> dict[str, list]:
    """Search terms drawn from the data: common and rare characters and bigrams, substrings, pinyin,
    initials, codes, credit codes, phones, tags, managers and units."""
    from django.db.models import Max, Min

    from kehu.customers.fakes import TAG_NAMES
    from kehu.customers.models import Customer, CustomerPhone
    from kehu.customers.search import CJK_RUN, pinyin_syllables
    from kehu.org.models import Unit

    bounds = Customer.objects.aggregate(lo=Min("id"), hi=Max("id"))
    ids = rng.sample(
        range(bounds["lo"], bounds["hi"] + 1), min(sample_size * 2, bounds["hi"] - bounds["lo"] + 1)
    )
    rows = list(
        Customer.objects.filter(pk__in=ids[: sample_size * 2]).values_list(
            "name", "code", "credit_code", "lead_manager_id", "owning_unit_id", "kind"
        )[:sample_size]
    )
    chars, bigrams = Counter(), Counter()
    runs = []
    for name, *_rest in rows:
        for run in CJK_RUN.findall(name):
            chars.update(set(run))
            bigrams.update({run[i : i + 2] for i in range(len(run) - 1)})
            if len(run) >= 4:
                runs.append(run)
    by_freq = [c for c, _n in chars.most_common()]
    bi_freq = [b for b, _n in bigrams.most_common()]
    common_chars = by_freq[:15]
    rare_chars = [c for c in by_freq if chars[c] <= max(2, len(rows) // 5000)][:200] or by_freq[-30:]
    common_bigrams = bi_freq[:15]
    rare_bigrams = [b for b in bi_freq if bigrams[b] <= 2][:300] or bi_freq[-50:]
    substrings, pinyin, initials = [], [], []
    for run in rng.sample(runs, min(400, len(runs))):
        size = rng.randint(3, min(6, len(run)))
        start = rng.randint(0, len(run) - size)
        sub = run[start : start + size]
        substrings.append(sub)
        syllables = pinyin_syllables(run)[start : start + size]
        if all(syllables):
            pinyin.append("".join(syllables[: rng.randint(2, 3)]))
            initials.append("".join(s[0] for s in syllables[: rng.randint(3, 4)]))
    codes = [r[1] for r in rows]
    credit = [r[2] for r in rows if r[2]]
    try:
        phones = [p.number for p in CustomerPhone.objects.filter(customer_id__in=ids[:sample_size])[:300]]
    except ValueError as exc:
        raise SystemExit(
            f"Cannot read the generated phones ({exc}): run the benchmark with the KEHU_SECRET_KEY "
            "(or KEHU_DATA_KEYS and KEHU_INDEX_KEY) that gen-data ran with."
        ) from None
    units = list(Unit.objects.filter(depth__in=(2, 3)).exclude(code__startswith="SD").order_by("?")[:200])
    managers = list({r[3] for r in rows if r[3]})
    return {
        "common_chars": common_chars, "rare_chars": rare_chars, "common_bigrams": common_bigrams,
        "rare_bigrams": rare_bigrams, "substrings": substrings, "pinyin": pinyin, "initials": initials,
        "codes": codes, "credit": credit, "phones": phones, "units": units, "managers": managers,
        "tags": TAG_NAMES,
    }  # fmt: skip


def query_classes(v: dict, rng: random.Random) -> dict[str, object]:
    """Each class: a function (viewer) -> (CustomerFilters, page). Terms are drawn afresh per sample."""
    from kehu.accounts.models import User
    from kehu.customers.selectors import CustomerFilters as F

    user_cache: dict[int, object] = {}

    def manager(_viewer):
        pk = rng.choice(v["managers"])
        if pk not in user_cache:
            user_cache[pk] = User.objects.get(pk=pk)
        return user_cache[pk]

    def within(viewer):
        unit = getattr(viewer, "unit", None)
        below = [u for u in v["units"] if unit is not None and u.path.startswith(unit.path)]
        return rng.choice(below) if below else unit

    def pick(key):
        return rng.choice(v[key])

    return {
        "1 char, common": lambda w: (F(q=pick("common_chars")), 1),
        "1 char, rare": lambda w: (F(q=pick("rare_chars")), 1),
        "2 chars, common": lambda w: (F(q=pick("common_bigrams")), 1),
        "2 chars, rare": lambda w: (F(q=pick("rare_bigrams")), 1),
        "3-6 chars": lambda w: (F(q=pick("substrings")), 1),
        "full pinyin": lambda w: (F(q=pick("pinyin")), 1),
        "initials": lambda w: (F(q=pick("initials")), 1),
        "code prefix (6-9 digits)": lambda w: (F(q=pick("codes")[: rng.randint(6, 9)]), 1),
        "code (14 digits)": lambda w: (F(q=pick("codes")), 1),
        "phone": lambda w: (F(q=pick("phones")), 1),
        "credit code": lambda w: (F(q=pick("credit")), 1),
        "filter: unit subtree": lambda w: (F(within=within(w)), 1),
        "filter: status": lambda w: (F(status=rng.choice(["active", "dormant", "lost", "prospect"])), 1),
        "filter: kind": lambda w: (F(kind=rng.choice(["institution", "individual"])), 1),
        "filter: manager": lambda w: (F(manager=manager(w)), 1),
        "filter: tag": lambda w: (F(tag=pick("tags")), 1),
        "list by name, page 1": lambda w: (F(order="name"), 1),
        "list by name, page 40": lambda w: (F(order="name"), 40),
        "list by updated, page 1": lambda w: (F(order="-updated"), 1),
        "list by updated, page 40": lambda w: (F(order="-updated"), 40),
        "search + filters": lambda w: (
            F(q=pick("common_bigrams"), status="active", kind="institution", within=within(w), order="name"),
            1,
        ),
    }


# ------------------------------------------------------------------ measuring


def explain(viewer, filters, page: int) -> list[str]:
    from kehu.customers.selectors import customer_search

    qs = customer_search(viewer=viewer, filters=filters)
    plans = [str(qs[(page - 1) * 50 : page * 50].explain())]
    plans.append(str(qs.order_by()[:10001].explain()))
    return plans


def run(args, backend: str) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from kehu.customers.models import Customer
    from kehu.customers.selectors import customer_page

    gen_seconds = None
    if not args.existing:
        call_command("migrate", verbosity=0, interactive=False)
        out = io.StringIO()
        started = time.perf_counter()
        call_command("gen_data", "--units", str(args.units), "--customers", str(args.customers), "--seed",
                     str(args.seed), "--prefix", args.prefix, stdout=out)  # fmt: skip
        gen_seconds = time.perf_counter() - started
        print(out.getvalue().strip().splitlines()[-1], flush=True)
    if connection.vendor == "postgresql":
        # What autovacuum does within minutes of a bulk load in production: without a visibility map
        # PostgreSQL cannot answer counts from an index alone and visits every matching row.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE customers_customer")
    total = Customer.objects.count()
    rng = random.Random(args.seed)
    people = viewers(args.prefix, rng)
    vocab = vocabulary(rng)
    classes = query_classes(vocab, rng)
    only = set(args.only or [])
    results: dict[str, dict] = {}
    for name, make in classes.items():
        if only and name not in only:
            continue
        for k in range(3):  # warm-up
            viewer = people[VIEWERS[k % len(VIEWERS)]]
            filters, page = make(viewer)
            customer_page(viewer=viewer, filters=filters, page=page)
        times, by_viewer, slowest = [], {w: [] for w in VIEWERS}, (0.0, None)
        for k in range(args.samples):
            who = VIEWERS[k % len(VIEWERS)]
            viewer = people[who]
            filters, page = make(viewer)
            started = time.perf_counter()
            customer_page(viewer=viewer, filters=filters, page=page)
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            by_viewer[who].append(elapsed)
            if elapsed > slowest[0]:
                slowest = (elapsed, (who, viewer, filters, page))
        summary = summarise(times)
        summary["p95_ms_by_viewer"] = {w: summarise(t)["p95_ms"] for w, t in by_viewer.items() if t}
        who, viewer, filters, page = slowest[1]
        summary["slowest"] = {"viewer": who, "filters": filters.describe(), "page": page,
                              "ms": round(slowest[0] * 1000, 1)}  # fmt: skip
        if args.explain and summary["p95_ms"] > TARGET_MS:
            summary["plans"] = explain(viewer, filters, page)
        results[name] = summary
        print(f"  {name:28} p50 {summary['p50_ms']:8.1f}  p95 {summary['p95_ms']:8.1f} ms", flush=True)

    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()" if backend == "sqlite" else "show server_version")
        db_version = cursor.fetchone()[0]
    return {
        "benchmark": "customer_search",
        "backend": backend,
        "db_version": db_version,
        "customers": total,
        "gen_data_seconds": round(gen_seconds, 1) if gen_seconds is not None else None,
        "samples": args.samples,
        "viewers": {w: f"{u.username} ({u.unit.code if u.unit else '-'})" for w, u in people.items()},
        "target_p95_ms": TARGET_MS,
        "results": results,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "django": django.get_version(),
    }


def print_table(report: dict) -> None:
    print(
        f"\ncustomer search — {report['backend']} {report['db_version']}: {report['customers']:,} customers "
        f"(load average {report['load_average'][0]} on {report['cpus']} CPUs); viewers: "
        + ", ".join(f"{w} {u}" for w, u in report["viewers"].items())
    )
    print(
        f"{'query class':28} {'n':>4} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}  {'worst viewer (p95)':24} target"
    )
    for name, r in report["results"].items():
        worst = max(r["p95_ms_by_viewer"].items(), key=lambda x: x[1])
        ok = (
            "ok"
            if r["p95_ms"] <= report["target_p95_ms"]
            else f"MISS x{r['p95_ms'] / report['target_p95_ms']:.1f}"
        )
        print(f"{name:28} {r['n']:>4} {r['p50_ms']:>9.1f} {r['p95_ms']:>9.1f} {r['max_ms']:>9.1f}  "
              f"{worst[0] + ' ' + format(worst[1], '.1f'):24} {ok}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers",
        type=int,
        default=int(os.environ.get("KEHU_BENCH_CUSTOMERS", 1_000_000)),
        help="customers to generate (default $KEHU_BENCH_CUSTOMERS or 1,000,000)",
    )
    parser.add_argument("--units", type=int, default=20000, help="units to generate (default 20000)")
    parser.add_argument("--samples", type=int, default=80, help="samples per query class (default 80)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prefix", default="G", help="the gen-data prefix of the units (default G)")
    parser.add_argument("--existing", action="store_true",
                        help="use the database the environment names, filled by gen-data already")  # fmt: skip
    parser.add_argument("--only", action="append", help="run only this query class (repeatable)")
    parser.add_argument(
        "--explain", action="store_true", help="keep the query plans of classes over the target"
    )
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL URL to create the bench database next to (default: $DATABASE_URL; "
                             "unset: SQLite)")  # fmt: skip
    parser.add_argument(
        "--pg-dbname", default="kehu_bench_search", help="bench database name (dropped first!)"
    )
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON result")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--moves", type=int, help=argparse.SUPPRESS)  # bench/run.py passes every option on
    args = parser.parse_args(argv)

    tmp, pg_url = None, None
    if args.existing:
        backend = setup_existing()
    else:
        pg_url = args.postgres if args.postgres is not None else os.environ.get("DATABASE_URL")
        backend, tmp = prepare_database(pg_url or None, args.pg_dbname)
    try:
        report = run(args, backend)
    finally:
        if not args.existing and not args.keep:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            if backend == "postgresql":
                drop_database(pg_url, args.pg_dbname)
    print_table(report)
    out = args.json or RESULTS / f"customer_search-{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"-> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
