"""airflow_settings.yaml -> the files of Airflow's `connections|variables|pools import` -> a real metadata DB.

The loader only fills in ``${NAME}`` from the environment and writes the files; importing is Airflow's.
The integration tests import them with the real commands (``airflow`` subprocesses into a throwaway
SQLite metadata DB, as compose's init does; in-process through Airflow's CLI parser, as make demo and
make up do) and read them back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from acme_pipelines.settings_loader import (
    SettingsError,
    import_commands,
    interpolate,
    load_settings,
    main,
    write_import_files,
)
from conftest import ROOT

SETTINGS = ROOT / "airflow_settings.yaml"
ENV = {"PROJECT_ROOT": "/srv/acme", "SLACK_WEBHOOK_TOKEN": "T1/B2/xyz", "PAGERDUTY_ROUTING_KEY": "rk-12"}
FILES = {"connections.json", "pools.json", "variables.json"}


@pytest.mark.unit
def test_the_files_are_in_the_formats_airflow_imports(tmp_path):
    files = write_import_files(load_settings(SETTINGS, ENV), tmp_path / "out")
    assert {p.name for p in files.values()} == FILES
    connections, pools, variables = (json.loads(files[s].read_text()) for s in ("connections", "pools", "variables"))
    assert (len(connections), len(pools), len(variables)) == (8, 6, 11)
    assert connections["app_db"] == {
        "conn_type": "postgres",
        "description": "Application (OLTP) database, read-only source",
        "host": "127.0.0.1",
        "schema": "app",
        "login": "postgres",
        "port": 5432,
    }, "an empty ${APP_DB_PASSWORD:-} is no password, not an empty one"
    assert connections["redis_cache"]["extra"] == {"db": "0"}
    assert connections["slack_alerts"]["password"] == "T1/B2/xyz"
    # reports reuse the alerts webhook unless SLACK_REPORTS_WEBHOOK_TOKEN is set (a nested default)
    assert connections["slack_reports"]["password"] == "T1/B2/xyz"
    assert pools["fx_api"] == {"slots": 1, "description": "Calls to the rate-limited FX API", "include_deferred": False}
    assert variables["landing_root"] == "file:///srv/acme/data/landing"
    assert variables["cold_storage_class"] == ""
    assert all(isinstance(v, str) for v in variables.values()), "imported as strings, not JSON"
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in files.values()} == {"0o600"}, "connections hold passwords"
    assert import_commands(files) == [
        ["connections", "import", "--overwrite", str(files["connections"])],
        ["variables", "import", "--action-on-existing-key", "overwrite", str(files["variables"])],
        ["pools", "import", str(files["pools"])],
    ]


@pytest.mark.unit
def test_missing_environment_values_are_named_before_anything_is_written(tmp_path, monkeypatch, capsys):
    env = {k: v for k, v in ENV.items() if k != "SLACK_WEBHOOK_TOKEN"}
    with pytest.raises(SettingsError) as raised:
        load_settings(SETTINGS, env)
    assert "SLACK_WEBHOOK_TOKEN (needed by connections.slack_alerts.conn_password)" in str(raised.value)
    assert "PAGERDUTY" not in str(raised.value)

    for name in ("SLACK_WEBHOOK_TOKEN", "PAGERDUTY_ROUTING_KEY", "SLACK_REPORTS_WEBHOOK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        main([str(SETTINGS), "--out", str(out)])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "SLACK_WEBHOOK_TOKEN (needed by connections.slack_alerts.conn_password)" in error
    assert "PAGERDUTY_ROUTING_KEY (needed by connections.pagerduty_events.conn_password)" in error
    assert not out.exists(), "nothing written"


@pytest.mark.unit
def test_only_pools_and_variables_need_no_connection_secrets(tmp_path):
    """Production: connections from AIRFLOW_CONN_* or a secrets backend; their ${NAME} need not be set."""
    env = {"PROJECT_ROOT": "/srv/acme", "LANDING_ROOT": "s3://acme-landing/prod"}
    sections = ("pools", "variables")
    settings = load_settings(SETTINGS, env, sections)
    assert settings.connections == {}
    files = write_import_files(settings, tmp_path, sections)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pools.json", "variables.json"]
    assert json.loads(files["variables"].read_text())["landing_root"] == "s3://acme-landing/prod"
    assert [c[0] for c in import_commands(files)] == ["variables", "pools"]


@pytest.mark.unit
def test_the_command_line_exits_2_naming_the_missing_variables_in_a_fresh_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_WEBHOOK_TOKEN", "PAGERDUTY_ROUTING_KEY")}
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "acme_pipelines.settings_loader", str(SETTINGS), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert "SLACK_WEBHOOK_TOKEN" in result.stderr
    assert "PAGERDUTY_ROUTING_KEY" in result.stderr
    assert not out.exists()


@pytest.mark.unit
def test_environment_overrides_defaults_and_nested_defaults_are_lazy():
    missing: list[str] = []
    assert interpolate("${A:-x${B}y}", {"A": "set"}, "v", missing) == "set"
    assert missing == [], "the default is not evaluated when A is set"
    assert interpolate("${A:-x${B}y}", {"B": "-"}, "v", missing) == "x-y"
    assert interpolate({"k": ["${A:-}"]}, {}, "v", missing) == {"k": [""]}
    interpolate("${A:-${B}}", {}, "v", missing)
    assert missing == ["B (needed by v)"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("airflow: {connections: [{conn_type: http}]}", "lacks 'conn_id'"),
        ("airflow: {connections: [{conn_id: c}]}", "lacks 'conn_type'"),
        ("airflow: {connections: [{conn_id: c, conn_type: http}, {conn_id: c, conn_type: http}]}", "twice"),
        ("airflow: {pools: [{pool_name: p, pool_slot: 0}]}", "at least one slot"),
        ("airflow: {pools: [{pool_name: p, pool_slot: '${SLOTS:-many}'}]}", "integer pool_slot"),
        ("airflow: {variables: [{variable_name: v}, {variable_name: v}]}", "twice"),
        ("airflow: {secrets: []}", "unknown sections"),
        ("connections: []", "top-level 'airflow:'"),
        ("airflow: {variables: [{variable_name: v, variable_value: '${UNCLOSED'}]}", "unclosed"),
    ],
)
def test_malformed_files_fail_with_a_reason(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(path, {})


@pytest.mark.integration
def test_the_airflow_commands_import_the_files_and_a_reimport_updates_in_place(throwaway_airflow, tmp_path):
    """The three commands compose's init runs, as `airflow` processes, on a throwaway metadata DB."""
    settings = load_settings(SETTINGS, ENV)
    files = write_import_files(settings, tmp_path / "settings")
    for command in import_commands(files):
        throwaway_airflow.airflow(*command)
    first = throwaway_airflow.read_settings()
    assert first["connections"] == settings.connections, "every field, the extras, the passwords"
    assert first["variables"] == settings.variables
    assert first["pools"] == {
        "default_pool": {"slots": 128, "description": "Default pool", "include_deferred": False},
        **settings.pools,
    }
    assert first["pools"]["warehouse"]["slots"] == 4
    assert first["connections"]["redis_cache"]["extra"] == {"db": "0"}

    # again, with a new webhook token and database name in the environment: those change, in place
    changed = load_settings(SETTINGS, {**ENV, "SLACK_WEBHOOK_TOKEN": "T9/B9/new", "APP_DB_NAME": "app2"})
    for command in import_commands(write_import_files(changed, tmp_path / "settings")):
        throwaway_airflow.airflow(*command)
    second = throwaway_airflow.read_settings()
    assert second["ids"] == first["ids"], "the same rows: updated, not added"
    assert second["connections"] == changed.connections
    assert second["connections"]["slack_reports"]["password"] == "T9/B9/new"
    assert second["connections"]["app_db"]["schema"] == "app2"
    assert (second["pools"], second["variables"]) == (first["pools"], first["variables"])


