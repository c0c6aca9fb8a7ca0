"""The warehouse's versioned migrations (acme_pipelines.migrations) on the real PostgreSQL (and fakesnow):
applied once, in order, by the setup step; tasks only check the version, without locks a load could meet.

Loads of several days at once used to deadlock: every task ran the whole schema file (its
``CREATE INDEX IF NOT EXISTS`` on ops.rejected_rows) while another day's load inserted into
ops.load_audit. Now the schema changes only in ``upgrade``, and the last test runs four days'
loads at once next to a repeated ``upgrade``.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from datetime import timedelta

import psycopg2
import pytest
from airflow.sdk.exceptions import AirflowFailException
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from acme_pipelines import migrations
from acme_pipelines.backends import load_partition
from acme_pipelines.contract import PAYMENTS
from acme_pipelines.migrations import LATEST, ChecksumMismatchError, SchemaBehindError, upgrade
from acme_pipelines.warehouse import WarehouseHook
from conftest import query
from test_landing_load import DAY, HEADER, add_fx, audit, write

pytestmark = pytest.mark.integration

ALL = [str(m) for m in migrations.discover()]
COMMAND = "python -m acme_pipelines.migrations upgrade --conn-id warehouse"
# The names of migrations a later version of the code would add: the next free numbers.
NEXT, AFTER = f"{LATEST + 1:04d}", f"{LATEST + 2:04d}"


def recorded(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT version, name, checksum FROM ops.schema_migrations ORDER BY version")


def with_extra(tmp_path, **files: str):
    """A copy of the project's migrations plus ``files`` (name -> SQL): a later version of the code."""
    folder = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, folder)
    for name, text in files.items():
        (folder / f"{name}.sql").write_text(text)
    return folder


def test_a_fresh_warehouse_gets_every_migration_once(pg_database):
    hook = WarehouseHook(dsn=pg_database)
    with hook.scoped_connection() as conn:
        assert migrations.current_version(conn) == 0

    assert [str(m) for m in upgrade(hook)] == ALL
    assert upgrade(hook) == []  # the second run finds nothing to do

    assert recorded(pg_database) == [(m.version, m.name, m.checksum) for m in migrations.discover()]
    assert LATEST == len(ALL) >= 1
    with hook.scoped_connection() as conn:
        assert migrations.current_version(conn) == LATEST
    assert query(pg_database, "SELECT to_regclass('core.fact_payments') IS NOT NULL") == [(True,)]


def test_a_warehouse_the_tasks_built_before_migrations_takes_0001_unchanged(pg_database):
    hook = WarehouseHook(dsn=pg_database)
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        cur.execute(migrations.discover()[0].text)  # what ensure_schema did before every task
        conn.commit()
    relations = "SELECT oid, relname FROM pg_class WHERE relnamespace = 'core'::regnamespace"
    before = set(query(pg_database, relations))

    assert [str(m) for m in upgrade(hook)] == ALL
    after = set(query(pg_database, relations))
    assert before <= after, "0001 changed none of the tables the tasks had built"
    assert {name for _, name in after - before} == {"fact_pos_sales", "fact_pos_sales_pkey"}  # 0002's


def test_a_task_on_a_warehouse_behind_the_code_fails_naming_the_command(pg_database, tmp_path):
    hook = WarehouseHook(dsn=pg_database)
    write(tmp_path, "payments", "part-000.csv", f"{HEADER}\n1,10,12.50,USD,card,captured,2026-11-01T10:00:00Z\n")
    with pytest.raises(SchemaBehindError) as failed:
        load_partition(hook, PAYMENTS, tmp_path, DAY, audit(), max_reject_ratio=1.0)
    message = str(failed.value)
    assert message.startswith(f"warehouse schema at version 0 of {LATEST}: run `make migrate`"), message
    assert f"`{COMMAND}`" in message
    assert isinstance(failed.value, AirflowFailException)  # no retries: the same task fails the same way
    assert query(pg_database, "SELECT to_regnamespace('core')") == [(None,)]  # the task changed nothing

    upgrade(hook)  # the setup step; a failed check is not remembered
    add_fx(hook)
    assert load_partition(hook, PAYMENTS, tmp_path, DAY, audit(), max_reject_ratio=1.0).counts.rows_loaded == 1


