"""A day ten times bigger (``make bench-scale``): generated days of payments, events and point-of-sale sales
through ``daily_etl`` and ``data_quality_check``, task by task, as a user runs them.

python -m acme_bench.scale [--sizes 1M,5M,20M] [--events-per-payment 2] [--pos-per-payment 1] [--keep]

For each size N (payments a day): one day of N payments (CSV), N x 2 events (JSONL) and N
point-of-sale sales (SQLite) in a temporary landing folder; a fresh warehouse database, migrated
as ``make migrate`` does, holding what the hourly sync would have put there (the day's N/2 orders,
N/2 customers, the products, a sync past the day's end) so the checks that join them pass; then
every task of the two DAGs in dependency order, each ``airflow tasks test DAG TASK RUN_ID`` in a
process of its own, in runs made by ``airflow dags trigger -c '{"partition": DAY}'`` (a day's
rerun). The tasks that only trigger the next DAG are not run (the output names them). The Airflow
is the local runner's (``acme_localdev.env``, a SQLite metadata DB as ``make demo`` has, the
connections, pools and variables of airflow_settings.yaml) in a scratch AIRFLOW_HOME; the FX API
and Slack are local stand-ins.

Per task: the process's wall time; the task's own time (from its log, the CLI's ~20 s start-up
aside); rows and rows/s; the process's peak RSS (wait4); PostgreSQL temp bytes written
(pg_stat_database) and the database's growth (pg_database_size).

Targets, largest size against smallest: time per row (the task's own time) within 1.25x for
every task; peak RSS within 1.2x for every task; at the largest size the quality checks (every
data_quality_check task, summed) take less time than the loads (every landing load, summed).
Exit status 0 only when every task succeeded and every target is met, 1 otherwise.

The warehouse databases are dropped and the temporary folder is removed at the end (--keep keeps
the folder: every task's log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from acme_bench.cli import detail, fresh_database, machine, print_table, step

DEFAULT_SIZES = (1_000_000, 5_000_000, 20_000_000)
DEFAULT_DAY = date(2026, 11, 1)
DEFAULT_EVENTS_PER_PAYMENT = 2.0
DEFAULT_POS_PER_PAYMENT = 1.0
GENERATED = ("payments", "events", "pos")  # the landing sources generated here (acme_bench.generate)
DEFAULT_PG_URL = os.environ.get("ACME_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
TARGET_TIME_PER_ROW = 1.25
TARGET_PEAK_RSS = 1.2
HEARTBEAT_SECONDS = 30.0
# bytes per generated row, for the progress of generation (measured on the generators' output)
LINE_BYTES = {"payments": 61, "events": 221, "pos": 55}
FIXTURE = "bench-scale fixture"
SEED_CHUNK = 2_000_000  # rows per INSERT of the fixtures (a progress line each)


@dataclass(frozen=True)
class Stage:
    dag_id: str
    task_id: str
    sources: tuple[str, ...]  # the landing sources whose rows the task handles; () for the whole day's
    kind: str = ""  # "load" (a landing load), "check" (data_quality_check) or ""


DAG_IDS = ("daily_etl", "data_quality_check")
CHECKS_DAG = "data_quality_check"


def topological(upstream: dict[str, set[str]]) -> list[str]:
    """Task ids in an order that runs each after its upstream tasks; ties in the order given (the DAG file's)."""
    done: list[str] = []
    left = dict(upstream)
    while left:
        ready = [t for t, up in left.items() if not (up & set(left))]
        if not ready:
            raise ValueError(f"a cycle among {sorted(left)}")
        done.append(ready[0])
        del left[ready[0]]
    return done


def discover_stages() -> tuple[list[Stage], dict[str, str]]:
    """Every task of ``DAG_IDS`` in dependency order, from the DAG files; and the tasks not run, with why: the
    ones that only trigger the next DAG's run (no warehouse data). A task's rows: its landing source's (a load),
    those of the sources whose tables it checks or reads (``table``, ``inputs``), else the whole day's."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    from acme_localdev import env
    from acme_pipelines.contract import SOURCES
    from acme_pipelines.operators import LandingLoadOperator

    by_table = {spec.target: name for name, spec in SOURCES.items()}
    stages, skipped = [], {}
    for dag_id in DAG_IDS:
        bag = DagBag(dag_folder=env.ROOT / "dags" / f"{dag_id}.py")
        if dag_id not in bag.dags:
            raise SystemExit(f"{dag_id} did not parse: {bag.import_errors}")
        dag = bag.dags[dag_id]
        for task_id in topological({t.task_id: set(t.upstream_task_ids) for t in dag.tasks}):
            task = dag.get_task(task_id)
            if isinstance(task, TriggerDagRunOperator):
                skipped[f"{dag_id}.{task_id}"] = f"triggers {task.trigger_dag_id}'s run (orchestration only)"
                continue
            if isinstance(task, LandingLoadOperator):
                stages.append(Stage(dag_id, task_id, (task.source,), "load"))
                continue
            tables = [getattr(task, "table", None), *getattr(task, "inputs", ())]
            sources = tuple(dict.fromkeys(by_table[t] for t in tables if t in by_table))
            stages.append(Stage(dag_id, task_id, sources, "check" if dag_id == CHECKS_DAG else ""))
    return stages, skipped


# -- pure logic (unit-tested) ---------------------------------------------------------------


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z?\s")


def task_seconds(log: str) -> float | None:
    """The task's own time in an ``airflow tasks test`` log: from the execution API's "Task started" to
    "[DAG TEST] end task" (the CLI's start-up, DAG parsing and in-process API server aside); None if absent."""
    started = ended = None
    for line in log.splitlines():
        match = _TIMESTAMP.match(line)
        if not match:
            continue
        if started is None and "Task started" in line:
            started = datetime.fromisoformat(match.group(1))
        elif "[DAG TEST] end task" in line:
            ended = datetime.fromisoformat(match.group(1))
    if started is None or ended is None or ended < started:
        return None
    return (ended - started).total_seconds()


def parse_sizes(text: str) -> tuple[int, ...]:
    """``1000000,5M,20_000_000`` -> sizes, ascending, at least two distinct, each >= 1000."""
    sizes = []
    for part in text.replace("_", "").split(","):
        part = part.strip().upper()
        if not part:
            continue
        factor = {"K": 1_000, "M": 1_000_000}.get(part[-1], 1)
        number = float(part[:-1]) if factor > 1 else float(part)
        sizes.append(int(number * factor))
    sizes = sorted(set(sizes))
    if len(sizes) < 2 or sizes[0] < 1_000:
        raise ValueError(f"need at least two distinct sizes of 1000 rows or more, not {text!r}")
    return tuple(sizes)


def label(rows: int) -> str:
    """1000000 -> 1M, 500000 -> 500k, 2500000 -> 2.5M."""
    if rows >= 1_000_000:
        return f"{rows / 1_000_000:g}M"
    return f"{rows / 1_000:g}k" if rows >= 1_000 else str(rows)


@dataclass
class Measure:
    """One task at one size."""

    wall: float
    task: float | None
    rows: int
    peak_rss_mb: float
    temp_bytes: int
    temp_files: int
    disk_bytes: int
    ok: bool
    load: float | None = None  # the machine's mean load average while the task ran
    analyzed: str = "-"  # day partitions with planner statistics when the task started, "2/3"

    @property
    def seconds(self) -> float:
        """The task's own time when its log tells it, else the process's wall time."""
        return self.task if self.task is not None else self.wall


@dataclass
class Verdict:
    name: str
    value: str
    target: str
    passed: bool | None  # None: cannot tell (a run failed)


def verdicts(stages: list[Stage], results: dict[int, dict[str, Measure]]) -> list[Verdict]:
    """The issue's targets from ``results`` (size -> task id -> measure): time per row and peak RSS of each task,
    largest size against smallest; at the largest size the checks' summed time against the loads'."""
    small, large = min(results), max(results)
    tag = f"{label(large)}/{label(small)}"
    found: list[Verdict] = []
    for stage in stages:
        a, b = results[small].get(stage.task_id), results[large].get(stage.task_id)
        if a is None or b is None or not (a.ok and b.ok):
            found.append(Verdict(f"{stage.task_id}: time per row {tag}", "n/a (failed)", "<= 1.25", None))
            found.append(Verdict(f"{stage.task_id}: peak RSS {tag}", "n/a (failed)", "<= 1.2", None))
            continue
        per_row = (b.seconds / b.rows) / (a.seconds / a.rows) if a.seconds > 0 else float("inf")
        rss = b.peak_rss_mb / a.peak_rss_mb
        found.append(
            Verdict(
                f"{stage.task_id}: time per row {tag}",
                f"{per_row:.2f}",
                f"<= {TARGET_TIME_PER_ROW}",
                per_row <= TARGET_TIME_PER_ROW,
            )
        )
        found.append(
            Verdict(f"{stage.task_id}: peak RSS {tag}", f"{rss:.2f}", f"<= {TARGET_PEAK_RSS}", rss <= TARGET_PEAK_RSS)
        )
    at_large = results[large]
    checks = [at_large.get(s.task_id) for s in stages if s.kind == "check"]
    loads = [at_large.get(s.task_id) for s in stages if s.kind == "load"]
    name = f"quality checks vs loads at {label(large)}"
    if all(m is not None and m.ok for m in checks + loads):
        check_s = sum(m.seconds for m in checks)  # type: ignore[union-attr]
        load_s = sum(m.seconds for m in loads)  # type: ignore[union-attr]
        found.append(Verdict(name, f"{check_s:.1f} s vs {load_s:.1f} s", "checks < loads", check_s < load_s))
    else:
        found.append(Verdict(name, "n/a (failed)", "checks < loads", None))
    return found


# -- the local Airflow ----------------------------------------------------------------------

# Variables of the caller's shell that would point the runs elsewhere (`eval "$(make -s env)"` sets the first
# ones); the runs get the local runner's values for a scratch AIRFLOW_HOME instead.
_OURS = ("AIRFLOW_", "WAREHOUSE_", "APP_DB_", "FX_API_URL", "SLACK_", "LANDING_ROOT", "ARTIFACTS_ROOT")
_OURS += ("COLD_STORAGE_ROOT", "PROJECT_ROOT")


class LocalAirflow:
    """The local runner's Airflow (``acme_localdev.env``) in a scratch AIRFLOW_HOME with a SQLite metadata DB;
    connections, pools and variables from airflow_settings.yaml; FX API and Slack stand-ins."""

    def __init__(self, workdir: Path, pg_url: str, landing: Path) -> None:
        self.workdir, self.pg_url, self.landing = workdir, pg_url, landing
        self.home = workdir / "airflow_home"
        self.logs = workdir / "task-logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def running(self) -> Iterator[LocalAirflow]:
        from urllib.parse import urlsplit

        from acme_localdev import env
        from acme_localdev.recorder import HttpRecorder
        from acme_sample_data.fx import FxServer

        for name in [n for n in os.environ if n.startswith(_OURS)]:
            del os.environ[name]
        env.activate(self.home)
        server = urlsplit(self.pg_url)
        slack = HttpRecorder()
        with FxServer() as fx, slack:
            os.environ.update(
                {
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env.sqlite_dsn(self.home / "airflow.db"),
                    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0",  # a failure shows at once, as make demo sets it
                    "FX_API_URL": fx.url,
                    "SLACK_WEBHOOK_BASE": f"{slack.url}/services",
                    "LANDING_ROOT": f"file://{self.landing}",
                    "ARTIFACTS_ROOT": f"file://{self.workdir / 'artifacts'}",
                    "COLD_STORAGE_ROOT": f"file://{self.workdir / 'cold'}",
                    "WAREHOUSE_HOST": server.hostname or "127.0.0.1",
                    "WAREHOUSE_PORT": str(server.port or 5432),
                    "WAREHOUSE_USER": server.username or "postgres",
                    "WAREHOUSE_PASSWORD": server.password or "",
                    "WAREHOUSE_DB_NAME": "bench_scale_not_yet",
                    # files are generated before the runs: a missing source is a bug here, not worth 6 hours
                    "AIRFLOW_VAR_LANDING_WAIT_TIMEOUT_MINUTES": "2",
                }
            )
            from acme_localdev.cli import init_airflow

            init_airflow()  # airflow db migrate + airflow_settings.yaml, as make demo prepares its Airflow
            self.airflow("dags", "reserialize")
            try:
                yield self
            finally:
                if slack.requests:
                    detail(f"the Slack stand-in received {len(slack.requests)} alert(s): a task failed")

    def use_warehouse(self, database: str) -> None:
        """Point the ``warehouse`` connection (airflow_settings.yaml's, WAREHOUSE_DB_NAME) at ``database``."""
        from acme_localdev.cli import import_settings

        os.environ["WAREHOUSE_DB_NAME"] = database
        import_settings(sections=("connections",))

    def airflow(self, *args: str) -> str:
        """An airflow CLI command that must succeed; its output."""
        done = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=os.environ)
        if done.returncode:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            raise SystemExit(f"airflow {' '.join(args)} failed (exit {done.returncode}); see the output above")
        return done.stdout

    def run_task(self, stage: Stage, run_id: str, log_name: str) -> tuple[int, float, float, float, str]:
        """``airflow tasks test`` of one task in its own process: (exit code, wall s, peak RSS MB, the machine's
        mean load average while it ran, log text)."""
        log_path = self.logs / f"{log_name}.log"
        command = [sys.executable, "-m", "airflow", "tasks", "test", stage.dag_id, stage.task_id, run_id]
        with log_path.open("w") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
            with Watch(child.pid, stage.task_id) as watch:
                _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        log_text = log_path.read_text(errors="replace")
        return child.returncode, watch.seconds, usage.ru_maxrss / 1024, watch.mean_load, log_text


class Watch(threading.Thread):
    """While a task runs: its wall time, the machine's load average every 2 s (others share the machine), and
    a line every ``HEARTBEAT_SECONDS`` with its RSS."""

    def __init__(self, pid: int, task_id: str) -> None:
        super().__init__(daemon=True)
        self.pid, self.task_id = pid, task_id
        self.loads: list[float] = []
        self.started = self.ended = time.monotonic()
        self._done = threading.Event()

    def __enter__(self) -> Watch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ended = time.monotonic()
        self._done.set()
        self.join()

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def mean_load(self) -> float:
        return sum(self.loads) / len(self.loads) if self.loads else os.getloadavg()[0]

    def run(self) -> None:
        next_beat = self.started + HEARTBEAT_SECONDS
        while not self._done.wait(2.0):
            self.loads.append(os.getloadavg()[0])
            if time.monotonic() >= next_beat:
                next_beat += HEARTBEAT_SECONDS
                rss = _rss_mb(self.pid)
                detail(
                    f"... {self.task_id} running for {time.monotonic() - self.started:.0f} s"
                    + (f", RSS {rss:.0f} MB" if rss else "")
                    + f", load average {self.loads[-1]:.1f}"
                )


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- the warehouse --------------------------------------------------------------------------


class Warehouse:
    """A fresh database on ``pg_url``, migrated; statistics of it; dropped on the way out."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self.name = self.dsn = ""
        self._conn: Any = None
        self._stack = ExitStack()

    def __enter__(self) -> Warehouse:
        import psycopg2

        from acme_pipelines.migrations import upgrade
        from acme_pipelines.warehouse import WarehouseHook

        with self._stack as stack:
            self.dsn = stack.enter_context(fresh_database(self.pg_url))
            self.name = self.dsn.rsplit("/", 1)[1]
            upgrade(WarehouseHook(dsn=self.dsn))  # as make migrate does; the tasks only check the version
            self._conn = psycopg2.connect(self.dsn)
            self._conn.autocommit = True
            stack.callback(self._conn.close)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def query(self, statement: str, params: Any = None) -> list[tuple]:
        with self._conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def stats(self) -> tuple[int, int, int]:
        """(temp bytes, temp files, database size) once every other session of the database has ended (a
        backend reports its statistics as it exits)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            [(others,)] = self.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if not others:
                break
            time.sleep(0.2)
        self.query("SELECT pg_stat_clear_snapshot()")
        [(temp_bytes, temp_files, size)] = self.query(
            "SELECT temp_bytes, temp_files, pg_database_size(datname) FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return int(temp_bytes), int(temp_files), int(size)

    def seed(self, day: date, orders: int, customers: int) -> None:
        """What the hourly sync would have put there: the day's orders (every payment's ``order_id``), the
        customers (every event's ``customer_id``), the products (every sale's ``product_id``), and a successful
        sync of orders past the day's end; vacuumed and analysed, as autovacuum does with them in the hours
        between their sync and the day's load."""
        from acme_bench.generate import PRODUCTS

        params = {"day": day, "customers": customers, "fixture": FIXTURE}
        tables = {
            "core.dim_product": (
                PRODUCTS,
                "SELECT g, 'SKU-' || g, 'Product ' || g, 'books', 9.99, 'USD', %(day)s::date - 30, %(fixture)s, now()",
            ),
            "core.dim_customer": (
                customers,
                "SELECT g, 'customer' || g || '@example.com', 'Customer ' || g, 'US', %(day)s::date - 30, "
                "%(day)s::date - 30, %(fixture)s, now()",
            ),
            "core.fact_orders": (
                orders,
                "SELECT g, 1 + (g * 7919) %% %(customers)s, 'shipped', 'USD', 10 + g %% 90, "
                "%(day)s::date + (g %% 86400) * interval '1 second', "
                "%(day)s::date + (g %% 86400) * interval '1 second', %(fixture)s, now()",
            ),
        }
        for table, (rows, select) in tables.items():
            for first in range(1, rows + 1, SEED_CHUNK):
                last = min(rows, first + SEED_CHUNK - 1)
                self.query(
                    f"INSERT INTO {table} {select} FROM generate_series(%(first)s::bigint, %(last)s) g",
                    {**params, "first": first, "last": last},
                )
                if rows > SEED_CHUNK:
                    detail(f"... {table}: {last:,} of {rows:,}")
        window = f"{day - timedelta(days=1)}T00:00/{day + timedelta(days=2)}T00:00"
        self.query(
            "INSERT INTO ops.load_audit (dag_id, task_id, run_id, source, target, partition, rows_in, rows_loaded, "
            "rows_rejected, rows_duplicate, started_at, finished_at, status) VALUES ('hourly_incremental_sync', "
            "'sync_orders', %s, 'app_db:orders', 'core.fact_orders', %s, %s, %s, 0, 0, now(), now(), 'success')",
            (FIXTURE, window, orders, orders),
        )
        for table in (*tables, "ops.load_audit"):
            self.query(f"VACUUM ANALYZE {table}")

    def analyzed_partitions(self) -> tuple[int, int]:
        """(with planner statistics, all) partitions of the landing loads' tables: each load ANALYZEs the day
        partition it publishes (``day_partitions.analyze``), so after the loads every one has them."""
        from acme_pipelines.contract import SOURCES

        [(analyzed, total)] = self.query(
            "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_statistic s WHERE s.starelid = c.oid)), "
            "count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = ANY(%s::regclass[])",
            ([spec.target for spec in SOURCES.values()],),
        )
        return int(analyzed), int(total)

    def relation_sizes(self) -> list[tuple[str, int, int, int]]:
        """(table, rows estimate, table bytes, index bytes) of every table over 1 MB, largest first."""
        return self.query(
            "SELECT c.oid::regclass::text, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname IN ('core', 'marts', 'ops', 'staging') "
            "AND pg_total_relation_size(c.oid) > 1048576 ORDER BY pg_total_relation_size(c.oid) DESC"
        )


# -- generation -----------------------------------------------------------------------------


def landing_file(landing: Path, source: str, day: date) -> Path:
    """Where the day's file of ``source`` goes: the layout ``landing_load.partition_files`` reads."""
    from acme_bench.generate import partition_file

    suffix = {"payments": ".csv", "events": ".jsonl", "pos": ".sqlite"}[source]
    return partition_file(landing, day, source).with_suffix(suffix)


def generate(landing: Path, day: date, rows: dict[str, int], seed: int, orders: int) -> None:
    """The day's files of every source, two processes at a time; progress every 15 s."""
    import multiprocessing

    from acme_bench.generate import write_events_jsonl, write_payments_csv, write_pos_sqlite

    step(f"generating {', '.join(f'{n:,} {source}' for source, n in rows.items())} for {day} (seed {seed})")
    started = time.monotonic()
    paths = {source: landing_file(landing, source, day) for source in rows}
    expected = {source: n * LINE_BYTES[source] for source, n in rows.items()}
    # spawned, not forked: this process runs threads (the stand-ins) and has Airflow imported
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = {
            "payments": pool.submit(write_payments_csv, paths["payments"], rows["payments"], day, seed),
            "events": pool.submit(
                write_events_jsonl, paths["events"], rows["events"], day, seed, customers=orders, orders=orders
            ),
            "pos": pool.submit(write_pos_sqlite, paths["pos"], rows["pos"], day, seed),
        }
        next_report = started + 15
        while not all(job.done() for job in jobs.values()):
            if any(job.done() and job.exception() for job in jobs.values()):
                break
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += 15
                done = ", ".join(
                    f"{source} {'done' if jobs[source].done() else f'{_written(paths[source]) / n:.0%}'}"
                    for source, n in expected.items()
                )
                detail(f"... {time.monotonic() - started:.0f} s: {done}")
        sizes = {source: job.result() for source, job in jobs.items()}
    seconds = time.monotonic() - started
    written = ", ".join(f"{source} {size / 1e9:.2f} GB" for source, size in sizes.items())
    detail(f"{written} in {seconds:.0f} s ({landing})")


def _written(path: Path) -> int:
    for candidate in (path, path.with_name(path.name + ".partial")):
        try:
            return candidate.stat().st_size
        except OSError:
            pass
    return 0


# -- one size ---------------------------------------------------------------------------------


@dataclass
class SizeRun:
    rows: dict[str, int]  # source -> rows generated
    measures: dict[str, Measure] = field(default_factory=dict)
    relations: list[tuple[str, int, int, int]] = field(default_factory=list)
    quality: str = ""
    loaded: list[str] = field(default_factory=list)

    def rows_of(self, stage: Stage) -> int:
        return sum(self.rows[source] for source in stage.sources or self.rows)


def source_rows(payments: int, args: argparse.Namespace) -> dict[str, int]:
    """Rows of each landing source for a day of ``payments`` payments (``GENERATED``: every source the contract
    has must have a generator here)."""
    from acme_pipelines.contract import SOURCES

    missing = sorted(set(SOURCES) - set(GENERATED))
    if missing:
        raise SystemExit(f"no generator here for the landing source(s) {missing}: add one to acme_bench.generate")
    ratio = {"payments": 1.0, "events": args.events_per_payment, "pos": args.pos_per_payment}
    return {source: max(1, round(payments * ratio[source])) for source in GENERATED}


def run_size(airflow: LocalAirflow, args: argparse.Namespace, stages: list[Stage], payments: int) -> SizeRun:
    run = SizeRun(source_rows(payments, args))
    orders = max(payments // 2, 1)  # the payments generator's order ids: 1 .. rows // 2
    day, tag = args.day, label(payments)
    shutil.rmtree(airflow.landing, ignore_errors=True)
    generate(airflow.landing, day, run.rows, args.seed, orders)
    with Warehouse(args.pg_url) as warehouse:
        step(f"{tag}: warehouse {warehouse.name}: seeding {orders:,} orders, {orders:,} customers, products, a sync")
        started = time.monotonic()
        warehouse.seed(day, orders, orders)
        detail(f"seeded in {time.monotonic() - started:.0f} s")
        airflow.use_warehouse(warehouse.name)
        run_id = f"bench_scale_{tag}__{day}"
        for dag_id in DAG_IDS:  # the runs the tasks run in, as a user reruns a day
            airflow.airflow(
                "dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps({"partition": f"{day}"})
            )
        for number, stage in enumerate(stages, 1):
            step(f"{tag} [{number}/{len(stages)}] {stage.dag_id}.{stage.task_id}")
            temp0, files0, size0 = warehouse.stats()
            analyzed = "{}/{}".format(*warehouse.analyzed_partitions())
            code, wall, peak, load, log = airflow.run_task(stage, run_id, f"{tag}-{stage.task_id}")
            temp1, files1, size1 = warehouse.stats()
            rows = run.rows_of(stage)
            measure = Measure(
                wall,
                task_seconds(log),
                rows,
                peak,
                temp1 - temp0,
                files1 - files0,
                size1 - size0,
                not code,
                load,
                analyzed,
            )
            run.measures[stage.task_id] = measure
            own = f"task {measure.task:.1f} s" if measure.task is not None else "task time not in its log"
            detail(
                f"{'ok' if measure.ok else f'FAILED (exit {code})'}: wall {wall:.1f} s, {own}, "
                f"{rows:,} rows, {rows / measure.seconds:,.0f} rows/s, peak RSS {peak:.0f} MB, "
                f"PostgreSQL temp {measure.temp_bytes / 1e6:,.0f} MB ({measure.temp_files} files), "
                f"database {measure.disk_bytes / 1e6:+,.0f} MB; load average {load:.1f} on {os.cpu_count()} CPUs; "
                f"day partitions with statistics at its start: {analyzed}"
            )
            if not measure.ok:
                for line in log.splitlines()[-25:]:
                    detail(f"| {line[:220]}")
        run.relations = warehouse.relation_sizes()
        run.loaded = [
            f"{target} {rows_in:,} in, {loaded:,} loaded, {rejected:,} rejected ({status})"
            for target, rows_in, loaded, rejected, status in warehouse.query(
                "SELECT target, rows_in, rows_loaded, rows_rejected, status FROM ops.load_audit "
                "WHERE partition = %s ORDER BY target",
                (day.isoformat(),),
            )
        ]
        [(total, failed, names)] = warehouse.query(
            "SELECT count(*), count(*) FILTER (WHERE NOT passed), "
            "coalesce(string_agg(check_name, ', ') FILTER (WHERE NOT passed), '') FROM ops.quality_results "
            "WHERE dt = %s AND run_id = %s",
            (day, run_id),
        )
        gate = warehouse.query("SELECT status FROM ops.quality_gate WHERE dt = %s", (day,))
        verdict = gate[0][0] if gate else "not decided"
        run.quality = f"{total} checks, {failed} failed{f' ({names})' if failed else ''}; gate {verdict}"
        for line in run.loaded:
            detail(f"load: {line}")
        detail(f"quality: {run.quality}")
    shutil.rmtree(airflow.landing, ignore_errors=True)
    return run


# -- report -----------------------------------------------------------------------------------


def report(stages: list[Stage], runs: dict[int, SizeRun]) -> list[Verdict]:
    print()
    step("per task and size: wall = the airflow process; task = the task's own time (its log); rows/s on task time")
    headers = ["size", "task", "wall s", "task s", "rows", "rows/s", "peak RSS MB", "PG temp MB", "DB growth MB"]
    headers += ["load avg", "analyzed"]
    table = []
    for size, run in runs.items():
        for stage in stages:
            m = run.measures.get(stage.task_id)
            if m is None:
                continue
            table.append(
                [
                    label(size),
                    stage.task_id + ("" if m.ok else " (FAILED)"),
                    f"{m.wall:.1f}",
                    "-" if m.task is None else f"{m.task:.1f}",
                    f"{m.rows:,}",
                    f"{m.rows / m.seconds:,.0f}",
                    f"{m.peak_rss_mb:.0f}",
                    f"{m.temp_bytes / 1e6:,.0f}",
                    f"{m.disk_bytes / 1e6:+,.0f}",
                    "-" if m.load is None else f"{m.load:.1f}",
                    m.analyzed,
                ]
            )
    print_table(headers, table, right={2, 3, 4, 5, 6, 7, 8, 9})
    print("rows: a load's source; a check's or a build's the sources of the tables it reads; else the whole day's")
    print(f"load avg: the machine's 1-minute load average while the task ran ({os.cpu_count()} CPUs; others share it)")
    print("analyzed: the day partitions that had planner statistics when the task started (each load ANALYZEs")
    print("          the partition it publishes)")
    print()
    step("PostgreSQL disk at the end of each size (tables over 1 MB: table + indexes)")
    for size, run in runs.items():
        total = sum(t + i for _, _, t, i in run.relations)
        parts = ", ".join(f"{name} {t / 1e6:,.0f} + {i / 1e6:,.0f}" for name, _, t, i in run.relations[:8])
        print(f"  {label(size)}: {total / 1e9:.2f} GB; MB: {parts}")
        for line in run.loaded:
            print(f"       load: {line}")
        print(f"       quality: {run.quality}")
    found = verdicts(stages, {size: run.measures for size, run in runs.items()})
    print()
    step("targets")
    print_table(
        ["target", "value", "wanted", "verdict"],
        [[v.name, v.value, v.target, "n/a" if v.passed is None else ("PASS" if v.passed else "FAIL")] for v in found],
        right={1},
    )
    return found


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m acme_bench.scale",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Exit status: 0 only when every task succeeded and every target is met; 1 otherwise (2: bad arguments).",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=DEFAULT_SIZES,
        help="payment rows per day, comma-separated (1000000,5M,...; default 1M,5M,20M); the targets compare "
        "the largest with the smallest",
    )
    parser.add_argument(
        "--events-per-payment",
        type=float,
        default=DEFAULT_EVENTS_PER_PAYMENT,
        help="events per payment (default 2; the sample data has about 8, which at 20M payments would be "
        "160M events, about 35 GB of JSONL)",
    )
    parser.add_argument(
        "--pos-per-payment",
        type=float,
        default=DEFAULT_POS_PER_PAYMENT,
        help="point-of-sale sales per payment (default 1, about the sample data's)",
    )
    parser.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server URL without a database name")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (task logs) and print it")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the finally blocks drop the database and remove the folder


def main(argv: list[str] | None = None) -> int:
    import signal

    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="acme_bench_scale_"))
    runs: dict[int, SizeRun] = {}
    try:
        step(
            f"sizes {', '.join(label(s) for s in args.sizes)} payments a day, {args.events_per_payment:g} events and "
            f"{args.pos_per_payment:g} point-of-sale sales per payment; scratch folder {workdir}"
        )
        airflow = LocalAirflow(workdir, args.pg_url, workdir / "landing")
        with airflow.running():
            stages, skipped = discover_stages()
            detail(f"tasks run, in this order: {', '.join(f'{s.dag_id}.{s.task_id}' for s in stages)}")
            for task, why in skipped.items():
                detail(f"not run: {task}: {why}")
            for size in args.sizes:
                runs[size] = run_size(airflow, args, stages, size)
        found = report(stages, runs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            detail(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    for line in machine():
        print(line)
    print(f"bench-scale finished in {(time.monotonic() - started) / 60:.1f} min")
    failed_tasks = [
        f"{label(size)} {task}" for size, run in runs.items() for task, m in run.measures.items() if not m.ok
    ]
    missed = [v.name for v in found if v.passed is not True]
    if failed_tasks or missed:
        print(f"NOT MET: {'; '.join(missed + [f'{t} failed' for t in failed_tasks])}")
        return 1
    print("every target met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
