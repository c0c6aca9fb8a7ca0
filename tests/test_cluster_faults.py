"""Faults under Celery, on `make up`'s cluster (tests/cluster.py): each kills or stops something real and
checks that every row is still accounted for.

- kill -9 the worker running ``load_payments`` of a 1M-row day mid-COPY: the scheduler finds the task's
  heartbeat gone, the retry runs on the other worker, the day equals its generated rows, no duplicate
  keys, no staging tables left;
- the warehouse PostgreSQL refuses connections during a load: the try fails, a retry succeeds, and
  the day is never seen half-published;
- the broker is killed (kill -9; it keeps an append-only file, as a production broker keeps its
  messages) for 20 s with task messages waiting in it for a worker, and a run is triggered while it is
  down: every task runs after it is back, on its first try;
- kill -9 the scheduler during a 4-day backfill and start it again: every day is published exactly
  once and the backfill completes.

Each test prints what happened with its figures (docs/operations.md reports them). Tasks get 2
retries here, 3 s apart, and the scheduler declares a task dead after 20 s without a heartbeat
(production: 3 retries from 60 s, 300 s).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from datetime import date

import psycopg2
import pytest
import redis

from acme_bench.generate import write_payments_csv
from acme_sample_data.generator import GeneratorConfig
from cluster import Cluster, running_cluster
from conftest import query

pytestmark = pytest.mark.e2e

CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=9, scale=0.1, bad_share=0.004, seed=33)
BIG_ROWS = 1_000_000
BIG_DAYS = ("2026-11-01", "2026-11-09")  # their payments are one clean file of BIG_ROWS rows
BACKFILL = [f"2026-11-{d:02d}" for d in range(2, 6)]  # 4 days: 2 before the kill, 2 after
SETTINGS = {
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "3",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("faults") / "airflow"
    with running_cluster(home, CONFIG, **SETTINGS) as cluster:
        landing = home.parent / "landing"
        for number, day in enumerate(BIG_DAYS):
            folder = landing / "payments" / f"dt={day}"
            shutil.rmtree(folder)
            first_id = 10_000_000 * (number + 1)  # keys of their own: a payment belongs to one day
            write_payments_csv(folder / "part-000.csv", BIG_ROWS, date.fromisoformat(day), first_id=first_id)
            cluster.manifest[day]["payments"] = {"rows_in": BIG_ROWS, "rows_loaded": BIG_ROWS}
        cluster.pause("daily_etl", False)  # the quality checks after it stay paused: their runs queue
        yield cluster


def copying(cluster: Cluster, into: float = 1.0, timeout: float = 300) -> None:
    """Wait until a load has been COPYing into the warehouse for ``into`` seconds: a session whose last statement
    is a COPY, inside a transaction older than that (the load COPYs batch after batch in one transaction)."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(psycopg2.connect(cluster.warehouse)) as conn:
        conn.autocommit = True  # each poll its own snapshot of pg_stat_activity (`with conn` would hold one)
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'COPY%%' "
                    "AND state IN ('active', 'idle in transaction') AND now() - xact_start > %s * interval '1 second'",
                    (into,),
                )
                if cur.fetchone()[0]:
                    return
                time.sleep(0.05)
    raise AssertionError(f"no load COPYing into the warehouse for {into}s within {timeout:.0f}s")


