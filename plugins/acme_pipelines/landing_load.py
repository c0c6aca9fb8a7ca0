"""Load one day of a landing source (payments CSV, events JSONL, point-of-sale SQLite) into its fact table.

Steps, each streaming in bounded memory:

1. read the day's files in name order as Arrow batches (``readers``);
2. validate each batch with Arrow compute (``validation``): valid rows are
   COPYed into an UNLOGGED staging table, rejects into a staging rejects table;
3. in SQL, rank repeated keys (first by file name, then line): a byte-identical
   repeat is an exact duplicate, any other repeat is ``duplicate_key:<key>``;
4. if the rejected share exceeds ``max_reject_ratio``: record the rejects and
   a failed audit row, publish nothing, fail;
5. otherwise, in ONE transaction: replace the day's rows in the target (a key
   already in another day moves to the newer day), replace the day's
   rejects, write the audit row. Readers see the old day or the new one.

The common case (no key twice, none already in another day, every currency
with a rate, few rejects) skips the staging tables: one transaction builds the
day's new partition from a binary COPY, indexes it once, checks its keys
against the other days and swaps it in for the old one (``_load_direct``,
``day_partitions.exchange``). Anything else rolls that back and takes the
steps above.

A killed or failed run leaves only staging tables, which the retry drops.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, date, datetime
from typing import Any

from psycopg2 import sql
from psycopg2.errors import UniqueViolation

from acme_pipelines import day_partitions
from acme_pipelines.accounting import AuditEntry, LoadCounts, refusal_error, refuse
from acme_pipelines.contract import SourceSpec
from acme_pipelines.landing_batches import (
    HAS_AMOUNT_USD,
    LoadResult,
    Plan,
    Prepared,
    add_counts,
    day_rates,
    files_size,
    partition_files,
    prepare_tables,
    prepared_batches,
)
from acme_pipelines.migrations import require_current
from acme_pipelines.readers import DEFAULT_BATCH_ROWS, RawBatch
from acme_pipelines.warehouse import WarehouseHook, encode_binary, encode_csv, qualified

log = logging.getLogger(__name__)


def stage_names(spec: SourceSpec, day: date, run_id: str) -> tuple[str, str]:
    """Staging tables of one DAG run's load of one day: a retry of the run reuses (and first drops) them,
    a concurrent run of another DAG run never touches them."""
    run = hashlib.blake2s(run_id.encode(), digest_size=4).hexdigest()
    base = f"staging.{spec.name}_{day:%Y%m%d}_{run}"
    return base, f"{base}_rejects"


def load_partition(
    hook: WarehouseHook,
    spec: SourceSpec,
    landing_root: Any,
    day: date,
    audit: AuditEntry,
    *,
    max_reject_ratio: float,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    fail_after_staging: bool = False,
) -> LoadResult:
    """Load ``spec``'s files of ``day`` from ``landing_root`` (a Path or ObjectStoragePath) into PostgreSQL."""
    started = time.monotonic()
    files = partition_files(landing_root, spec, day)
    stage, rejects = stage_names(spec, day, audit.run_id)
    with hook.scoped_connection() as conn:
        require_current(conn)
        bytes_read = files_size(files)
        rates = day_rates(conn, day) if spec.name in HAS_AMOUNT_USD else None
        loaded_at = datetime.now(UTC).isoformat()
        direct = Plan(True, day, audit.run_id, loaded_at, rates)
        counts = _load_direct(
            conn, hook, spec, files, stage, rejects, audit, direct, max_reject_ratio, batch_rows, fail_after_staging
        )
        if counts is not None:
            seconds = time.monotonic() - started
            log.info("%s %s: published %d rows directly in %.1fs", spec.name, day, counts.rows_in, seconds)
            return LoadResult(counts, [p.name for p in files], bytes_read, time.monotonic() - started)
        counts = LoadCounts()
        missing_fx: set[str] = set()
        with conn.cursor() as cur:
            _create_stages(cur, spec, stage, rejects)
            staged = Plan(False, day, audit.run_id, loaded_at, rates)
            for number, prepared in enumerate(prepared_batches(spec, files, batch_rows, staged, _prepare), 1):
                add_counts(counts, prepared)
                missing_fx |= prepared.missing_fx
                if prepared.rejects:
                    hook.copy_encoded(cur, rejects, prepared.rejects)
                if prepared.good:
                    hook.copy_encoded(cur, stage, prepared.good)
                if number % 10 == 0:
                    log.info("%s %s: %d rows staged so far", spec.name, day, counts.rows_in)
        conn.commit()
        staged_at = time.monotonic()
        log.info("%s %s: staged %d rows in %.1fs", spec.name, day, counts.rows_in, staged_at - started)
        if fail_after_staging:  # fault injection for the atomicity tests
            raise RuntimeError("injected failure after staging")
        with conn.cursor() as cur:
            ranked = _classify(cur, spec, stage, counts)
            counts.check()
            classified_at = time.monotonic()
            log.info("%s %s: ranked duplicates in %.1fs", spec.name, day, classified_at - staged_at)
            error = refuse(counts, max_reject_ratio, missing_fx, day)
            if error:
                _record_rejects(cur, spec, ranked, rejects, audit, replace=False)
                # rows_loaded counts the rows that passed; status "failed" says none was published
                hook.record_audit(cur, audit, counts, "failed", error)
                conn.commit()
                raise refusal_error(f"{spec.name} {day}", error, counts, max_reject_ratio)
            _publish(cur, spec, ranked, rejects, audit, day)
            hook.record_audit(cur, audit, counts, "success", None)
        conn.commit()  # the publish, the rejects and the audit row become visible together
        log.info("%s %s: published in %.1fs", spec.name, day, time.monotonic() - classified_at)
        with conn.cursor() as cur:
            _drop_stages(cur, ranked, stage, rejects)
        conn.commit()
    return LoadResult(counts, [p.name for p in files], bytes_read, time.monotonic() - started)


