"""The running cluster the e2e tests drive: `make up`'s topology on a throwaway AIRFLOW_HOME.

``running_cluster`` starts what ``python -m acme_localdev.stack up`` starts for ``make up``
(api-server, scheduler, dag-processor, triggerer, two Celery workers; CeleryExecutor on a
PostgreSQL metadata DB of its own) with a Redis broker of its own (``RedisBroker``: a real
redis-server on a free port, append-only file on, so a test can stop and restart it without
touching the Redis other tests use), every connection pointing at the test's databases,
landing files and stand-ins. ``Cluster`` is what a user has: the REST API (what the UI calls),
plus the processes, so a test can kill one and start it again as ``stack start NAME`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from acme_localdev.recorder import HttpRecorder
from acme_localdev.stack import process_alive
from acme_localdev.warehouse_compare import pipeline_environment, postgres_connection
from acme_sample_data.build import build
from acme_sample_data.fx import FxServer
from acme_sample_data.generator import GeneratorConfig
from conftest import free_port, scratch_databases

STACK = [sys.executable, "-m", "acme_localdev.stack"]
WORKERS = 2


class RedisBroker:
    """A redis-server of the test's own: every write fsynced to its append-only file, so messages survive a
    stop (as a production broker's persistence keeps them)."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="acme-broker-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """kill -9: the broker goes away at once, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> RedisBroker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Cluster:
    url: str
    home: Path
    warehouse: str
    metadata: str
    manifest: dict
    slack: HttpRecorder
    broker: RedisBroker
    env: dict
    _tokens: dict = field(default_factory=dict)

    # -- the REST API -------------------------------------------------------------------------

    def passwords(self) -> dict[str, str]:
        return json.loads((self.home / "passwords.json").read_text())

    def token(self, user: str) -> str:
        body = {"username": user, "password": self.passwords()[user]}
        return self.call("POST", "/auth/token", body=body, expect=201)["access_token"]

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None,
             expect: int = 200) -> dict:  # fmt: skip
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None
        )
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        assert status == expect, f"{method} {path}: {status} {text[:500]}"
        return json.loads(text) if text else {}

    def op(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict:
        """A call as the user with the ``op`` role (what an on-call data engineer has)."""
        if "operator" not in self._tokens:
            self._tokens["operator"] = self.token("operator")
        return self.call(method, path, token=self._tokens["operator"], body=body, expect=expect)

    def pause(self, dag_id: str, paused: bool) -> None:
        self.op("PATCH", f"/api/v2/dags/{dag_id}", body={"is_paused": paused})

    def trigger(self, dag_id: str, partition: str) -> str:
        """A run for one day, as the trigger form sends it; returns its run id."""
        run = self.op("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                      body={"logical_date": None, "conf": {"partition": partition}})  # fmt: skip
        return run["dag_run_id"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.op("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.op("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try of a task (the UI's try selector), oldest first."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return sorted(self.op("GET", path)["task_instances"], key=lambda t: t["try_number"])

    def runs(self, dag_id: str) -> list[dict]:
        return self.op("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.op("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        states = {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
        raise AssertionError(f"{dag_id} {run_id} not done after {timeout:.0f}s: {states}")

    def wait_until_idle(self, dag_ids: list[str], timeout: float = 600) -> dict[str, list[dict]]:
        """Wait until no run of ``dag_ids`` is queued or running (twice in a row); returns their runs. A producer's
        trigger task creates the consumer's run before the producer's run ends, so idle means done."""
        deadline, calm, busy = time.monotonic() + timeout, 0, []
        while time.monotonic() < deadline:
            runs = {dag_id: self.runs(dag_id) for dag_id in dag_ids}
            busy = [(d, r["dag_run_id"], r["state"]) for d in dag_ids for r in runs[d]
                    if r["state"] in ("queued", "running")]  # fmt: skip
            calm = 0 if busy else calm + 1
            if calm >= 2:
                return runs
            time.sleep(2)
        raise AssertionError(f"still busy after {timeout:.0f}s: {busy}")

    def backfill(self, dag_id: str, first: str, last: str, max_active_runs: int) -> dict:
        """Backfill the days ``first``..``last`` as the UI's dialog does (logical dates are the data
        intervals' starts, 02:00 of each day)."""
        return self.op("POST", "/api/v2/backfills", body={
            "dag_id": dag_id, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T03:00:00Z",
            "max_active_runs": max_active_runs, "reprocess_behavior": "none", "run_backwards": False,
        })  # fmt: skip

    def catch_up_sync(self, end: str, then_unpause: list[str]) -> None:
        """The hourly sync's catch-up window up to ``end``, run once by the scheduler (the orders every quality
        check needs; orders are updated up to 30 h after they are placed), then unpause ``then_unpause``."""
        self.pause("hourly_incremental_sync", False)
        self.op("POST", "/api/v2/dags/hourly_incremental_sync/dagRuns", body={
            "logical_date": None, "conf": {"partition": "2025-09-01T00:00", "partition_end": f"{end}T00:00"},
        })  # fmt: skip
        runs = self.wait_until_idle(["hourly_incremental_sync"], timeout=600)["hourly_incremental_sync"]
        assert [r["state"] for r in runs] == ["success"]
        for dag_id in then_unpause:
            self.pause(dag_id, False)

    def deadline_posts(self) -> list[str]:
        return [r.body.decode() for r in self.slack.requests if b"Deadline missed" in r.body]

    def slot_tails(self) -> dict[str, float]:
        """Per task try run so far: seconds from its log's last line to its worker's "Workload finished" (the slot
        freed), from the task logs and the workers' logs."""
        finished = {}
        for log in (self.home / "logs" / "services").glob("worker-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if "Workload finished" in line and "workload_id=" in line:
                    ti_id = line.split("workload_id=")[1].split()[0]
                    finished[ti_id] = datetime.fromisoformat(line.split()[0])
        tails = {}
        for log in (self.home / "logs").glob("dag_id=*/run_id=*/task_id=*/attempt=*.log"):
            lines = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
            ti_id = next((line["ti_id"] for line in lines if line.get("ti_id")), None)
            if ti_id in finished:
                last = datetime.fromisoformat(lines[-1]["timestamp"])
                tails[str(log.relative_to(self.home / "logs"))] = (finished[ti_id] - last).total_seconds()
        return tails

    # -- the processes ------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        return {f.stem: int(f.read_text()) for f in (self.home / "run").glob("*.pid")}

    def kill(self, name: str) -> None:
        """kill -9 a service and every process it started (task processes run in groups of their own), as a
        crash of its machine or container does."""
        for pid in [self.pids()[name], *descendants(self.pids()[name])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(self.pids()[name]) and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self, name: str) -> None:
        """Start a stopped service again, as ``python -m acme_localdev.stack start NAME`` does."""
        started = subprocess.run([*STACK, "start", name], env=self.env, capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stdout + started.stderr

    def service_of(self, pid: int) -> str:
        """The service that started process ``pid`` (a task's process descends from its worker, in a process
        group of its own)."""
        services = {p: n for n, p in self.pids().items()}
        while pid > 1 and pid not in services:
            status = Path(f"/proc/{pid}/status").read_text()
            pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        return services[pid]

    def worker_hostnames(self) -> list[str]:
        """The Celery workers that answer a ping on this cluster's broker (``celery inspect ping``)."""
        script = "from acme_localdev.stack import celery_workers; print('WORKERS', *celery_workers(3.0))"
        done = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        (line,) = [line for line in done.stdout.splitlines() if line.startswith("WORKERS")]  # airflow logs go there too
        return line.split()[1:]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first found through /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for threads in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in threads.read_text().split()]
                found += children
                todo += children
    return found


@contextmanager
def running_cluster(home: Path, config: GeneratorConfig, **settings: str) -> Iterator[Cluster]:
    """Generated data for ``config``, then the cluster up on it (``settings`` are extra environment variables);
    stopped with ``stack down`` at the end, which must leave no process behind."""
    port = free_port()
    with (
        scratch_databases() as make,
        FxServer(config.day_list()) as fx,
        HttpRecorder() as slack,
        RedisBroker() as broker,
    ):
        app, warehouse = make(), make()
        metadata = make().replace("postgresql://", "postgresql+psycopg2://")  # a scheduler needs PostgreSQL
        landing = home.parent / "landing"
        result = build(config, landing, app)
        environment = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__CELERY__BROKER_URL": broker.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(home / "events.jsonl"), "append": True}
            ),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only what the tests create runs
            # the DAG files do not change during a test: parsed once, not every 30 s (each parse of the ten files
            # costs CPU-seconds that the cluster's tasks and the other test process need on 2 cores)
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0",
            "AIRFLOW_VAR_LANDING_WAIT_TIMEOUT_MINUTES": "3",  # a day without files fails soon, not in 6 h
            "ACME_FX_PORT": str(free_port()),
            "ACME_SLACK_PORT": str(free_port()),
            **pipeline_environment(app, postgres_connection(warehouse), fx.url, slack.url, landing),
            **settings,
        }
        home.mkdir(parents=True)
        up = [*STACK, "up", "--port", str(port), "--workers", str(WORKERS), "--executor", "celery"]
        started_at = time.monotonic()
        started = subprocess.run(up, env=environment, capture_output=True, text=True, timeout=400)
        print(f"cluster up in {time.monotonic() - started_at:.0f}s")
        try:
            assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
            manifest = json.loads(result.manifest_path.read_text())["days"]
            yield Cluster(f"http://127.0.0.1:{port}", home, warehouse, metadata, manifest, slack, broker, environment)
        finally:
            pids = {f.stem: int(f.read_text()) for f in (home / "run").glob("*.pid")}
            stopped = subprocess.run([*STACK, "down"], env=environment, capture_output=True, text=True, timeout=120)
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            # api-server, scheduler, dag-processor, triggerer, stand-ins and the workers
            assert set(pids) >= {"api-server", "scheduler", "dag-processor", "triggerer", "standins"}, pids
            still = {name: pid for name, pid in pids.items() if process_alive(pid)}
            assert still == {}, "make down left services running"