def day_is_exact(cluster: Cluster, day: str) -> tuple[int, int, int]:
    """(rows, distinct keys, staging tables) of a day; asserts the rows equal the generated ones."""
    ((rows, keys),) = query(cluster.warehouse, "SELECT count(*), count(DISTINCT payment_id) FROM core.fact_payments "
                            "WHERE dt = %s", (day,))  # fmt: skip
    ((staging,),) = query(cluster.warehouse, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'")
    assert (rows, keys, staging) == (cluster.manifest[day]["payments"]["rows_loaded"], rows, 0), day
    return rows, keys, staging


@pytest.mark.timeout(600)
def test_a_worker_killed_mid_copy_is_retried_on_the_other_worker_and_the_day_is_exact(cluster):
    day = BIG_DAYS[0]
    run_id = cluster.trigger("daily_etl", day)
    copying(cluster)
    task = cluster.task_instance("daily_etl", run_id, "load_payments")
    assert task["state"] == "running", task
    assert task["pid"], task
    victim = cluster.service_of(task["pid"])
    assert victim.startswith("worker-"), victim
    killed_at = time.monotonic()
    cluster.kill(victim)
    run = cluster.wait_for_run("daily_etl", run_id)
    recovered = time.monotonic() - killed_at
    tries = cluster.tries("daily_etl", run_id, "load_payments")
    assert run["state"] == "success", [(t["try_number"], t["state"]) for t in tries]
    assert [t["state"] for t in tries] == ["failed", "success"]
    other = "worker-2" if victim == "worker-1" else "worker-1"
    assert [h.split("@")[0] for h in cluster.worker_hostnames()] == [other], "the retry ran on the other worker"
    rows, keys, staging = day_is_exact(cluster, day)
    cluster.start(victim)
    print(f"worker kill: {victim} killed 1 s into the load's COPYs; the try failed and the retry "
          f"succeeded {recovered:.0f}s later on the other worker; {rows:,} rows, {keys:,} distinct keys, "
          f"{staging} staging tables")  # fmt: skip


@pytest.mark.timeout(600)
def test_the_warehouse_refusing_connections_fails_the_try_and_a_retry_publishes_it_whole(cluster):
    day = BIG_DAYS[1]
    name = cluster.warehouse.rsplit("/", 1)[1]
    admin = psycopg2.connect(cluster.warehouse.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    seen: set[int] = set()
    watching = threading.Event()

    def watch() -> None:  # what a reader sees of the day while the fault and the retries happen
        while not watching.is_set():
            with contextlib.suppress(psycopg2.OperationalError):  # refused, like the task
                seen.update(r for (r,) in query(cluster.warehouse, "SELECT count(*) FROM core.fact_payments "
                                                "WHERE dt = %s", (day,)))  # fmt: skip
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_id = cluster.trigger("daily_etl", day)
        copying(cluster)
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (name,))
            (terminated,) = cur.fetchone()
        time.sleep(5)
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        run = cluster.wait_for_run("daily_etl", run_id)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        watching.set()
        watcher.join()
    tries = cluster.tries("daily_etl", run_id, "load_payments")
    assert run["state"] == "success", [(t["try_number"], t["state"]) for t in tries]
    assert tries[0]["state"] == "failed"
    assert tries[-1]["state"] == "success"
    rows, keys, staging = day_is_exact(cluster, day)
    assert seen <= {0, rows}, f"a reader saw the day half-published: {sorted(seen)}"
    print(
        f"warehouse refusing connections for 5 s, 1 s into the load's COPYs ({terminated} sessions cut): "
        f"{len(tries)} tries ({', '.join(t['state'] for t in tries)}); a reader saw only "
        f"{sorted(seen)} rows of the day; {rows:,} rows, {keys:,} distinct keys, {staging} staging tables"
    )


def broker_messages(cluster: Cluster) -> int:
    """Task messages waiting in the broker (kombu keeps each Celery queue as a Redis list)."""
    client = redis.Redis.from_url(cluster.broker.url)
    try:
        return sum(client.llen(key) for key in client.scan_iter() if client.type(key) == b"list")
    finally:
        client.close()


@pytest.mark.timeout(600)
def test_tasks_queued_while_the_broker_is_down_for_20s_run_when_it_is_back(cluster):
    """Two kinds of queued task: messages already in the broker, waiting for a worker (the workers are
    stopped first, so nothing takes them), and tasks the scheduler queues while the broker is down."""
    waiting_day, queued_day = BACKFILL[2], BACKFILL[3]  # re-runs replace their day, as a user's re-run does
    for worker in ("worker-1", "worker-2"):
        cluster.kill(worker)
    waiting_run = cluster.trigger("daily_etl", waiting_day)
    deadline = time.monotonic() + 120
    while not (waiting := broker_messages(cluster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert waiting, "the scheduler sent no task to the broker"
    cluster.broker.kill()
    down_at = time.monotonic()
    queued_run = cluster.trigger("daily_etl", queued_day)
    time.sleep(20)
    cluster.broker.start()
    kept = broker_messages(cluster)
    assert kept >= waiting, f"{waiting} messages waited in the broker before its kill, {kept} after its restart"
    for worker in ("worker-1", "worker-2"):
        cluster.start(worker)
    tries = {}
    for day, run_id in ((waiting_day, waiting_run), (queued_day, queued_run)):
        run = cluster.wait_for_run("daily_etl", run_id)
        tasks = cluster.task_instances("daily_etl", run_id)
        assert run["state"] == "success", (day, {t["task_id"]: t["state"] for t in tasks})
        tries[day] = {t["task_id"]: t["try_number"] for t in tasks}
        # neither the messages kept by the broker nor the publishes the scheduler retried cost a try
        assert tries[day] == {t["task_id"]: 1 for t in tasks}, day
        day_is_exact(cluster, day)
    assert sorted(h.split("@")[0] for h in cluster.worker_hostnames()) == ["worker-1", "worker-2"]
    print(
        f"broker killed for 20 s with {waiting} task messages waiting in it (workers stopped) and a second run "
        f"triggered while it was down: {kept} messages there after the restart; both runs succeeded "
        f"{time.monotonic() - down_at:.0f}s after the kill, every task on try 1 "
        f"({sum(len(t) for t in tries.values())} tasks)"
    )


@pytest.mark.timeout(900)
def test_a_scheduler_killed_during_a_backfill_restarts_and_every_day_is_published_once(cluster):
    cluster.backfill("daily_etl", BACKFILL[0], BACKFILL[-1], max_active_runs=2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = [r for r in cluster.runs("daily_etl") if r["run_type"] == "backfill" and r["state"] == "success"]
        if len(done) >= 2:
            break
        time.sleep(1)
    cluster.kill("scheduler")
    killed_at = time.monotonic()
    time.sleep(10)
    cluster.start("scheduler")
    runs = cluster.wait_until_idle(["daily_etl"], timeout=600)["daily_etl"]
    backfilled = sorted(((r["conf"] or {}).get("partition") or r["data_interval_start"][:10], r["state"])
                        for r in runs if r["run_type"] == "backfill")  # fmt: skip
    assert backfilled == [(d, "success") for d in BACKFILL]
    published = query(cluster.warehouse, "SELECT left(partition, 10), task_id, count(*) FROM ops.load_audit "
                      "WHERE status = 'success' AND run_id LIKE 'backfill%%' AND task_id IN ('load_events', "
                      "'load_payments') GROUP BY 1, 2 ORDER BY 1, 2", {})  # fmt: skip
    assert published == [(d, t, 1) for d in BACKFILL for t in ("load_events", "load_payments")]
    counts = {d: day_is_exact(cluster, d)[0] for d in BACKFILL}
    print(
        f"scheduler kill after {len(done)} of {len(BACKFILL)} days: restarted after 10 s; backfill done "
        f"{time.monotonic() - killed_at:.0f}s after the kill; each day published once: {counts}"
    )