CHANGED = """
airflow:
  connections:
    - conn_id: app_db
      conn_type: postgres
      conn_host: ${APP_DB_HOST:-db.internal}
    - conn_id: slack_alerts
      conn_type: slackwebhook
    - conn_id: acme_settings_test
      conn_type: http
      conn_extra: {timeout: "${TIMEOUT:-30}", verify: true}
  pools:
    - pool_name: app_db
      pool_slot: 7
  variables:
    - variable_name: max_reject_ratio
      variable_value: "0.05"
"""


@pytest.mark.integration
def test_the_in_process_import_replaces_what_the_file_changed_and_leaves_the_rest(airflow_db, tmp_path, monkeypatch):
    """make demo / make up's path (acme_localdev.cli.import_settings): the same commands through Airflow's
    CLI parser in one process, on the session's metadata DB."""
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session

    from acme_localdev.cli import import_settings

    monkeypatch.delenv("APP_DB_HOST", raising=False)
    monkeypatch.delenv("TIMEOUT", raising=False)
    assert import_settings() == {"connections": 8, "pools": 6, "variables": 11}
    changed = tmp_path / "settings.yaml"
    changed.write_text(CHANGED)
    for _ in range(2):  # twice: idempotent
        assert import_settings(path=changed) == {"connections": 3, "pools": 1, "variables": 1}
    with create_session() as session:
        app_db = session.query(Connection).filter_by(conn_id="app_db").one()
        assert (app_db.host, app_db.schema, app_db.port, app_db.description) == ("db.internal", None, None, None), (
            "a field removed from the file does not linger"
        )
        # ... except a password: Airflow's import leaves the stored one (Connection.set_password ignores None);
        # docs/operations.md says to delete the connection first
        slack = session.query(Connection).filter_by(conn_id="slack_alerts").one()
        assert (slack.host, slack.password) == (None, os.environ["SLACK_WEBHOOK_TOKEN"])
        added = session.query(Connection).filter_by(conn_id="acme_settings_test").one()
        assert added.extra_dejson == {"timeout": "30", "verify": True}
        assert session.query(Connection).filter_by(conn_id="warehouse").one().schema == "warehouse", "left alone"
        assert session.query(Pool).filter_by(pool="app_db").one().slots == 7
        assert session.query(Pool).filter_by(pool="warehouse").one().slots == 4
        assert Variable.get("max_reject_ratio") == "0.05"
        assert Variable.get("hot_retention_days") == "90"
        session.query(Connection).filter_by(conn_id="acme_settings_test").delete()
    import_settings()  # the session's DB as the settings file has it again


