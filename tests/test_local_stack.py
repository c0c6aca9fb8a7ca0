"""`make up` as a user meets it: a running scheduler, the REST API, the UI, the chain of DAGs.

The module starts the cluster once, as ``make up`` does (tests/cluster.py: api-server,
scheduler, dag-processor, triggerer and two Celery workers; CeleryExecutor with a Redis
broker, a PostgreSQL metadata DB of its own), on a free port and a throwaway
AIRFLOW_HOME, with every connection pointing at this test's databases, landing files and
stand-ins.
Nothing here uses ``dag.test``: runs are created through the REST API (what the UI
calls) and executed by the scheduler. Then:

- the REST API refuses calls without a token and honours the roles;
- a user with the ``op`` role triggers ``daily_etl`` for a day and it succeeds;
- backfills (``POST /api/v2/backfills``, the UI's Backfill dialog) flow through
  ``data_quality_check`` and ``feature_engineering`` one run per day, also when the
  quality check was paused while the days were published; loads of different days
  run at once with 0 retries; backfilled days raise no deadline alert;
- a week's 7 passed days trigger ``weekly_aggregation``, and a day that passes again
  re-runs it;
- a late scheduled run alerts once;
- headless Chromium signs in to the UI and sees the ten DAGs;
- a worker's slot is free as soon as its task process exits;
- every task try the workers ran reported its lineage (OpenLineage, through listeners the workers load
  before they fork: acme_pipelines.worker_preload).

The scheduler creates no scheduled runs here (``use_job_schedule`` off): only what
the tests create runs. Task retries are 0, so any transient error fails the test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from datetime import date

import pytest

from acme_localdev.stack import USERS
from acme_sample_data.generator import GeneratorConfig
from cluster import Cluster, running_cluster
from conftest import ROOT, query

# 2026-11-01 is a Sunday: 11-02..11-08 is one ISO week
pytestmark = pytest.mark.e2e

CONFIG = GeneratorConfig(start=date(2026, 11, 1), days=10, scale=0.1, bad_share=0.004, seed=21)
DAG_IDS = sorted(p.stem for p in (ROOT / "dags").glob("*.py"))
SCREENSHOT = ROOT / "data" / "artifacts" / "ui" / "dags.png"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("stack") / "airflow", CONFIG) as cluster:
        assert sorted(cluster.worker_hostnames()) == [f"worker-{n}@{socket.gethostname()}" for n in (1, 2)]
        yield cluster


def test_the_rest_api_refuses_calls_without_a_token_and_honours_roles(stack):
    stack.call("GET", "/api/v2/dags", expect=401)
    stack.call("GET", "/api/v2/dags", token="not-a-token", expect=403)  # Airflow: "Invalid JWT token"
    for user in USERS:
        listed = stack.call("GET", "/api/v2/dags?limit=100", token=stack.token(user))
        assert sorted(d["dag_id"] for d in listed["dags"]) == DAG_IDS, user
    # a viewer may look, not trigger; a wrong password gets no token
    viewer = stack.token("auditor")
    stack.call("POST", "/api/v2/dags/daily_etl/dagRuns", token=viewer, body={"logical_date": None}, expect=403)
    stack.call("POST", "/auth/token", body={"username": "admin", "password": "wrong"}, expect=401)


def test_an_operator_triggers_daily_etl_for_a_day_and_it_succeeds(stack):
    token = stack.token("operator")
    stack.call("PATCH", "/api/v2/dags/daily_etl", token=token, body={"is_paused": False})
    run = stack.call(
        "POST",
        "/api/v2/dags/daily_etl/dagRuns",
        token=token,
        body={"logical_date": None, "conf": {"partition": "2026-11-01"}},  # as the trigger form sends it
    )
    path = f"/api/v2/dags/daily_etl/dagRuns/{run['dag_run_id']}"
    deadline, state = time.monotonic() + 300, run["state"]
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(3)
        state = stack.call("GET", path, token=token)["state"]
    tasks = stack.call("GET", f"{path}/taskInstances", token=token)["task_instances"]
    assert state == "success", {t["task_id"]: t["state"] for t in tasks}
    states = {t["task_id"]: t["state"] for t in tasks}
    assert {"load_fx_rates", "load_payments", "load_events", "build_daily_revenue"} <= set(states)
    assert set(states.values()) == {"success"}, states
    # the day's quality check is queued for it, named after the day (paused until the chain test unpauses it)
    checks = {r["dag_run_id"]: r for r in stack.runs("data_quality_check")}
    assert checks["partition__2026-11-01"]["conf"]["partition"] == "2026-11-01"
    expected = stack.manifest["2026-11-01"]["payments"]
    assert query(stack.warehouse, "SELECT count(*) FROM core.fact_payments WHERE dt = '2026-11-01'") == [
        (expected["rows_loaded"],)
    ]


CHAIN = ["daily_etl", "data_quality_check", "feature_engineering", "weekly_aggregation"]
# ml_training stays paused here (its training adds nothing to what is shown): its runs queue, one per day
WEEK = [f"2026-11-{d:02d}" for d in range(2, 9)]  # Monday 11-02 .. Sunday 11-08


@pytest.fixture(scope="module")
def synced(stack):
    """The hourly sync's catch-up window, run once by the scheduler: the orders every quality check needs."""
    stack.catch_up_sync("2026-11-14", then_unpause=CHAIN)
    return stack


