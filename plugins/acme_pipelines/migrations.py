"""Warehouse schema migrations: numbered SQL files, each applied once, in order, by a setup step.

``include/migrations/NNNN_<name>.sql`` (PostgreSQL dialect) are the warehouse schema's
history: ``0001_warehouse_schema.sql`` is the schema as it stood when migrations began, and a
change is a new file with the next number. ``upgrade`` applies the files a warehouse has not
had yet and records each in ``ops.schema_migrations`` (version, name, checksum, applied_at).
Setup steps run it: ``make migrate``, ``make up``, ``make demo`` and ``make snowflake-compare``
(``acme_localdev``), compose's ``airflow-init``, the Helm chart's migration job. Tasks never
change the schema: they call ``require_current``, a plain ``SELECT max(version)`` (no lock a
load could wait for, none a load holds), once per process and warehouse, which fails the task
with the command to run when the warehouse is behind the code.

PostgreSQL: each migration runs in its own transaction holding a transaction-level advisory
lock (``MIGRATION_LOCK``) and re-reads ``ops.schema_migrations`` under it, so runners started
at once (two deploys, a retried Job) apply each file exactly once; a failing file rolls back
whole and stops the run. An applied file whose checksum (sha256 of its text) has changed is an
error (``ChecksumMismatchError``): applied migrations are history, a change goes in a new file.
A warehouse made before the fact tables were partitioned by day (plain ``core.fact_payments``
and ``core.fact_events``) is converted inside 0001's transaction:
``day_partitions.convert_unpartitioned`` renames the old tables away before the file runs and
``day_partitions.refill`` moves their rows into day partitions after it. A warehouse whose tables
the tasks created before migrations existed takes 0001 unchanged (``IF NOT EXISTS``).

Snowflake: the same files, each transpiled by ``dialects.warehouse_ddl``, recorded in
``OPS.SCHEMA_MIGRATIONS``; tasks there check the same way. Snowflake commits each DDL statement
by itself and has no advisory locks, so there a migration is neither atomic nor serialised:
its statements are idempotent (``IF NOT EXISTS``) and its row is written last, so the next run
finishes a run that stopped half way. Run it from one place (the setup step).

Why not Alembic: the migrations are plain SQL files, there are no ORM models to autogenerate
from, and the same files feed the Snowflake transpiler. What is needed (ordered files, a version
table, checksums, one lock) is this module; Alembic would add an ``env.py``, revision modules
wrapping ``op.execute(sql)`` and a revision graph, for nothing used here.

    python -m acme_pipelines.migrations upgrade [--conn-id warehouse] [--create-database]
    python -m acme_pipelines.migrations status [--conn-id warehouse]   # exit 1 when behind
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "include" / "migrations"
MIGRATION_LOCK = 7_300_001  # pg_advisory_xact_lock key: one migration at a time per warehouse
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS ops.schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
    "checksum text NOT NULL, applied_at timestamptz NOT NULL)"
)
_RECORD = (
    "INSERT INTO ops.schema_migrations (version, name, checksum, applied_at) VALUES (%s, %s, %s, CURRENT_TIMESTAMP)"
)
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


class MigrationError(RuntimeError):
    """The migration files or the warehouse's record of them are not in a state the runner applies to."""


class ChecksumMismatchError(MigrationError):
    """A migration the warehouse has applied was edited since: restore it and put the change in a new file."""


class SchemaBehindError(AirflowFailException):
    """The warehouse has not had every migration this code needs. The same task fails the same way until
    a setup step runs ``upgrade``, so it fails without retries."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        """sha256 of the file's text, line endings normalised (a checkout with CRLF is the same file)."""
        return hashlib.sha256(self.text.replace("\r\n", "\n").encode()).hexdigest()

    def __str__(self) -> str:
        return f"{self.version:04d}_{self.name}"


def discover(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``folder`` in order; they must be numbered 0001, 0002, ... without gaps."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: a migration file is named NNNN_<name>.sql")
        found.append(Migration(int(match[1]), match[2], path))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"{folder}: migrations must be numbered 0001, 0002, ... without gaps: {found}")
    return found


LATEST = max((m.version for m in discover()), default=0)  # the highest file number: the version this code needs


def command(conn_id: str = "warehouse") -> str:
    return f"python -m acme_pipelines.migrations upgrade --conn-id {conn_id}"


def dialect_of(conn: Any) -> str:
    """``snowflake`` for a Snowflake connector connection, else ``postgres`` (psycopg2)."""
    return "snowflake" if type(conn).__module__.startswith("snowflake") else "postgres"


@contextmanager
def _opened(hook_or_conn: Any) -> Iterator[tuple[Any, str]]:
    """(connection, dialect): a hook's own new connection (closed after), or the connection given."""
    if hasattr(hook_or_conn, "get_conn"):
        with hook_or_conn.scoped_connection() as conn:
            yield conn, hook_or_conn.backend
    else:
        yield hook_or_conn, dialect_of(hook_or_conn)


# -- applying ---------------------------------------------------------------------------------