def test_the_check_is_one_read_that_leaves_no_lock_and_waits_for_no_migration(warehouse):
    """While a migration holds the runner's lock and a load holds the audit and reject tables, a task's
    check still answers at once, and afterwards its connection holds nothing."""
    gate = psycopg2.connect(warehouse.dsn)
    conn = psycopg2.connect(f"{warehouse.dsn}?options=-c%20lock_timeout%3D1s")
    try:
        with gate.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.MIGRATION_LOCK,))
            cur.execute("LOCK TABLE ops.load_audit, ops.rejected_rows IN ROW EXCLUSIVE MODE")
        migrations.forget()
        assert migrations.require_current(conn) == LATEST
        assert conn.info.transaction_status == TRANSACTION_STATUS_IDLE
        held = query(warehouse.dsn, "SELECT count(*) FROM pg_locks WHERE pid = %s", (conn.get_backend_pid(),))
        assert held == [(0,)]
    finally:
        gate.rollback()
        gate.close()
        conn.close()


def test_an_applied_migration_that_changed_is_refused_before_anything_runs(pg_database, tmp_path):
    hook = WarehouseHook(dsn=pg_database)
    folder = with_extra(tmp_path)
    upgrade(hook, folder)
    first = sorted(folder.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\nCREATE INDEX IF NOT EXISTS an_edit ON ops.load_audit (run_id);\n")
    (folder / f"{NEXT}_add_note.sql").write_text("ALTER TABLE ops.load_audit ADD COLUMN note text;\n")

    with pytest.raises(ChecksumMismatchError, match=r"0001_warehouse_schema was applied with checksum .* must not"):
        upgrade(hook, folder)
    assert [v for v, _, _ in recorded(pg_database)] == list(range(1, LATEST + 1))  # the new one was not applied
    assert query(pg_database, "SELECT to_regclass('ops.an_edit')") == [(None,)]


def test_a_new_migration_is_applied_alone_and_a_failing_one_rolls_back_whole(pg_database, tmp_path):
    hook = WarehouseHook(dsn=pg_database)
    upgrade(hook)
    folder = with_extra(
        tmp_path,
        **{
            f"{NEXT}_add_note": "ALTER TABLE ops.load_audit ADD COLUMN note text;",
            f"{AFTER}_broken": "CREATE TABLE ops.half_done (id int);\nSELECT 1 / 0;",
        },
    )
    with pytest.raises(psycopg2.errors.DivisionByZero):
        upgrade(hook, folder)
    assert [v for v, _, _ in recorded(pg_database)] == list(range(1, LATEST + 2))
    assert query(pg_database, "SELECT to_regclass('ops.half_done')") == [(None,)]  # the broken one left nothing
    (folder / f"{AFTER}_broken.sql").write_text("CREATE TABLE ops.half_done (id int);")  # never applied: may change
    assert [str(m) for m in upgrade(hook, folder)] == [f"{AFTER}_broken"]


def test_upgrades_started_at_once_apply_each_migration_once(pg_database, tmp_path):
    """Four runners (two deploys, a retried Job) at once. The two new migrations fail if they run twice."""
    folder = with_extra(
        tmp_path,
        **{
            f"{NEXT}_race_probe": "CREATE TABLE ops.race_probe (id int);",
            f"{AFTER}_race_probe_column": "ALTER TABLE ops.race_probe ADD COLUMN n int;",
        },
    )
    start = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append([str(m) for m in upgrade(WarehouseHook(dsn=pg_database), folder)])
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == sorted([*ALL, f"{NEXT}_race_probe", f"{AFTER}_race_probe_column"])
    assert [v for v, _, _ in recorded(pg_database)] == [*range(1, LATEST + 1), LATEST + 1, LATEST + 2]


def test_four_days_load_at_once_without_deadlock(warehouse, tmp_path):
    """The scheduler's case: loads of four days running together, each rerun (retries, backfills), and a setup
    step re-running upgrade meanwhile. When every task ran the schema file, this hit DeadlockDetected (a load's
    ensure_schema held ops.load_audit for its CREATE INDEX and waited for ops.rejected_rows, which another
    day's publish held while it waited to insert its audit row): 3 of these 40 loads, when tried. Now no
    task touches the schema, and there is nothing to deadlock on."""
    days = [DAY + timedelta(days=n) for n in range(4)]
    reruns = 10
    for n, day in enumerate(days):
        first = 1 + n * 10_000
        rows = "".join(
            f"{i},{i},{i % 100}.25,USD,card,captured,{day.isoformat()}T10:00:00Z\n" for i in range(first, first + 200)
        )
        bad = f"{first + 5000},1,1.00,USD,bitcoin,captured,{day.isoformat()}T10:00:00Z\n"  # one reject per load
        write(tmp_path, "payments", "part-000.csv", HEADER + "\n" + rows + bad, day=day)
        add_fx(warehouse, day)
    migrations.forget()
    start = threading.Barrier(len(days) + 1)
    errors: list[BaseException] = []

    def load(day) -> None:
        start.wait()
        for run in range(reruns):
            try:
                load_partition(warehouse, PAYMENTS, tmp_path, day, audit(f"run-{run}", day=day), max_reject_ratio=1)
            except BaseException as exc:  # a DeadlockDetected would land here
                errors.append(exc)

    def migrate() -> None:
        start.wait()
        for _ in range(5):
            try:
                assert upgrade(WarehouseHook(dsn=warehouse.dsn)) == []
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=load, args=(day,)) for day in days] + [threading.Thread(target=migrate)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    by_day = query(warehouse.dsn, "SELECT dt, count(*) FROM core.fact_payments GROUP BY dt ORDER BY dt")
    assert by_day == [(day, 200) for day in days]
    audits = query(warehouse.dsn, "SELECT count(*), sum(rows_rejected) FROM ops.load_audit WHERE status = 'success'")
    assert audits == [(len(days) * reruns, len(days) * reruns)]


def test_the_command_line_creates_migrates_and_reports(monkeypatch, capsys):
    from acme_localdev.warehouse_compare import postgres_connection
    from conftest import _admin_execute

    name = f"test_{uuid.uuid4().hex[:8]}_cli"
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_connection(dsn))
    try:
        assert migrations.main(["upgrade"]) == 1
        assert "--create-database" in capsys.readouterr().err  # no such database: the error says what creates it
        assert migrations.main(["upgrade", "--create-database"]) == 0
        out = capsys.readouterr().out
        assert f"created database {name}" in out
        assert f"schema at version {LATEST}; {', '.join(ALL)}" in out
        assert migrations.main(["status"]) == 0
        assert f"warehouse (postgres): schema at version {LATEST} of {LATEST}" in capsys.readouterr().out
        query(dsn, "DELETE FROM ops.schema_migrations")
        assert migrations.main(["status"]) == 1
        assert f"  {ALL[0]}  pending" in capsys.readouterr().out
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_snowflake_tasks_check_the_version_the_runner_recorded(fakesnow_server):
    import snowflake.connector

    database = f"MIGRATE_{uuid.uuid4().hex[:8].upper()}"
    conn = snowflake.connector.connect(**fakesnow_server)
    try:
        conn.cursor().execute(f"CREATE DATABASE {database}")
        conn.cursor().execute(f"USE DATABASE {database}")
        with pytest.raises(SchemaBehindError, match=f"at version 0 of {LATEST}: run `make migrate`"):
            migrations.require_current(conn)
        assert [str(m) for m in upgrade(conn)] == ALL
        assert migrations.require_current(conn) == LATEST
        cur = conn.cursor()
        cur.execute("SELECT version, name, checksum FROM OPS.SCHEMA_MIGRATIONS ORDER BY version")
        assert cur.fetchall() == [(m.version, m.name, m.checksum) for m in migrations.discover()]
    finally:
        conn.close()


def test_the_command_line_finds_a_connection_kept_in_the_metadata_db(airflow_db, warehouse, monkeypatch, capsys):
    """Compose's airflow-init imports airflow_settings.yaml into the metadata DB, then runs the migrations:
    outside a task the SDK does not look there, so the command line does."""
    from urllib.parse import urlsplit

    from airflow.models import Connection
    from airflow.utils.session import create_session

    conn_id = f"wh_{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)  # restored (absent) after the test
    parts = urlsplit(warehouse.dsn)
    with create_session() as session:
        session.add(Connection(conn_id=conn_id, conn_type="postgres", host=parts.hostname, port=parts.port,
                               login=parts.username, schema=parts.path.lstrip("/")))  # fmt: skip
    try:
        assert migrations.main(["status", "--conn-id", conn_id]) == 0
        assert f"{conn_id} (postgres): schema at version {LATEST} of {LATEST}" in capsys.readouterr().out
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
