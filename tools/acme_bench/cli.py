"""Time the payments load against the alternatives on one generated file (``make bench``, ``make bench-memory``).

python -m acme_bench [--rows N] [--sample N]   # (a) project load, (b) raw COPY, (c) pandas, (d) insert_rows
python -m acme_bench --memory-scaling          # (a) alone at 1M and 5M rows: does peak memory stay flat?

Each method runs in a child process of its own (``--method``) so its peak RSS
is its own. Every run uses a fresh database ``bench_<random>`` on ``--pg-url``
and drops it at the end, and a temporary folder for the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from acme_bench.generate import DEFAULT_SEED, partition_file, write_payments_csv
from acme_localdev.cli import detail, step
from acme_localdev.env import ARROW_MEMORY_POOL

TOOLS = Path(__file__).resolve().parents[1]
PLUGINS = TOOLS.parent / "plugins"
DEFAULT_ROWS = 2_000_000
DEFAULT_SAMPLE = 50_000
DEFAULT_DAY = date(2026, 11, 1)
DEFAULT_PG_URL = os.environ.get("ACME_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
SCALING_ROWS = (1_000_000, 5_000_000)
LABELS = {
    "a": "(a) project load_partition",
    "b": "(b) raw COPY (ceiling)",
    "c": "(c) pandas read_csv + to_sql",
    "d": "(d) DbApiHook.insert_rows",
    "f": "(f) PostgreSQL's part alone",
}
TARGET_A_OVER_B = 0.5
TARGET_SYNC_OVER_B = 0.5  # each table of (e) alone, its rows over its own seconds, vs (b)
TARGET_A_OVER_C = 30.0
TARGET_PEAK_RSS_MB = 300.0
TARGET_SCALING = 1.2


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m acme_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="payment rows to generate (default 2,000,000)")
    parser.add_argument(
        "--sample", type=int, default=DEFAULT_SAMPLE, help="rows (c) and (d) load, from the top of the same file"
    )
    parser.add_argument("--memory-scaling", action="store_true", help="run (a) alone at 1M and 5M rows")
    parser.add_argument("--methods", default="abcdf", help="which methods to run (default abcdf; f needs a)")
    parser.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server URL without a database name")
    parser.add_argument(
        "--sync-orders", type=int, default=1_000_000, help="orders for the sync benchmark (e); 0 skips it"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and print it)")
    # child mode, used by the parent only
    parser.add_argument("--method", choices=sorted(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.sample < 1:
        parser.error("--rows and --sample must be positive")
    if set(args.methods) - set(LABELS):
        parser.error(f"--methods takes letters of {''.join(LABELS)}")
    return args


# -- the parent ---------------------------------------------------------------------------


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> list[str]:
    nproc = cores()
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return [
        f"machine: nproc {nproc}, {model}{ram}",
        f"date:    {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
        f"python:  {platform.python_version()}",
    ]


def _admin(pg_url: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(f"{pg_url}/postgres")
    conn.autocommit = True
    return conn


@contextmanager
def fresh_database(pg_url: str) -> Iterator[str]:
    """A new database ``bench_<random>``, dropped (WITH FORCE) on the way out; yields its DSN."""
    name = f"bench_{secrets.token_hex(4)}"
    conn = _admin(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
    finally:
        conn.close()
    detail(f"database {name} on {pg_url} (PostgreSQL {version})")
    try:
        yield f"{pg_url}/{name}"
    finally:
        conn = _admin(pg_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            conn.close()
        detail(f"dropped database {name}")


def generate(path: Path, rows: int, day: date, seed: int) -> None:
    step(f"generating {rows:,} payment rows for {day} (seed {seed}) -> {path}")
    started = time.perf_counter()
    size = write_payments_csv(path, rows, day, seed)
    seconds = time.perf_counter() - started
    detail(f"{size / 1e6:,.1f} MB in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)")


def run_child(method: str, file: Path, dsn: str, day: date, sample: int, workdir: Path) -> dict[str, Any]:
    """Run one method in a child process; returns its result, or ``{"error": ...}``."""
    result_file = workdir / f"result-{method}.json"
    log_file = workdir / f"child-{method}.log"
    result_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), str(TOOLS), env.get("PYTHONPATH")) if p)
    env["AIRFLOW_HOME"] = str(workdir / "airflow_home")
    env["AIRFLOW_CONN_BENCH_PG"] = dsn
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_MEMORY_POOL)  # as the workers run (acme_localdev.env)
    command = [sys.executable, "-m", "acme_bench", "--method", method, "--file", str(file), "--dsn", dsn]
    command += ["--day", day.isoformat(), "--sample", str(sample), "--result", str(result_file)]
    started = time.perf_counter()
    with log_file.open("w") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    result: dict[str, Any] = json.loads(result_file.read_text()) if result_file.exists() else {}
    if code or "error" in result or not result:
        tail = log_file.read_text(errors="replace").splitlines()[-40:]
        detail(f"FAILED (exit {code}) after {wall:.1f} s; last lines of the child's output:")
        for line in tail:
            detail(f"| {line}")
        result.setdefault("error", tail[-1] if tail else f"exit {code}")
        return result
    result["wall"] = wall
    rate = result["rows"] / result["seconds"] if result["seconds"] else float("inf")
    detail(
        f"{result['rows']:,} rows in {result['seconds']:.2f} s = {rate:,.0f} rows/s; "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (child {wall:.1f} s with imports and setup)"
    )
    return result


def _rate(result: dict[str, Any] | None) -> float | None:
    if not result or "error" in result or not result.get("seconds"):
        return None
    return result["rows"] / result["seconds"]


def _note(method: str, result: dict[str, Any], total_rows: int) -> str:
    if "error" in result:
        return f"FAILED: {result['error']}"[:160]
    before = f"RSS before load {result['base_rss_mb']:.0f} MB"
    if method == "a":
        return (
            f"read+validate+copy+index+publish; loaded {result['rows_loaded']:,}, "
            f"rejected {result['rows_rejected']:,}, "
            f"duplicate {result['rows_duplicate']:,}; {result['published']:,} rows in core.fact_payments; {before}; "
            f"Arrow pool ({result['arrow_pool']}) peak {result['arrow_peak_mb']:.0f} MB"
        )
    if method == "b":
        runs = ", ".join(f"{x:.2f}" for x in result.get("runs", []))
        return f"COPY FROM STDIN in 1 MiB blocks into an all-text table, no indexes; median of {runs} s; {before}"
    if method == "f":
        return "binary COPY of (a)'s finished rows into a new day table as (a) builds it, then its primary key"
    rate = _rate(result) or 0
    sampled = f"sampled {result['rows']:,} rows, rows/s extrapolated (~{total_rows / rate:,.0f} s for {total_rows:,})"
    if method == "c":
        return f"{sampled}; read chunksize 10,000, to_sql chunksize 1,000; {before}"
    return f"{sampled}; commit_every 1,000, {result.get('driver', '?')}; {before}"


SYNC_NOTES = {
    "alone": "by itself, into an empty warehouse; the median run",
    "together": "both at once (the DAG's app_db pool: 2 slots)",
    "rerun": "same window again, every key there",
    "source part": "alone's source end by itself: the window's rows read as the sync does, to a local file",
    "warehouse part": "alone's warehouse end by itself: those rows COPYed from the file, indexes rebuilt",
}


def _sync_rate(r: dict[str, Any]) -> float:
    return r["rows_in"] / r["seconds"] if r["seconds"] else float("inf")


def sync_rows(synced: dict[str, Any]) -> list[list[str]]:
    """The results table's (e) lines: per run, each table's rows over its own seconds."""
    rows = []
    together = synced["together"]
    total = sum(r["rows_in"] for r in together["tables"].values())
    rows.append(
        [
            "(e) sync, both tables at once",
            f"{total:,}",
            f"{together['wall_seconds']:.2f}",
            f"{total / together['wall_seconds']:,.0f}",
            "-",
            "all rows over the wall clock, as the DAG runs them (2 sync tasks at a time)",
        ]
    )
    for run in SYNC_NOTES:
        for source, r in synced[run]["tables"].items():
            rows.append(
                [
                    f"    (e) {source} {run}",
                    f"{r['rows_in']:,}",
                    f"{r['seconds']:.2f}",
                    f"{_sync_rate(r):,.0f}",
                    "-",
                    ("" if run in synced["parts"] else f"{r['method']} publish; ")
                    + f"{SYNC_NOTES[run]}; {r['bytes'] / 1e6:,.0f} MB",
                ]
            )
    return rows


def sync_ratios(synced: dict[str, Any], rate_b: float | None) -> dict[str, float | None]:
    """Each table alone (its rows over its own seconds) against (b): the targets' figures."""
    return {s: (_sync_rate(r) / rate_b if rate_b else None) for s, r in synced["alone"]["tables"].items()}


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def print_sync_cpu(synced: dict[str, Any], b: dict[str, Any] | None) -> None:
    """CPU seconds of each party of the median alone runs and parts, and of (b)'s median run."""
    n = cores()
    print()
    print("(e) CPU seconds of the median alone runs, parts and (b)'s (from /proc: PostgreSQL on this machine):")
    metered = ("alone", *synced["parts"])
    if b and "error" not in b:
        print(f"  {'(b)':<26} {b['rows']:>9,} rows  wall {b['seconds']:.2f}  PostgreSQL backend {_cpu(b.get('cpu'))}")
    for run in metered:
        for source, r in synced[run]["tables"].items():
            cpu = r.get("cpu") or {}
            backends = cpu.get("backends", {})
            parts = {
                "source": backends.get("source"),
                "warehouse": backends.get("warehouse"),
                "parallel workers": cpu.get("workers"),
                "relay (this process)": cpu.get("relay"),
            }
            known = [v for v in parts.values() if v is not None]
            total = f" = {sum(known):.2f} ({sum(known) / (r['seconds'] * n):.0%} of {n} cores)" if known else ""
            listed = ", ".join(f"{name} {_cpu(v)}" for name, v in parts.items())
            print(f"  {source:<11} {run:<14} {r['rows_in']:>9,} rows  wall {r['seconds']:.2f}  {listed}{total}")
    for run in metered:
        for source, runs in synced[run].get("repeats", {}).items():
            print(f"  {source} {run}, each run: " + ", ".join(f"{x['seconds']:.2f}" for x in runs) + " s")


