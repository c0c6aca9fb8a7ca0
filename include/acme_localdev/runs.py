"""Run one DAG for several confs in one process: ``python -m acme_localdev.runs DAG_ID RESULTS CONF...``.

What ``airflow dags test DAG -c CONF`` does (``dag.test``), once per conf, but
with Airflow imported and the DAG file parsed once instead of once per run:
``make demo`` runs ~30 DAG runs and most of each CLI call was start-up. One
JSON line per finished run goes to RESULTS (the parent prints progress from it).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from acme_localdev import env


@contextmanager
def _deadlines_under_dag_test() -> Iterator[None]:
    """Let ``dag.test()`` finish a DAG that has Deadline Alerts (apache-airflow 3.3.2).

    dag.test() runs a DAG deserialised in memory, whose ``deadline`` holds the
    encoded alerts instead of the ids of their rows; when the run succeeds,
    DagRun.update_state looks each one up by id to prune its deadlines and
    fails ("'dict' object has no attribute 'hex'"). Here an encoded alert is
    answered from its own content, so the pruning runs as in the scheduler.
    """
    from airflow.models import dagrun
    from airflow.models.deadline_alert import DeadlineAlert

    original = dagrun.DeadlineAlertModel.get_by_id

    def get_by_id(alert_id: Any, **kwargs: Any) -> Any:
        if isinstance(alert_id, dict):
            encoded = alert_id.get("__var", alert_id)
            return SimpleNamespace(
                reference_class=DeadlineAlert.reference_class.fget(SimpleNamespace(reference=encoded["reference"]))
            )
        return original(alert_id, **kwargs)

    dagrun.DeadlineAlertModel.get_by_id = get_by_id
    try:
        yield
    finally:
        dagrun.DeadlineAlertModel.get_by_id = original


def run_in_process(dag: Any, conf: dict) -> Any:
    """``dag.test(run_conf=conf)`` as the demo and the tests run it; returns the DagRun."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    # A worker runs every task in a process of its own; dag.test() runs them all in this one, where the
    # hook-lineage collector (a process-wide singleton) would pile up every earlier query's lineage.
    get_hook_lineage_collector.cache_clear()
    with _deadlines_under_dag_test():
        return dag.test(run_conf=conf)


def main(argv: list[str]) -> int:
    dag_id, results, *confs = argv
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=env.ROOT / "dags" / f"{dag_id}.py")
    if dag_id not in bag.dags:
        print(f"{dag_id} did not parse: {bag.import_errors}", file=sys.stderr)
        return 2
    dag = bag.dags[dag_id]
    failures = 0
    with Path(results).open("a") as out:
        for text in confs:
            conf = json.loads(text)
            print(f"==> [acme demo] {dag_id} {text}", flush=True)
            started = time.monotonic()
            try:
                dag_run = run_in_process(dag, conf)
                state, run_id = str(dag_run.state), dag_run.run_id
            except Exception:
                traceback.print_exc()
                state, run_id = "failed", None
            failures += state != "success"
            record = {"conf": conf, "state": state, "run_id": run_id, "seconds": time.monotonic() - started}
            out.write(json.dumps(record) + "\n")
            out.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
