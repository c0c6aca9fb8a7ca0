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
from datetime import date, timedelta
from typing import Any

from acme_localdev import env
from acme_localdev.cli import init_airflow, step
from acme_localdev.recorder import HttpRecorder

FX_PORT = 18080
SLACK_PORT = 18081
LOG_DIR = env.ROOT / ".airflow" / "demo-logs"

DAG_ORDER = (
    "hourly_incremental_sync",
    "daily_etl",
    "data_quality_check",
    "feature_engineering",
    "ml_training",
    "daily_reports",
    "weekly_aggregation",
    "data_archival",
    "anomaly_detection",
    "cache_refresh",
)


def plan(config: Any) -> list[tuple[str, list[dict]]]:
    """The runs of each DAG, in dependency order: each DAG's list of run confs."""
    days = config.day_list()
    first = (days[0] - timedelta(days=400)).isoformat()
    end = (days[-1] + timedelta(days=2)).isoformat()
    confs: dict[str, list[dict]] = {dag_id: [{"partition": days[-1].isoformat()}] for dag_id in DAG_ORDER}
    # one catch-up window: everything the generator wrote (customers are created up to a year earlier)
    confs["hourly_incremental_sync"] = [{"partition": f"{first}T00:00", "partition_end": f"{end}T00:00"}]
    confs["daily_etl"] = [{"partition": day.isoformat()} for day in days]
    return [(dag_id, confs[dag_id]) for dag_id in DAG_ORDER]


@dataclass
class Row:
    dag_id: str
    state: str
    seconds: float | None = None
    rows: str = "-"
    note: str = ""


def dsn(prefix: str, default_db: str) -> str:
    """libpq URL from the same variables airflow_settings.yaml reads (APP_DB_*, WAREHOUSE_*)."""
    host = os.environ.get(f"{prefix}_HOST", "127.0.0.1")
    port = os.environ.get(f"{prefix}_PORT", "5432")
    user = os.environ.get(f"{prefix}_USER", "postgres")
    name = os.environ.get(f"{prefix}_DB_NAME", default_db)
    return f"postgresql://{user}@{host}:{port}/{name}"


def reset_warehouse(url: str) -> None:
    """A fresh warehouse database for the demo (the DAGs create their tables)."""
    from acme_sample_data.app_db import recreate_database
    from acme_sample_data.build import with_database

    recreate_database(with_database(url, "postgres"), url.rsplit("/", 1)[1])


def rows_of(run_id: str) -> str:
    """What the run's loads recorded in ops.load_audit (in / loaded / rejected / duplicate)."""
    import psycopg2

    try:
        with psycopg2.connect(dsn("WAREHOUSE", "warehouse")) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT sum(rows_in), sum(rows_loaded), sum(rows_rejected), sum(rows_duplicate) "
                "FROM ops.load_audit WHERE run_id = %s",
                (run_id,),
            )
            n_in, loaded, rejected, dup = cur.fetchone()
    except psycopg2.Error:
        return "-"
    if n_in is None:
        return "-"
    return f"{n_in:,} in / {loaded:,} loaded / {rejected:,} rej / {dup:,} dup"


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


def run_dag(dag_id: str, conf: dict, label: str | None = None) -> Row:
    """``airflow dags test`` in a subprocess; state from the metadata DB, output to a log file."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{dag_id}{'-' + conf['partition'].replace(':', '') if 'partition' in conf else ''}.log"
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf)]
    step(f"airflow dags test {dag_id} -c '{json.dumps(conf)}'  (log: {log_path.relative_to(env.ROOT)})")
    started = time.monotonic()
    with log_path.open("w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    seconds = time.monotonic() - started
    run_id, state = latest_run(dag_id)
    state = state or ("success" if code == 0 else "failed")
    return Row(
        label or dag_id,
        state,
        seconds,
        rows=rows_of(run_id) if run_id else "-",
        note="" if state == "success" else f"see {log_path.relative_to(env.ROOT)}",
    )


def latest_run(dag_id: str) -> tuple[str | None, str | None]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return (run.run_id, str(run.state)) if run is not None else (None, None)


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
    result = build(config, landing, dsn("APP_DB", "app"))
    reset_warehouse(dsn("WAREHOUSE", "warehouse"))
    step(
        f"generated in {result.seconds:.1f}s: app DB "
        + ", ".join(f"{k} {v:,}" for k, v in result.app_rows.items())
        + "; landing "
        + ", ".join(f"{k} {v:,} lines" for k, v in result.landing_rows.items())
        + f"; expected counts in {result.manifest_path.relative_to(env.ROOT)}"
    )

    step("[3/4] parsing the DAGs")
    status = built_dags()
    missing = [dag_id for dag_id in DAG_ORDER if dag_id not in status]
    if missing:
        raise SystemExit(f"DAGs missing from dags/: {missing}")

    step("[4/4] running the built DAGs")
    rows: list[Row] = [
        Row("(sample data)", "success", result.seconds, f"{sum(result.landing_rows.values()):,} landing lines")
    ]
    try:
        fx_server, slack_server = FxServer(config.day_list(), FX_PORT), HttpRecorder(SLACK_PORT)
    except OSError as exc:
        raise SystemExit(
            f"ERROR: cannot serve the local FX API ({FX_PORT}) and Slack stand-in ({SLACK_PORT}): {exc}. "
            f"Stop what listens there (ss -ltnp | grep -E ':{FX_PORT}|:{SLACK_PORT}')."
        ) from None
    with fx_server, slack_server as slack:
        for dag_id, conf_list in plan(config):
            issue = status[dag_id]
            if issue is not None:
                rows.append(Row(dag_id, "not built", note=f"placeholder: built in issue #{issue}"))
                continue
            for conf in conf_list:
                rows.append(run_dag(dag_id, conf, f"{dag_id} {conf['partition']}"))
        alerts = len(slack.requests)
    print_summary(rows)
    print(f"\nSlack alerts posted to the local stand-in: {alerts}")
    print(f"demo finished in {time.monotonic() - demo_started:.0f}s")
    failed = [r.dag_id for r in rows if r.state not in ("success", "not built")]
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs in {LOG_DIR.relative_to(env.ROOT)}/)", file=sys.stderr)
        return 1
    return 0
