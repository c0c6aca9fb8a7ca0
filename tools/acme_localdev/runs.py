"""Run DAGs for several confs each, in one process: ``python -m acme_localdev.runs RESULTS LOG_DIR PLAN...``.

What ``airflow dags test DAG -c CONF`` does (``dag.test``), once per conf, but with
Airflow imported and the DAG folder parsed once for every run instead of once per
run (or per DAG): most of a CLI call is start-up. Each PLAN argument is a JSON
``[dag_id, [conf, ...]]``, run in the order given. Each DAG's output goes to
``LOG_DIR/<dag_id>.log``; a JSON line when a DAG's runs start and one per finished run
go to RESULTS (the parent prints progress from them).
"""

from __future__ import annotations

import json
import os
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


def output_to(path: Path) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so logging handlers follow) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str]) -> int:
    results, log_dir, *plan = argv
    runs = [(dag_id, confs) for dag_id, confs in map(json.loads, plan)]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=env.ROOT / "dags")
    failures = 0
    with Path(results).open("a") as out:
        for dag_id, confs in runs:
            output_to(Path(log_dir) / f"{dag_id}.log")
            out.write(json.dumps({"started": dag_id}) + "\n")
            out.flush()
            dag = bag.dags.get(dag_id)
            for conf in confs:
                print(f"==> [acme demo] {dag_id} {json.dumps(conf)}", flush=True)
                started = time.monotonic()
                try:
                    if dag is None:
                        raise RuntimeError(f"{dag_id} did not parse: {bag.import_errors}")
                    dag_run = run_in_process(dag, conf)
                    state, run_id = str(dag_run.state), dag_run.run_id
                except Exception:
                    traceback.print_exc()
                    state, run_id = "failed", None
                failures += state != "success"
                seconds = time.monotonic() - started
                record = {"dag_id": dag_id, "conf": conf, "state": state, "run_id": run_id, "seconds": seconds}
                out.write(json.dumps(record) + "\n")
                out.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
