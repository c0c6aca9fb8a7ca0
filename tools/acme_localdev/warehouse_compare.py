"""`make snowflake-compare`: the same DAGs into PostgreSQL and into Snowflake (the fakesnow server), side by side.

Generates a week of sample data, runs the demo's runs of the ten DAGs
(``WAREHOUSE_DAGS``) through ``dag.test`` twice, with the same DAG code: once with the
``warehouse`` connection of type postgres, once of type snowflake pointing at a
local fakesnow server. ``data_archival`` runs last, with a retention that archives the
first day. It then prints, per published table (and the row accounting, quality
results, anomalies and archive manifest), the row count on each side and whether the
rows are the same (a digest of every business column, ``_run_id``/``_loaded_at`` aside), and whether the
report file, the cache and the archived Parquet files are the same.
Exit status 1 if any table differs or a run failed.

``published_rows`` and ``compare`` are also what the Snowflake tests assert with.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from acme_localdev import env

# Published tables (contract §3), and what is compared of the row accounting and the quality results.
PUBLISHED = (
    "core.dim_customer",
    "core.dim_product",
    "core.fact_orders",
    "core.fact_order_items",
    "core.fx_rates",
    "core.fact_payments",
    "core.fact_events",
    "core.fact_pos_sales",
    "marts.daily_revenue",
)
# What the DAGs behind the quality gate build from them.
DERIVED = ("features.customer_features", "marts.weekly_kpis")
LOAD_ONLY = ("_run_id", "_loaded_at")  # differ by run and by clock, not by data
ACCOUNTING = {
    "ops.load_audit": (
        "source, target, partition, rows_in, rows_loaded, rows_rejected, rows_duplicate, status FROM ops.load_audit"
    ),
    # raw_record aside: a sync reject's JSON text is formatted by each database
    "ops.rejected_rows": "source, partition, locator, reason FROM ops.rejected_rows",
    # run ids and clocks aside; observed/expected are text each database formats its own way
    "ops.quality_results": (
        "dt, task_id, check_name, check_type, table_name, column_name, passed FROM ops.quality_results"
    ),
    "ops.quality_gate": "dt, status, failed FROM ops.quality_gate",
    # the checksum and the file's path aside: a file holds _run_id and _loaded_at, and each side has its folder
    "ops.archive_manifest": (
        "table_name, partition, row_count, deleted_from_warehouse_at IS NOT NULL AS deleted FROM ops.archive_manifest"
    ),
    # the run id, the artifact's path and the clocks aside
    "ml.model_registry": (
        "model_version, trained_for_dt, algorithm, params, train_rows, test_rows, train_dates, test_dates, "
        "metric_name, metric_value, compared_with, compared_metric_value, artifact_sha256, is_champion "
        "FROM ml.model_registry"
    ),
    "ops.anomalies": (
        "metric, window_start, window_end, observed, expected, scale, score, severity, direction, baseline "
        "FROM ops.anomalies"
    ),
}


LOG = env.ROOT / ".airflow" / "demo-logs" / "snowflake-compare.log"  # beside the demo's logs


def normalise(value: Any) -> Any:
    """One representation per value, whichever database returned it."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):  # numbers as floats: a JSON array's 0 is a double precision[]'s 0.0
        return json.dumps([float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value])
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str):
        text = value.strip()  # char(n) padding
        if text[:1] + text[-1:] in ("{}", "[]"):
            try:  # JSON (PostgreSQL jsonb and text[] arrive as dict and list, Snowflake VARIANT and ARRAY as text)
                return normalise(json.loads(text))
            except ValueError:
                return text
        return text
    return value


def business_columns(pg_conn: Any, table: str) -> list[str]:
    """A published table's columns (from PostgreSQL's catalogue, the schema's source), load bookkeeping aside."""
    schema, name = table.split(".")
    with pg_conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position",
            (schema, name),
        )
        return [c for (c,) in cur.fetchall() if c not in LOAD_ONLY]


@dataclass(frozen=True)
class TableDigest:
    rows: int
    digest: str
    distinct_rows: int
    lines: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the normalised rows, sorted


def published_rows(conn: Any, select: str) -> TableDigest:
    """Count and order-independent digest of ``SELECT <select>`` (column list and FROM) on either database."""
    cur = conn.cursor()
    cur.execute(f"SELECT {select}")
    rows = sorted(repr(tuple(normalise(v) for v in row)) for row in cur.fetchall())
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
    return TableDigest(len(rows), digest, len(set(rows)), tuple(rows))


