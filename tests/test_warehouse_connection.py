"""The warehouse and app_db connections reach libpq with their extras, as the postgres provider passes them."""

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
             "sslmode": "disable", "cursor": "dictcursor", "sqlalchemy_scheme": "postgresql"}  # fmt: skip
    connection_env(monkeypatch, pg_database, extra)
    conn = pg_connect("extras_test")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] == "1500ms"
            cur.execute("SELECT current_setting('application_name'), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == ("acme_test", False)
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,), "the provider's own option 'cursor' is not handed to libpq"
    finally:
        conn.close()


def test_iam_is_refused_naming_the_connection(airflow_db, pg_database, monkeypatch):
    connection_env(monkeypatch, pg_database, {"iam": True})
    with pytest.raises(ValueError, match=r"extras_test.*IAM"):
        pg_connect("extras_test")
