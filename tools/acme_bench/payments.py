"""The four ways to load the payments file; each runs in its own child process (``--method``).

Each function returns a dict the parent prints: rows, seconds (the timed load
only, after imports and table setup), the child's peak RSS at its end
(``ru_maxrss``) and its peak RSS before the load (imports, connections).
"""

from __future__ import annotations

import csv
import itertools
import logging
import resource
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from acme_bench.generate import COLUMNS

SCHEMA = "bench"
FX_RATES = (("USD", 1.0), ("EUR", 0.92), ("GBP", 0.79))
TYPED_COLUMNS = (
    "payment_id bigint, order_id bigint, amount numeric(12,2), currency char(3), method text, status text, "
    "paid_at timestamptz"
)
COPY_BLOCK = 1 << 20  # (b) streams the file in 1 MiB blocks
RAW_COPY_RUNS = 3  # (b) is the median of these (one run moves by a third on a shared machine)
PANDAS_READ_CHUNK = 10_000
PANDAS_WRITE_CHUNK = 1_000
INSERT_ROWS_COMMIT_EVERY = 1_000  # S3ToSqlOperator's default commit_every


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _result(rows: int, seconds: float, base_mb: float, **extra: Any) -> dict[str, Any]:
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base_mb, **extra}


def _plain_table(dsn: str, table: str, columns: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
            cur.execute(f"CREATE TABLE {SCHEMA}.{table} ({columns})")
        conn.commit()
    finally:
        conn.close()


def checkpoint(dsn: str) -> None:
    """A CHECKPOINT before a timed run, so that the server does not write out the last run's pages during this
    one (PostgreSQL checkpoints every ``max_wal_size`` of WAL: a few runs of the bench). Skipped, with a
    warning, without the right to (a superuser or ``pg_checkpoint``)."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
    except psycopg2.errors.InsufficientPrivilege as exc:
        logging.getLogger(__name__).warning("no CHECKPOINT before the timed run: %s", exc)
    finally:
        conn.close()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median ``seconds`` (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def _count(dsn: str, table: str) -> int:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


class _LoadSteps(logging.Handler):
    """Keeps the direct path's timing line (``read, checked and copied …, primary key …, other days' keys …``)."""

    line = ""

    def emit(self, record: logging.LogRecord) -> None:
        if "primary key" in record.getMessage():
            self.line = record.getMessage()


def project_load(file: Path, dsn: str, day: date, sample: int) -> dict[str, Any]:
    """(a) the project's ``load_partition``: read, validate, stage, publish into core.fact_payments."""
    import pyarrow as pa

    from acme_pipelines.accounting import AuditEntry
    from acme_pipelines.backends import load_partition
    from acme_pipelines.contract import PAYMENTS
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse import WarehouseHook

    hook = WarehouseHook(dsn=dsn)
    upgrade(hook)
    with hook.scoped_connection() as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO core.fx_rates (dt, currency, per_usd, _run_id, _loaded_at) "
                "VALUES (%s, %s, %s, 'bench', now()) ON CONFLICT (dt, currency) DO NOTHING",
                [(day, currency, per_usd) for currency, per_usd in FX_RATES],
            )
        conn.commit()
    landing_root = file.parents[2]  # <root>/payments/dt=YYYY-MM-DD/<file>
    audit = AuditEntry(
        dag_id="bench",
        task_id="load_payments",
        run_id="bench",
        source="landing:payments",
        target="core.fact_payments",
        partition=day.isoformat(),
        started_at=datetime.now(UTC),
    )
    import pandas  # noqa: F401  pyarrow imports it on its first Python scalar (~0.5 s once per process)

    steps = _LoadSteps()  # the load's own log line of where its time went (direct path only)
    logger = logging.getLogger("acme_pipelines.landing_load")
    logger.setLevel(logging.INFO)
    logger.addHandler(steps)
    base = peak_rss_mb()
    started = time.perf_counter()
    result = load_partition(hook, PAYMENTS, landing_root, day, audit, max_reject_ratio=0.01)
    seconds = time.perf_counter() - started
    counts = result.counts
    pool = pa.default_memory_pool()
    return _result(
        counts.rows_in,
        seconds,
        base,
        rows_loaded=counts.rows_loaded,
        rows_rejected=counts.rows_rejected,
        rows_duplicate=counts.rows_duplicate,
        published=_count(dsn, "core.fact_payments"),
        reported_seconds=result.seconds,
        arrow_pool=pool.backend_name,
        steps=steps.line or "staged path (no timings)",
        arrow_peak_mb=(pool.max_memory() or 0) / 2**20,
    )


