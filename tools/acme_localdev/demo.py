"""`make demo`: generate data, then run all ten DAGs end to end, locally.

Each DAG runs as ``airflow dags test DAG -c '{"partition": ...}'`` runs it (``dag.test``; all
runs share one child process, see ``runs``),
against the local PostgreSQL, Redis and files, with the FX API and a Slack
stand-in served from this process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from acme_localdev import env
from acme_localdev.cli import detail, init_airflow, step
from acme_localdev.recorder import HttpRecorder, StatsdCapture

FX_PORT, SLACK_PORT = env.FX_PORT, env.SLACK_PORT
LOG_DIR = env.ROOT / ".airflow" / "demo-logs"

DAG_ORDER = (
    "hourly_incremental_sync",
    "daily_etl",
    "data_quality_check",
    "feature_engineering",
    "ml_training",
    "daily_reports",
    "weekly_aggregation",
    "anomaly_detection",
    "cache_refresh",
    "data_archival",  # last: it removes the oldest days, which anomaly detection compares with
)


# Four weeks and a day, ending on Sunday 2026-11-22: anomaly detection compares the last day with
# the same day on the 4 weeks before, the last ISO week (11-16..11-22) is complete for
# weekly_aggregation, and the last day carries the generator's incidents (an order burst
# 14:00-15:00, payment failures 18:00-20:00) for anomaly detection to find.
DEMO_START = date(2026, 10, 25)
DEMO_DAYS = 29
# The DAGs after the ETL run for the last 8 days: enough labelled days for ml_training.
RECENT_DAYS = 8
# anomaly detection's history: the same window on this many weeks before (its DAG's doc)
ANOMALY_WEEKS = 4
# data_archival's run on the last day archives what is older than this: the first two days loaded
# (10-25 and 11-01, the anomaly history, which it runs after).
DEMO_HOT_RETENTION_DAYS = 14


def last_full_week(days: list[date]) -> date | None:
    """The Monday of the latest ISO week whose seven days are all in ``days``."""
    present = set(days)
    mondays = [d for d in days if d.isoweekday() == 1 and all(d + timedelta(n) in present for n in range(7))]
    return max(mondays, default=None)


def etl_days(days: list[date]) -> list[date]:
    """The days ``daily_etl`` loads: the ones a later DAG of the demo reads, not every generated day.

    The quality checks of the last RECENT_DAYS compare each with the day and the week before;
    anomaly detection compares the last day with the same weekday of ANOMALY_WEEKS weeks before.
    """
    last = days[-1]
    wanted = {last - timedelta(days=n) for n in range(RECENT_DAYS + 7)}
    wanted |= {last - timedelta(weeks=n) for n in range(1, ANOMALY_WEEKS + 1)}
    return [day for day in days if day in wanted]


def plan(config: Any) -> list[tuple[str, list[dict]]]:
    """The runs of each DAG, in dependency order: each DAG's list of run confs."""
    days = config.day_list()
    first = (days[0] - timedelta(days=400)).isoformat()
    # orders change for up to 30 hours after they are placed: sync past the last change of the last
    # day's orders, or its payments point at orders the warehouse has not seen (the quality check says so)
    end = (days[-1] + timedelta(days=3)).isoformat()
    last = [{"partition": days[-1].isoformat()}]
    confs: dict[str, list[dict]] = dict.fromkeys(DAG_ORDER, last)
    # one catch-up window: everything the generator wrote (customers are created up to a year earlier)
    confs["hourly_incremental_sync"] = [{"partition": f"{first}T00:00", "partition_end": f"{end}T00:00"}]
    confs["daily_etl"] = [{"partition": day.isoformat()} for day in etl_days(days)]
    recent = [{"partition": day.isoformat()} for day in days[-RECENT_DAYS:]]
    confs["data_quality_check"] = confs["feature_engineering"] = recent
    week = last_full_week(days)
    confs["weekly_aggregation"] = [{"partition": week.isoformat()}] if week else []
    # the last day hour by hour: each run scores the hour that ends with its half hour
    confs["anomaly_detection"] = [{"partition": f"{days[-1]}T{hour:02d}:30"} for hour in range(24)]
    confs["cache_refresh"] = [{"partition": f"{days[-1]}T23:45"}]
    # the scheduler's run of the Sunday after the last day
    sunday = days[-1] + timedelta(days=(6 - days[-1].weekday()) % 7)
    confs["data_archival"] = [{"partition": sunday.isoformat()}] if sunday <= days[-1] else last
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
    """A fresh warehouse database for the demo, its schema migrated as `make migrate` does (the DAGs' tasks
    only check its version)."""
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse import WarehouseHook
    from acme_sample_data.app_db import recreate_database
    from acme_sample_data.build import with_database

    recreate_database(with_database(url, "postgres"), url.rsplit("/", 1)[1])
    upgrade(WarehouseHook(dsn=url))


