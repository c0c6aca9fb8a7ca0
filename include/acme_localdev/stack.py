"""`make up` / `make down`: Airflow's services on this checkout's AIRFLOW_HOME, without Docker.

``up`` creates and migrates the metadata DB (PostgreSQL, ``env.METADATA_DB``), applies
``airflow_settings.yaml``, applies the warehouse's schema migrations, then starts
api-server, scheduler, dag-processor and triggerer (LocalExecutor), plus the
local stand-ins the default connections point at (the FX API on 18080, a Slack
webhook recorder on 18081). Each runs in its own process group; pids go to
``.airflow/run/``, output to ``.airflow/logs/services/``. ``up`` returns once
``/api/v2/monitor/health`` reports every component healthy.

Sign-in: SimpleAuthManager with one user per role (``USERS``); the api-server
generates their passwords into ``.airflow/passwords.json`` (git-ignored). The
REST API answers 401 without a bearer token (``POST /auth/token``).

python -m acme_localdev.stack up [--port 8080]
python -m acme_localdev.stack down
python -m acme_localdev.stack standins   # what the "standins" service runs
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
        "ACME_DAGS_PAUSED_AT_CREATION": "true",  # nothing runs until its user unpauses or triggers it
    }


def pause_all_once(home: Path) -> int:
    """On the stack's first start, pause the DAGs earlier tools left in the metadata DB unpaused (``make demo``'s
    dag.test runs create them so); later starts keep whatever the user chose. Returns how many were paused."""
    marker = run_dir(home) / "paused-once"
    if marker.exists():
        return 0
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        paused = session.query(DagModel).filter(DagModel.is_paused.is_(False)).update({"is_paused": True})
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("the local stack paused every DAG once on its first start\n")
    return paused


def services(port: int, host: str) -> dict[str, list[str]]:
    airflow = [sys.executable, "-m", "airflow"]
    return {
        "standins": [sys.executable, "-m", "acme_localdev.stack", "standins"],
        "api-server": [*airflow, "api-server", "--host", host, "--port", str(port), "--workers", "1"],
        "scheduler": [*airflow, "scheduler"],
        "dag-processor": [*airflow, "dag-processor"],
        "triggerer": [*airflow, "triggerer"],
    }


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
    return not zombie and (b"airflow" in command or b"acme_localdev.stack" in command)


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


def up(port: int = 8080, host: str = "127.0.0.1", timeout: float = 240.0) -> int:
    from acme_localdev.cli import detail, init_airflow, migrate_warehouse, step

    home = Path(os.environ["AIRFLOW_HOME"])
    os.environ.update(stack_environment(home, port))
    commands = services(port, host)
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
    if paused := pause_all_once(home):
        detail(f"first start: paused {paused} DAG(s) left unpaused by earlier runs; unpause in the UI what should run")
    logs = home / "logs" / "services"
    logs.mkdir(parents=True, exist_ok=True)
    run_dir(home).mkdir(parents=True, exist_ok=True)
    step(f"[2/3] starting {', '.join(names)} (logs: {logs}/)")
    started_at = datetime.now(UTC)
    children: dict[str, subprocess.Popen] = {}
    for name, command in commands.items():
        with (logs / f"{name}.log").open("a") as log:
            children[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ
            )
        (run_dir(home) / f"{name}.pid").write_text(str(children[name].pid))

    def failed(why: str) -> int:
        print(f"ERROR: {why}; see {logs}/<name>.log", file=sys.stderr)
        down()
        return 1

    step(f"[3/3] waiting for http://127.0.0.1:{port}/api/v2/monitor/health and the DAGs")
    started, last = time.monotonic(), {}
    expected = len(list(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).glob("*.py")))
    while True:
        if dead := [name for name, child in children.items() if child.poll() is not None]:
            return failed(f"{', '.join(dead)} exited")
        now = health(port)
        if now != last:
            detail(", ".join(f"{k} {v}" for k, v in now.items()) or "api-server not answering yet")
            last = now
        if now and all(v == "healthy" for v in now.values()):
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
    with FxServer(port=FX_PORT), HttpRecorder(SLACK_PORT) as slack:
        print(f"FX API on 127.0.0.1:{FX_PORT}, Slack webhook recorder on 127.0.0.1:{SLACK_PORT}", flush=True)
        seen = 0
        while not stop:
            for request in slack.requests[seen:]:
                print(f"slack post: {request.body.decode(errors='replace')[:500]}", flush=True)
            seen = len(slack.requests)
            time.sleep(1)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m acme_localdev.stack")
    parser.add_argument("command", choices=("up", "down", "standins"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--host", default=os.environ.get("AIRFLOW_HOST", "127.0.0.1"))
    args = parser.parse_args(argv)
    if args.command == "standins":
        return standins()
    env.activate()
    return up(args.port, args.host) if args.command == "up" else down()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