def print_sync(synced: dict[str, Any], b: dict[str, Any] | None) -> None:
    """Where each sync's time went (its phases and CPU seconds), and each rate against (b)."""
    rate_b = _rate(b)
    print()
    print("(e) sync phases, seconds (rows/s of the table's rows over that phase):")
    for run in SYNC_NOTES:
        for source, r in synced[run]["tables"].items():
            phases = ", ".join(
                f"{name} {seconds:.2f}" + (f" ({r['rows_in'] / seconds:,.0f})" if seconds >= 0.05 else "")
                for name, seconds in r["phases"].items()
            )
            other = r["seconds"] - sum(r["phases"].values())
            print(f"  {source:<11} {run:<14} {r['method']:<6} {phases}; connect and checks {other:.2f}")
    print_sync_cpu(synced, b)
    print()
    for run in SYNC_NOTES:
        ratios = ", ".join(
            f"{source} {_sync_rate(r) / rate_b:.2f}" if rate_b else f"{source} n/a"
            for source, r in synced[run]["tables"].items()
        )
        print(f"sync/b, {run:<14} = {ratios}   ({SYNC_NOTES[run]})")
    print("         (each part/b: the most sync/b alone could be if the other end cost nothing)")


def print_table(headers: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def fmt(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return " | ".join(padded).rstrip()

    print(fmt(headers))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def bench(args: argparse.Namespace, workdir: Path) -> int:
    file = partition_file(workdir / "landing", args.day)
    generate(file, args.rows, args.day, args.seed)
    sample = min(args.sample, args.rows)
    results: dict[str, dict[str, Any]] = {}
    with fresh_database(args.pg_url) as dsn:
        for method in args.methods:
            scope = f"the first {sample:,} rows" if method in "cd" else f"all {args.rows:,} rows"
            step(f"{LABELS[method]} on {scope} ...")
            results[method] = run_child(method, file, dsn, args.day, sample, workdir)

    print()
    step(f"results: {args.rows:,} payment rows, one CSV file of {file.stat().st_size / 1e6:,.1f} MB, day {args.day}")
    rows = []
    for method, result in results.items():
        if "error" in result:
            rows.append([LABELS[method], "-", "-", "-", "-", _note(method, result, args.rows)])
            continue
        rows.append(
            [
                LABELS[method],
                f"{result['rows']:,}",
                f"{result['seconds']:.2f}",
                f"{_rate(result):,.0f}",
                f"{result['peak_rss_mb']:.0f}",
                _note(method, result, args.rows),
            ]
        )
    synced = None
    if args.sync_orders:
        from acme_bench import sync

        step(f"(e) hourly sync: {args.sync_orders:,} orders + {2 * args.sync_orders:,} order items, app -> warehouse")
        with (
            fresh_database(args.pg_url) as app_dsn,
            fresh_database(args.pg_url) as first,
            fresh_database(args.pg_url) as second,
        ):
            synced = sync.run(app_dsn, (first, second), args.sync_orders, workdir)
        detail(f"app database filled in {synced['fill_seconds']:.1f} s (not timed below)")
        rows.extend(sync_rows(synced))
    print_table(["method", "rows", "seconds", "rows/s", "peak RSS MB", "note"], rows, right={1, 2, 3, 4})

    rate_a, rate_b, rate_c, rate_f = (_rate(results.get(m)) for m in "abcf")
    if synced:
        print_sync(synced, results.get("b"))
    a_over_b = rate_a / rate_b if rate_a and rate_b else None
    a_over_c = rate_a / rate_c if rate_a and rate_c else None
    ok_a = "a" in results and "error" not in results["a"]
    peak_a = results["a"]["peak_rss_mb"] if ok_a else None
    print()
    print(f"a/b = {a_over_b:.2f}" if a_over_b else "a/b = n/a", "(project load vs raw COPY ceiling)")
    print(f"a/c = {a_over_c:.1f}" if a_over_c else "a/c = n/a", "(project load vs pandas to_sql, rows/s)")
    if rate_f:
        print(f"f/b = {rate_f / rate_b:.2f}" if rate_b else "f/b = n/a", "(PostgreSQL alone doing (a)'s part,")
        print("       vs the ceiling: about the most a/b can be with this table design)")
        print(
            f"a/f = {rate_a / rate_f:.2f}" if rate_a else "a/f = n/a",
            "(project load vs PostgreSQL's part alone; near 1 when reading and checking hide behind the COPY)",
        )
    if ok_a:
        print(f"(a) in its own words: {results['a'].get('steps', '-')}")
        own = results["a"]["peak_rss_mb"] - results["a"]["base_rss_mb"]
        print(
            f"(a) peak RSS {peak_a:.0f} MB = {results['a']['base_rss_mb']:.0f} MB before the load "
            f"(Python, Airflow, pyarrow, psycopg2 imported) + {own:.0f} MB the load itself added"
        )
    print()
    print("targets (from the issue):")
    checks = [
        (f"a/b >= {TARGET_A_OVER_B}", a_over_b and f"{a_over_b:.2f}", a_over_b and a_over_b >= TARGET_A_OVER_B),
        (f"a/c >= {TARGET_A_OVER_C:.0f}", a_over_c and f"{a_over_c:.1f}", a_over_c and a_over_c >= TARGET_A_OVER_C),
        (
            f"peak RSS of (a) < {TARGET_PEAK_RSS_MB:.0f} MB",
            peak_a and f"{peak_a:.0f} MB",
            peak_a and peak_a < TARGET_PEAK_RSS_MB,
        ),
    ]
    if synced:
        for source, ratio in sync_ratios(synced, rate_b).items():
            name = f"sync {source}/b >= {TARGET_SYNC_OVER_B}"
            checks.append((name, ratio and f"{ratio:.2f}", ratio and ratio >= TARGET_SYNC_OVER_B))
    for name, value, ok in checks:
        print(f"  {name:<28} {value or 'n/a':>10}   {_verdict(None if value is None else bool(ok))}")
    print()
    for line in machine():
        print(line)
    return 1 if any("error" in r for r in results.values()) else 0


def memory_scaling(args: argparse.Namespace, workdir: Path) -> int:
    peaks: dict[int, dict[str, Any]] = {}
    for rows in SCALING_ROWS:
        file = partition_file(workdir / f"landing-{rows}", args.day)
        generate(file, rows, args.day, args.seed)
        with fresh_database(args.pg_url) as dsn:
            step(f"{LABELS['a']} alone on {rows:,} rows ...")
            peaks[rows] = run_child("a", file, dsn, args.day, rows, workdir)
        shutil.rmtree(file.parents[2], ignore_errors=True)

    print()
    step("memory scaling of (a): peak RSS of the child process per file size")
    table = []
    for rows, result in peaks.items():
        if "error" in result:
            table.append([f"{rows:,}", "-", "-", "-", "-", _note("a", result, rows)])
            continue
        table.append(
            [
                f"{rows:,}",
                f"{result['seconds']:.2f}",
                f"{_rate(result):,.0f}",
                f"{result['peak_rss_mb']:.0f}",
                f"{result['base_rss_mb']:.0f}",
                f"loaded {result['rows_loaded']:,}, rejected {result['rows_rejected']:,}; "
                f"Arrow pool ({result['arrow_pool']}) peak {result['arrow_peak_mb']:.0f} MB",
            ]
        )
    headers = ["rows", "seconds", "rows/s", "peak RSS MB", "RSS before load MB", "note"]
    print_table(headers, table, right={0, 1, 2, 3, 4})
    small, large = (peaks[n] for n in SCALING_ROWS)
    ratio = None
    if "error" not in small and "error" not in large:
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print()
    label = f"peak RSS {SCALING_ROWS[1] // 1_000_000}M / {SCALING_ROWS[0] // 1_000_000}M"
    print(f"{label} = {ratio:.2f}" if ratio else f"{label} = n/a", f"(target <= {TARGET_SCALING}):", end=" ")
    print(_verdict(None if ratio is None else ratio <= TARGET_SCALING))
    print()
    for line in machine():
        print(line)
    return 0 if ratio is not None else 1


# -- the child ----------------------------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    from acme_bench.payments import METHODS

    try:
        result = METHODS[args.method](args.file, args.dsn, args.day, args.sample)
    except Exception as exc:
        traceback.print_exc()
        args.result.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}".strip()}))
        return 1
    args.result.write_text(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.method:
        return child(args)
    workdir = Path(tempfile.mkdtemp(prefix="acme_bench_"))
    try:
        return memory_scaling(args, workdir) if args.memory_scaling else bench(args, workdir)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            detail(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