def raw_copy(file: Path, dsn: str, day: date, sample: int) -> dict[str, Any]:
    """(b) COPY the file as is into an all-text table without indexes: the ceiling. Run ``RAW_COPY_RUNS`` times,
    each into a new table after a checkpoint; its seconds are the median run's, with the server backend's CPU
    seconds (``cpu``)."""
    import psycopg2

    from acme_bench.cpu import process_cpu

    runs = []
    base = peak_rss_mb()
    for _ in range(RAW_COPY_RUNS):
        _plain_table(dsn, "payments_copy", ", ".join(f"{c} text" for c in COLUMNS))
        checkpoint(dsn)
        conn = psycopg2.connect(dsn)
        try:
            backend = conn.get_backend_pid()
            cpu_before = process_cpu(backend)
            started = time.perf_counter()
            with conn.cursor() as cur, file.open("rb") as stream:
                cur.copy_expert(
                    f"COPY {SCHEMA}.payments_copy ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv, HEADER true)",
                    stream,
                    size=COPY_BLOCK,
                )
            conn.commit()
            seconds = time.perf_counter() - started
            cpu_after = process_cpu(backend)
        finally:
            conn.close()
        cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        runs.append({"seconds": seconds, "cpu": cpu})
    middle = median_run(runs)
    rows = _count(dsn, f"{SCHEMA}.payments_copy")
    return _result(rows, middle["seconds"], base, cpu=middle["cpu"], runs=[r["seconds"] for r in runs])


def pandas_to_sql(file: Path, dsn: str, day: date, sample: int) -> dict[str, Any]:
    """(c) pandas read_csv(chunksize) + DataFrame.to_sql(method="multi") through SQLAlchemy, on the sample."""
    import pandas as pd
    import sqlalchemy

    _plain_table(dsn, "payments_pandas", TYPED_COLUMNS)
    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        base = peak_rss_mb()
        started = time.perf_counter()
        rows = 0
        for chunk in pd.read_csv(file, chunksize=PANDAS_READ_CHUNK, nrows=sample):
            chunk.to_sql(
                "payments_pandas",
                engine,
                schema=SCHEMA,
                if_exists="append",
                index=False,
                method="multi",
                chunksize=PANDAS_WRITE_CHUNK,
            )
            rows += len(chunk)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return _result(_count(dsn, f"{SCHEMA}.payments_pandas"), seconds, base, read_rows=rows, sampled=True)


def insert_rows(file: Path, dsn: str, day: date, sample: int) -> dict[str, Any]:
    """(d) PostgresHook.insert_rows with csv-module rows, as S3ToSqlOperator calls it, on the sample.

    The connection comes from ``AIRFLOW_CONN_BENCH_PG`` (set by the parent).
    """
    from airflow.providers.postgres.hooks import postgres as pg_hooks

    _plain_table(dsn, "payments_insert_rows", TYPED_COLUMNS)
    hook = pg_hooks.PostgresHook(postgres_conn_id="bench_pg")
    with file.open(newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        base = peak_rss_mb()
        started = time.perf_counter()
        hook.insert_rows(
            f"{SCHEMA}.payments_insert_rows",
            itertools.islice(reader, sample),
            target_fields=header,
            commit_every=INSERT_ROWS_COMMIT_EVERY,
        )
        seconds = time.perf_counter() - started
    driver = "psycopg3" if pg_hooks.USE_PSYCOPG3 else "psycopg2"
    return _result(_count(dsn, f"{SCHEMA}.payments_insert_rows"), seconds, base, sampled=True, driver=driver)


def table_floor(file: Path, dsn: str, day: date, sample: int) -> dict[str, Any]:
    """(f) PostgreSQL alone doing what (a) asks of it: a binary COPY of (a)'s finished rows (typed, with
    amount_usd) into a new day table built as (a) builds it, then its primary key. No Python reads or
    checks anything: about the fastest (a) can be, give or take PostgreSQL's own variance (checkpoints).
    It needs (a) to have run first."""
    import tempfile

    import psycopg2

    from acme_pipelines import day_partitions
    from acme_pipelines.contract import PAYMENTS
    from acme_pipelines.landing_batches import fact_schema

    columns = ", ".join(fact_schema(PAYMENTS).names)
    table = "core.fact_payments"
    floor = f"{SCHEMA}.fact_floor"
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur, tempfile.TemporaryFile() as rows_file:
            cur.copy_expert(f"COPY (SELECT {columns} FROM {table}) TO STDOUT (FORMAT binary)", rows_file)
            rows_file.seek(0)
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"DROP TABLE IF EXISTS {floor}")
            conn.commit()
            base = peak_rss_mb()
            started = time.perf_counter()
            day_partitions.build_table(cur, table, floor, day, "bench", datetime.now(UTC).isoformat())
            copy = f"COPY {floor} ({columns}) FROM STDIN (FORMAT binary, FREEZE)"  # as (a) does
            cur.copy_expert(copy, rows_file, size=COPY_BLOCK)
            day_partitions.add_key(cur, table, floor)
            conn.commit()
            seconds = time.perf_counter() - started
    finally:
        conn.close()
    return _result(_count(dsn, floor), seconds, base)


METHODS = {"a": project_load, "b": raw_copy, "c": pandas_to_sql, "d": insert_rows, "f": table_floor}
