"""Day partitions of the landing fact tables (PostgreSQL declarative partitioning by ``dt``).

``core.fact_payments``, ``core.fact_events`` and ``core.fact_pos_sales`` are
``PARTITION BY RANGE (dt)`` with one partition per day, named
``<table>_pYYYYMMDD``. Loads create them (``ensure``) or swap a freshly built
one in (``exchange``); a day's query, publish or archival then touches that one
partition. A PostgreSQL partitioned
table has no global unique index, so ``keys_in_other_days`` is how a load finds
a business key that another day already published (contract §2: the newer day
wins).

``convert_unpartitioned`` upgrades a warehouse made before partitioning: run
by the migration runner (``acme_pipelines.migrations``) in migration 0001's
transaction, it renames the old table away, lets 0001 create the partitioned
one, and ``refill`` moves the rows over, all in that one transaction.

Locks. Two loads of different days must not both miss a key the other is
publishing, and a swap's DETACH must not wait for another writer that waits for
it. So every writer of a partitioned table takes, in this order: ``lock_day``
(one writer per day) at the start of its transaction, then ``lock_table`` before
its transaction first touches the table (a catalog read does not), and holds
both to its commit. A load builds and indexes its new partition before
``lock_table``, so loads of different days still COPY side by side; only the
check and the swap, milliseconds, are serial.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
from psycopg2 import sql

from acme_pipelines.contract import EVENTS, PAYMENTS, POS
from acme_pipelines.warehouse import WarehouseHook, encode_csv, lock_day
from acme_pipelines.warehouse import qualified as _qualified

log = logging.getLogger(__name__)

# How long a swap waits for queries that hold the table. While it waits, new queries of the table
# queue behind it, so it gives up early instead; the task's retry tries again.
EXCHANGE_LOCK_TIMEOUT = "30s"

# The partitioned tables and the business key each keeps unique across days.
PARTITIONED = {spec.target: spec.key for spec in (PAYMENTS, EVENTS, POS)}
UNPARTITIONED_SUFFIX = "_unpartitioned"


def lock_table(cur: Any, table: str) -> None:
    """One cross-day check and swap (or drop) of ``table`` at a time, to the end of the transaction."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{table}/partitions",))


def _impatient(cur: Any) -> None:
    """DETACH and DROP of a partition wait for every running query of the table and queue new ones behind
    them: give up after ``EXCHANGE_LOCK_TIMEOUT`` (``LockNotAvailable``) instead."""
    cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(EXCHANGE_LOCK_TIMEOUT)))


def partition_name(table: str, day: date) -> str:
    """``core.fact_payments`` and 2026-11-01 -> ``core.fact_payments_p20261101``."""
    return f"{table}_p{day:%Y%m%d}"


def bounds(day: date) -> tuple[date, date]:
    return day, day + timedelta(days=1)


def ensure(cur: Any, table: str, day: date) -> str:
    """Create ``table``'s partition for ``day`` if it is missing; returns its name.

    An empty table is made and ATTACHed rather than ``CREATE TABLE ... PARTITION
    OF``: that takes an ACCESS EXCLUSIVE lock on ``table`` and waits for every
    running query of it, queuing new ones behind; ATTACH does not block readers.
    """
    name = partition_name(table, day)
    cur.execute("SELECT relispartition FROM pg_class WHERE oid = to_regclass(%s)", (name,))
    found = cur.fetchone()
    if found and found[0]:
        return name
    if not found:
        cur.execute(sql.SQL("CREATE TABLE {} (LIKE {})").format(_qualified(name), _qualified(table)))
    low, high = bounds(day)
    cur.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM (%s) TO (%s)").format(
            _qualified(table), _qualified(name)
        ),
        (low, high),
    )
    return name


def exists(cur: Any, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cur.fetchone()[0])


def columns(cur: Any, table: str) -> list[tuple[str, str, bool]]:
    """(name, type, not null) of ``table``'s columns, from the catalog: reading it takes no lock on ``table``."""
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    return cur.fetchall()


