"""The shared fixtures reach real services, and a failing DAG alerts Slack over real HTTP.

These are the parts later pipeline tests build on, so each is exercised here
end to end: S3 through Airflow's ObjectStoragePath against the moto server,
Snowflake SQL against the fakesnow server, Redis, PostgreSQL, and a failed
DAG run's alert reaching the local Slack stand-in.
"""

from __future__ import annotations

import json

import psycopg2
import pytest

from acme_localdev.services import Service, ServiceMissingError, require


@pytest.mark.integration
def test_object_storage_path_on_moto_s3(s3_server, s3_bucket, monkeypatch):
    from airflow.sdk import ObjectStoragePath

    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.connection_uri())
    path = ObjectStoragePath(f"s3://aws_test@{s3_bucket}/payments/dt=2026-11-01/part-000.csv")
    path.write_text("payment_id,amount\n1,2.50\n")
    assert path.read_text() == "payment_id,amount\n1,2.50\n"
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["payments/dt=2026-11-01/part-000.csv"]


@pytest.mark.integration
def test_snowflake_sql_on_fakesnow(fakesnow_server):
    import snowflake.connector

    conn = snowflake.connector.connect(**fakesnow_server, database="WAREHOUSE", schema="CORE")
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS WAREHOUSE")
        cur.execute("CREATE SCHEMA IF NOT EXISTS WAREHOUSE.CORE")
        cur.execute("CREATE OR REPLACE TABLE WAREHOUSE.CORE.T (id INT, amount NUMBER(12,2))")
        cur.execute("INSERT INTO WAREHOUSE.CORE.T VALUES (1, 2.5), (2, 3.25)")
        cur.execute("SELECT count(*), sum(amount) FROM WAREHOUSE.CORE.T")
        count, total = cur.fetchone()
    finally:
        conn.close()
    assert count == 2
    assert float(total) == 5.75


@pytest.mark.integration
def test_redis_namespace(redis_namespace):
    client, prefix = redis_namespace
    client.set(f"{prefix}k", "v", ex=30)
    assert client.get(f"{prefix}k") == b"v"
    assert 0 < client.ttl(f"{prefix}k") <= 30


@pytest.mark.integration
def test_session_postgres_databases_are_fresh(pg):
    for dsn in (pg.app_dsn, pg.warehouse_dsn):
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            assert cur.fetchone()[0] == 0
    assert pg.app != pg.warehouse


@pytest.mark.unit
def test_a_missing_service_names_itself_and_the_fix():
    down = Service("PostgreSQL", "127.0.0.1", 1, "pg_ctlcluster --skip-systemctl-redirect 15 main start")
    with pytest.raises(ServiceMissingError) as raised:
        require(down)
    assert "PostgreSQL is not answering on 127.0.0.1:1" in str(raised.value)
    assert "pg_ctlcluster" in str(raised.value)


@pytest.mark.integration
def test_failed_dag_posts_one_slack_alert(airflow_db, dagbag, http_recorder, monkeypatch):
    """A run started with a malformed partition fails at once (a PartitionError is not retried) and posts once."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": f"{http_recorder.url}/services", "password": "T0/B0/X"}),
    )
    dag = dagbag.dags["cache_refresh"]  # not critical: Slack only, no PagerDuty
    run = dag.test(run_conf={"partition": "2026-11-01T00:07"})  # not the start of a 15-minute window
    assert run.state == "failed"
    posts = [r for r in http_recorder.requests if r.method == "POST"]
    assert len(posts) == 1, "one alert per failed task, none per retry"
    assert posts[0].path == "/services/T0/B0/X"
    text = posts[0].json()["text"]
    assert "Task failed: cache_refresh.refresh_cache" in text
    assert f"run {run.run_id}" in text
    assert "try 1" in text