def table_digest(conn: Any, table: str, where: str = "TRUE") -> TableDigest:
    """``published_rows`` of ``table``'s rows matching ``where``, on either database: its business columns read
    from that database's ``information_schema``."""
    schema, name = table.split(".")
    cur = conn.cursor()
    cur.execute(
        "SELECT lower(column_name) FROM information_schema.columns WHERE lower(table_schema) = %s "
        "AND lower(table_name) = %s ORDER BY ordinal_position",
        (schema, name),
    )
    columns = [c for (c,) in cur.fetchall() if c not in LOAD_ONLY]
    return published_rows(conn, f"{', '.join(columns)} FROM {table} WHERE {where}")


def compare(pg_conn: Any, snowflake_conn: Any) -> list[tuple[str, TableDigest, TableDigest]]:
    """(table, PostgreSQL digest, Snowflake digest) for every published table and the row accounting."""
    tables = (*PUBLISHED, *DERIVED)
    selects = {t: f"{', '.join(business_columns(pg_conn, t))} FROM {t}" for t in tables} | ACCOUNTING
    return [(t, published_rows(pg_conn, s), published_rows(snowflake_conn, s)) for t, s in selects.items()]


def print_comparison(result: list[tuple[str, TableDigest, TableDigest]], write: Callable[[str], Any] = print) -> bool:
    """The side-by-side table; True when every table has the same rows on both sides."""
    width = max(len(t) for t, _, _ in result)
    write(f"  {'table':<{width}}  {'PostgreSQL':>10}  {'Snowflake':>10}  same rows")
    write(f"  {'-' * width}  {'-' * 10}  {'-' * 10}  ---------")
    same = True
    for table, pg, snow in result:
        equal = pg.digest == snow.digest
        same &= equal
        write(f"  {table:<{width}}  {pg.rows:>10,}  {snow.rows:>10,}  {'yes' if equal else 'NO'} ({pg.digest})")
        if not equal:  # a few rows only one side has, to see what differs
            only_pg, only_snow = sorted(set(pg.lines) - set(snow.lines)), sorted(set(snow.lines) - set(pg.lines))
            for side, lines in (("PostgreSQL", only_pg), ("Snowflake", only_snow)):
                write(f"      only on {side} ({len(lines):,} rows), e.g.: {'; '.join(lines[:2]) or '-'}")
    return same


def fakesnow_connection(kwargs: dict, database: str) -> str:
    """The ``warehouse`` connection (JSON) for the fakesnow server (``kwargs`` from ``fakesnow.server()``),
    with ``database`` created there."""
    import snowflake.connector

    conn = snowflake.connector.connect(**kwargs)
    conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    conn.close()
    extra = {
        "account": kwargs["account"],
        "database": database,
        "host": kwargs["host"],
        "port": kwargs["port"],
        "protocol": kwargs["protocol"],
    }
    return json.dumps({"conn_type": "snowflake", "login": "fake", "password": "snow", "extra": extra})


def postgres_connection(dsn: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    return json.dumps(
        {"conn_type": "postgres", "host": parts.hostname, "port": parts.port or 5432,
         "login": parts.username or "postgres", "schema": parts.path.lstrip("/")}
    )  # fmt: skip


@contextmanager
def output_to(log_path: Path) -> Iterator[Callable[[str], None]]:
    """Send everything this process prints (Airflow's task logs too) to ``log_path``; yields a function that
    prints progress lines to the terminal instead."""
    import sys

    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)

        def say(line: str) -> None:
            os.write(saved[0], f"{line}\n".encode())

        try:
            yield say
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def pipeline_environment(app_dsn: str, warehouse: str, fx_url: str, slack_url: str, landing: Path) -> dict[str, str]:
    """The connections and variables the ingestion DAGs read (as AIRFLOW_CONN_*/AIRFLOW_VAR_*), pointing at an
    app database, a warehouse connection (JSON), an FX API, a Slack recorder and a landing folder."""
    return {
        "AIRFLOW_CONN_APP_DB": postgres_connection(app_dsn),
        "AIRFLOW_CONN_WAREHOUSE": warehouse,
        "AIRFLOW_CONN_FX_API": json.dumps({"conn_type": "http", "host": fx_url}),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps(
            {"conn_type": "slackwebhook", "host": f"{slack_url}/services", "password": "T/B/X"}
        ),
        "AIRFLOW_VAR_LANDING_ROOT": f"file://{landing}",
        "AIRFLOW_VAR_MAX_REJECT_RATIO": "0.05",
    }


# the DAGs compared: all ten, data_archival last (it deletes the first day it archives)
WAREHOUSE_DAGS = (
    "hourly_incremental_sync", "daily_etl", "data_quality_check", "feature_engineering", "ml_training",
    "daily_reports", "weekly_aggregation", "anomaly_detection", "cache_refresh", "data_archival",
)  # fmt: skip