def _create_stages(cur: Any, spec: SourceSpec, stage: str, rejects: str) -> None:
    columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in spec.columns]
    if spec.name in HAS_AMOUNT_USD:
        columns.append(sql.SQL("amount_usd numeric(14,2)"))
    _drop_stages(cur, f"{stage}_ranked", stage, rejects)
    cur.execute(
        sql.SQL(
            "CREATE UNLOGGED TABLE {} ({}, file_no int NOT NULL, line_no bigint NOT NULL, "
            "locator text NOT NULL, raw_record text)"
        ).format(qualified(stage), sql.SQL(", ").join(columns))
    )
    _create_rejects(cur, rejects)


def _create_rejects(cur: Any, rejects: str) -> None:
    statement = "CREATE UNLOGGED TABLE {} (locator text NOT NULL, reason text NOT NULL, raw_record text)"
    cur.execute(sql.SQL(statement).format(qualified(rejects)))


def _drop_stages(cur: Any, *relations: str) -> None:
    """Drop staging tables or views (the ranked relation is either) if they exist."""
    for name in relations:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name,))
        found = cur.fetchone()
        if found:
            kind = sql.SQL("VIEW" if found[0] == "v" else "TABLE")
            cur.execute(sql.SQL("DROP {} {} CASCADE").format(kind, qualified(name)))


def _prepare(spec: SourceSpec, batch: RawBatch, file_no: int, file_name: str, plan: Plan) -> Prepared:
    """``prepare_tables``, encoded for COPY (on the reader thread, off the COPY's path): the day's partition
    rows in binary, staged rows and rejects as CSV."""
    prepared = prepare_tables(spec, batch, file_no, file_name, plan)
    prepared.rejects = encode_csv(prepared.rejects) if prepared.rejects is not None else None
    if prepared.good is not None:
        json_columns = [c.name for c in spec.columns if c.pg_type == "jsonb"]
        prepared.good = encode_binary(prepared.good, json_columns) if plan.direct else encode_csv(prepared.good)
    return prepared


class _NotDirectError(Exception):
    """The direct path cannot finish this load; the staged path takes it from the start."""


