"""acme_pipelines.worker_preload: a Celery worker imports, before it forks, what each task process would import.

A fresh interpreter configured as ``make up``, compose and Helm configure a worker
(``CELERY_SETTINGS``: ``[celery] extra_celery_config`` names the module in Celery's
``imports``) builds Airflow's Celery app and runs Celery's worker start-up import step
(``loader.init_worker()``, what ``airflow celery worker`` runs in its main process before
the pool forks). Then a task process's first steps, done in that process as a forked task
process would do them, must import nothing new of the project, psycopg2, pyarrow or the
SQL providers, and must not load the plugins again. tests/test_local_stack.py runs the
cluster with the same settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration

PROBE = """
import json, sys, time
from airflow.providers.celery.executors.celery_executor_utils import app
before = set(sys.modules)
started = time.process_time()
app.loader.init_worker()
preload_cpu = time.process_time() - started
from airflow.sdk import listener
preloaded = listener.get_listener_manager.cache_info().currsize == 1
loaded = set(sys.modules)
# what a task process does first: its listeners, then parsing its DAG file
started = time.process_time()
listener.get_listener_manager()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
task_cpu = time.process_time() - started
new = sorted(m for m in set(sys.modules) - loaded
             if m.split(".")[0] in ("acme_pipelines", "psycopg2", "pyarrow") or m.startswith("airflow.providers"))
print(json.dumps({"imported_by_init": "acme_pipelines.worker_preload" in loaded - before, "listeners": preloaded,
                  "new_in_task": new, "dags": sorted(bag.dags), "preload_cpu": preload_cpu, "task_cpu": task_cpu}))
"""


def test_a_celery_workers_start_up_imports_what_its_tasks_would():
    from acme_localdev.stack import CELERY_SETTINGS

    env = {**os.environ, **CELERY_SETTINGS, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    dag_file = str(ROOT / "dags" / "data_quality_check.py")
    result = subprocess.run([sys.executable, "-c", PROBE, dag_file], capture_output=True, text=True, env=env,
                            timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"preload {found['preload_cpu']:.2f} CPU-s once per worker; a task's listeners and parse after it "
        f"{found['task_cpu']:.2f} CPU-s"
    )
    assert found["imported_by_init"], found
    assert found["listeners"], found
    assert found["new_in_task"] == [], found["new_in_task"]
    assert found["dags"] == ["data_quality_check"]
    assert "worker preload: " in result.stdout + result.stderr
