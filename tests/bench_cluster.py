"""`make bench-cluster`: a 14-day backfill of ``daily_etl`` and the chain behind it on `make up`'s cluster.

Not part of `make test` (pytest collects ``test_*.py`` only): `make bench-cluster` runs this file. It starts
the cluster (tests/cluster.py: scheduler, dag-processor, triggerer, api-server, 2 Celery workers x 2 slots),
generates 14 days, runs the hourly sync's catch-up, unpauses the chain (daily_etl -> data_quality_check ->
feature_engineering -> ml_training, and weekly_aggregation), backfills daily_etl over the 14 days through
the REST API and waits until every DAG of the chain is idle. While it runs, it samples the metadata DB once a
second: per pool, the task instances running and the slots occupied (running and queued, deferred too where
the pool counts them, times each task's pool_slots). It prints the wall time, per pool the slots, the
highest running and occupied seen, and whether a pool was ever exceeded (the bench fails if one was).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from acme_sample_data.generator import GeneratorConfig
from cluster import running_cluster
from conftest import query

pytestmark = pytest.mark.e2e

DAYS = 14
CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=DAYS, scale=1.0, bad_share=0.004, seed=14)
CHAIN = ["daily_etl", "data_quality_check", "feature_engineering", "ml_training", "weekly_aggregation"]
OCCUPANCY = """
SELECT p.pool, p.slots,
       coalesce(sum(ti.pool_slots) FILTER (WHERE ti.state = 'running'), 0) AS running,
       coalesce(sum(ti.pool_slots) FILTER (WHERE ti.state IN ('running', 'queued')
                                             OR (ti.state = 'deferred' AND p.include_deferred)), 0) AS occupied
FROM slot_pool p LEFT JOIN task_instance ti ON ti.pool = p.pool
GROUP BY p.pool, p.slots
"""


@pytest.mark.timeout(3600)
def test_bench_a_14_day_backfill_of_the_chain_on_the_cluster(tmp_path):
    with running_cluster(tmp_path / "airflow", CONFIG, AIRFLOW__CORE__DEFAULT_TASK_RETRIES="1") as cluster:
        cluster.catch_up_sync("2026-11-20", then_unpause=CHAIN)  # past the last day: late order updates

        engine = create_engine(cluster.metadata)
        peaks: dict[str, dict[str, int]] = defaultdict(lambda: {"slots": 0, "running": 0, "occupied": 0})
        samples, stop = [0], threading.Event()

        def sample() -> None:
            with engine.connect() as conn:
                while not stop.is_set():
                    for pool, slots, running, occupied in conn.execute(text(OCCUPANCY)):
                        peak = peaks[pool]
                        peak["slots"] = slots
                        peak["running"] = max(peak["running"], int(running))
                        peak["occupied"] = max(peak["occupied"], int(occupied))
                    conn.commit()
                    samples[0] += 1
                    stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        last = CONFIG.day_list()[-1].isoformat()
        cluster.backfill("daily_etl", CONFIG.start.isoformat(), last, max_active_runs=4)
        runs = cluster.wait_until_idle(CHAIN, timeout=3000)
        wall = time.monotonic() - started
        stop.set()
        sampler.join()

        states = {d: sorted({r["state"] for r in runs[d]}) for d in CHAIN}
        tasks = query(cluster.metadata.replace("+psycopg2", ""),
                      "SELECT count(*) FROM task_instance WHERE dag_id = ANY(%s)", (CHAIN,))[0][0]  # fmt: skip
        print(f"\n14-day backfill of daily_etl and its chain on 2 Celery workers x 2 slots: {wall:.0f} s wall, "
              f"{tasks} task instances, runs {({d: len(runs[d]) for d in CHAIN})}, states {states}")  # fmt: skip
        print(f"{'pool':<16}{'slots':>6}{'max running':>13}{'max occupied':>14}  exceeded")
        for pool, peak in sorted(peaks.items()):
            exceeded = "YES" if peak["occupied"] > peak["slots"] else "no"
            print(f"{pool:<16}{peak['slots']:>6}{peak['running']:>13}{peak['occupied']:>14}  {exceeded}")
        print(f"({samples[0]} samples of the metadata DB, one a second)")
        assert all(s == ["success"] for d, s in states.items() if d != "weekly_aggregation"), states
        over = {p: v for p, v in peaks.items() if v["occupied"] > v["slots"]}
        assert over == {}, f"pools exceeded: {over}"
