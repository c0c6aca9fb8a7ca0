"""airflow_settings.yaml is applied to a real (session) metadata DB; secrets come from the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from acme_pipelines.settings_loader import SettingsError, apply_settings, interpolate, load_settings
from conftest import ROOT

SETTINGS = ROOT / "airflow_settings.yaml"
ENV = {"PROJECT_ROOT": "/srv/acme", "SLACK_WEBHOOK_TOKEN": "T1/B2/xyz", "PAGERDUTY_ROUTING_KEY": "rk-1"}


def read_back():
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        conns = {c.conn_id: c for c in session.query(Connection).all()}
        for c in conns.values():  # load lazily decrypted fields before the session closes
            _ = (c.password, c.extra)
        pools = {p.pool: p.slots for p in session.query(Pool).all()}
        variables = {v.key: v.val for v in session.query(Variable).all()}
        session.expunge_all()
    return conns, pools, variables


@pytest.mark.integration
def test_applies_connections_pools_and_variables(airflow_db):
    counts = apply_settings(load_settings(SETTINGS, ENV))
    assert counts == {"connections": 8, "pools": 6, "variables": 11}
    conns, pools, variables = read_back()
    assert conns["app_db"].host == "127.0.0.1"
    assert conns["app_db"].schema == "app"
    assert conns["app_db"].port == 5432
    assert conns["slack_alerts"].password == "T1/B2/xyz"
    # reports reuse the alerts webhook unless SLACK_REPORTS_WEBHOOK_TOKEN is set (a nested default)
    assert conns["slack_reports"].password == "T1/B2/xyz"
    assert conns["redis_cache"].extra_dejson == {"db": "0"}
    assert pools["app_db"] == 2
    assert pools["warehouse"] == 4
    assert variables["landing_root"] == "file:///srv/acme/data/landing"
    assert variables["max_reject_ratio"] == "0.01"


@pytest.mark.integration
def test_reapplying_updates_in_place_and_drops_removed_fields(airflow_db, tmp_path):
    apply_settings(load_settings(SETTINGS, ENV))
    changed = tmp_path / "settings.yaml"
    changed.write_text(
        """
airflow:
  connections:
    - conn_id: app_db
      conn_type: postgres
      conn_host: db.internal
  pools:
    - pool_name: app_db
      pool_slot: 7
  variables:
    - variable_name: max_reject_ratio
      variable_value: "0.05"
"""
    )
    apply_settings(load_settings(changed, {}))
    apply_settings(load_settings(changed, {}))  # twice: idempotent
    conns, pools, variables = read_back()
    assert conns["app_db"].host == "db.internal"
    assert conns["app_db"].schema is None, "a field removed from the file does not linger"
    assert pools["app_db"] == 7
    assert variables["max_reject_ratio"] == "0.05"
    assert list(conns).count("app_db") == 1


@pytest.mark.unit
def test_missing_environment_values_are_named_before_anything_is_written():
    env = {k: v for k, v in ENV.items() if k != "SLACK_WEBHOOK_TOKEN"}
    with pytest.raises(SettingsError) as raised:
        load_settings(SETTINGS, env)
    assert "SLACK_WEBHOOK_TOKEN (needed by connections.slack_alerts.conn_password)" in str(raised.value)
    assert "PAGERDUTY" not in str(raised.value)


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
        ("airflow: {pools: [{pool_name: p, pool_slot: 0}]}", "at least one slot"),
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
def test_cli_exits_2_naming_the_missing_variable(airflow_db):
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_WEBHOOK_TOKEN", "PAGERDUTY_ROUTING_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "acme_pipelines.settings_loader", str(SETTINGS)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "SLACK_WEBHOOK_TOKEN" in result.stderr
    assert "PAGERDUTY_ROUTING_KEY" in result.stderr
