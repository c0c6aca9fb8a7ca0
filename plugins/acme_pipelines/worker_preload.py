"""What every task process would import for itself, imported once by each Celery worker before it forks.

A Celery worker runs each task in a process forked from its pool process, which Celery
forks from the worker's main process. Whatever the main process has imported, a task
process inherits for free; whatever it has not, every task process imports again: Airflow's
plugins and listeners (the OpenLineage listener: 1 to 1.5 CPU-seconds a task on this project's
2-core machines), the DAG file's modules, and what the operators import when they run
(psycopg2, pyarrow, the SQL providers). On a cluster of small tasks that is most of the
CPU a task costs. Airflow pre-imports DAG files' modules for the dag-processor
(``[dag_processor] parsing_pre_import_modules``) but has no such setting for Celery workers,
so the workers name this module in Celery's ``imports`` setting (``[celery]
extra_celery_config``; compose, Helm and ``make up`` set it): Celery imports it in the main
process at start-up, before the pool forks.

Nothing here connects anywhere or starts a thread, and nothing here can keep a worker from
starting: a failure is logged and the tasks import for themselves, as without this module. A
DAG file that fails to parse is left to the task that needs it (it fails there, with Airflow's
own error).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time

log = logging.getLogger(__name__)

# imported when a warehouse connection is of type snowflake, not by every task
SKIP = ("acme_pipelines.worker_preload", "acme_pipelines.snowflake_")
# what tasks import when they run, beyond the project's modules: the warehouse hook and OpenLineage's SQL lineage
RUNTIME = (
    "airflow.providers.postgres.hooks.postgres",
    "airflow.providers.openlineage.plugins.adapter",
    "airflow.providers.openlineage.sqlparser",
)


def preload() -> None:
    """Import the task runner, Airflow's listeners, every ``acme_pipelines`` module but the Snowflake ones, and the
    DAG files' modules."""
    started = time.perf_counter()
    from airflow.sdk.execution_time import task_runner  # noqa: F401  (what a forked task process runs)
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager()  # plugins and listeners, the task runner's own (cached) manager
    import acme_pipelines

    names = [
        f"acme_pipelines.{info.name}"
        for info in pkgutil.iter_modules(acme_pipelines.__path__)
        if not f"acme_pipelines.{info.name}".startswith(SKIP)
    ]
    for name in (*names, *RUNTIME):
        importlib.import_module(name)
    _parse_dag_files()
    seconds = time.perf_counter() - started
    log.info("worker preload: %d project modules, listeners, DAG files in %.1fs", len(names), seconds)


def _parse_dag_files() -> None:
    """The DAG folder parsed once, as a task process parses its DAG file, so the files' own imports are loaded."""
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=conf.get("core", "dags_folder"), safe_mode=False)


try:
    preload()
except Exception:  # the worker starts anyway; its tasks import what they need themselves
    log.exception("worker preload failed; task processes will import their modules themselves")
