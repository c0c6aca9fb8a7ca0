"""Which partition a run processes: scheduled, manual, `airflow dags test` and backfill agree.

Scheduled and manual runs use the timetable as the scheduler sees it (the DAG
serialised and deserialised); `dags test` and backfill go through the real
Airflow CLI against this session's metadata DB, with a probe DAG declared
through ``pipeline_dag`` exactly like the production DAGs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pendulum
import pytest
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import DataInterval, TimeRestriction

from acme_pipelines.partitions import (
    DAY,
    HOUR,
    WEEK,
    Grain,
    Partition,
    PartitionError,
    parse_partition,
    resolve_partition,
)


def utc(*args: int) -> datetime:
    """A UTC time as Airflow's timetables take it (pendulum)."""
    return pendulum.instance(datetime(*args, tzinfo=UTC))


def context(start=None, end=None, run_after=None, params=None) -> dict:
    return {
        "params": params or {},
        "data_interval_start": start,
        "data_interval_end": end,
        "dag_run": SimpleNamespace(run_after=run_after or end),
    }


def scheduler_timetable(dag):
    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.unit
def test_parse_day_hour_week():
    assert parse_partition("2026-11-01", DAY).start == utc(2026, 11, 1)
    assert parse_partition("2026-11-01T05:00", HOUR).end == utc(2026, 11, 1, 6)
    assert parse_partition("2026-11-01T06:00+01:00", HOUR).key == "2026-11-01T05:00"
    assert parse_partition("2026-11-01T05:00Z", HOUR).start == utc(2026, 11, 1, 5)
    assert parse_partition("2026-11-02", WEEK).end == utc(2026, 11, 9)  # a Monday


@pytest.mark.unit
@pytest.mark.parametrize(
    ("key", "grain", "hint"),
    [
        ("2026-11-01T05:30", HOUR, "2026-11-01T05:00"),
        ("2026-11-01T05:00", DAY, "2026-11-01"),
        ("2026-11-04", WEEK, "2026-11-02"),
    ],
)
def test_misaligned_partition_is_refused_with_the_aligned_value(key, grain, hint):
    with pytest.raises(PartitionError, match=hint):
        parse_partition(key, grain)


@pytest.mark.unit
def test_malformed_partition_is_refused():
    with pytest.raises(PartitionError, match="not an ISO date"):
        parse_partition("yesterday", DAY)


@pytest.mark.unit
def test_grain_must_divide_a_week():
    assert Grain.minutes(30).floor(utc(2026, 11, 1, 5, 47)) == utc(2026, 11, 1, 5, 30)
    with pytest.raises(ValueError, match="does not divide a week"):
        Grain.minutes(11)


# -- precedence and safety ---------------------------------------------------------------


@pytest.mark.unit
def test_param_wins_over_data_interval():
    ctx = context(utc(2026, 11, 5, 2), utc(2026, 11, 6, 2), params={"partition": "2026-11-01"})
    chosen = resolve_partition(ctx, DAY)
    assert (chosen.key, chosen.source) == ("2026-11-01", "param")


@pytest.mark.unit
def test_incomplete_partition_is_refused():
    ctx = context(run_after=utc(2026, 11, 27, 10), params={"partition": "2026-11-27"})
    with pytest.raises(PartitionError, match="not complete"):
        resolve_partition(ctx, DAY)


@pytest.mark.unit
def test_no_interval_and_no_param_is_an_error():
    with pytest.raises(PartitionError, match=r"params\.partition"):
        resolve_partition(context(run_after=utc(2026, 11, 27)), DAY)