@pytest.mark.integration
def test_the_in_process_import_stops_at_a_missing_name_before_writing(airflow_db, tmp_path, monkeypatch):
    from airflow.models import Pool
    from airflow.utils.session import create_session

    from acme_localdev.cli import import_settings

    path = tmp_path / "settings.yaml"
    path.write_text(
        "airflow:\n  pools: [{pool_name: acme_settings_test, pool_slot: 3}]\n"
        "  variables: [{variable_name: acme_settings_test, variable_value: '${ACME_SETTINGS_TEST_UNSET}'}]\n"
    )
    monkeypatch.delenv("ACME_SETTINGS_TEST_UNSET", raising=False)
    with pytest.raises(SystemExit, match=r"ACME_SETTINGS_TEST_UNSET \(needed by variables.acme_settings_test"):
        import_settings(path=path)
    with create_session() as session:
        assert session.query(Pool).filter_by(pool="acme_settings_test").count() == 0, "the pools were not imported"


@pytest.mark.integration
def test_connections_encrypted_with_another_fernet_key_are_replaced(airflow_db):
    """`make up`'s PostgreSQL metadata DB outlives .airflow/fernet.key (make clean, a second checkout): Airflow's
    import would fail decrypting the password it replaces, so those connections are deleted first."""
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from cryptography.fernet import Fernet
    from sqlalchemy import update

    from acme_localdev.cli import import_settings

    import_settings(sections=("connections",))
    other_key = Fernet(Fernet.generate_key())
    with create_session() as session:
        session.execute(
            update(Connection)
            .where(Connection.conn_id == "slack_alerts")
            .values(_password=other_key.encrypt(b"T0/B0/old").decode(), is_encrypted=True)
        )
        ids = dict(session.query(Connection.conn_id, Connection.id))
    assert import_settings(sections=("connections",)) == {"connections": 8}
    with create_session() as session:
        assert (
            session.query(Connection).filter_by(conn_id="slack_alerts").one().password
            == os.environ["SLACK_WEBHOOK_TOKEN"]
        )
        after = dict(session.query(Connection.conn_id, Connection.id))
    assert {k for k in ids if after[k] != ids[k]} == {"slack_alerts"}, "only that one was deleted and re-added"


@pytest.mark.unit
def test_make_migrate_takes_a_connection_of_the_file_as_an_airflow_conn_variable(monkeypatch):
    """acme_localdev.cli.settings_connection: the connections import's object is also AIRFLOW_CONN_*'s JSON form."""
    from airflow.sdk import Connection

    from acme_localdev.cli import settings_connection

    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    monkeypatch.setenv("WAREHOUSE_DB_NAME", "warehouse_test")
    monkeypatch.delenv("PROJECT_ROOT", raising=False)  # the variables' input: not needed for a connection
    with settings_connection("warehouse"):
        conn = Connection.from_json(os.environ["AIRFLOW_CONN_WAREHOUSE"], conn_id="warehouse")
    assert "AIRFLOW_CONN_WAREHOUSE" not in os.environ
    assert (conn.conn_type, conn.host, conn.port, conn.schema, conn.login) == (
        "postgres",
        "127.0.0.1",
        5432,
        "warehouse_test",
        "postgres",
    )
