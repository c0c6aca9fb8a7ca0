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
from pathlib import Path
from typing import Any

from acme_localdev import env


def run_in_process(dag: Any, conf: dict) -> Any:
    """``dag.test(run_conf=conf)`` as the demo and the tests run it; returns the DagRun.

    Airflow's own defects under ``dag.test`` are worked around for every process in
    ``acme_pipelines.upstream_fixes`` (loaded by plugins/airflow_local_settings.py), not here.
    """
    from airflow.sdk.lineage import get_hook_lineage_collector

    # A worker runs every task in a process of its own; dag.test() runs them all in this one, where the
    # hook-lineage collector (a process-wide singleton) would pile up every earlier query's lineage.
    get_hook_lineage_collector.cache_clear()
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
