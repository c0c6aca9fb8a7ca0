"""The production auth manager (FAB, compose and Helm) against a real api-server.

The module builds what compose's ``airflow-init`` and api-server do, on a fresh
PostgreSQL metadata DB and a throwaway AIRFLOW_HOME: ``airflow db migrate`` (which
also creates FAB's ``ab_*`` tables), ``include/auth/create_users.py
include/auth/users.yaml`` with passwords from ``ACME_USER_PASSWORD_*``, ``airflow
dags reserialize`` (the project's DAGs become known, so one can be triggered), then
``airflow api-server`` with ``FabAuthManager`` and ``include/auth/webserver_config.py``.
Then, over HTTP: no token 401, a wrong password 401, the viewer reads but may not
trigger (403), op and user trigger, only op (and admin) read connections, only
admin manages users; and the script: a second run changes nothing, a missing
password variable fails naming it, no output shows a password.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, free_port, query, scratch_databases

pytestmark = pytest.mark.e2e

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
USERS_YAML = ROOT / "include" / "auth" / "users.yaml"
CREATE_USERS = [sys.executable, str(ROOT / "include" / "auth" / "create_users.py"), str(USERS_YAML)]
AIRFLOW = [sys.executable, "-m", "airflow"]
# username -> role, as users.yaml has them (name: Role, or name: {role: Role, ...})
USERS = {
    name: spec if isinstance(spec, str) else spec["role"]
    for name, spec in yaml.safe_load(USERS_YAML.read_text()).items()
}
BY_ROLE = {role: name for name, role in USERS.items()}


def start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


class Api:
    def __init__(self, url: str, passwords: dict[str, str]) -> None:
        self.url, self.passwords = url, passwords

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", method=method, data=data)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text, answer_type = answer.status, answer.read().decode(), answer.headers["Content-Type"] or ""
        except urllib.error.HTTPError as error:
            status, text, answer_type = error.code, error.read().decode(), error.headers["Content-Type"] or ""
        is_json = text and answer_type.startswith("application/json")
        return status, (json.loads(text) if is_json else {"text": text})

    def token(self, role: str) -> str:
        user = BY_ROLE[role]
        status, body = self.call("POST", "/auth/token", body={"username": user, "password": self.passwords[user]})
        assert status == 201, (user, status, body)
        return body["access_token"]


@contextlib.contextmanager
def api_server(env: dict, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """``airflow api-server`` in a process group of its own, killed (the group) at the end."""
    with log.open("w") as out:
        command = [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"api-server exited {server.returncode}: {log.read_text()[-3000:]}"
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as answer:
            if answer.status == 200:
                return
        assert time.monotonic() < deadline, f"api-server not healthy after {timeout:.0f} s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fab(tmp_path_factory, request):
    """A migrated metadata DB with the users and the project's DAGs, and an api-server with FAB on it."""
    timings, began = {}, time.monotonic()

    def lap(name: str, since: float) -> None:
        timings[name] = time.monotonic() - since

    def report() -> None:
        lap("module total", began)
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("\n" + "\n".join(f"test_fab_auth timing: {name}: {s:.1f} s" for name, s in timings.items()))

    home = tmp_path_factory.mktemp("fab") / "airflow"
    home.mkdir()
    port, log = free_port(), home / "api-server.log"
    passwords = {user: secrets.token_urlsafe(16) for user in USERS}
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(report)  # last, after the api-server is stopped and the database dropped
        dsn = cleanup.enter_context(scratch_databases())()  # a fresh PostgreSQL database, dropped at the end
        env = {name: value for name, value in os.environ.items() if not name.startswith("ACME_USER_PASSWORD_")}
        env.update({  # the session's local environment (conftest), on a metadata DB and AIRFLOW_HOME of this module
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dsn.replace("postgresql://", "postgresql+psycopg2://"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__CORE__AUTH_MANAGER": FAB,
            "AIRFLOW__FAB__CONFIG_FILE": str(ROOT / "include" / "auth" / "webserver_config.py"),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            **{f"ACME_USER_PASSWORD_{user.upper()}": password for user, password in passwords.items()},
        })  # fmt: skip
        since = time.monotonic()
        ok(subprocess.run([*AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180))
        lap("airflow db migrate", since)
        fab_tables = [r[0] for r in query(dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", ("ab\\_%",))]
        since = time.monotonic()
        # before reserialize: both insert FAB permission rows (the roles', the DAGs')
        first = ok(subprocess.run(CREATE_USERS, env=env, capture_output=True, text=True, timeout=180))
        lap("create_users.py, first run", since)
        since = time.monotonic()
        server = cleanup.enter_context(api_server(env, port, log))
        # while the api-server starts: the DAGs, the second run, a run without one password
        reserialize = start([*AIRFLOW, "dags", "reserialize"], env)
        second = start(CREATE_USERS, env)
        unset = start(CREATE_USERS, {k: v for k, v in env.items() if k != "ACME_USER_PASSWORD_ENGINEER"})
        runs = {"second": finish(second), "unset": finish(unset), "reserialize": ok(finish(reserialize, 180))}
        lap("dags reserialize + create_users.py 2nd run + run without a password, beside the api-server start", since)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server, log)
        lap("api-server healthy, from its start", since)
        yield {"api": Api(url, passwords), "first": first, "fab_tables": fab_tables, **runs, "passwords": passwords}


def test_airflow_db_migrate_alone_creates_the_fab_tables(fab):
    assert {"ab_user", "ab_role", "ab_user_role", "ab_permission_view_role"} <= set(fab["fab_tables"])


def test_no_token_and_a_wrong_password_get_401(fab):
    api = fab["api"]
    assert api.call("GET", "/api/v2/dags")[0] == 401
    status, body = api.call("POST", "/auth/token", body={"username": "auditor", "password": "wrong"})
    assert status == 401, body
    status, body = api.call("POST", "/auth/token", body={"username": "nobody", "password": "x"})
    assert status == 401, body


def test_the_ui_has_a_sign_in_form_and_no_self_registration(fab):
    api = fab["api"]
    status, page = api.call("GET", "/auth/login/")
    assert status == 200
    assert 'name="password"' in page["text"]
    assert api.call("GET", "/auth/register/")[0] == 404


def test_the_viewer_reads_the_dags_but_may_not_trigger(fab):
    api, token = fab["api"], fab["api"].token("Viewer")
    status, body = api.call("GET", "/api/v2/dags?limit=100", token=token)
    assert status == 200, body
    assert "daily_etl" in {d["dag_id"] for d in body["dags"]}
    status, body = api.call("POST", "/api/v2/dags/daily_etl/dagRuns", token=token, body={"logical_date": None})
    assert status == 403, body


@pytest.mark.parametrize("role", ["Op", "User"])
def test_op_and_user_trigger_a_run(fab, role):
    api = fab["api"]
    body = {"logical_date": None, "conf": {"partition": "2026-11-01"}}
    status, run = api.call("POST", "/api/v2/dags/daily_etl/dagRuns", token=api.token(role), body=body)
    assert status == 200, run
    assert (run["dag_id"], run["state"], run["conf"]) == ("daily_etl", "queued", body["conf"])


def test_connections_for_op_and_admin_user_admin_for_admin_only(fab):
    api = fab["api"]
    tokens = {role: api.token(role) for role in ("Admin", "Op", "User", "Viewer")}
    connections = {role: api.call("GET", "/api/v2/connections", token=t)[0] for role, t in tokens.items()}
    assert connections == {"Admin": 200, "Op": 200, "User": 403, "Viewer": 403}
    users = {role: api.call("GET", "/auth/fab/v1/users?limit=100", token=t) for role, t in tokens.items()}
    assert {role: answer[0] for role, answer in users.items()} == {"Admin": 200, "Op": 403, "User": 403, "Viewer": 403}
    listed = {u["username"]: [r["name"] for r in u["roles"]] for u in users["Admin"][1]["users"]}
    assert listed == {user: [role] for user, role in USERS.items()}


def test_create_users_created_four_then_changes_nothing_on_a_second_run(fab):
    assert all(f"{user}: created, role {role}" in fab["first"].stdout for user, role in USERS.items())
    second = ok(fab["second"])
    assert all(f"{user}: unchanged, role {role}" in second.stdout for user, role in USERS.items()), second.stdout
    assert "no changes" in second.stdout
    assert not [word for word in ("created", "updated") if word in second.stdout], second.stdout


def test_a_missing_password_variable_fails_naming_it(fab):
    unset = fab["unset"]
    assert unset.returncode != 0
    assert "ACME_USER_PASSWORD_ENGINEER" in unset.stderr
    assert "ACME_USER_PASSWORD_ADMIN" not in unset.stderr


def test_no_output_shows_a_password(fab):
    output = "".join(r.stdout + r.stderr for r in (fab["first"], fab["second"], fab["unset"]))
    assert not [user for user, password in fab["passwords"].items() if password in output]