def day_of(run: dict) -> str:
    return (run.get("conf") or {}).get("partition") or run["data_interval_start"][:10]


@pytest.mark.timeout(900)
def test_backfills_flow_through_the_chain_one_run_per_day_also_after_a_pause(synced):
    stack = synced
    posts_before = len(stack.deadline_posts())
    # four days at once: their loads run concurrently (0 retries: a deadlock would fail the run)
    first = stack.backfill("daily_etl", "2026-11-02", "2026-11-05", max_active_runs=4)
    assert first["max_active_runs"] == 4
    stack.wait_until_idle(CHAIN)
    # the quality check paused while two more days are published: their checks wait, then run one per day
    stack.pause("data_quality_check", True)
    stack.backfill("daily_etl", "2026-11-06", "2026-11-07", max_active_runs=2)
    stack.wait_until_idle(["daily_etl"])
    waiting = [r["dag_run_id"] for r in stack.runs("data_quality_check") if r["state"] == "queued"]
    assert {"partition__2026-11-06", "partition__2026-11-07"} <= set(waiting)
    stack.pause("data_quality_check", False)
    runs = stack.wait_until_idle(CHAIN)

    days = WEEK[:6]
    etl = [r for r in runs["daily_etl"] if r["run_type"] == "backfill"]
    assert sorted(day_of(r) for r in etl) == days
    # one verdict per day, passed, from a run named after the day (what the UI's run list shows)
    gates = query(stack.warehouse, "SELECT dt::text, status FROM ops.quality_gate WHERE dt >= '2026-11-02' ORDER BY dt")
    assert gates == [(d, "passed") for d in days]
    runs["ml_training"] = stack.runs("ml_training")
    for dag_id in ("data_quality_check", "feature_engineering", "ml_training"):
        named = sorted(r["dag_run_id"] for r in runs[dag_id] if r["dag_run_id"] != "partition__2026-11-01")
        assert named == [f"partition__{d}" for d in days], dag_id
        assert all(day_of(r) == r["dag_run_id"].removeprefix("partition__") for r in runs[dag_id]), dag_id
    features = query(stack.warehouse, "SELECT as_of_date::text, count(*) > 0 FROM features.customer_features "
                     "WHERE as_of_date >= '2026-11-02' GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert features == [(d, True) for d in days]
    failed = {d: [r["dag_run_id"] for r in runs[d] if r["state"] != "success"] for d in CHAIN}
    assert failed == {dag_id: [] for dag_id in CHAIN}
    assert {r["state"] for r in runs["ml_training"]} == {"queued"}
    # every check of a day ran and passed (a run is "success" by its last tasks, whatever a check did)
    checks = {t["task_id"]: t["state"] for t in stack.task_instances("data_quality_check", "partition__2026-11-02")
              if t["task_id"].startswith("check_") or t["task_id"] == "publish_gate"}  # fmt: skip
    declared = {t["task_id"] for t in stack.op("GET", "/api/v2/dags/data_quality_check/tasks")["tasks"]
                if t["task_id"].startswith("check_") or t["task_id"] == "publish_gate"}  # fmt: skip
    assert len(declared) > 7, declared  # the sources' checks, the assertions and the gate
    assert set(checks) == declared, (sorted(checks), sorted(declared))
    assert set(checks.values()) == {"success"}, checks  # paused: waiting, one run per day
    # the first four days' loads ran at the same time, each on its first try (no deadlock, no retry)
    loads = [t for r in etl if day_of(r) in days[:4] for t in stack.task_instances("daily_etl", r["dag_run_id"])
             if t["task_id"] in ("load_payments", "load_events")]  # fmt: skip
    assert len(loads) == 8
    assert {t["try_number"] for t in loads} == {1}
    at_once = max(sum(o["start_date"] <= t["start_date"] < o["end_date"] for o in loads) for t in loads)
    print(f"loads of 4 backfilled days: at most {at_once} running at once")
    # the cluster has 4 task slots (2 workers x 2), shared with the runs' other tasks: how many loads overlap
    # depends on timing (2 to 4 seen); what must hold is that loads of different days overlap without a retry
    assert at_once >= 2, "loads of different days at once"
    # the week is not complete yet (11-08 missing): no weekly run
    assert runs["weekly_aggregation"] == []
    # backfilled (past) days miss their deadline at once, but nobody is paged for them
    assert stack.deadline_posts()[posts_before:] == []


@pytest.mark.timeout(900)
def test_a_complete_week_triggers_weekly_aggregation_and_a_rerun_day_reruns_its_chain(synced):
    stack = synced
    stack.backfill("daily_etl", "2026-11-08", "2026-11-08", max_active_runs=1)
    runs = stack.wait_until_idle(CHAIN)
    (weekly,) = runs["weekly_aggregation"]
    assert (weekly["dag_run_id"], weekly["state"], day_of(weekly)) == ("partition__2026-11-02", "success", "2026-11-02")
    kpis = query(stack.warehouse, "SELECT week_start::text FROM marts.weekly_kpis")
    assert kpis == [("2026-11-02",)]
    (check,) = [r for r in runs["data_quality_check"] if r["dag_run_id"] == "partition__2026-11-04"]
    # a user re-runs one day of the week (trigger form, a partition): its check runs again in place, passes
    # again, and the complete week is rebuilt, in the same run
    stack.op("POST", "/api/v2/dags/daily_etl/dagRuns", body={"logical_date": None, "conf": {"partition": "2026-11-04"}})
    time.sleep(3)
    runs = stack.wait_until_idle(CHAIN)
    (rechecked,) = [r for r in runs["data_quality_check"] if r["dag_run_id"] == "partition__2026-11-04"]
    assert rechecked["state"] == "success"
    assert rechecked["end_date"] > check["end_date"], "the day's check ran again, in its own run"
    gates = query(stack.warehouse, "SELECT status FROM ops.quality_gate WHERE dt = '2026-11-04'")
    assert gates == [("passed",)]
    (again,) = runs["weekly_aggregation"]
    assert again["state"] == "success"
    assert again["end_date"] > weekly["end_date"], "the week ran again"
    failed = {d: [r["dag_run_id"] for r in runs[d] if r["state"] != "success"] for d in CHAIN}
    assert failed == {dag_id: [] for dag_id in CHAIN}


def test_headless_chromium_signs_in_and_sees_the_ten_dags(stack):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed: make chromium (which make test runs) or apt-get install chromium")
    from playwright.sync_api import sync_playwright

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1700})  # all ten cards
            page.goto(f"{stack.url}/", wait_until="networkidle")
            page.fill("input[name=username]", "auditor")
            page.fill("input[name=password]", stack.passwords()["auditor"])
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/auth/" not in url, timeout=30_000)
            page.goto(f"{stack.url}/dags?limit=25", wait_until="networkidle")
            page.wait_for_selector("text=10 Dags", timeout=30_000)
            page.wait_for_selector("text=weekly_aggregation", timeout=30_000)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            text = page.inner_text("body")
        finally:
            chromium.close()
    missing = [dag_id for dag_id in DAG_IDS if dag_id not in text]
    assert missing == []
    assert SCREENSHOT.stat().st_size > 20_000


