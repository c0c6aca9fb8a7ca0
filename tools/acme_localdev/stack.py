"""`make up` / `make down`: the deployed topology on this machine, on this checkout's AIRFLOW_HOME, without Docker.

``up`` creates and migrates the metadata DB (PostgreSQL, ``env.METADATA_DB``), imports
``airflow_settings.yaml``, applies the warehouse's schema migrations, then starts
api-server, scheduler, dag-processor, triggerer and ``--workers`` Celery workers
(CeleryExecutor, as compose and Helm run it: broker ``AIRFLOW__CELERY__BROKER_URL``,
the local Redis by default; results in the metadata DB), plus the local stand-ins the
default connections point at (the FX API on 18080, a Slack webhook recorder on 18081).
``--executor local`` is the lighter variant: LocalExecutor, no broker, no workers.
Each service runs in its own process group; pids go to ``.airflow/run/``, output to
``.airflow/logs/services/``. ``up`` returns once ``/api/v2/monitor/health`` reports every
component healthy and every worker answers a Celery ping.

Sign-in: SimpleAuthManager with one user per role (``USERS``); the api-server
generates their passwords into ``.airflow/passwords.json`` (git-ignored). The
REST API answers 401 without a bearer token (``POST /auth/token``).

python -m acme_localdev.stack up [--port 8080] [--workers 2] [--executor celery|local]
python -m acme_localdev.stack down
python -m acme_localdev.stack start NAME   # start one service again (after a crash, or a test's kill -9)
python -m acme_localdev.stack standins     # what the "standins" service runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from acme_localdev import env

# One user per SimpleAuthManager role (viewer < user < op < admin); see docs/operations.md.
USERS = {"admin": "admin", "operator": "op", "engineer": "user", "auditor": "viewer"}
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
# the ports the default connections (airflow_settings.yaml) name; the tests move them
FX_PORT = int(os.environ.get("ACME_FX_PORT", env.FX_PORT))
SLACK_PORT = int(os.environ.get("ACME_SLACK_PORT", env.SLACK_PORT))


# The broker `make up` uses unless AIRFLOW__CELERY__BROKER_URL is set: a database of the local Redis of its own
# (compose uses redis://redis:6379/1 too); task results go to the metadata DB, as in compose and Helm.
BROKER_URL = "redis://127.0.0.1:6379/1"
# Task slots per worker: 2 workers x 2 on this 2-core machine; a worker serves the default queue, as in compose.
WORKER_CONCURRENCY = 2


# While the broker is down, a publish fails at once and the Celery executor fails the task (a try burnt per
# scheduler loop: a 20 s outage used up 2 tries in tests/test_cluster_faults.py). Celery retrying the publish
# for longer than [celery] operation_timeout (1 s) turns that into a timeout, which the executor retries on its
# next loop, task_publish_max_retries times (300: about 5 minutes), the task still queued. Each worker imports
# acme_pipelines.worker_preload at start-up (Celery's `imports`), before it forks: its task processes inherit
# those imports instead of each paying for them. Compose and Helm set the same.
CELERY_SETTINGS = {
    "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps(
        {
            "task_publish_retry_policy": {
                "max_retries": 10,
                "interval_start": 0.5,
                "interval_step": 0.5,
                "interval_max": 1,
            },
            "imports": ["acme_pipelines.worker_preload"],
        }
    ),
    "AIRFLOW__CELERY__TASK_PUBLISH_MAX_RETRIES": "300",
}


def celery_environment() -> dict[str, str]:
    """CeleryExecutor settings as compose and Helm set them (values already in the environment win)."""
    metadata = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", env.metadata_dsn())
    defaults = {
        "AIRFLOW__CELERY__BROKER_URL": BROKER_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata.replace("postgresql+psycopg2://", "postgresql://"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        **CELERY_SETTINGS,
    }
    # the executor is not a default: env.local_environment's LocalExecutor is the light variant
    return {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", **{n: os.environ.get(n, v) for n, v in defaults.items()}}


def stack_environment(home: Path, port: int) -> dict[str, str]:
    """What every service of the local stack gets on top of ``env.local_environment``."""
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # tokens signed by the api-server must verify in the scheduler's task runner: one secret per checkout
        "AIRFLOW__API_AUTH__JWT_SECRET": env.local_secret(home, "jwt.secret"),
        "AIRFLOW__API__SECRET_KEY": env.local_secret(home, "api.secret"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",  # 2 cores
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # nothing runs until its user unpauses or triggers it
    }


def services(port: int, host: str, workers: int = 0) -> dict[str, list[str]]:
    """Service name -> command. Workers are ``worker-1`` .. ``worker-N``, each with a Celery hostname of its own;
    task logs are files on this machine's disk, which the api-server reads, so no worker serves them."""
    airflow = [sys.executable, "-m", "airflow"]
    commands = {
        "standins": [sys.executable, "-m", "acme_localdev.stack", "standins"],
        "api-server": [*airflow, "api-server", "--host", host, "--port", str(port), "--workers", "1"],
        "scheduler": [*airflow, "scheduler"],
        "dag-processor": [*airflow, "dag-processor"],
        "triggerer": [*airflow, "triggerer"],
    }
    for number in range(1, workers + 1):
        commands[f"worker-{number}"] = [
            *airflow, "celery", "worker", "--celery-hostname", f"worker-{number}@%h", "--skip-serve-logs",
        ]  # fmt: skip
    return commands


