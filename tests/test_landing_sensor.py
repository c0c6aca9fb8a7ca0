"""daily_etl's wait_for_landing: succeeds at once when the day's files are there, waits in the trigger (local
files and S3 on the moto server) until they come, and on timeout fails once, naming what is missing.

The trigger's ``run()`` coroutine is driven directly with asyncio (as the triggerer does); the DAG-level
tests go through ``dag.test()``, which runs a deferred task's trigger in-process and resumes the task.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from acme_pipelines.landing_sensor import TIMEOUT_VARIABLE, LandingFilesSensor, LandingFilesTrigger
from acme_pipelines.partitions import PartitionError
from acme_sample_data.generator import GeneratorConfig
from conftest import free_port, query, run_dag

DAY = "2026-11-01"
CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=1, scale=0.1, bad_share=0.004, seed=11)
CSV = "payment_id,order_id,amount,currency,method,status,paid_at\n1,1,2.50,EUR,card,captured,2026-11-01T10:00:00Z\n"
JSONL = '{"event_id": "00000000-0000-0000-0000-000000000001", "event_type": "page_view"}\n'


def _trigger(root: str, *, timeout: float = 60.0, sources=("payments", "events")) -> LandingFilesTrigger:
    now = datetime.now(UTC)
    return LandingFilesTrigger(
        landing_root=root,
        sources=list(sources),
        day=DAY,
        since=now.isoformat(),
        deadline=(now + timedelta(seconds=timeout)).isoformat(),
        poke_interval=1,
    )


@pytest.fixture
def first_check(monkeypatch) -> threading.Event:
    """Set once the trigger's first look at the storage has returned (files are written relative to it, so
    a slow first look, e.g. a cold import or connection, cannot see them at once)."""
    from acme_pipelines import landing_sensor

    done = threading.Event()
    original = landing_sensor.missing_sources

    def checked(*args):
        try:
            return original(*args)
        finally:
            done.set()

    monkeypatch.setattr(landing_sensor, "missing_sources", checked)
    return done


async def _first_event(trigger: LandingFilesTrigger, first_check: threading.Event, write_later, after: float = 2.0):
    """The trigger's first event (what the triggerer hands back to the task); ``write_later`` runs ``after`` s
    after the trigger's first check found files missing. Returns the event and the seconds since that check."""
    checked_at: list[float] = []

    async def write() -> None:
        await asyncio.to_thread(first_check.wait, 30)
        checked_at.append(time.monotonic())
        await asyncio.sleep(after)
        await asyncio.to_thread(write_later)

    writer = asyncio.create_task(write())
    event = await asyncio.wait_for(anext(trigger.run()), timeout=30)
    await writer
    return event, time.monotonic() - checked_at[0]


def _write_local(root: Path, *, payments: bool = True, events: bool = True) -> None:
    if payments:
        (root / "payments" / f"dt={DAY}").mkdir(parents=True, exist_ok=True)
        (root / "payments" / f"dt={DAY}" / "part-000.csv").write_text(CSV)
    if events:
        (root / "events" / f"dt={DAY}").mkdir(parents=True, exist_ok=True)
        (root / "events" / f"dt={DAY}" / "part-000.jsonl").write_text(JSONL)


# -- the trigger --------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_trigger_serializes_to_an_importable_classpath(tmp_path):
    from airflow.sdk._shared.module_loading import import_string

    trigger = _trigger(f"file://{tmp_path}")
    classpath, kwargs = trigger.serialize()
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs, "plain JSON: the triggerer stores and reloads it"


@pytest.mark.unit
def test_trigger_waits_for_local_files_that_come_later(tmp_path, first_check):
    # payments is there; events has only a file the loads would not read (not *.jsonl[.gz])
    _write_local(tmp_path, events=False)
    (tmp_path / "events" / f"dt={DAY}").mkdir(parents=True)
    (tmp_path / "events" / f"dt={DAY}" / "part-000.jsonl.tmp").write_text(JSONL)

    trigger = _trigger(f"file://{tmp_path}")
    event, seconds = asyncio.run(_first_event(trigger, first_check, lambda: _write_local(tmp_path)))

    assert event.payload["status"] == "found"
    assert event.payload["day"] == DAY
    assert event.payload["checks"] >= 2, "it did check before the files came"
    assert event.payload["waited_seconds"] >= 2.0
    assert 2.0 <= seconds < 10


