"""DAG files do no I/O and no heavy imports when parsed (the scheduler parses them constantly).

Measured in a fresh interpreter under a Python audit hook (tests/probes/audited_parse.py).
A rogue DAG file proves the probe catches what it claims to catch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration

PROBE = ROOT / "tests" / "probes" / "audited_parse.py"
# Libraries that belong inside task code, never at DAG-file top level.
HEAVY = (
    "pandas",
    "pyarrow",
    "numpy",
    "psycopg2",
    "boto3",
    "botocore",
    "sklearn",
    "matplotlib",
    "redis",
    "snowflake.connector",
    "s3fs",
    "fakesnow",
    "moto",
    # the alert channels: imported when an alert goes out (alerting.ChannelNotifier), about 0.9 s per parse
    "slack_sdk",
    "pagerduty",
    "airflow.providers.slack",
    "airflow.providers.pagerduty",
    "airflow.providers.smtp",
)


def audited_parse(dag_folder) -> dict:
    allowed = [sys.prefix, sys.base_prefix, ROOT / "dags", ROOT / "plugins", ROOT / "include", dag_folder]
    result = subprocess.run(
        [sys.executable, str(PROBE), str(dag_folder), *map(str, allowed)],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def project_parse() -> dict:
    return audited_parse(ROOT / "dags")


def test_parsing_the_dags_has_no_side_effects(project_parse):
    assert project_parse["import_errors"] == {}
    assert len(project_parse["dag_ids"]) == 10
    assert project_parse["side_effects"] == []


def test_no_heavy_imports_at_dag_top_level(project_parse):
    heavy = [m for m in project_parse["new_modules"] if m.startswith(HEAVY)]
    assert heavy == []


def test_probe_catches_a_rogue_dag_file(tmp_path):
    shutil.copy(ROOT / "dags" / "cache_refresh.py", tmp_path / "cache_refresh.py")
    secret = tmp_path.parent / "outside.txt"
    secret.write_text("x")
    (tmp_path / "rogue_dag.py").write_text(
        f'''"""airflow dag that does I/O at import"""
import socket
import subprocess
import pandas  # heavy
open({str(secret)!r}).read()
try:
    socket.create_connection(("127.0.0.1", 9), timeout=0.2)
except OSError:
    pass
subprocess.run(["true"])
'''
    )
    found = audited_parse(tmp_path)
    kinds = {effect.split(":")[0] for effect in found["side_effects"]}
    assert kinds == {"network", "process", "file read"}
    assert any(m.startswith("pandas") for m in found["new_modules"])


def test_airflow_does_not_import_the_shared_package_as_plugin_modules():
    """Airflow's plugin loader imports every .py under plugins/ by its bare file name (``snowflake_warehouse``,
    ``cache``, ...), executing it a second time and shadowing any real package of that name (a
    ``snowflake.py`` broke ``import snowflake.connector``). plugins/.airflowignore keeps it out."""
    probe = (
        "import json, sys\n"
        "from airflow import plugins_manager\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "names = sorted(m for m in sys.modules if m.split('.')[0] in set(sys.argv[1:]))\n"
        "print(json.dumps({'bare': names, 'errors': plugins_manager.get_import_errors()}))\n"
    )
    stems = [p.stem for p in (ROOT / "plugins" / "acme_pipelines").glob("*.py") if p.stem != "__init__"]
    result = subprocess.run(
        [sys.executable, "-c", probe, *stems], capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"bare": [], "errors": {}}, found