def browser_session(stack: Cluster, user: str):
    """A headless Chromium page signed in to the UI as ``user`` (a context manager); skips without Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed: make chromium (which make test runs) or apt-get install chromium")
    from contextlib import contextmanager

    from playwright.sync_api import sync_playwright

    @contextmanager
    def session():
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox"])
            try:
                page = chromium.new_page(viewport={"width": 1400, "height": 1700})
                page.goto(f"{stack.url}/", wait_until="networkidle")
                page.fill("input[name=username]", user)
                page.fill("input[name=password]", stack.passwords()[user])
                page.click("button[type=submit]")
                page.wait_for_url(lambda url: "/auth/" not in url, timeout=30_000)
                yield page
            finally:
                chromium.close()

    return session()


def pick_datetime(page, index: int, day: str, hour: str) -> None:
    """Fill the UI's n-th date-time picker (a popover with a date and a time field, in UTC)."""
    page.get_by_test_id("datetime-input").nth(index).click()
    popover = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    popover.get_by_placeholder("YYYY/MM/DD").fill(day)
    popover.get_by_placeholder("HH:mm").fill(hour)
    page.keyboard.press("Escape")
    popover.wait_for(state="hidden")


@pytest.mark.timeout(600)
def test_the_ui_backfills_a_day_and_triggers_another_through_the_form(synced):
    stack = synced
    stack.pause("data_quality_check", True)  # what follows these two days was shown above; their checks wait
    with browser_session(stack, "operator") as page:
        # Trigger -> Backfill: 11-09 00:00 .. 03:00 is the run whose data interval starts 11-09 02:00
        page.goto(f"{stack.url}/dags/daily_etl", wait_until="networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog").first
        dialog.get_by_text("Backfill", exact=True).click()
        pick_datetime(page, 0, "2026/11/09", "00:00")
        pick_datetime(page, 1, "2026/11/09", "03:00")
        page.get_by_text("1 run will be triggered").wait_for(timeout=30_000)
        dialog.get_by_role("button", name="Run Backfill", exact=True).click()
        dialog.wait_for(state="hidden", timeout=30_000)
        # Trigger -> Single Run with the partition typed into the run parameters form
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog").first
        dialog.get_by_text("Single Run", exact=True).click()  # the dialog remembers the last mode
        dialog.locator("input[name=element_partition]").fill("2026-11-10")
        dialog.get_by_role("button", name="Trigger", exact=True).click()
        dialog.wait_for(state="hidden", timeout=30_000)
    runs = stack.wait_until_idle(["daily_etl"])["daily_etl"]
    by_day = {day_of(r): r for r in runs if day_of(r) in ("2026-11-09", "2026-11-10")}
    assert {d: (r["run_type"], r["state"]) for d, r in by_day.items()} == {
        "2026-11-09": ("backfill", "success"),
        "2026-11-10": ("manual", "success"),
    }
    loaded = query(stack.warehouse, "SELECT dt::text, count(*) FROM core.fact_payments "
                   "WHERE dt IN ('2026-11-09', '2026-11-10') GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert loaded == [(d, stack.manifest[d]["payments"]["rows_loaded"]) for d in ("2026-11-09", "2026-11-10")]


# What the scheduler does at 02:00 of 11-21 for daily_etl (SchedulerJobRunner._create_dag_runs): a scheduled
# run through SerializedDAG.create_dagrun, which also creates the run's deadlines.
CREATE_SCHEDULED_RUN = """
import sys
from datetime import UTC, datetime, timedelta
from airflow.models.dagbag import DBDagBag
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType, DagRunType

start = datetime(2026, 11, 20, 2, tzinfo=UTC)
with create_session() as session:
    dag = DBDagBag().get_latest_version_of_dag("daily_etl", session=session)
    run = dag.create_dagrun(
        run_id=f"scheduled__{start.isoformat()}", run_type=DagRunType.SCHEDULED, logical_date=start,
        data_interval=(start, start + timedelta(days=1)), run_after=start + timedelta(days=1),
        triggered_by=DagRunTriggeredByType.TIMETABLE, state=DagRunState.QUEUED, session=session,
    )
    print(run.run_id)
"""


def test_a_late_scheduled_run_alerts_once(synced):
    """A scheduled run still running at its deadline posts one alert (its day has no landing files, so it is
    still waiting for them when the deadline passes)."""
    stack = synced
    before = len(stack.deadline_posts())
    created = subprocess.run([sys.executable, "-c", CREATE_SCHEDULED_RUN], env=stack.env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert created.returncode == 0, created.stderr[-3000:]
    run_id = created.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 120
    while len(stack.deadline_posts()) == before and time.monotonic() < deadline:
        time.sleep(2)
    time.sleep(10)  # a second alert for the same run would arrive within the scheduler's next loops
    posts = stack.deadline_posts()[before:]
    stack.op("PATCH", f"/api/v2/dags/daily_etl/dagRuns/{run_id}", body={"state": "failed"})
    assert len(posts) == 1, posts
    assert run_id in posts[0]


def test_a_workers_slot_is_free_as_soon_as_its_task_process_exits(synced):
    """Every task try the module ran: its worker took the next task once the process ended, not up to
    ``[workers] min_heartbeat_interval`` (5 s) later (upstream_fixes: the supervisor's exit wait)."""
    tails = synced.slot_tails()
    assert len(tails) > 100, len(tails)  # the chain's days, the week, the UI's runs
    late = {task: round(seconds, 1) for task, seconds in tails.items() if seconds >= 4.5}
    ordered = sorted(tails.values())
    print(
        f"slot freed after the task's last log line: median {ordered[len(ordered) // 2]:.2f} s, "
        f"95th percentile {ordered[int(len(ordered) * 0.95)]:.2f} s, most {ordered[-1]:.2f} s, {len(tails)} tries"
    )
    assert late == {}


# tasks whose OpenLineage COMPLETE event names datasets: a load, the gate, a feature build
LINEAGE_TASKS = {
    "daily_etl": "load_payments",
    "data_quality_check": "publish_gate",
    "feature_engineering": "build_customer_features",
}


def test_every_task_try_the_workers_ran_reported_its_lineage(synced):
    """The task processes inherit the OpenLineage listener from the worker (worker_preload): each successful try
    still sends its own COMPLETE event with the datasets it read and wrote."""
    from acme_lineage.events import read_events

    events = read_events([synced.home / "events.jsonl"])
    assert events.malformed == 0
    for dag_id, task_id in LINEAGE_TASKS.items():
        succeeded = sum(t["state"] == "success" for r in synced.runs(dag_id)
                        for t in synced.tries(dag_id, r["dag_run_id"], task_id))  # fmt: skip
        reported = [run for run in events.runs if run.job_name == f"{dag_id}.{task_id}" and run.outputs]
        assert succeeded > 5, (dag_id, succeeded)  # the backfilled days, the week, the re-run day
        assert len(reported) == succeeded, (dag_id, task_id, len(reported), succeeded)
