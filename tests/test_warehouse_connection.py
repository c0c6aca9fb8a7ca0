"""The warehouse and app_db connections are the postgres provider's (``WarehouseHook`` is a ``PostgresHook`` on
psycopg2): their extras reach libpq as the provider passes them, and its IAM authentication works."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from acme_pipelines.warehouse import pg_connect

pytestmark = pytest.mark.integration


def connection_env(monkeypatch: pytest.MonkeyPatch, dsn: str, extra: dict) -> None:
    parts = urlsplit(dsn)
    value = {"conn_type": "postgres", "host": parts.hostname, "port": parts.port or 5432,
             "login": parts.username or "postgres", "schema": parts.path.lstrip("/"), "extra": extra}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_EXTRAS_TEST", json.dumps(value))


def test_extras_reach_the_session(airflow_db, pg_database, monkeypatch):
    extra = {"options": "-c statement_timeout=1500", "application_name": "acme_test", "connect_timeout": 5,
             "sslmode": "disable", "sqlalchemy_scheme": "postgresql"}  # fmt: skip
    connection_env(monkeypatch, pg_database, extra)
    conn = pg_connect("extras_test")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] == "1500ms"
            cur.execute("SELECT current_setting('application_name'), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == ("acme_test", False)
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,), "the provider's own option 'sqlalchemy_scheme' is not handed to libpq"
            cur.execute("SHOW TimeZone")
            assert cur.fetchone() == ("UTC",)
        assert type(conn).__module__.startswith("psycopg2"), "psycopg2 although psycopg 3 is installed"
    finally:
        conn.close()


def test_the_cursor_extra_is_refused_naming_the_connection(airflow_db, pg_database, monkeypatch):
    connection_env(monkeypatch, pg_database, {"cursor": "dictcursor"})
    with pytest.raises(ValueError, match=r"extras_test.*'cursor'"):
        pg_connect("extras_test")


def test_iam_authentication_signs_an_rds_token_as_the_password(airflow_db, pg_database, monkeypatch):
    """The provider's ``iam`` extra: the password is an RDS auth token signed with the AWS connection's keys
    (signed locally: no AWS call; the local server's trust authentication accepts it)."""
    connection_env(monkeypatch, pg_database, {"iam": True, "aws_conn_id": "aws_iam_test"})
    aws = {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": "secret", "extra": {"region_name": "eu-west-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_IAM_TEST", json.dumps(aws))
    conn = pg_connect("extras_test")
    try:
        password = conn.info.password
        assert "Action=connect" in password
        assert "X-Amz-Credential=AKIAEXAMPLE" in password
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_the_providers_psycopg3_bulk_methods_are_refused_and_its_dialect_kept(pg_database):
    """``WarehouseHook`` connects with psycopg2; the provider's bulk methods pick psycopg 3 for the whole process
    (it is installed), so on this hook they refuse with a message instead of failing inside psycopg."""
    from acme_pipelines.warehouse import WarehouseHook

    hook = WarehouseHook(dsn=pg_database, log_sql=False)  # the provider's own arguments pass through
    assert hook.get_uri() == pg_database
    assert hook.backend == "postgres"
    assert type(hook.dialect).__name__ == "PostgresDialect"  # the provider's, not shadowed
    for method in ("insert_rows", "copy_expert", "bulk_load", "bulk_dump"):
        with pytest.raises(NotImplementedError, match="copy_arrow/copy_encoded"):
            getattr(hook, method)("core.t", "x")


def test_a_dsn_connects_through_the_same_path_as_a_connection(pg_database):
    """``WarehouseHook(dsn=...)`` connects through ``_create_connection`` as a connection id does: the default
    application name unless the DSN names one, and a subclass's connection arguments (the bench meters its
    connections so) reach psycopg2."""
    import psycopg2.extensions

    from acme_pipelines.warehouse import WarehouseHook

    class Marked(psycopg2.extensions.connection):
        pass

    class MarkedHook(WarehouseHook):
        def _create_connection(self, conn_args):
            return super()._create_connection({**conn_args, "connection_factory": Marked})

    for dsn, name in ((pg_database, "acme_pipelines"), (f"{pg_database}?application_name=mine", "mine")):
        with MarkedHook(dsn=dsn).scoped_connection() as conn, conn.cursor() as cur:
            assert isinstance(conn, Marked)
            cur.execute("SELECT current_setting('application_name'), current_setting('TimeZone')")
            assert cur.fetchone() == (name, "UTC")
