"""cache_refresh against the real Redis and PostgreSQL: complete versions, atomic switch, TTLs, cleanup, outage."""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest

from acme_localdev.warehouse_compare import postgres_connection as pg_conn_json
from acme_pipelines import cache
from acme_sample_data.build import build
from acme_sample_data.generator import GeneratorConfig
from conftest import free_port, query, run_dag

pytestmark = pytest.mark.integration

CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=3, scale=0.2, bad_share=0.0, seed=3)
WINDOW = "2026-11-03T12:00"  # the run's 15 minutes: [12:00, 12:15) of 11-03


def redis_conn(port: int) -> str:
    return json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port})


@pytest.fixture
def cache_env(monkeypatch, tmp_path, make_database, warehouse, redis_namespace, dagbag, airflow_db):
    """Synced orders and FX rates in a fresh warehouse; the DAG's Redis prefix is this test's namespace."""
    client, namespace = redis_namespace
    app = make_database()
    build(CONFIG, tmp_path / "landing", app)
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", pg_conn_json(app))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_conn_json(warehouse.dsn))
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDIS_CACHE", json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 6379})
    )
    monkeypatch.setenv("AIRFLOW_VAR_CACHE_KEY_PREFIX", namespace + "cache")
    run_dag(dagbag, "hourly_incremental_sync", partition="2025-01-01T00:00", partition_end="2026-11-06T00:00")
    query(
        warehouse.dsn,
        "INSERT INTO core.fx_rates (dt, currency, per_usd, _run_id, _loaded_at) "
        "SELECT '2026-11-01', c, r, 'test', now() FROM (VALUES ('USD', 1.0), ('EUR', 0.9), ('GBP', 0.8)) v (c, r)",
    )
    return {"client": client, "prefix": namespace + "cache", "warehouse": warehouse.dsn}


def test_refresh_publishes_one_complete_version_with_ttls(dagbag, cache_env):
    client, prefix, wh = cache_env["client"], cache_env["prefix"], cache_env["warehouse"]
    run_dag(dagbag, "cache_refresh", partition=WINDOW)
    version, (today, top) = cache.read_snapshot(client, prefix, ["today", "top_products"])
    assert version == 1
    [(orders, booked)] = query(
        wh,
        "SELECT count(*), round(sum(o.order_total / r.per_usd) FILTER (WHERE status <> 'cancelled'), 2) "
        "FROM core.fact_orders o JOIN core.fx_rates r ON r.currency = o.currency "
        "WHERE created_at >= '2026-11-03' AND created_at < '2026-11-03T12:15:00Z'",
    )
    assert (today["version"], today["orders"], today["booked_usd"]) == (1, orders, str(booked))
    assert today["day"] == "2026-11-03"
    assert len(top["products"]) == 10
    recent = query(
        wh,
        "SELECT DISTINCT customer_id FROM core.fact_orders "
        "WHERE created_at >= '2026-11-03T12:15:00Z'::timestamptz - interval '7 days' "
        "AND created_at < '2026-11-03T12:15:00Z'",
    )
    keys = {k.decode() for k in client.scan_iter(match=f"{prefix}:v1:*")}
    assert {k for k in keys if ":customer:" in k} == {f"{prefix}:v1:customer:{c}" for (c,) in recent}
    assert len(keys) == len(recent) + 3  # today, top_products, _meta
    ttls = {client.ttl(k) for k in keys}
    assert all(0 < ttl <= 3600 for ttl in ttls), ttls
    assert client.ttl(cache.pointer(prefix)) == -1, "the pointer itself does not expire"


def test_a_polling_reader_never_sees_two_versions_mixed(redis_namespace):
    client, namespace = redis_namespace
    prefix = namespace + "mix"
    names = ["today", *(f"customer:{n}" for n in range(0, 20_000, 997))]
    seen: list[tuple[int | None, set]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            version, values = cache.read_snapshot(client, prefix, names)
            seen.append((version, {v["version"] if v else None for v in values}))

    def entries(n: int):
        yield "today", {"orders": n}
        for customer in range(20_000):
            yield f"customer:{customer}", {"refresh": n}

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(4):
            cache.publish(client, prefix, entries(n), ttl_seconds=600)
    finally:
        stop.set()
        thread.join()
    observed = [s for s in seen if s[0] is not None]
    assert len({v for v, _ in observed}) >= 2, "the reader polled across at least one switch"
    mixed = [s for s in observed if s[1] != {s[0]}]
    assert mixed == [], mixed[:3]
    assert cache.versions(client, prefix) == [3, 4], "the previous version is kept, older ones deleted"


def test_stale_writer_never_moves_the_pointer_back(redis_namespace):
    client, namespace = redis_namespace
    prefix = namespace + "stale"
    client.set(f"{prefix}:version_seq", 5)
    client.set(cache.pointer(prefix), 9)  # a newer refresh already went live
    with pytest.raises(cache.StaleVersionError):
        cache.publish(client, prefix, [("today", {"orders": 1})], ttl_seconds=60)
    assert client.get(cache.pointer(prefix)) == b"9"
    assert list(client.scan_iter(match=f"{prefix}:v6:*")) == []


def test_redis_outage_fails_with_a_clear_error_and_retries(dagbag, cache_env, monkeypatch):
    from acme_pipelines.cache_operators import CacheUnavailableError

    port = free_port()  # nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDIS_CACHE", json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port})
    )
    task = dagbag.dags["cache_refresh"].get_task("refresh_cache")
    assert task.retries >= 1
    operator = type(task)(task_id="refresh_probe", key_prefix=cache_env["prefix"], ttl_seconds=60)
    with pytest.raises(CacheUnavailableError, match=f"Redis at 127.0.0.1:{port} \\(connection redis_cache\\)"):
        operator.execute({"params": {"partition": WINDOW}, "run_id": "test"})
    assert cache.read_snapshot(cache_env["client"], cache_env["prefix"], ["today"])[0] is None
