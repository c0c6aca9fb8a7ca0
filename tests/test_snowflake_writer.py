"""The Snowflake writer (issue #7, in progress) against the fakesnow server over HTTP.

Through ``SnowflakeWarehouseHook`` and an Airflow connection, as a task would:
Arrow batches -> Parquet -> PUT to a temporary stage -> COPY INTO a temporary
table -> one transaction that replaces a day or MERGEs on a key.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from acme_pipelines.snowflake_warehouse import IdentifierError, SnowflakeWarehouseHook, identifier, publish_arrow

SCHEMA = pa.schema(
    [
        ("payment_id", pa.int64()),
        ("amount", pa.decimal128(12, 2)),
        ("currency", pa.string()),
        ("paid_at", pa.timestamp("us", tz="UTC")),
        ("dt", pa.date32()),
    ]
)


def batch(ids: range, day: date, amount: str = "10.50") -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {"payment_id": i, "amount": Decimal(amount), "currency": "EUR",
             "paid_at": datetime(day.year, day.month, day.day, 12, tzinfo=UTC), "dt": day}
            for i in ids
        ],
        schema=SCHEMA,
    )  # fmt: skip


@pytest.fixture
def snow(fakesnow_server, monkeypatch):
    """A connection through the hook to a fresh WAREHOUSE.CORE.FACT_PAYMENTS on the fakesnow server."""
    extra = {
        "account": fakesnow_server["account"],
        "database": "WAREHOUSE",
        "host": fakesnow_server["host"],
        "port": fakesnow_server["port"],
        "protocol": fakesnow_server["protocol"],
        "session_parameters": fakesnow_server.get("session_parameters", {}),
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_SNOWFLAKE_WH",
        json.dumps({"conn_type": "snowflake", "login": "fake", "password": "snow", "schema": "CORE", "extra": extra}),
    )
    conn = SnowflakeWarehouseHook(snowflake_conn_id="snowflake_wh").get_conn()
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS WAREHOUSE")
    cur.execute("CREATE SCHEMA IF NOT EXISTS WAREHOUSE.CORE")
    cur.execute(
        "CREATE OR REPLACE TABLE WAREHOUSE.CORE.FACT_PAYMENTS (payment_id NUMBER(19,0), amount NUMBER(12,2), "
        "currency VARCHAR, paid_at TIMESTAMP_TZ, dt DATE)"
    )
    yield conn
    conn.close()


def rows(conn) -> list[tuple]:
    cur = conn.cursor()
    cur.execute("SELECT payment_id, amount, dt FROM WAREHOUSE.CORE.FACT_PAYMENTS ORDER BY payment_id")
    return [(int(i), Decimal(str(a)), d) for i, a, d in cur.fetchall()]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "quoted"),
    [("core.fact_payments", '"CORE"."FACT_PAYMENTS"'), ("WAREHOUSE.CORE.T_1", '"WAREHOUSE"."CORE"."T_1"')],
)
def test_identifiers_are_validated_and_quoted(name, quoted):
    assert identifier(name) == quoted


@pytest.mark.unit
@pytest.mark.parametrize("bad", ["core.x; DROP TABLE y", 'core."x"', "", "a.b.c.d", "1core.x", "core..x", "core.x y"])
def test_anything_but_a_plain_identifier_is_refused(bad):
    with pytest.raises(IdentifierError):
        identifier(bad)


@pytest.mark.integration
def test_a_day_is_replaced_atomically_in_several_files(snow):
    day1, day2 = date(2026, 11, 1), date(2026, 11, 2)
    first = publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(1, 6), day1)], replace=("dt", day1))
    publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(100, 103), day2)], replace=("dt", day2))
    assert (first.rows_staged, first.rows_deleted, first.rows_written, first.files) == (5, 0, 5, 1)
    # a rerun of day 1 with other rows, streamed as 3 batches into 3 Parquet files: day 1 replaced, day 2 kept
    again = publish_arrow(
        snow,
        "WAREHOUSE.CORE.FACT_PAYMENTS",
        [batch(range(1, 3), day1, "1.25"), batch(range(3, 5), day1, "1.25"), batch(range(5, 7), day1, "1.25")],
        replace=("dt", day1),
        rows_per_file=2,
    )
    assert (again.rows_staged, again.rows_deleted, again.rows_written, again.files) == (6, 5, 6, 3)
    assert rows(snow) == [(i, Decimal("1.25"), day1) for i in range(1, 7)] + [
        (i, Decimal("10.50"), day2) for i in range(100, 103)
    ]


@pytest.mark.integration
def test_merge_updates_matches_and_inserts_the_rest(snow):
    day = date(2026, 11, 1)
    publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(1, 4), day)], merge_on=["payment_id"])
    publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(3, 6), day, "7.00")], merge_on=["payment_id"])
    assert rows(snow) == [(1, Decimal("10.50"), day), (2, Decimal("10.50"), day)] + [
        (i, Decimal("7.00"), day) for i in (3, 4, 5)
    ]


@pytest.mark.integration
def test_a_failure_before_commit_leaves_the_table_as_it_was_and_the_retry_succeeds(snow):
    day = date(2026, 11, 1)
    publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(1, 4), day)], replace=("dt", day))
    before = rows(snow)
    with pytest.raises(RuntimeError, match="injected"):
        publish_arrow(
            snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(1, 9), day, "2.00")], replace=("dt", day),
            fail_before_commit=True,
        )  # fmt: skip
    assert rows(snow) == before
    publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(1, 9), day, "2.00")], replace=("dt", day))
    assert rows(snow) == [(i, Decimal("2.00"), day) for i in range(1, 9)]


@pytest.mark.integration
def test_publish_needs_exactly_one_mode(snow):
    with pytest.raises(ValueError, match="exactly one"):
        publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [], replace=("dt", 1), merge_on=["payment_id"])


@pytest.mark.integration
def test_connection_settings_and_key_pair_auth_come_from_the_airflow_connection(fakesnow_server, monkeypatch):
    """Warehouse, role and database from the connection; a PEM private key (encrypted with the password)
    becomes the connector's key-pair auth, and the session reaches the server with it."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    extra = {
        "account": fakesnow_server["account"], "host": fakesnow_server["host"], "port": fakesnow_server["port"],
        "protocol": fakesnow_server["protocol"], "database": "KEYPAIR_DB", "warehouse": "LOAD_WH", "role": "LOADER",
        "private_key_content": base64.b64encode(pem).decode(),
    }  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_SNOWFLAKE_KP",
        json.dumps({"conn_type": "snowflake", "login": "svc_loader", "password": "passphrase", "extra": extra}),
    )
    hook = SnowflakeWarehouseHook(snowflake_conn_id="snowflake_kp")
    params = hook._get_conn_params()
    assert (params["database"], params["warehouse"], params["role"], params["protocol"]) == (
        "KEYPAIR_DB", "LOAD_WH", "LOADER", "http",
    )  # fmt: skip
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert params["private_key"] == der
    assert "password" not in params  # the password was the key's passphrase, not a login secret
    assert hook.dataset("core.fact_payments") == (
        f"snowflake://{fakesnow_server['account']}",
        "KEYPAIR_DB.core.fact_payments",
    )
    conn = hook.get_conn()
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        conn.close()


@pytest.mark.integration
def test_an_empty_input_never_empties_a_partition(snow):
    day = date(2026, 11, 1)
    publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [batch(range(1, 4), day)], replace=("dt", day))
    before = rows(snow)
    with pytest.raises(ValueError, match="nothing to publish"):
        publish_arrow(snow, "WAREHOUSE.CORE.FACT_PAYMENTS", [], replace=("dt", day))
    assert rows(snow) == before