def upgrade(hook_or_conn: Any, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the migrations the warehouse lacks, in order; returns those applied (none when current).

    ``hook_or_conn``: a warehouse hook (``WarehouseHook``, ``SnowflakeWarehouseHook``) or an open
    psycopg2 / Snowflake connection. Raises ``ChecksumMismatchError`` before applying anything
    when an applied file has changed.
    """
    migrations = discover(folder)
    with _opened(hook_or_conn) as (conn, dialect):
        applied = (_upgrade_snowflake if dialect == "snowflake" else _upgrade_postgres)(conn, migrations)
    for migration in applied:
        log.info("warehouse schema: applied migration %s", migration)
    return applied


def _verify(recorded: dict[int, tuple[str, str]], migrations: Sequence[Migration]) -> None:
    """Every recorded migration still has its file, unchanged (a newer warehouse than the code: a warning)."""
    files = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = files.get(version)
        if migration is None:
            log.warning("the warehouse has migration %04d_%s, unknown to this code (newer code)", version, name)
        elif migration.checksum != checksum:
            raise ChecksumMismatchError(
                f"migration {migration} was applied with checksum {checksum[:12]}, but {migration.path} now has "
                f"{migration.checksum[:12]}: an applied migration must not change. Restore the file and put the "
                "change in a new migration."
            )


def _recorded(cur: Any) -> dict[int, tuple[str, str]]:
    cur.execute("SELECT version, name, checksum FROM ops.schema_migrations")
    return {int(version): (name, checksum) for version, name, checksum in cur.fetchall()}


def _upgrade_postgres(conn: Any, migrations: Sequence[Migration]) -> list[Migration]:
    from acme_pipelines import day_partitions

    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cur.execute("CREATE SCHEMA IF NOT EXISTS ops")
        cur.execute(TABLE_DDL)
        _verify(_recorded(cur), migrations)
    conn.commit()
    applied = []
    for migration in migrations:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            # read under the lock: another runner may have applied it since the check above
            cur.execute("SELECT name, checksum FROM ops.schema_migrations WHERE version = %s", (migration.version,))
            found = cur.fetchone()
            if found is not None:
                conn.rollback()
                _verify({migration.version: found}, [migration])
                continue
            renamed = day_partitions.convert_unpartitioned(cur) if migration.version == 1 else []
            cur.execute(migration.text)
            day_partitions.refill(cur, renamed)
            cur.execute(_RECORD, (migration.version, migration.name, migration.checksum))
        conn.commit()
        applied.append(migration)
    return applied


def _upgrade_snowflake(conn: Any, migrations: Sequence[Migration]) -> list[Migration]:
    from acme_pipelines.dialects import statements, warehouse_ddl
    from acme_pipelines.snowflake_warehouse import identifier

    cur = conn.cursor()
    cur.execute("CREATE SCHEMA IF NOT EXISTS OPS")
    [table_ddl] = statements(TABLE_DDL, "snowflake")
    cur.execute(table_ddl)
    recorded = _recorded(cur)
    _verify(recorded, migrations)
    applied = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        for statement in warehouse_ddl("snowflake", migration.path):
            if match := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)\.", statement):
                # an AUTOINCREMENT column's sequence belongs to the current schema (fakesnow resolves it there)
                cur.execute(f"USE SCHEMA {identifier(match[1], parts=1)}")
            cur.execute(statement)
        cur.execute(_RECORD, (migration.version, migration.name, migration.checksum))
        applied.append(migration)
    return applied


# -- checking (tasks) -------------------------------------------------------------------------

_current: set[tuple[Any, ...]] = set()  # warehouses this process found current (they never go back)


def current_version(conn: Any) -> int:
    """The highest migration the warehouse has applied (0: none, or no ``ops.schema_migrations``).

    A plain read: on PostgreSQL an ACCESS SHARE lock on ``ops.schema_migrations`` alone, released at
    once when the connection was idle (the read's transaction is ended; otherwise the caller's goes on).
    """
    if dialect_of(conn) == "snowflake":
        return _current_snowflake(conn)
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    idle = conn.info.transaction_status == TRANSACTION_STATUS_IDLE
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ops.schema_migrations') IS NOT NULL")
        version = 0
        if cur.fetchone()[0]:
            cur.execute("SELECT coalesce(max(version), 0) FROM ops.schema_migrations")
            version = cur.fetchone()[0]
    if idle:
        conn.rollback()  # nothing was written: end the read's transaction
    return int(version)


def _current_snowflake(conn: Any) -> int:
    from snowflake.connector.errors import ProgrammingError

    cur = conn.cursor()
    try:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM OPS.SCHEMA_MIGRATIONS")
    except ProgrammingError as error:
        if "does not exist" in str(error).lower():
            return 0
        raise
    return int(cur.fetchone()[0])


def _identity(conn: Any) -> tuple[Any, ...]:
    """Which warehouse ``conn`` is connected to (the cache key of ``require_current``)."""
    if dialect_of(conn) == "snowflake":
        return ("snowflake", conn.account, conn.host, conn.port, conn.database)
    return ("postgres", conn.info.host, conn.info.port, conn.info.dbname)


def require_current(conn: Any, conn_id: str = "warehouse") -> int:
    """Fail (``SchemaBehindError``) unless the warehouse of ``conn`` has every migration; its version.

    What every task calls before it reads or writes the warehouse, instead of changing the schema.
    A warehouse found current is remembered for the rest of the process (versions only go up).
    """
    key = _identity(conn)
    if key in _current:
        return LATEST
    version = current_version(conn)
    if version < LATEST:
        raise SchemaBehindError(
            f"warehouse schema at version {version} of {LATEST}: run `make migrate` (or `{command(conn_id)}` where "
            "Airflow runs; compose's airflow-init and the Helm chart's migration job run it)"
        )
    _current.add(key)
    return version


def forget() -> None:
    """Forget which warehouses were found current (tests that recreate a database under the same name)."""
    _current.clear()


# -- command line -----------------------------------------------------------------------------


def create_database(name: str, **server: Any) -> bool:
    """Create the PostgreSQL database ``name`` if it is missing, through the server's ``postgres`` database
    (``server``: psycopg2.connect keywords); True if it was created."""
    import psycopg2
    from psycopg2 import sql

    admin = psycopg2.connect(**{**server, "dbname": "postgres"})
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        admin.close()


def create_database_if_missing(hook: Any) -> bool:
    """PostgreSQL: create the connection's database when it does not exist (with the same credentials);
    True if it was created. For fresh local and compose setups."""
    conn_id = hook.warehouse_conn_id
    if hook.dsn:
        from urllib.parse import urlsplit

        parts = urlsplit(hook.dsn)
        params = {"host": parts.hostname, "port": parts.port or 5432, "user": parts.username,
                  "password": parts.password, "dbname": "postgres"}  # fmt: skip
        name = parts.path.lstrip("/")
    else:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        params = {"host": conn.host, "port": conn.port or 5432, "user": conn.login, "password": conn.password,
                  "dbname": "postgres", "sslmode": conn.extra_dejson.get("sslmode", "prefer")}  # fmt: skip
        name = conn.schema
    return create_database(name, **params)


def status_lines(hook: Any) -> tuple[int, list[str]]:
    """(version, lines describing each migration: applied when, pending, or changed since)."""
    with _opened(hook) as (conn, dialect):
        version = current_version(conn)
        recorded: dict[int, tuple[str, Any, str]] = {}
        if version:
            cur = conn.cursor()
            cur.execute("SELECT version, name, applied_at, checksum FROM ops.schema_migrations ORDER BY version")
            recorded = {int(v): (n, at, c) for v, n, at, c in cur.fetchall()}
            if dialect == "postgres":
                conn.rollback()
    lines = []
    for migration in discover():
        if migration.version not in recorded:
            lines.append(f"  {migration}  pending")
            continue
        _, applied_at, checksum = recorded.pop(migration.version)
        changed = "" if checksum == migration.checksum else "  CHANGED SINCE (checksum differs)"
        lines.append(f"  {migration}  applied {applied_at}{changed}")
    lines.extend(f"  {v:04d}_{name}  applied {at}, not in this code" for v, (name, at, _) in recorded.items())
    return version, lines


def resolve_connection(conn_id: str) -> None:
    """Make the connection ``conn_id`` visible to the hooks in this process. Outside a task, Airflow's SDK
    looks in the environment (``AIRFLOW_CONN_*``) and the secrets backends, not in the metadata DB, where
    compose's airflow-init puts airflow_settings.yaml's connections: found there, it is exported as
    ``AIRFLOW_CONN_<ID>`` for this process."""
    import os

    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
        return
    except AirflowNotFoundException:
        pass
    from airflow.models import Connection

    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = Connection.get_connection_from_secrets(conn_id).as_json()


def main(argv: list[str] | None = None) -> int:
    from acme_pipelines.warehouse_hooks import warehouse_hook

    parser = argparse.ArgumentParser(prog="python -m acme_pipelines.migrations", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("upgrade", "status"))
    parser.add_argument("--conn-id", default="warehouse", help="Airflow connection of the warehouse")
    parser.add_argument(
        "--create-database", action="store_true", help="PostgreSQL: create the connection's database if missing"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    resolve_connection(args.conn_id)
    hook = warehouse_hook(args.conn_id)
    if args.action == "status":
        version, lines = status_lines(hook)
        print(f"{args.conn_id} ({hook.backend}): schema at version {version} of {LATEST}")
        print("\n".join(lines))
        return 0 if version >= LATEST else 1
    if args.create_database and hook.backend == "postgres" and create_database_if_missing(hook):
        print(f"{args.conn_id}: created database {hook.database_name()}")
    try:
        applied = upgrade(hook)
    except MigrationError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if hook.backend == "postgres" and "does not exist" in str(error):
            print(f"ERROR: {str(error).strip()} (--create-database creates it)", file=sys.stderr)
            return 1
        raise
    done = ", ".join(map(str, applied)) if applied else "nothing to apply"
    print(f"{args.conn_id} ({hook.backend}): schema at version {LATEST}; {done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