def saved_services(home: Path) -> dict[str, list[str]]:
    """The commands and environment ``up`` started (``start`` restarts one of them the same way)."""
    return json.loads((run_dir(home) / "services.json").read_text())


def start(home: Path, name: str, command: list[str], environment: dict[str, str]) -> subprocess.Popen:
    """Start one service in a process group of its own, output appended to its log, pid to its pid file."""
    logs = home / "logs" / "services"
    logs.mkdir(parents=True, exist_ok=True)
    run_dir(home).mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("a") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment)
    (run_dir(home) / f"{name}.pid").write_text(str(child.pid))
    return child


def celery_workers(timeout: float = 2.0) -> list[str]:
    """Hostnames of the Celery workers that answer a ping on the configured broker."""
    from airflow.providers.celery.executors.celery_executor_utils import app

    try:
        return sorted(name for reply in app.control.ping(timeout=timeout) for name in reply)
    except Exception:  # a broker that does not answer yet is a state to wait through, not an error
        return []


def broker_answers(url: str) -> bool:
    """True if the broker's host:port accepts a TCP connection."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    default = 6379 if parts.scheme.startswith("redis") else 5672
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default), timeout=3):
            return True
    except OSError:
        return False


def run_dir(home: Path) -> Path:
    return home / "run"


def process_alive(pid: int) -> bool:
    """A live process of this stack: it exists, is not a zombie, and runs airflow or the stand-ins
    (after a reboot a stale pid file may name somebody else's process)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    zombie = any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())
    # a Celery worker retitles itself "[celeryd: worker-1@host:MainProcess] ..."
    return not zombie and any(mark in command for mark in (b"airflow", b"acme_localdev.stack", b"celeryd: "))


def running(home: Path) -> dict[str, int]:
    """Services whose pid file names a live process of this stack; stale pid files are removed."""
    alive = {}
    for pid_file in sorted(run_dir(home).glob("*.pid")):
        try:
            pid = int(pid_file.read_text())
        except ValueError:
            pid_file.unlink()
            continue
        if process_alive(pid):
            alive[pid_file.stem] = pid
        else:
            pid_file.unlink()
    return alive


def health(port: int) -> dict[str, str]:
    """Component -> status from the api-server's health endpoint (empty while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as answer:
            body = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return {name: str((body.get(name) or {}).get("status")) for name in COMPONENTS}


def parsed_dags(since: datetime) -> tuple[int, dict[str, str]]:
    """(DAGs the dag-processor has parsed since ``since``, import errors by file) from the metadata DB."""
    from airflow.models import DagModel
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    with create_session() as session:
        count = session.query(DagModel).filter(DagModel.is_stale.is_(False), DagModel.last_parsed_time >= since).count()
        errors = {e.filename: e.stacktrace for e in session.query(ParseImportError)}
    return count, errors


def up(port: int = 8080, host: str = "127.0.0.1", workers: int = 2, executor: str = "celery",
       timeout: float = 240.0) -> int:  # fmt: skip
    from acme_localdev.cli import detail, init_airflow, migrate_warehouse, step

    home = Path(os.environ["AIRFLOW_HOME"])
    os.environ.update(stack_environment(home, port))
    if executor == "celery":
        os.environ.update(celery_environment())
        broker = os.environ["AIRFLOW__CELERY__BROKER_URL"]
        if not broker_answers(broker):
            print(f"ERROR: the Celery broker {broker} does not answer. Start Redis with\n"
                  "  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no\n"
                  "or set AIRFLOW__CELERY__BROKER_URL, or run the light variant: make up EXECUTOR=local",
                  file=sys.stderr)  # fmt: skip
            return 1
    else:
        workers = 0
    commands = services(port, host, workers)
    names = list(commands)
    if alive := running(home):
        if set(alive) == set(names):
            step(f"already running: {', '.join(alive)} (make down to stop)")
            return 0
        step(f"partly running ({', '.join(alive)}): stopping those first")
        down()
    step("[1/3] metadata DB, airflow_settings.yaml and the warehouse's schema")
    init_airflow()
    migrate_warehouse()
    logs = home / "logs" / "services"
    run_dir(home).mkdir(parents=True, exist_ok=True)
    (run_dir(home) / "services.json").write_text(json.dumps({"commands": commands, "environment": dict(os.environ)}))
    step(f"[2/3] starting {', '.join(names)} (executor: {os.environ['AIRFLOW__CORE__EXECUTOR']}; logs: {logs}/)")
    started_at = datetime.now(UTC)
    children = {name: start(home, name, command, dict(os.environ)) for name, command in commands.items()}

    def failed(why: str) -> int:
        print(f"ERROR: {why}; see {logs}/<name>.log", file=sys.stderr)
        down()
        return 1

    step(f"[3/3] waiting for http://127.0.0.1:{port}/api/v2/monitor/health, the DAGs and {workers} worker(s)")
    started, last = time.monotonic(), {}
    expected = len(list(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).glob("*.py")))
    while True:
        if dead := [name for name, child in children.items() if child.poll() is not None]:
            return failed(f"{', '.join(dead)} exited")
        now = health(port)
        if workers:
            answering = celery_workers()
            now["celery workers"] = f"{len(answering)}/{workers}"
        if now != last:
            detail(", ".join(f"{k} {v}" for k, v in now.items()) or "api-server not answering yet")
            last = now
        if (
            now
            and all(v == "healthy" for k, v in now.items() if k in COMPONENTS)
            and (not workers or now["celery workers"] == f"{workers}/{workers}")
        ):
            count, errors = parsed_dags(since=started_at)
            if errors:
                for path, error in errors.items():
                    print(f"ERROR: {path} does not import:\n{error}", file=sys.stderr)
                return failed(f"{len(errors)} DAG file(s) do not import")
            if count >= expected:
                break
        if time.monotonic() - started > timeout:
            return failed(f"not ready after {timeout:.0f}s: {last}, {parsed_dags(since=started_at)[0]} DAGs parsed")
        time.sleep(2)
    detail(f"{count} DAGs parsed from {expected} files in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}")
    if workers:
        detail(f"Celery workers: {', '.join(celery_workers())} on {os.environ['AIRFLOW__CELERY__BROKER_URL']}")
    step(f"Airflow is up at http://{host}:{port} in {time.monotonic() - started:.0f}s")
    detail(f"users (role): {', '.join(f'{u} ({r})' for u, r in USERS.items())}")
    detail(f"passwords: {home / 'passwords.json'} (generated by the api-server; git-ignored)")
    detail("stop it with: make down")
    return 0


def down(grace: float = 20.0) -> int:
    from acme_localdev.cli import step

    home = Path(os.environ["AIRFLOW_HOME"])
    alive = running(home)
    if not alive:
        step("nothing running")
        return 0
    for pid in alive.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    for name, pid in running(home).items():
        step(f"{name} ignored SIGTERM for {grace:.0f}s: killing it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    time.sleep(0.5)
    if left := running(home):  # their pid files stay, so the next make down tries again
        print(f"ERROR: still running: {left}", file=sys.stderr)
        return 1
    step(f"stopped: {', '.join(alive)}")
    return 0


def standins() -> int:
    """The FX API and a Slack webhook recorder on the ports the default connections name, until stopped."""
    from acme_localdev.recorder import HttpRecorder
    from acme_sample_data.fx import FxServer

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    host = os.environ.get("ACME_STANDINS_HOST", "127.0.0.1")  # compose's stand-ins container: 0.0.0.0
    with FxServer(port=FX_PORT, host=host), HttpRecorder(SLACK_PORT, host=host) as slack:
        print(f"FX API on 127.0.0.1:{FX_PORT}, Slack webhook recorder on 127.0.0.1:{SLACK_PORT}", flush=True)
        seen = 0
        while not stop:
            for request in slack.requests[seen:]:
                print(f"slack post: {request.body.decode(errors='replace')[:500]}", flush=True)
            seen = len(slack.requests)
            time.sleep(1)
    return 0


def restart(name: str) -> int:
    """Start service ``name`` of the running stack again, with the command and environment ``up`` gave it."""
    from acme_localdev.cli import step

    home = Path(os.environ["AIRFLOW_HOME"])
    saved = saved_services(home)
    if name not in saved["commands"]:
        print(f"ERROR: no service {name!r}; the stack has {', '.join(saved['commands'])}", file=sys.stderr)
        return 1
    if name in running(home):
        step(f"{name} is running")
        return 0
    child = start(home, name, saved["commands"][name], saved["environment"])
    step(f"{name} started (pid {child.pid})")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m acme_localdev.stack")
    parser.add_argument("command", choices=("up", "down", "start", "standins"))
    parser.add_argument("name", nargs="?", help="start: the service to start again (e.g. scheduler, worker-1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--host", default=os.environ.get("AIRFLOW_HOST", "127.0.0.1"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS") or 2),
                        help="Celery workers (default 2; env WORKERS)")  # fmt: skip
    parser.add_argument("--executor", choices=("celery", "local"), default=os.environ.get("EXECUTOR") or "celery",
                        help="celery (default: the deployed topology) or local (LocalExecutor, no broker)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "standins":
        return standins()
    env.activate()
    if args.command == "start":
        return restart(args.name or parser.error("start needs the service's name"))
    return up(args.port, args.host, args.workers, args.executor) if args.command == "up" else down()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