# -- scheduled and manual runs, as the scheduler computes them -----------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("dag_id", "grain", "after", "expected"),
    [
        ("daily_etl", DAY, utc(2026, 11, 1, 2), "2026-11-01"),  # run starts 11-02 02:00
        ("daily_reports", DAY, utc(2026, 11, 1, 6), "2026-11-01"),
        ("hourly_incremental_sync", HOUR, utc(2026, 11, 1, 5), "2026-11-01T05:00"),
    ],
)
def test_scheduled_run(dagbag, dag_id, grain, after, expected):
    timetable = scheduler_timetable(dagbag.dags[dag_id])
    previous = DataInterval(after - grain.length, after)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=previous, restriction=TimeRestriction(None, None, catchup=True)
    )
    ctx = context(info.data_interval.start, info.data_interval.end, run_after=info.run_after)
    assert resolve_partition(ctx, grain).key == expected


@pytest.mark.unit
def test_manual_trigger_processes_the_last_complete_day(dagbag):
    timetable = scheduler_timetable(dagbag.dags["daily_etl"])
    run_after = utc(2026, 11, 27, 10, 15)
    interval = timetable.infer_manual_data_interval(run_after=run_after)
    assert resolve_partition(context(interval.start, interval.end, run_after), DAY).key == "2026-11-26"


# -- `airflow dags test` and `airflow backfill create`, through the real CLI ---------------

PROBE_DAG = '''
"""Airflow DAG that records the partition it resolves (test probe)."""
import json, os
from airflow.sdk import task
from acme_pipelines.dag_defaults import pipeline_dag
from acme_pipelines.partitions import DAY, resolve_partition

with pipeline_dag("partition_probe", schedule="0 2 * * *", doc_md=__doc__, tags=["test"]):
    @task
    def record(**context):
        chosen = resolve_partition(context, DAY)
        with open(os.environ["PROBE_OUT"], "a") as out:
            out.write(json.dumps({"key": chosen.key, "source": chosen.source}) + "\\n")
    record()
'''


@pytest.fixture(scope="module")
def probe(airflow_db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe_dags")
    (folder / "partition_probe.py").write_text(textwrap.dedent(PROBE_DAG))
    out = folder / "resolved.jsonl"
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(folder), "PROBE_OUT": str(out)}

    def airflow(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    def resolved() -> list[dict]:
        lines = out.read_text().splitlines() if out.exists() else []
        out.unlink(missing_ok=True)
        return [json.loads(line) for line in lines]

    airflow("dags", "reserialize")
    return SimpleNamespace(airflow=airflow, resolved=resolved)


@pytest.mark.integration
def test_dags_test_with_partition_param(probe):
    probe.airflow("dags", "test", "partition_probe", "-c", '{"partition": "2026-11-01"}')
    assert probe.resolved() == [{"key": "2026-11-01", "source": "param"}]


@pytest.mark.integration
def test_dags_test_at_the_scheduled_moment_matches_the_scheduled_run(probe):
    # `dags test DATE` runs what a trigger at DATE would: at 11-02 02:00 that is day 11-01,
    # the same day the scheduler's run at that moment processes.
    probe.airflow("dags", "test", "partition_probe", "2026-11-02T02:00:00+00:00")
    assert probe.resolved() == [{"key": "2026-11-01", "source": "data_interval"}]


@pytest.mark.integration
def test_backfill_processes_the_days_of_its_date_range(probe):
    # --from-date/--to-date select logical dates (= interval starts, D 02:00) in [from, to]:
    # days 10-01..10-03 is --from-date 2026-10-01 --to-date 2026-10-04 (README, "Backfills").
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    probe.airflow(
        "backfill",
        "create",
        "--dag-id",
        "partition_probe",
        "--from-date",
        "2026-10-01",
        "--to-date",
        "2026-10-04",
    )
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "partition_probe", DagRun.run_type == "backfill").all()
        keys = sorted(
            resolve_partition(context(r.data_interval_start, r.data_interval_end, r.run_after), DAY).key for r in runs
        )
    assert keys == ["2026-10-01", "2026-10-02", "2026-10-03"]


@pytest.mark.unit
def test_partition_dt_and_str():
    p = Partition(utc(2026, 11, 1), DAY)
    assert p.dt == date(2026, 11, 1)
    assert str(p) == "day 2026-11-01 [2026-11-01T00:00Z, 2026-11-02T00:00Z)"