def _load_direct(
    conn: Any,
    hook: WarehouseHook,
    spec: SourceSpec,
    files: list[Any],
    stage: str,
    rejects: str,
    audit: AuditEntry,
    plan: Plan,
    max_reject_ratio: float,
    batch_rows: int,
    fail_after_staging: bool,
) -> LoadCounts | None:
    """The common case in one transaction: build the day's partition anew and swap it in.

    A stand-alone table is filled by a binary COPY of the validated rows, given
    its primary key in one pass, checked against the other days' keys and
    attached in place of the day's old partition (``day_partitions``). Anything
    out of the ordinary (a key twice in the load or already in another day, a
    currency without a rate, too many rejects) rolls the transaction back and
    returns None, and the staged path, which handles all of it, runs instead.
    Readers see the old day until the commit, as in the staged path.
    """
    counts = LoadCounts()
    started = time.monotonic()
    target = spec.target
    new = f"{stage}_part"
    try:
        with conn.cursor() as cur:
            day_partitions.lock_day(cur, target, plan.day)
            _drop_stages(cur, rejects, new)
            _create_rejects(cur, rejects)
            day_partitions.build_table(cur, target, new, plan.day, plan.run_id, plan.loaded_at)
            for number, prepared in enumerate(prepared_batches(spec, files, batch_rows, plan, _prepare), 1):
                if prepared.missing_fx:
                    raise _NotDirectError(f"no FX rate for {sorted(prepared.missing_fx)}")
                add_counts(counts, prepared)
                if prepared.rejects:
                    hook.copy_encoded(cur, rejects, prepared.rejects)
                if prepared.good:
                    hook.copy_encoded(cur, new, prepared.good, freeze=True)  # new in this transaction
                if number % 10 == 0:
                    log.info("%s %s: %d rows copied so far", spec.name, plan.day, counts.rows_in)
            counts.rows_loaded = counts.rows_in - counts.rows_rejected
            if fail_after_staging:  # fault injection for the atomicity tests: rolled back below
                raise RuntimeError("injected failure after staging")
            if counts.reject_ratio > max_reject_ratio:
                raise _NotDirectError("too many rejects")
            copied = time.monotonic()
            day_partitions.add_key(cur, target, new)
            keyed = time.monotonic()
            day_partitions.analyze(cur, new)
            analyzed = time.monotonic()
            day_partitions.lock_table(cur, target)  # from here to the commit: milliseconds
            elsewhere = day_partitions.keys_in_other_days(cur, target, new, plan.day)
            if elsewhere:
                raise _NotDirectError(f"{elsewhere} keys already published by another day")
            checked = time.monotonic()
            _record_rejects(cur, spec, None, rejects, audit, replace=True)
            hook.record_audit(cur, audit, counts, "success", None)
            _drop_stages(cur, rejects)
            day_partitions.exchange(cur, target, new, plan.day)
        conn.commit()
        log.info(
            "%s %s: read, checked and copied %.2fs, primary key %.2fs, statistics %.3fs, other days' keys %.3fs, "
            "swap and commit %.3fs",
            spec.name, plan.day, copied - started, keyed - copied, analyzed - keyed, checked - analyzed,
            time.monotonic() - checked,
        )  # fmt: skip
        return counts
    except (_NotDirectError, UniqueViolation) as exc:
        conn.rollback()
        log.info("%s %s: staged path instead of direct load (%s)", spec.name, plan.day, str(exc).splitlines()[0])
        return None


def _classify(cur: Any, spec: SourceSpec, stage: str, counts: LoadCounts) -> str:
    """Rank repeated keys into a new table: first of its key (kind 1), exact duplicate (2), duplicate key (3).

    Returns the ranked table's name; the loaders read from it from here on.
    """
    ranked = f"{stage}_ranked"
    _drop_stages(cur, ranked)
    cur.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} GROUP BY {} HAVING count(*) > 1)").format(
            qualified(stage), sql.Identifier(spec.key)
        )
    )
    if not cur.fetchone()[0]:
        # The common case, no key twice: skip the sort, every row is the first of its key.
        cur.execute(
            sql.SQL("CREATE VIEW {} AS SELECT s.*, 1 AS kind FROM {} s").format(qualified(ranked), qualified(stage))
        )
        counts.rows_loaded = counts.rows_in - counts.rows_rejected
        return ranked
    cur.execute(
        sql.SQL(
            """
            CREATE UNLOGGED TABLE {ranked} AS
            SELECT r.*, CASE WHEN r.rn = 1 THEN 1 WHEN r.raw_record = r.first_raw THEN 2 ELSE 3 END AS kind
            FROM (
                SELECT s.*, row_number() OVER w AS rn, first_value(s.raw_record) OVER w AS first_raw
                FROM {stage} s
                WINDOW w AS (PARTITION BY s.{key} ORDER BY s.file_no, s.line_no)
            ) r
            """
        ).format(ranked=qualified(ranked), stage=qualified(stage), key=sql.Identifier(spec.key))
    )
    cur.execute(sql.SQL("SELECT kind, count(*) FROM {} GROUP BY kind").format(qualified(ranked)))
    by_kind = dict(cur.fetchall())
    counts.rows_loaded = by_kind.get(1, 0)
    counts.rows_duplicate = by_kind.get(2, 0)
    if by_kind.get(3):
        counts.reject(spec.duplicate_reason, by_kind[3])
    return ranked