def archive_retention(config: Any) -> int:
    """data_archival's ``hot_retention_days`` for the demo's run of it (``demo.plan``) to archive the first
    generated day, and only that day."""
    from acme_localdev.demo import plan

    (conf,) = dict(plan(config))["data_archival"]
    days = config.day_list()
    if len(days) < 2:  # one day: nothing to keep it beside; the run archives nothing
        return (date.fromisoformat(conf["partition"]) - days[0]).days + 1
    return (date.fromisoformat(conf["partition"]) - days[1]).days


def archived_files(root: Path) -> dict[str, TableDigest]:
    """Every Parquet file under ``root`` (data_archival's cold storage): its rows and a digest of its business
    columns (``_run_id`` and ``_loaded_at`` aside), by path under ``root``."""
    import pyarrow.parquet as pq

    found = {}
    for path in sorted(root.rglob("*.parquet")):
        data = pq.read_table(path)
        data = data.drop_columns([c for c in LOAD_ONLY if c in data.column_names])
        rows = sorted(repr(tuple(normalise(row[c]) for c in data.column_names)) for row in data.to_pylist())
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
        found[str(path.relative_to(root))] = TableDigest(len(rows), digest, len(set(rows)), tuple(rows))
    return found


def same_files(pg: dict[str, TableDigest], snow: dict[str, TableDigest], write: Callable[[str], Any]) -> bool:
    """Print the archived files side by side (rows, digest); True when both sides wrote the same files with the
    same rows."""
    same = pg.keys() == snow.keys()
    if not pg and not snow:
        write("  data_archival: no files on either side (DAYS=1 archives nothing)")
    for name in sorted(pg.keys() | snow.keys()):
        a, b = pg.get(name), snow.get(name)
        equal = a is not None and b is not None and a.digest == b.digest
        same &= equal
        rows = f"{a.rows if a else 0:,} / {b.rows if b else 0:,} rows"
        write(f"  data_archival {name}: {rows}, same rows: {'yes' if equal else 'NO'} ({(a or b).digest})")
    return same


def run_dags(dags: dict, config: Any, say: Callable[[str], None]) -> bool:
    """The demo's runs of ``WAREHOUSE_DAGS`` for ``config`` (``demo.plan``; anomaly detection every six hours
    of the last day, not every hour); True if every run succeeded."""
    from acme_localdev.demo import plan
    from acme_localdev.runs import run_in_process

    confs = [
        (dag_id, conf)
        for dag_id, runs in plan(config)
        if dag_id in WAREHOUSE_DAGS
        for conf in (runs[5::6] if dag_id == "anomaly_detection" else runs)
    ]
    ok = True
    for dag_id, conf in confs:
        started = time.monotonic()
        state = str(run_in_process(dags[dag_id], conf).state)
        ok &= state == "success"
        say(f"{dag_id} {conf['partition']}: {state} in {time.monotonic() - started:.1f}s")
    return ok


def live_cache(client: Any, prefix: str) -> dict[str, Any]:
    """The keys (without prefix and version) and values of the cache version readers see under ``prefix``;
    every key of the prefix is deleted afterwards."""
    from acme_pipelines import cache

    version = client.get(cache.pointer(prefix))
    names: list[str] = []
    if version is not None:
        base = f"{cache.version_base(prefix, int(version))}:"
        names = sorted(key.decode().removeprefix(base) for key in client.scan_iter(f"{base}*"))
    _, values = cache.read_snapshot(client, prefix, names)  # as a reader reads them
    clear_cache(client, prefix)
    return dict(zip(names, values, strict=True))