@pytest.mark.integration
def test_trigger_waits_for_s3_objects_that_come_later(s3_server, s3_bucket, monkeypatch, first_check):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.connection_uri())
    client = s3_server.client()
    # the events prefix already exists (an upload in progress): its listing is what s3fs caches
    client.put_object(Bucket=s3_bucket, Key=f"landing/payments/dt={DAY}/part-000.csv.gz", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key=f"landing/events/dt={DAY}/_upload.tmp", Body=b"x")

    def upload() -> None:
        client.put_object(Bucket=s3_bucket, Key=f"landing/events/dt={DAY}/part-000.jsonl", Body=JSONL.encode())

    trigger = _trigger(f"s3://aws_test@{s3_bucket}/landing")
    event, seconds = asyncio.run(_first_event(trigger, first_check, upload))

    assert event.payload["status"] == "found"
    assert event.payload["checks"] >= 2
    assert 2.0 <= seconds < 10


@pytest.mark.unit
def test_trigger_times_out_naming_the_missing_sources(tmp_path):
    _write_local(tmp_path, events=False)
    event = asyncio.run(asyncio.wait_for(anext(_trigger(f"file://{tmp_path}", timeout=1.5).run()), timeout=30))
    assert event.payload["status"] == "timeout"
    assert event.payload["missing"] == ["events"]


@pytest.mark.unit
def test_trigger_reports_a_storage_error_instead_of_hanging(monkeypatch):
    closed = json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing",
         "extra": {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "us-east-1"}}
    )  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_AWS_CLOSED", closed)
    trigger = _trigger("s3://aws_closed@no-such-bucket/landing")
    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), timeout=60))
    assert event.payload["status"] == "error"


# -- the sensor ---------------------------------------------------------------------------------


def _sensor(root: str, **kwargs) -> LandingFilesSensor:
    return LandingFilesSensor(task_id="wait_for_landing", landing_root=root, poke_interval=1, **kwargs)


@pytest.mark.unit
def test_a_malformed_partition_fails_at_once(tmp_path):
    with pytest.raises(PartitionError, match="not the start of a day"):
        _sensor(f"file://{tmp_path}").execute({"params": {"partition": f"{DAY}T05:00"}})