def _record_rejects(
    cur: Any, spec: SourceSpec, ranked: str | None, rejects: str, audit: AuditEntry, *, replace: bool
) -> None:
    """Move the staged rejects (and, from a ranked stage, the duplicate keys) into ops.rejected_rows."""
    params = {"run_id": audit.run_id, "source": audit.source, "partition": audit.partition}
    if replace:
        WarehouseHook.clear_rejects(cur, audit)
    statement = sql.SQL(
        "INSERT INTO ops.rejected_rows (run_id, source, partition, locator, reason, raw_record) "
        "SELECT %(run_id)s, %(source)s, %(partition)s, locator, reason, raw_record FROM {}"
    ).format(qualified(rejects))
    if ranked is not None:
        statement += sql.SQL(
            " UNION ALL SELECT %(run_id)s, %(source)s, %(partition)s, locator, {}, raw_record FROM {} WHERE kind = 3"
        ).format(sql.Literal(spec.duplicate_reason), qualified(ranked))
    cur.execute(statement, params)


def _publish(cur: Any, spec: SourceSpec, stage: str, rejects: str, audit: AuditEntry, day: date) -> None:
    """Replace the day with the ranked stage's first rows; a key another day holds goes to the newer day."""
    target = qualified(spec.target)
    key = sql.Identifier(spec.key)
    names = [*spec.column_names, *(["amount_usd"] if spec.name in HAS_AMOUNT_USD else [])]
    insert_cols = [*names, "dt", "_run_id", "_loaded_at"]
    select_cols = [
        *(sql.SQL("r.{}").format(sql.Identifier(n)) for n in names),
        sql.SQL("%(dt)s"),
        sql.SQL("%(run_id)s"),
        sql.SQL("now()"),
    ]
    params: dict[str, Any] = {"dt": day, "run_id": audit.run_id}
    # One publisher per (table, day) at a time, even across DAG runs; one cross-day publish per table.
    day_partitions.lock_day(cur, spec.target, day)
    day_partitions.lock_table(cur, spec.target)
    _record_rejects(cur, spec, stage, rejects, audit, replace=True)
    day_partitions.ensure(cur, spec.target, day)
    cur.execute(sql.SQL("DELETE FROM {} WHERE dt = %(dt)s").format(target), params)
    # an older day's copy of a key moves to this day (the newer day wins); the range of the day's keys
    # lets each older partition's key index read only that range (day_partitions.keys_in_other_days)
    cur.execute(sql.SQL("SELECT min({0}), max({0}) FROM {1}").format(key, qualified(stage)))
    params["low"], params["high"] = cur.fetchone()
    cur.execute(
        sql.SQL(
            "DELETE FROM {target} t USING {stage} r WHERE r.kind = 1 AND t.{key} = r.{key} AND t.dt < %(dt)s "
            "AND t.{key} BETWEEN %(low)s AND %(high)s"
        ).format(target=target, stage=qualified(stage), key=key),
        params,
    )
    # ...and a key a newer day holds stays there
    cur.execute(
        sql.SQL(
            "INSERT INTO {target} ({cols}) SELECT {select} FROM {stage} r WHERE r.kind = 1 "
            "AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.{key} = r.{key} AND t.dt > %(dt)s)"
        ).format(
            target=target,
            cols=sql.SQL(", ").join(map(sql.Identifier, insert_cols)),
            select=sql.SQL(", ").join(select_cols),
            stage=qualified(stage),
            key=key,
        ),
        params,
    )
    day_partitions.analyze(cur, day_partitions.partition_name(spec.target, day))