def clear_cache(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` (the next refresh writes version 1)."""
    if keys := list(client.scan_iter(f"{prefix}:*")):
        client.delete(*keys)


def same_outputs(folders: dict[str, Path], caches: dict[str, dict], day: date, write: Callable[[str], Any]) -> bool:
    """Print and compare what the two warehouses' runs wrote outside the warehouse: the day's report file and
    the cache; True when both are the same."""
    reports = {name: (folder / "reports" / f"dt={day}" / "report.csv").read_bytes() for name, folder in folders.items()}
    (pg_report, snow_report), (pg_cache, snow_cache) = reports.values(), caches.values()
    same_report, same_cache = pg_report == snow_report, pg_cache == snow_cache
    write(f"  daily_reports report.csv of {day}: {len(pg_report):,} / {len(snow_report):,} bytes, "
          f"same: {'yes' if same_report else 'NO'}")  # fmt: skip
    same = "yes" if same_cache else "NO"
    write(f"  cache_refresh keys: {len(pg_cache):,} / {len(snow_cache):,}, same values: {same}")
    for key in sorted(k for k in pg_cache.keys() | snow_cache.keys() if pg_cache.get(k) != snow_cache.get(k))[:2]:
        write(f"      {key}: {pg_cache.get(key)} / {snow_cache.get(key)}")
    return same_report and same_cache


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make snowflake-compare", description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 2))  # a Monday
    parser.add_argument("--days", type=int, default=7)  # a whole week: weekly_aggregation runs
    parser.add_argument("--scale", type=float, default=0.3)
    args = parser.parse_args(argv)
    # this tool's runs stay out of the demo's lineage file
    os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "true"

    import fakesnow
    import psycopg2

    from acme_localdev.cli import init_airflow, step
    from acme_localdev.demo import dsn, reset_warehouse
    from acme_localdev.recorder import HttpRecorder
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse_hooks import warehouse_hook
    from acme_sample_data.build import build, with_database
    from acme_sample_data.fx import FxServer
    from acme_sample_data.generator import GeneratorConfig

    started = time.monotonic()
    LOG.unlink(missing_ok=True)
    step("[1/4] preparing the project-local Airflow (.airflow/)")
    init_airflow()
    config = GeneratorConfig(start=args.start, days=args.days, scale=args.scale, bad_share=0.004)
    days = config.day_list()
    app_dsn = with_database(dsn("APP_DB", "app"), "compare_app")
    pg_dsn = with_database(dsn("WAREHOUSE", "warehouse"), "compare_warehouse")
    step(f"[2/4] generating {args.days} days from {args.start} (scale {args.scale}) into compare_app and files")
    landing = Path(tempfile.mkdtemp(prefix="acme-compare-")) / "landing"
    build(config, landing, app_dsn)
    reset_warehouse(pg_dsn)

    from airflow.dag_processing.dagbag import DagBag

    dags = {d: DagBag(dag_folder=env.ROOT / "dags" / f"{d}.py").dags[d] for d in WAREHOUSE_DAGS}
    timings: dict[str, float] = {}
    # from here on this process's own output (the servers' request logs, the tasks' logs) goes to LOG;
    # `say` prints to the terminal
    with output_to(LOG) as say, FxServer(days) as fx, HttpRecorder() as slack, fakesnow.server() as snow:
        os.environ.update(pipeline_environment(app_dsn, "", fx.url, slack.url, landing))
        os.environ["AIRFLOW_CONN_SLACK_REPORTS"] = os.environ["AIRFLOW_CONN_SLACK_ALERTS"]
        ok = True
        snowflake_conn = fakesnow_connection(snow, "WAREHOUSE")
        folders: dict[str, Path] = {}
        caches: dict[str, dict] = {}
        cold: dict[str, Path] = {}
        os.environ["AIRFLOW_VAR_HOT_RETENTION_DAYS"] = str(archive_retention(config))
        for n, (name, connection) in enumerate(
            (("PostgreSQL", postgres_connection(pg_dsn)), ("Snowflake (fakesnow)", snowflake_conn)), 3
        ):
            say(f"==> [{n}/4] the same DAGs into {name}  (log: {LOG.relative_to(env.ROOT)})")
            os.environ["AIRFLOW_CONN_WAREHOUSE"] = connection
            folders[name] = landing.parent / name.split()[0].lower() / "artifacts"
            os.environ["AIRFLOW_VAR_ARTIFACTS_ROOT"] = f"file://{folders[name]}"
            prefix = f"acme-compare:{name.split()[0].lower()}"
            os.environ["AIRFLOW_VAR_CACHE_KEY_PREFIX"] = prefix
            cold[name] = landing.parent / name.split()[0].lower() / "cold"
            os.environ["AIRFLOW_VAR_COLD_STORAGE_ROOT"] = f"file://{cold[name]}"
            clear_cache(env.redis_client(), prefix)  # what an interrupted earlier run left
            if name != "PostgreSQL":  # reset_warehouse migrated PostgreSQL; the tasks only check the version
                applied = upgrade(warehouse_hook("warehouse"))
                say(f"    schema migrations applied: {', '.join(map(str, applied))}")
            t0 = time.monotonic()
            ok &= run_dags(dags, config, lambda line: say(f"    {line}"))
            timings[name] = time.monotonic() - t0
            caches[name] = live_cache(env.redis_client(), prefix)
        import snowflake.connector

        say(f"\nPublished rows, PostgreSQL ({pg_dsn}) vs Snowflake (fakesnow server, database WAREHOUSE):")
        pg_conn = psycopg2.connect(pg_dsn)
        snow_conn = snowflake.connector.connect(**snow, database="WAREHOUSE")
        try:
            same = print_comparison(compare(pg_conn, snow_conn), say)
        finally:
            pg_conn.close()
            snow_conn.close()
        say("\nOutside the warehouse, PostgreSQL run / Snowflake run:")
        same &= same_outputs(folders, caches, days[-1], say)
        same &= same_files(*(archived_files(folder) for folder in cold.values()), say)
    print("\nDAG run time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"snowflake-compare finished in {time.monotonic() - started:.0f}s: "
          + ("every table has the same rows" if same and ok else "DIFFERENCES or failed runs, see above"))  # fmt: skip
    return 0 if same and ok else 1
