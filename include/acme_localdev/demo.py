"""`make demo`: generate data, then run every built DAG end to end, locally.

Each DAG runs as a user would run it, ``airflow dags test DAG -c '{"partition": ...}'``,
against the local PostgreSQL, Redis and files, with the FX API and a Slack
stand-in served from this process. DAGs that are still placeholders are not
run; the summary says so and names the issue that builds them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date

from acme_localdev import env
from acme_localdev.cli import init_airflow, step
from acme_localdev.recorder import HttpRecorder

FX_PORT = 18080
SLACK_PORT = 18081
LOG_DIR = env.ROOT / ".airflow" / "demo-logs"

# (dag_id, grain of the partition param) in dependency order.
PLAN: tuple[tuple[str, str], ...] = (
    ("hourly_incremental_sync", "hour"),
    ("daily_etl", "day"),
    ("data_quality_check", "day"),
    ("feature_engineering", "day"),
    ("ml_training", "day"),
    ("daily_reports", "day"),
    ("weekly_aggregation", "week"),
    ("data_archival", "day"),
    ("anomaly_detection", "window"),
    ("cache_refresh", "window"),
)


@dataclass
class Row:
    dag_id: str
    state: str
    seconds: float | None = None
    rows: str = "-"
    note: str = ""


def app_dsn() -> str:
    host = os.environ.get("APP_DB_HOST", "127.0.0.1")
    port = os.environ.get("APP_DB_PORT", "5432")
    user = os.environ.get("APP_DB_USER", "postgres")
    name = os.environ.get("APP_DB_NAME", "app")
    return f"postgresql://{user}@{host}:{port}/{name}"


def built_dags() -> dict[str, int | None]:
    """dag_id -> None if built, else the issue number its placeholder names."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=env.ROOT / "dags")
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {json.dumps(bag.import_errors, indent=2)}")
    status = {}
    for dag_id, dag in bag.dags.items():
        placeholder = next((t for t in dag.tasks if hasattr(t, "issue")), None)
        status[dag_id] = getattr(placeholder, "issue", None)
    return status


def run_dag(dag_id: str, conf: dict) -> Row:
    """``airflow dags test`` in a subprocess; state from the metadata DB, output to a log file."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{dag_id}.log"
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf)]
    step(f"airflow dags test {dag_id} -c '{json.dumps(conf)}'  (log: {log_path.relative_to(env.ROOT)})")
    started = time.monotonic()
    with log_path.open("w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    seconds = time.monotonic() - started
    state = latest_run_state(dag_id) or ("success" if code == 0 else "failed")
    return Row(dag_id, state, seconds, note="" if state == "success" else f"see {log_path.name}")


def latest_run_state(dag_id: str) -> str | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return str(run.state) if run is not None else None


def print_summary(rows: list[Row]) -> None:
    headers = ("DAG", "state", "duration", "rows", "note")
    table = [(r.dag_id, r.state, "-" if r.seconds is None else f"{r.seconds:.1f}s", r.rows, r.note) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for r in table:
        print(line.format(*r))


def main(argv: list[str]) -> int:
    from acme_sample_data.build import build
    from acme_sample_data.fx import FxServer
    from acme_sample_data.generator import GeneratorConfig

    parser = argparse.ArgumentParser(prog="make demo DEMO_ARGS=...")
    parser.add_argument("--start", type=date.fromisoformat, default=GeneratorConfig.start)
    parser.add_argument("--days", type=int, default=GeneratorConfig.days)
    parser.add_argument("--scale", type=float, default=GeneratorConfig.scale)
    args = parser.parse_args(argv)
    demo_started = time.monotonic()

    step("[1/4] preparing the project-local Airflow (.airflow/)")
    init_airflow()

    step(f"[2/4] generating sample data: {args.days} days from {args.start}, scale {args.scale}")
    config = GeneratorConfig(start=args.start, days=args.days, scale=args.scale)
    landing = env.ROOT / "data" / "landing"
    result = build(config, landing, app_dsn())
    step(
        f"generated in {result.seconds:.1f}s: app DB "
        + ", ".join(f"{k} {v:,}" for k, v in result.app_rows.items())
        + "; landing "
        + ", ".join(f"{k} {v:,} lines" for k, v in result.landing_rows.items())
        + f"; expected counts in {result.manifest_path.relative_to(env.ROOT)}"
    )

    step("[3/4] parsing the DAGs")
    status = built_dags()
    missing = [dag_id for dag_id, _ in PLAN if dag_id not in status]
    if missing:
        raise SystemExit(f"DAGs missing from dags/: {missing}")

    step("[4/4] running the built DAGs")
    rows: list[Row] = [
        Row("(sample data)", "success", result.seconds, f"{sum(result.landing_rows.values()):,} landing lines")
    ]
    with FxServer(config.day_list(), FX_PORT), HttpRecorder(SLACK_PORT) as slack:
        for dag_id, _grain in PLAN:
            issue = status[dag_id]
            if issue is not None:
                rows.append(Row(dag_id, "not built", note=f"placeholder: built in issue #{issue}"))
                continue
            rows.append(run_dag(dag_id, {"partition": config.day_list()[-1].isoformat()}))
        alerts = len(slack.requests)
    print_summary(rows)
    print(f"\nSlack alerts posted to the local stand-in: {alerts}")
    print(f"demo finished in {time.monotonic() - demo_started:.0f}s")
    failed = [r.dag_id for r in rows if r.state not in ("success", "not built")]
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs in {LOG_DIR.relative_to(env.ROOT)}/)", file=sys.stderr)
        return 1
    return 0