def build_table(cur: Any, table: str, new: str, day: date, run_id: str, loaded_at: str) -> None:
    """Create ``new``, a stand-alone table with ``table``'s columns, for ``day``'s rows.

    ``dt``, ``_run_id`` and ``_loaded_at`` default to the load's values, so the
    COPY sends only the source's columns; the CHECK on ``dt`` is the partition
    bound, so ``exchange`` attaches it without scanning it. It has no index yet:
    one index built after the COPY costs less than one maintained row by row.
    Built from the catalog, not ``LIKE table``, which would lock ``table`` until
    the commit (see the module docstring).
    """
    defaults = {"dt": day, "_run_id": run_id, "_loaded_at": loaded_at}
    low, high = bounds(day)
    definitions = [
        sql.SQL("{} {}{}{}").format(
            sql.Identifier(name),
            sql.SQL(kind),  # from the catalog's format_type
            sql.SQL(" NOT NULL") if not_null else sql.SQL(""),
            sql.SQL(" DEFAULT {}").format(sql.Literal(defaults[name])) if name in defaults else sql.SQL(""),
        )
        for name, kind, not_null in columns(cur, table)
    ]
    definitions.append(
        sql.SQL("CONSTRAINT {} CHECK (dt >= {} AND dt < {})").format(
            sql.Identifier(_bound_name(new)), sql.Literal(low), sql.Literal(high)
        )
    )
    cur.execute(sql.SQL("CREATE TABLE {} ({})").format(_qualified(new), sql.SQL(", ").join(definitions)))


def _bound_name(name: str) -> str:
    return f"{name.split('.')[-1]}_dt"


def _key_name(name: str) -> str:
    return f"{name.split('.')[-1]}_pkey"


def add_key(cur: Any, table: str, new: str) -> None:
    """The partition's primary key (business key, dt), built in one pass; a key twice raises UniqueViolation."""
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({}, dt)").format(
            _qualified(new), sql.Identifier(_key_name(new)), sql.Identifier(PARTITIONED[table])
        )
    )


# The sample the load's ANALYZE reads: 300 x this many rows (PostgreSQL's rule), 3,000 here. Enough for
# what plans the day's joins (row count, how distinct the keys are) at a tenth of the default's cost.
ANALYZE_STATISTICS_TARGET = 10


def analyze(cur: Any, name: str) -> None:
    """Planner statistics of a partition just built or refilled, from a small sample (milliseconds).

    Autovacuum gathers them only minutes after the commit; until then the planner guesses, and the
    queries that read the day right after its load (the marts, the quality checks) plan their joins
    blind (docs/benchmarks.md, ``make bench-scale``). ``ANALYZE`` of the partition at any time
    replaces them with a full sample.
    """
    # SET LOCAL: to the end of the load's transaction, which analyzes nothing else
    cur.execute(sql.SQL("SET LOCAL default_statistics_target = {}").format(sql.Literal(ANALYZE_STATISTICS_TARGET)))
    cur.execute(sql.SQL("ANALYZE {}").format(_qualified(name)))


def keys_in_other_days(cur: Any, table: str, rows: str, day: date) -> int:
    """How many keys of ``rows`` (a table keyed by the business key) other days of ``table`` hold.

    Bounded by the smallest and largest key of ``rows`` (from its index, in the
    database's collation, as the comparison below): each other partition's
    primary-key index is read only over that range, so keys that grow with time
    (payment ids) cost one index probe per partition; random keys (event UUIDs)
    read the other partitions' key indexes.
    """
    key = sql.Identifier(PARTITIONED[table])
    cur.execute(sql.SQL("SELECT min({0}), max({0}) FROM {1}").format(key, _qualified(rows)))
    low, high = cur.fetchone()
    if low is None:
        return 0
    # Two ranges of dt, not "dt <> day": PostgreSQL prunes the day's own partition only from ranges
    # that exclude it outright ("dt > day" would not: pruning treats dates as continuous).
    side = sql.SQL(
        "SELECT 1 FROM {table} t WHERE {dt} AND t.{key} BETWEEN %(low)s AND %(high)s "
        "AND EXISTS (SELECT 1 FROM {rows} r WHERE r.{key} = t.{key})"
    )
    parts = {"table": _qualified(table), "key": key, "rows": _qualified(rows)}
    cur.execute(
        sql.SQL("SELECT count(*) FROM ({} UNION ALL {}) other_days").format(
            side.format(dt=sql.SQL("t.dt < %(day)s"), **parts), side.format(dt=sql.SQL("t.dt >= %(next)s"), **parts)
        ),
        {"day": day, "next": bounds(day)[1], "low": low, "high": high},
    )
    return int(cur.fetchone()[0])