@pytest.mark.unit
def test_a_bad_timeout_variable_fails_at_once_naming_it(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    _write_local(tmp_path)
    with pytest.raises(AirflowFailException, match=TIMEOUT_VARIABLE):
        _sensor(f"file://{tmp_path}", timeout_minutes="six hours").execute({"params": {"partition": DAY}})


@pytest.mark.unit
def test_files_there_succeed_without_deferring(tmp_path):
    _write_local(tmp_path)
    result = _sensor(f"file://{tmp_path}", timeout_minutes="5").execute({"params": {"partition": DAY}})
    assert result == {"partition": DAY, "waited": False}


@pytest.mark.unit
def test_missing_files_defer_to_the_trigger_with_the_timeout(tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    _write_local(tmp_path, events=False)
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(f"file://{tmp_path}", timeout_minutes="90").execute({"params": {"partition": DAY}})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LandingFilesTrigger)
    assert (trigger.day, trigger.poke_interval, trigger.sources) == (DAY, 1.0, ["payments", "events"])
    left = datetime.fromisoformat(trigger.deadline) - datetime.now(UTC)
    assert timedelta(minutes=89) < left <= timedelta(minutes=90)
    assert deferred.value.timeout > timedelta(minutes=90), "the scheduler's backstop comes after the trigger's own"
    assert deferred.value.method_name == "execute_complete"


@pytest.mark.unit
def test_timeout_fails_without_retry_naming_the_prefix_and_the_variable(tmp_path):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    sensor = _sensor(f"file://{tmp_path}/", timeout_minutes="360")
    with pytest.raises(AirflowSensorTimeout) as failed:
        sensor.execute_complete({}, {"status": "timeout", "day": DAY, "missing": ["events"]})
    message = str(failed.value)
    assert f"events/dt={DAY}/" in message[:300], "the Slack alert quotes the first 300 characters"
    assert f"{TIMEOUT_VARIABLE} (now 360)" in message[:300]
    assert f"file://{tmp_path}/events/dt={DAY}/" in message
    assert "payments" not in message


# -- daily_etl through dag.test() -----------------------------------------------------------------


def _returned(dag_run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value")
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture
def pipeline_config():
    return CONFIG


@pytest.fixture
def fast_wait(dagbag, monkeypatch):
    """daily_etl's wait polls every second (the DAG's is a minute)."""
    monkeypatch.setattr(dagbag.dags["daily_etl"].get_task("wait_for_landing"), "poke_interval", 1)


@pytest.mark.integration
def test_daily_etl_with_the_files_there_does_not_wait(dagbag, pipeline_env, airflow_db, fast_wait):
    dag_run = run_dag(dagbag, "daily_etl", partition=DAY)
    assert _returned(dag_run, "wait_for_landing") == {"partition": DAY, "waited": False}
    ti = dag_run.get_task_instance("wait_for_landing")
    assert ti.try_number == 1


@pytest.mark.integration
def test_daily_etl_waits_in_the_trigger_for_late_files_then_loads_them(
    dagbag, pipeline_env, airflow_db, fast_wait, monkeypatch
):
    from acme_pipelines import landing_sensor

    landing: Path = pipeline_env["landing"]
    held = landing.parent / "not-yet"
    for source in ("payments", "events", "pos"):
        (held / source).mkdir(parents=True)
        shutil.move(landing / source / f"dt={DAY}", held / source / f"dt={DAY}")

    def arrive() -> None:
        for source in ("payments", "events", "pos"):
            shutil.move(held / source / f"dt={DAY}", landing / source / f"dt={DAY}")

    checks: list[float] = []
    original = landing_sensor.missing_sources

    def counted(*args):
        checks.append(time.monotonic())
        if len(checks) == 1:  # the worker's check finds nothing: the files come 2 s later, while the trigger polls
            threading.Timer(2.0, arrive).start()
        return original(*args)

    monkeypatch.setattr(landing_sensor, "missing_sources", counted)
    dag_run = run_dag(dagbag, "daily_etl", partition=DAY)
    assert len(checks) >= 3, "the worker's check, then the trigger's until the files came"
    returned = _returned(dag_run, "wait_for_landing")
    assert returned["waited"] is True
    assert returned["waited_seconds"] >= 1.0
    loaded = query(
        pipeline_env["warehouse"],
        "SELECT source, rows_in FROM ops.load_audit WHERE partition = %s AND source LIKE 'landing:%%' "
        "AND status = 'success' ORDER BY source",
        (DAY,),
    )
    assert [s for s, _ in loaded] == ["landing:events", "landing:payments", "landing:pos"]
    expected = pipeline_env["manifest"][DAY]
    assert dict(loaded) == {f"landing:{s}": expected[s]["rows_in"] for s in ("events", "payments", "pos")}


@pytest.mark.integration
def test_daily_etl_times_out_once_naming_the_missing_prefix(
    dagbag, pipeline_env, airflow_db, fast_wait, http_recorder, monkeypatch
):
    landing: Path = pipeline_env["landing"]
    shutil.rmtree(landing / "events" / f"dt={DAY}")
    monkeypatch.setenv(f"AIRFLOW_VAR_{TIMEOUT_VARIABLE.upper()}", "0.05")  # 3 s
    started = time.monotonic()
    dag_run = run_dag(dagbag, "daily_etl", expect="failed", partition=DAY)
    assert time.monotonic() - started < 120, "no retry waited again"
    states = _states(dag_run)
    assert states["wait_for_landing"] == "failed"
    assert states["load_payments"] == states["load_events"] == states["load_pos"] == "upstream_failed"
    assert states["load_fx_rates"] == "success", "fx does not wait for the landing zone"
    assert dag_run.get_task_instance("wait_for_landing").try_number == 1, "a timeout is not retried"
    alerts = [
        r.json()["text"]
        for r in http_recorder.requests
        if r.method == "POST" and r.path.startswith("/services/") and "wait_for_landing" in r.json()["text"]
    ]
    assert len(alerts) == 1, alerts
    assert f"events/dt={DAY}/" in alerts[0]
    assert TIMEOUT_VARIABLE in alerts[0]
    assert "try 1" in alerts[0]


@pytest.mark.unit
def test_the_timeout_variable_is_declared_with_its_default():
    import yaml

    from acme_pipelines.landing_sensor import DEFAULT_TIMEOUT_MINUTES
    from conftest import ROOT

    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    declared = {v["variable_name"]: v["variable_value"] for v in settings["airflow"]["variables"]}
    assert declared[TIMEOUT_VARIABLE] == str(DEFAULT_TIMEOUT_MINUTES)


@pytest.mark.unit
def test_the_loads_wait_for_landing_and_fx_does_not(dagbag):
    dag = dagbag.dags["daily_etl"]
    wait = dag.get_task("wait_for_landing")
    assert isinstance(wait, LandingFilesSensor)
    assert wait.downstream_task_ids >= {"load_payments", "load_events", "load_pos"}
    assert wait.sources == ["payments", "events", "pos"]
    assert "load_fx_rates" not in wait.upstream_task_ids | wait.downstream_task_ids
    assert wait.pool == "object_storage"
