"""The warehouse DDL in both dialects from one set of files (issue #7): the Snowflake DDL that SQLGlot
derives from the migrations (include/migrations/*.sql), applied by the migration runner on the fakesnow
server, gives every PostgreSQL table the same columns, in the same order, with the same kinds of types."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from acme_pipelines import migrations
from acme_pipelines.dialects import warehouse_ddl
from acme_pipelines.migrations import discover
from conftest import query

SCHEMAS = ("core", "marts", "ops", "features", "ml")
KIND = {  # information_schema type names of both databases -> one family
    "bigint": "number", "integer": "number", "number": "number", "numeric": "number", "decimal": "number",
    "text": "text", "character": "text", "character varying": "text", "varchar": "text",
    "timestamp with time zone": "timestamp", "timestamp_tz": "timestamp", "timestamp": "timestamp",
    "date": "date", "boolean": "boolean", "jsonb": "semi", "variant": "semi", "double precision": "float",
    "float": "float", "double": "float", "array": "semi", "real": "float",  # Snowflake arrays are semi-structured
}  # fmt: skip


def family(type_name: str) -> str:
    name = type_name.lower().split("(")[0].strip()
    return KIND.get(name, name)


@pytest.fixture(scope="module")
def snowflake_columns(fakesnow_server) -> dict[str, list[tuple[str, str]]]:
    import snowflake.connector

    conn = snowflake.connector.connect(**fakesnow_server)
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS WAREHOUSE_DDL")
        cur.execute("USE DATABASE WAREHOUSE_DDL")
        assert migrations.current_version(conn) == 0
        assert [m.version for m in migrations.upgrade(conn)] == list(range(1, migrations.LATEST + 1))
        assert migrations.upgrade(conn) == []  # recorded in OPS.SCHEMA_MIGRATIONS: applied once
        assert migrations.require_current(conn) == migrations.LATEST
        cur.execute(
            "SELECT lower(table_schema) || '.' || lower(table_name), lower(column_name), data_type "
            "FROM WAREHOUSE_DDL.information_schema.columns ORDER BY 1, ordinal_position"
        )
        found: dict[str, list[tuple[str, str]]] = {}
        for table, column, data_type in cur.fetchall():
            found.setdefault(table, []).append((column, data_type))
        return found
    finally:
        conn.close()


@pytest.mark.integration
def test_snowflake_tables_have_the_postgres_columns(warehouse, snowflake_columns):
    rows = query(
        warehouse.dsn,
        "SELECT c.table_schema || '.' || c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = ANY(%s) AND t.table_type = 'BASE TABLE' ORDER BY 1, c.ordinal_position",
        (list(SCHEMAS),),
    )
    postgres: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        postgres.setdefault(table, []).append((column, data_type))
    assert len(postgres) >= 17
    for table, columns in postgres.items():
        assert table in snowflake_columns, f"{table} missing in Snowflake"
        theirs = snowflake_columns[table]
        assert [c for c, _ in theirs] == [c for c, _ in columns], table
        assert [family(t) for _, t in theirs] == [family(t) for _, t in columns], (table, theirs, columns)


@pytest.mark.unit
def test_snowflake_ddl_has_nothing_snowflake_rejects():
    for statement in (s for m in discover() for s in warehouse_ddl("snowflake", m.path)):
        tree = sqlglot.parse_one(statement, read="snowflake")
        assert not list(tree.find_all(exp.CheckColumnConstraint)), statement
        types = {t.this for t in tree.find_all(exp.DataType)}
        assert not types & {exp.DataType.Type.JSONB, exp.DataType.Type.BIGSERIAL}, statement
        assert tree.args.get("kind") != "INDEX"


@pytest.mark.unit
def test_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="unknown warehouse dialect"):
        warehouse_ddl("oracle", discover()[0].path)


@pytest.mark.unit
def test_interval_products_and_iso_date_parts_become_what_snowflake_has():
    """SQLGlot copies ``n * interval '1 day'`` (Snowflake cannot multiply an interval) and ``extract(isoyear)``
    (no such part; its WEEK follows the session's week policy) as written; ``statements`` rewrites both."""
    from acme_pipelines.dialects import statements

    [sql] = statements(
        "SELECT ts - (7 * k) * interval '1 day' AS a, ts + interval '1 hour' * n AS b, "
        "extract(isoyear FROM d) AS y, extract(week FROM d) AS w, extract(day FROM d) AS dd FROM t",
        "snowflake",
    )
    assert "DATEADD(DAY, -((7 * k)), ts) AS a" in sql
    assert "DATEADD(HOUR, n, ts) AS b" in sql
    assert "YEAROFWEEKISO(d) AS y" in sql
    assert "WEEKISO(d) AS w" in sql
    assert "INTERVAL" not in sql.upper().replace("DATEADD", "")
    # a day of the month stays an ordinary date part; PostgreSQL keeps the SQL as written
    assert "ISO" not in sql.split(" AS w, ")[1]
    [same] = statements("SELECT ts - (7 * k) * interval '1 day', extract(week FROM d) FROM t", "postgres")
    assert "INTERVAL '1 DAY'" in same.upper()
    assert "WEEKISO" not in same.upper()