def _warehouse_rows(statement: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    try:
        with psycopg2.connect(dsn("WAREHOUSE", "warehouse")) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    except psycopg2.Error:
        return []


def rows_of(run_id: str) -> str:
    """What the run wrote, from the warehouse's own records of it (audit, quality, features, registry)."""
    [(n_in, loaded, rejected, dup)] = _warehouse_rows(
        "SELECT sum(rows_in), sum(rows_loaded), sum(rows_rejected), sum(rows_duplicate) "
        "FROM ops.load_audit WHERE run_id = %s",
        (run_id,),
    ) or [(None, None, None, None)]
    if n_in is not None:
        return f"{n_in:,} in / {loaded:,} loaded / {rejected:,} rej / {dup:,} dup"
    checks = _warehouse_rows(
        "SELECT count(*), count(*) FILTER (WHERE NOT passed) FROM ops.quality_results WHERE run_id = %s", (run_id,)
    )
    if checks and checks[0][0]:
        total, failed = checks[0]
        return f"{total} checks, {failed} failed" if failed else f"{total} checks passed"
    features = _warehouse_rows("SELECT count(*) FROM features.customer_features WHERE _run_id = %s", (run_id,))
    if features and features[0][0]:
        return f"{features[0][0]:,} customers' features"
    model = _warehouse_rows(
        "SELECT model_version, metric_name, metric_value, is_champion FROM ml.model_registry WHERE run_id = %s",
        (run_id,),
    )
    if model:
        version, metric, value, champion = model[0]
        return f"{version} {metric} {value:.3f}{' (champion)' if champion else ''}"
    week = _warehouse_rows("SELECT iso_week, revenue_usd FROM marts.weekly_kpis WHERE _run_id = %s", (run_id,))
    if week:
        return f"{week[0][0]}: revenue ${week[0][1]:,.2f}"
    found = _warehouse_rows(
        "SELECT count(*), count(alerted_at) FROM ops.anomalies WHERE run_id = %s HAVING count(*) > 0", (run_id,)
    )
    if found:
        return f"{found[0][0]} anomalies, {found[0][1]} alerted"
    archived = _warehouse_rows(
        "SELECT count(*), sum(row_count) FROM ops.archive_manifest WHERE run_id = %s HAVING count(*) > 0", (run_id,)
    )
    if archived:
        return f"{archived[0][0]} partitions, {archived[0][1]:,} rows archived"
    return "-"


def print_outputs(artifacts: Path) -> None:
    """Where the report, the model and the quality results are."""
    print("\nWhere the results are:")
    reports = sorted(artifacts.glob("reports/dt=*/report.html"))
    for page in reports:
        print(f"  report:           {page.relative_to(env.ROOT)} (+ revenue_14d.png, report.csv)")
    for version, value, path in _warehouse_rows(
        "SELECT model_version, metric_value, artifact_path FROM ml.model_registry WHERE is_champion"
    ):
        print(f"  champion model:   {version}, roc_auc {value:.3f}, {path} (ml.model_registry)")
    gates = _warehouse_rows("SELECT status, count(*) FROM ops.quality_gate GROUP BY status ORDER BY status")
    checks = _warehouse_rows("SELECT count(*), count(*) FILTER (WHERE NOT passed) FROM ops.quality_results")
    if checks:
        days = ", ".join(f"{n} {status}" for status, n in gates)
        print(f"  quality results:  {checks[0][0]} checks ({checks[0][1]} failed) in ops.quality_results; days: {days}")
    print_pos_sales()
    for week, orders, revenue, aov in _warehouse_rows(
        "SELECT iso_week, orders, revenue_usd, avg_order_value_usd FROM marts.weekly_kpis ORDER BY week_start"
    ):
        kpis = f"{orders:,} orders, revenue ${revenue:,.2f}, AOV ${aov:,.2f}"
        print(f"  weekly KPIs:      {week}: {kpis} (marts.weekly_kpis)")
    print('  query them:       eval "$(make -s env)"; psql -h 127.0.0.1 -U postgres warehouse')
    print_issue5_outputs()


def print_pos_sales() -> None:
    """The stores' point-of-sale sales daily_etl loaded (core.fact_pos_sales) and their rejects."""
    for days, sales, stores, usd, first, last in _warehouse_rows(
        "SELECT count(DISTINCT dt), count(*), count(DISTINCT store_id), coalesce(sum(amount_usd), 0), min(dt), max(dt) "
        "FROM core.fact_pos_sales"
    ):
        if not sales:
            print("  store sales:      none loaded (core.fact_pos_sales)")
            return
        [(rejected,)] = _warehouse_rows("SELECT count(*) FROM ops.rejected_rows WHERE source = 'landing:pos'") or [(0,)]
        print(
            f"  store sales:      {sales:,} rows of {stores} stores, {days} days {first}..{last}, ${usd:,.2f} "
            f"(core.fact_pos_sales; {rejected} rows rejected in ops.rejected_rows)"
        )
        for dt, store, n, total in _warehouse_rows(
            "SELECT dt, store_id, count(*), sum(amount_usd) FROM core.fact_pos_sales WHERE dt = %s "
            "GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 3",
            (last,),
        ):
            print(f"    {dt} store {store}: {n:,} sales, ${total:,.2f}")


def print_issue5_outputs() -> None:
    """The archive manifest, the anomalies found and the Redis keys written."""
    rows = _warehouse_rows(
        "SELECT table_name, min(partition), max(partition), count(*), sum(row_count), sum(bytes), "
        "min(object_path) FROM ops.archive_manifest WHERE deleted_from_warehouse_at IS NOT NULL "
        "GROUP BY table_name ORDER BY 1"
    )
    print("\nArchive manifest (ops.archive_manifest):")
    for table, first, last, n, total, size, path in rows:
        print(f"  {table}: {n} days {first}..{last}, {total:,} rows, {size or 0:,} bytes of Parquet; first: {path}")
    if not rows:
        print("  nothing archived")
    print("\nAnomalies found (ops.anomalies):")
    found = _warehouse_rows(
        "SELECT metric, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
        "to_char(window_end AT TIME ZONE 'UTC', 'HH24:MI'), observed, expected, score, severity, "
        "coalesce(alerted_via, 'none: continues the one above') FROM ops.anomalies ORDER BY window_start, metric"
    )
    for metric, start, end, observed, expected, score, severity, via in found:
        print(
            f"  {start}-{end} {metric}: {observed:,.4g} vs {expected:,.4g} expected, "
            f"score {score:+.1f} ({severity}), alert: {via}"
        )
    if not found:
        print("  none")
    print("\nRedis keys written (cache_refresh):")
    print_cache_keys()


def print_observability(artifacts: Path, lineage_events: Path, capture: StatsdCapture) -> None:
    """The lineage graph of core.fact_payments and a preview of the metrics dashboards, from this demo's runs."""
    import contextlib
    import io

    from acme_lineage.cli import main as lineage

    folder = artifacts / "lineage"
    folder.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = lineage(
            ["impact", "core.fact_payments", "--events", str(lineage_events),
             "--related-only", "--html", str(folder / "lineage.html"), "--png", str(folder / "lineage.png")]
        )  # fmt: skip
    print("\nLineage (OpenLineage events of this demo) -- downstream of core.fact_payments:")
    for line in out.getvalue().splitlines()[:40]:
        print(f"    {line}")
    if code != 0:
        print(f"    (impact exited {code})")
    print(f"StatsD: {capture.lines:,} metric lines captured in {capture.path.relative_to(env.ROOT)}")
    from acme_localdev.dashboard_preview import render_previews
    from acme_localdev.prometheus import PrometheusMissingError

    dashboards = sorted((env.ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    try:  # the panels' PromQL answered by a Prometheus loaded with this capture (acme_localdev.prometheus)
        previews = render_previews(dashboards, capture.path, artifacts / "metrics")
    except PrometheusMissingError as exc:
        print(f"    no dashboard previews: {exc}")
        return
    for preview in previews:
        with_data = sum(p.has_data for p in preview.panels)
        print(
            f"    dashboard preview: {preview.png.relative_to(env.ROOT)} "
            f"({with_data}/{len(preview.panels)} panels with data from Prometheus)"
        )


def print_cache_keys(prefix: str = "acme:cache") -> None:
    import redis

    try:
        client = env.redis_client()
        current = client.get(f"{prefix}:current")
        if current is None:
            print("  none")
            return
        base = f"{prefix}:v{int(current)}"
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{base}:*", count=1000))
        customers = [k for k in keys if ":customer:" in k]
        print(f"  {prefix}:current -> {int(current)}; {len(keys):,} keys under {base}:* (TTL {client.ttl(keys[0])} s)")
        for key in [k for k in keys if ":customer:" not in k] + customers[:2]:
            print(f"    {key} = {client.get(key).decode()[:100]}...")
        print(f"    ... and {len(customers) - 2:,} more {base}:customer:<id> keys")
    except redis.RedisError as exc:  # a summary line, not a failure of the demo
        print(f"  could not read Redis: {exc}")


def run_dags(runs: list[tuple[str, list[dict]]]) -> list[Row]:
    """Every run of every DAG (``dag.test`` per conf, as ``airflow dags test`` does) in one child process.

    One process for all of them, not one per run or per DAG: Airflow's start-up and the DAG
    folder's parse happen once. Progress is printed as each run finishes; each DAG's output
    goes to its log file in LOG_DIR.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    results = LOG_DIR / "results.jsonl"
    for stale in [results, *(LOG_DIR / f"{dag_id}.log" for dag_id, _ in runs)]:
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "acme_localdev.runs", str(results), str(LOG_DIR), *map(json.dumps, runs)]
    expected = [(dag_id, conf) for dag_id, confs in runs for conf in confs]
    counts = {dag_id: len(confs) for dag_id, confs in runs}
    rows: list[Row] = []

    def log_of(dag_id: str) -> str:
        return str((LOG_DIR / f"{dag_id}.log").relative_to(env.ROOT))

    with (LOG_DIR / "runs.log").open("w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
        seen = 0
        while True:
            finished = child.poll() is not None
            text = results.read_text() if results.exists() else ""
            for line in text.split("\n")[seen:-1]:  # whole lines only: the child may be mid-write
                seen += 1
                record = json.loads(line)
                if "started" in record:
                    dag_id = record["started"]
                    step(f"{dag_id}: {counts[dag_id]} run(s)  (log: {log_of(dag_id)})")
                    continue
                dag_id = record["dag_id"]
                label = f"{dag_id} {record['conf'].get('partition', '')}"
                run_id, state = record["run_id"], record["state"]
                note = "" if state == "success" else f"see {log_of(dag_id)}"
                rows.append(Row(label, state, record["seconds"], rows_of(run_id) if run_id else "-", note))
                detail(f"{label}: {state} in {record['seconds']:.1f}s  {rows[-1].rows}")
            if finished:
                break
            time.sleep(0.5)
    if len(rows) < len(expected):  # the child died before finishing every run
        dag_id = expected[len(rows)][0]
        note = f"exit {child.returncode}; see {log_of(dag_id)} and {(LOG_DIR / 'runs.log').relative_to(env.ROOT)}"
        rows.append(Row(dag_id, "failed", None, note=note))
    return rows


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
    parser.add_argument("--start", type=date.fromisoformat, default=DEMO_START)
    parser.add_argument("--days", type=int, default=DEMO_DAYS)
    parser.add_argument("--scale", type=float, default=GeneratorConfig.scale)
    args = parser.parse_args(argv)
    demo_started = time.monotonic()

    step("[1/4] preparing the project-local Airflow (.airflow/)")
    init_airflow()

    step(f"[2/4] generating sample data: {args.days} days from {args.start}, scale {args.scale}")
    # bad_share 0.003: with the extra repeated and malformed lines, about 0.6% of each day's payments
    # are rejected, under the contract's max_reject_ratio of 1% on every day
    config = GeneratorConfig(start=args.start, days=args.days, scale=args.scale, bad_share=0.003, incidents=True)
    os.environ["AIRFLOW_VAR_HOT_RETENTION_DAYS"] = str(DEMO_HOT_RETENTION_DAYS)
    landing = env.ROOT / "data" / "landing"
    result = build(config, landing, dsn("APP_DB", "app"))
    reset_warehouse(dsn("WAREHOUSE", "warehouse"))
    for output in ("artifacts", "cold"):  # the last demo's reports, models and archives
        shutil.rmtree(env.ROOT / "data" / output, ignore_errors=True)
    lineage_events = env.lineage_events(Path(os.environ["AIRFLOW_HOME"]))
    lineage_events.unlink(missing_ok=True)  # the lineage graph shows this demo's runs
    step(
        f"generated in {result.seconds:.1f}s: app DB "
        + ", ".join(f"{k} {v:,}" for k, v in result.app_rows.items())
        + "; landing "
        + ", ".join(f"{k} {v:,} lines" for k, v in result.landing_rows.items())
        + f"; expected counts in {result.manifest_path.relative_to(env.ROOT)}"
    )

    step("[3/4] checking the DAG files")  # each DAG's child process parses its file and says if it does not
    missing = [dag_id for dag_id in DAG_ORDER if not (env.ROOT / "dags" / f"{dag_id}.py").exists()]
    if missing:
        raise SystemExit(f"DAGs missing from dags/: {missing}")

    step("[4/4] running the DAGs")
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
    artifacts = env.ROOT / "data" / "artifacts"
    capture = StatsdCapture(artifacts / "metrics" / "statsd.log")
    os.environ["AIRFLOW__METRICS__STATSD_PORT"] = str(capture.port)  # the DAG runs' metrics come here
    with fx_server, slack_server as slack, capture:
        runs_started = time.monotonic()
        rows.extend(run_dags([(dag_id, confs) for dag_id, confs in plan(config) if confs]))
        runs_done = time.monotonic()
        alerts = len(slack.requests)
        reports = sum("Daily report" in r.body.decode(errors="replace") for r in slack.requests)
    print_summary(rows)
    print_outputs(artifacts)
    print_observability(artifacts, lineage_events, capture)
    print(f"\nSlack posts received by the local stand-in: {alerts} ({reports} daily report summaries, the rest alerts)")
    ended = time.monotonic()
    print(f"demo finished in {ended - demo_started:.0f}s ({runs_done - runs_started:.0f}s of DAG runs, "
          f"{ended - runs_done:.0f}s of the summaries above)")  # fmt: skip
    failed = [r.dag_id for r in rows if r.state != "success"]
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs in {LOG_DIR.relative_to(env.ROOT)}/)", file=sys.stderr)
        return 1
    return 0
