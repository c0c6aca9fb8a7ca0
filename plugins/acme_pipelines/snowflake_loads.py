"""The loaders on Snowflake: the same inputs, row accounting and published rows as on PostgreSQL.

Rows are read and validated by the same Arrow code as the PostgreSQL loaders
(``landing_batches.prepare_tables``, ``db_readers``), typed, spooled to Parquet and
staged into transient tables (``snowflake_warehouse``). Ranking, contract checks
(``dialects.condition``) and the publish run as Snowflake SQL. Each publish is ONE
transaction holding the rejects, the rows and the audit row: DELETE of what is
replaced, then INSERT (fakesnow cannot MERGE inside a transaction, and MERGE
alone would not keep the rejects and the audit row in the same commit).

A failure inside a publish is rolled back (``transaction``) before the staging
tables are dropped in ``finally``: on Snowflake a DROP would commit an open
transaction. A killed worker leaves ``ACME_STAGE_*`` tables, never published rows.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from acme_pipelines.accounting import AuditEntry, LoadCounts, refusal_error, refuse
from acme_pipelines.arrow_types import arrow_type
from acme_pipelines.contract import SourceSpec, SyncTable
from acme_pipelines.migrations import require_current
from acme_pipelines.snowflake_warehouse import (
    ParquetSpool,
    SnowflakeWarehouseHook,
    drop_tables,
    identifier,
    literal,
    stage_files,
    stage_table_name,
    transaction,
)

log = logging.getLogger(__name__)

REJECTS_SCHEMA = pa.schema([("locator", pa.string()), ("reason", pa.string()), ("raw_record", pa.string())])


# -- landing files -------------------------------------------------------------------------


def landing_schema(spec: SourceSpec) -> pa.Schema:
    """The staged rows of a landing load: typed fact columns (``amount_usd`` included) and where each row
    came from."""
    from acme_pipelines.landing_batches import fact_schema

    return pa.schema(
        [
            *fact_schema(spec),
            ("file_no", pa.int32()),
            ("line_no", pa.int64()),
            ("locator", pa.string()),
            ("raw_record", pa.string()),
        ]
    )


def load_partition(
    hook: SnowflakeWarehouseHook,
    spec: SourceSpec,
    landing_root: Any,
    day: date,
    audit: AuditEntry,
    *,
    max_reject_ratio: float,
    batch_rows: int,
    fail_after_staging: bool = False,
    fail_before_commit: bool = False,
) -> Any:
    """``landing_load.load_partition`` on Snowflake: validated rows and rejects staged as Parquet, repeated
    keys ranked in SQL, the day replaced in one transaction."""
    from acme_pipelines.landing_batches import (
        HAS_AMOUNT_USD,
        LoadResult,
        Plan,
        day_rates,
        files_size,
        partition_files,
        prepare_tables,
        prepared_batches,
        typed,
    )

    started = time.monotonic()
    files = partition_files(landing_root, spec, day)
    with_usd = spec.name in HAS_AMOUNT_USD
    schema = landing_schema(spec)
    target = identifier(spec.target)
    stage, rejects, ranked = (stage_table_name(spec.target, s) for s in ("ROWS", "REJECTS", "RANKED"))
    counts = LoadCounts()
    missing_fx: set[str] = set()
    bytes_read = files_size(files)
    with hook.scoped_connection() as conn:
        cur = conn.cursor()
        require_current(conn)
        plan = Plan(False, day, audit.run_id, datetime.now(UTC).isoformat(), day_rates(conn, day) if with_usd else None)
        try:
            with tempfile.TemporaryDirectory(prefix="acme-snowflake-") as tmp:
                good = ParquetSpool(Path(tmp), "rows", schema)
                bad = ParquetSpool(Path(tmp), "rejects", REJECTS_SCHEMA)
                for number, prepared in enumerate(prepared_batches(spec, files, batch_rows, plan, prepare_tables), 1):
                    counts.rows_in += prepared.rows_in
                    for reason, n in prepared.reasons.items():
                        counts.reject(reason, n)
                    missing_fx |= prepared.missing_fx
                    if prepared.rejects is not None:
                        bad.write(prepared.rejects)
                    if prepared.good is not None:
                        good.write(typed(prepared.good, schema))
                    if number % 10 == 0:
                        log.info("%s %s: %d rows spooled so far", spec.name, day, counts.rows_in)
                good.close()
                bad.close()
                stage_files(cur, good.files, stage, schema=schema)
                stage_files(cur, bad.files, rejects, schema=REJECTS_SCHEMA)
            log.info("%s %s: staged %d rows in %.1fs", spec.name, day, counts.rows_in, time.monotonic() - started)
            if fail_after_staging:  # fault injection for the atomicity tests
                raise RuntimeError("injected failure after staging")
            _rank(cur, spec, stage, ranked, counts)
            counts.check()
            params = {"run_id": audit.run_id, "source": audit.source, "partition": audit.partition, "dt": day}
            record = (
                "INSERT INTO ops.rejected_rows (run_id, source, partition, locator, reason, raw_record) "
                f"SELECT %(run_id)s, %(source)s, %(partition)s, locator, reason, raw_record FROM {rejects} "
                f"UNION ALL SELECT %(run_id)s, %(source)s, %(partition)s, locator, {literal(spec.duplicate_reason)}, "
                f"raw_record FROM {ranked} WHERE kind = 3"
            )
            error = refuse(counts, max_reject_ratio, missing_fx, day)
            if error:
                with transaction(cur):
                    cur.execute(record, params)
                    hook.record_audit(cur, audit, counts, "failed", error)
                raise refusal_error(f"{spec.name} {day}", error, counts, max_reject_ratio)
            key = identifier(spec.key, parts=1)
            names = [identifier(c.name, parts=1) for c in spec.columns]
            values = [
                f"PARSE_JSON(r.{n})" if c.pg_type == "jsonb" else f"r.{n}"
                for n, c in zip(names, spec.columns, strict=True)
            ]
            if with_usd:
                names.append('"AMOUNT_USD"')
                values.append('r."AMOUNT_USD"')
            # the rows, the rejects and the audit row become visible together, or (ROLLBACK) not at all
            with transaction(cur):
                hook.clear_rejects(cur, audit)
                cur.execute(record, params)
                # the day is replaced; a key published by an older day moves to this one, a newer day keeps its own
                cur.execute(
                    f"DELETE FROM {target} WHERE dt = %(dt)s OR (dt < %(dt)s AND {key} IN "
                    f"(SELECT {key} FROM {ranked} WHERE kind = 1))",
                    params,
                )
                cur.execute(
                    f"INSERT INTO {target} ({', '.join(names)}, dt, _run_id, _loaded_at) "
                    f"SELECT {', '.join(values)}, %(dt)s, %(run_id)s, CURRENT_TIMESTAMP() FROM {ranked} r "
                    f"WHERE r.kind = 1 AND r.{key} NOT IN (SELECT {key} FROM {target})",
                    params,
                )
                hook.record_audit(cur, audit, counts, "success", None)
                if fail_before_commit:  # fault injection for the atomicity tests: rolled back
                    raise RuntimeError("injected failure before commit")
        finally:
            drop_tables(cur, stage, rejects, ranked)
    seconds = time.monotonic() - started
    log.info("%s %s: published %d rows to Snowflake in %.1fs", spec.name, day, counts.rows_loaded, seconds)
    return LoadResult(counts, [p.name for p in files], bytes_read, seconds)


def _rank(cur: Any, spec: SourceSpec, stage: str, ranked: str, counts: LoadCounts) -> None:
    """First row of a key (kind 1), byte-identical repeat (2), other repeat (3), in file then line order."""
    key = identifier(spec.key, parts=1)
    window = f"PARTITION BY s.{key} ORDER BY s.file_no, s.line_no"
    cur.execute(
        f"CREATE TRANSIENT TABLE {ranked} AS "
        "SELECT r.*, CASE WHEN r.rn = 1 THEN 1 WHEN r.raw_record = r.first_raw THEN 2 ELSE 3 END AS kind "
        f"FROM (SELECT s.*, ROW_NUMBER() OVER ({window}) AS rn, FIRST_VALUE(s.raw_record) OVER ({window}) "
        f"AS first_raw FROM {stage} s) r"
    )
    cur.execute(f"SELECT kind, COUNT(*) FROM {ranked} GROUP BY kind")
    by_kind = {int(k): int(n) for k, n in cur.fetchall()}
    counts.rows_loaded = by_kind.get(1, 0)
    counts.rows_duplicate = by_kind.get(2, 0)
    if by_kind.get(3):
        counts.reject(spec.duplicate_reason, by_kind[3])


# -- the app database (hourly sync) ----------------------------------------------------------


def sync_table(
    source_conn_factory: Callable[[], Any],
    hook: SnowflakeWarehouseHook,
    table: SyncTable,
    start: datetime,
    end: datetime,
    audit: AuditEntry,
    *,
    max_reject_ratio: float,
    batch_rows: int = 50_000,
) -> tuple[LoadCounts, int]:
    """``incremental_sync.sync_table`` on Snowflake: the window's rows read through a server-side cursor as
    Arrow batches, staged as Parquet, checked in SQL, upserted (newer ``updated_at`` wins) in one transaction."""
    from acme_pipelines.db_readers import postgres_window_batches
    from acme_pipelines.dialects import condition
    from acme_pipelines.landing_batches import files_size

    schema = pa.schema([(name, arrow_type(kind)) for name, kind in table.columns])
    target = identifier(table.target)
    stage, checked = stage_table_name(table.target, "SYNC"), stage_table_name(table.target, "CHECKED")
    source_conn = source_conn_factory()
    try:
        source_conn.set_session(readonly=True)
        with source_conn.cursor() as src:
            src.execute("SET TIME ZONE 'UTC'")
        with hook.scoped_connection() as conn:
            cur = conn.cursor()
            require_current(conn)
            try:
                with tempfile.TemporaryDirectory(prefix="acme-snowflake-") as tmp:
                    spool = ParquetSpool(Path(tmp), table.source, schema)
                    for batch in postgres_window_batches(
                        source_conn, table.source, table.names, start, end, batch_rows, schema=schema
                    ):
                        spool.write(batch)
                    spool.close()
                    moved = files_size(spool.files)
                    rows_in = stage_files(cur, spool.files, stage, schema=schema)
                reason = (
                    "CASE " + " ".join(f"WHEN {condition(c, 'snowflake')} THEN '{r}'" for c, r in table.checks) + " END"
                    if table.checks
                    else "CAST(NULL AS VARCHAR)"
                )
                cur.execute(f"CREATE TRANSIENT TABLE {checked} AS SELECT s.*, {reason} AS reason FROM {stage} s")
                counts = _publish_sync(cur, hook, table, target, checked, audit, rows_in, max_reject_ratio)
            finally:
                drop_tables(cur, stage, checked)
    finally:
        source_conn.close()
    return counts, moved


def _publish_sync(
    cur: Any,
    hook: SnowflakeWarehouseHook,
    table: SyncTable,
    target: str,
    checked: str,
    audit: AuditEntry,
    rows_in: int,
    max_reject_ratio: float,
) -> LoadCounts:
    keys = [identifier(k, parts=1) for k in table.key]
    names = [identifier(n, parts=1) for n in table.names]
    locator = " || ',' || ".join(
        f"{literal(f'{k}=')} || CAST({q} AS VARCHAR)" for k, q in zip(table.key, keys, strict=True)
    )
    raw = (
        "TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL("
        + ", ".join(f"{literal(n)}, {q}" for n, q in zip(table.names, names, strict=True))
        + "))"
    )
    params = {"run_id": audit.run_id, "source": audit.source, "partition": audit.partition}
    with transaction(cur):
        hook.clear_rejects(cur, audit)
        cur.execute(
            "INSERT INTO ops.rejected_rows (run_id, source, partition, locator, reason, raw_record) "
            f"SELECT %(run_id)s, %(source)s, %(partition)s, {literal(f'app_db:{table.source}/')} || {locator}, "
            f"reason, {raw} FROM {checked} WHERE reason IS NOT NULL",
            params,
        )
        cur.execute(f"SELECT reason, COUNT(*) FROM {checked} WHERE reason IS NOT NULL GROUP BY reason")
        by_reason = {str(r): int(n) for r, n in cur.fetchall()}
        rejected = sum(by_reason.values())
        counts = LoadCounts(rows_in, rows_in - rejected, rejected, 0, by_reason)
        counts.check()
        error = refuse(counts, max_reject_ratio)
        if error:  # the rejects and a failed audit row are committed; nothing is published
            hook.record_audit(cur, audit, counts, "failed", error)
        else:
            same_key = " AND ".join(f"t.{k} = c.{k}" for k in keys)
            # upsert as delete + insert: older rows of the staged keys go, newer ones stay and win
            cur.execute(
                f"DELETE FROM {target} t USING {checked} c WHERE c.reason IS NULL AND {same_key} "
                'AND t."UPDATED_AT" <= c."UPDATED_AT"'
            )
            cur.execute(
                f"INSERT INTO {target} ({', '.join(names)}, _run_id, _loaded_at) "
                f"SELECT {', '.join(f'c.{n}' for n in names)}, %(run_id)s, CURRENT_TIMESTAMP() FROM {checked} c "
                f"WHERE c.reason IS NULL AND NOT EXISTS (SELECT 1 FROM {target} t WHERE {same_key})",
                params,
            )
            hook.record_audit(cur, audit, counts, "success", None)
    if error:
        raise refusal_error(f"{table.source} {audit.partition}", error, counts, max_reject_ratio)
    return counts


# -- SQL files (marts, features, ...) --------------------------------------------------------


def rebuild_partition(
    hook: SnowflakeWarehouseHook,
    sql_text: str,
    params: dict[str, Any],
    target: str,
    partition_column: str,
    precondition_text: str | None = None,
) -> int:
    """``partition_rebuild.rebuild_partition`` on Snowflake: the PostgreSQL file transpiled (``dialects``), run in one
    transaction; returns the partition's row count."""
    from airflow.sdk.exceptions import AirflowFailException

    from acme_pipelines.dialects import statements

    with hook.scoped_connection() as conn:
        require_current(conn)
        cur = conn.cursor()
        with transaction(cur):
            if precondition_text:
                for statement in statements(precondition_text, "snowflake"):
                    cur.execute(statement, params)
                ok, message = cur.fetchone()
                if not ok:
                    raise AirflowFailException(f"{target} {params.get('dt')}: {message}")
            for statement in statements(sql_text, "snowflake"):
                cur.execute(statement, params)
            cur.execute(
                f"SELECT COUNT(*) FROM {identifier(target)} WHERE {identifier(partition_column, parts=1)} = %(dt)s",
                params,
            )
            rows = int(cur.fetchone()[0])
    return rows