def exchange(cur: Any, table: str, new: str, day: date) -> str:
    """Make ``new`` (built by ``build_table``, keyed by ``add_key``) ``table``'s partition for ``day``.

    The old partition, if any, is detached and dropped in the same transaction:
    readers see the old day until the commit and the new day after it. DETACH
    takes an ACCESS EXCLUSIVE lock on ``table``, so run this last, just before
    the commit, to hold it for milliseconds; a first load of a day only
    ATTACHes, which does not block readers. Waiting longer than
    ``EXCHANGE_LOCK_TIMEOUT`` for that lock raises ``LockNotAvailable``.
    """
    name = partition_name(table, day)
    _impatient(cur)
    schema, bare = name.split(".")
    low, high = bounds(day)
    drop(cur, table, day)
    new_schema, new_bare = new.split(".")
    if new_schema != schema:
        cur.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(_qualified(new), sql.Identifier(schema)))
    cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, new_bare), sql.Identifier(bare)))
    cur.execute(
        sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            _qualified(name), sql.Identifier(_key_name(new)), sql.Identifier(_key_name(name))
        )
    )
    cur.execute(
        sql.SQL(
            "ALTER TABLE {} ALTER COLUMN dt DROP DEFAULT, ALTER COLUMN _run_id DROP DEFAULT, "
            "ALTER COLUMN _loaded_at DROP DEFAULT"
        ).format(_qualified(name))
    )
    bound = sql.Identifier(_bound_name(new))
    cur.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM (%s) TO (%s)").format(
            _qualified(table), _qualified(name)
        ),
        (low, high),
    )
    cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(_qualified(name), bound))  # the bound holds it
    return name


def drop(cur: Any, table: str, day: date) -> bool:
    """Detach and drop ``table``'s partition for ``day``; False when there was none.

    Instant and returns the space at once, where a DELETE leaves dead rows for vacuum. Waits at most
    ``EXCHANGE_LOCK_TIMEOUT`` for running queries of ``table``. Take ``lock_table`` first.
    """
    name = partition_name(table, day)
    if not exists(cur, name):
        return False
    _impatient(cur)
    cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(_qualified(table), _qualified(name)))
    cur.execute(sql.SQL("DROP TABLE {}").format(_qualified(name)))
    return True


def convert_unpartitioned(cur: Any) -> list[str]:
    """Rename fact tables made before partitioning (plain tables) out of the way; returns their tables.

    Their primary key and ``dt`` index go with them (the new table reuses the
    names). ``refill`` moves the rows once migration 0001 has made the new tables.
    """
    renamed = []
    for table in PARTITIONED:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (table,))
        found = cur.fetchone()
        if not found or found[0] != "r":
            continue
        schema, bare = table.split(".")
        old = f"{bare}{UNPARTITIONED_SUFFIX}"
        log.warning("%s is not partitioned by dt: converting it (one time; its rows move day by day)", table)
        cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, f"{bare}_dt")))
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                _qualified(table), sql.Identifier(f"{bare}_pkey")
            )
        )
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_qualified(table), sql.Identifier(old)))
        renamed.append(table)
    return renamed


def refill(cur: Any, tables: list[str]) -> None:
    """Move the rows of each renamed table into the new partitioned one, one partition per day, then drop it."""
    for table in tables:
        schema, bare = table.split(".")
        old = sql.Identifier(schema, f"{bare}{UNPARTITIONED_SUFFIX}")
        cur.execute(sql.SQL("SELECT DISTINCT dt FROM {} ORDER BY dt").format(old))
        days = [row[0] for row in cur.fetchall()]
        for day in days:
            ensure(cur, table, day)
        names = sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in columns(cur, table))
        cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(_qualified(table), names, names, old))
        moved = cur.rowcount
        cur.execute(sql.SQL("DROP TABLE {}").format(old))
        log.warning("%s: %d rows moved into %d day partitions", table, moved, len(days))


class PartitionedDays:
    """``warehouse.DayStorage`` on PostgreSQL: a fact table's day is one partition."""

    @staticmethod
    def lock(cur: Any, table: str, day: date) -> None:
        """The day's writer lock, then the table's (the order above), to the end of the transaction."""
        lock_day(cur, table, day)
        lock_table(cur, table)

    @staticmethod
    def delete(cur: Any, table: str, day: date) -> None:
        """The day's rows gone in the caller's transaction: its partition detached and dropped (under ``lock``, so
        the caller's count of the day is exact)."""
        drop(cur, table, day)

    @staticmethod
    def restore(
        conn: Any,
        table: str,
        day: date,
        batches: Iterable[pa.RecordBatch],
        *,
        key: str,
        json_columns: Sequence[str],
        finish: Callable[[Any, int], None],
    ) -> None:
        """Put ``batches`` back as the day's partition and commit; ``finish(cur, keys_elsewhere)`` runs before the
        commit (it raises to roll everything back). The caller holds ``lock``. ``key`` is ``PARTITIONED[table]``;
        JSON arrives as text, which COPY casts."""
        with conn.cursor() as cur:
            partition = ensure(cur, table, day)
            for batch in batches:
                WarehouseHook.copy_encoded(cur, table, encode_csv(pa.Table.from_batches([batch])))
            analyze(cur, partition)
            finish(cur, keys_in_other_days(cur, table, partition, day))
        conn.commit()
