#!/usr/bin/env python
"""Run every bench/bench_*.py on SQLite and, when configured, on PostgreSQL; print one table.

    python bench/run.py                 # SQLite only
    KEHU_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1/postgres python bench/run.py
                                        # SQLite and PostgreSQL (DATABASE_URL works too)
    python bench/run.py --units 5000    # extra arguments go to every benchmark

Each benchmark runs in its own process with its own database and writes its JSON report to
bench/results/<name>-<backend>.json (see bench/README.md for the contract).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def backends() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = [("sqlite", None)]
    pg = os.environ.get("KEHU_BENCH_POSTGRES_URL") or os.environ.get("DATABASE_URL")
    if pg:
        found.append(("postgresql", pg))
    return found


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if not scripts:
        print("no bench/bench_*.py found", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    reports, failed = [], []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        for backend, url in backends():
            env = dict(os.environ)
            env.pop("DATABASE_URL", None)
            if url:
                env["DATABASE_URL"] = url
            out = RESULTS / f"{name}-{backend}.json"
            print(f"== {script.name} on {backend}", flush=True)
            done = subprocess.run([sys.executable, str(script), "--json", str(out), *argv], env=env)
            if done.returncode != 0:
                failed.append(f"{script.name} on {backend} (exit {done.returncode})")
                continue
            reports.append(json.loads(out.read_text()))

    print("\nSummary (milliseconds)")
    print(f"{'benchmark':10} {'backend':11} {'operation':36} {'n':>4} {'p50':>9} {'p95':>9} {'max':>9}")
    for report in reports:
        for op, r in report["results"].items():
            print(
                f"{report['benchmark']:10} {report['backend']:11} {op:36} {r['n']:>4} "
                f"{r['p50_ms']:>9.2f} {r['p95_ms']:>9.2f} {r['max_ms']:>9.2f}"
            )
    for failure in failed:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
