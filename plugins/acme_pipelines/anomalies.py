"""Anomaly detection: a window's metrics read from the warehouse, scored with robust statistics, and the
findings recorded in ``ops.anomalies`` (``detect``); the operator sends the alerts.

A window's value is compared with the same window on previous weeks: the
expected value is their median, the spread 1.4826 x their median absolute
deviation (MAD; equal to the standard deviation for normal data), never below
a floor that reflects sampling noise (a handful of past weeks can agree by
chance). ``score = (observed - median) / spread``; ``|score| >= warning`` is a
warning, ``>= critical`` critical.

No alert storm: a finding is stored once per (metric, window) (a rerun
updates it), and a finding that continues an alerted one (same metric and
direction, overlapping or touching window) is recorded as suppressed by it
instead of alerting again.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_pipelines.warehouse import upsert_row

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "anomalies"
MAD_TO_SIGMA = 1.4826
WARNING_SCORE = 4.0
CRITICAL_SCORE = 8.0
MIN_HISTORY = 3


@dataclass(frozen=True)
class Finding:
    metric: str
    window_start: datetime
    window_end: datetime
    observed: float
    expected: float
    scale: float
    score: float
    severity: str
    baseline: tuple[float, ...]

    @property
    def direction(self) -> str:
        return "spike" if self.observed > self.expected else "drop"


def count_floor(median: float, _current_n: float) -> float:
    """Counts are Poisson-like: their noise is about sqrt(mean)."""
    return math.sqrt(max(median, 1.0))


def amount_floor(median: float, _current_n: float) -> float:
    """Sums of order amounts vary by about a fifth from week to week at these volumes."""
    return max(0.2 * abs(median), 1.0)


def rate_floor(median: float, current_n: float) -> float:
    """A share out of n attempts: binomial noise sqrt(p(1-p)/n), at least one point."""
    p = min(max(median, 0.01), 0.99)
    return max(math.sqrt(p * (1 - p) / max(current_n, 1.0)), 0.01)


def score(
    observed: float,
    baseline: Sequence[float],
    floor: Callable[[float, float], float],
    sample_size: float = 0.0,
    *,
    warning: float = WARNING_SCORE,
    critical: float = CRITICAL_SCORE,
) -> tuple[float, float, float, str | None]:
    """(median, spread, score, severity or None) of ``observed`` against ``baseline``."""
    if len(baseline) < MIN_HISTORY:
        raise ValueError(f"{len(baseline)} past values; at least {MIN_HISTORY} are needed")
    median = statistics.median(baseline)
    mad = statistics.median(abs(v - median) for v in baseline)
    spread = max(MAD_TO_SIGMA * mad, floor(median, sample_size))
    z = (observed - median) / spread
    severity = "critical" if abs(z) >= critical else "warning" if abs(z) >= warning else None
    return median, spread, z, severity


@dataclass(frozen=True)
class Metric:
    """A metric read from one row of ``window_metrics.sql``; ``covered`` names the row's data-present flag."""

    name: str
    covered: str
    value: Callable[[dict], float]
    floor: Callable[[float, float], float]
    sample_size: Callable[[dict], float] = lambda row: 0.0


METRICS = (
    Metric("orders", "covered_orders", lambda r: float(r["orders"]), count_floor),
    Metric("revenue_usd", "covered_payments", lambda r: float(r["revenue_usd"]), amount_floor),
    Metric(
        "payment_failure_rate",
        "covered_payments",
        lambda r: r["failed"] / r["attempts"] if r["attempts"] else 0.0,
        rate_floor,
        lambda r: float(r["attempts"]),
    ),
)


def evaluate(
    rows: Sequence[dict], start: datetime, end: datetime, *, warning: float, critical: float, log: Any
) -> list[Finding]:
    """Findings of the window (``rows[0]``) against its past weeks (``rows[1:]``); logs every verdict."""
    current, history = rows[0], rows[1:]
    findings = []
    for metric in METRICS:
        if not current[metric.covered]:
            log.info("%s [%s, %s): not scored, its source has not reached the window yet", metric.name, start, end)
            continue
        baseline = [metric.value(r) for r in history if r[metric.covered]]
        if len(baseline) < MIN_HISTORY:
            log.info("%s: %d past weeks with data, %d needed: not scored", metric.name, len(baseline), MIN_HISTORY)
            continue
        observed = metric.value(current)
        median, spread, z, severity = score(
            observed, baseline, metric.floor, metric.sample_size(current), warning=warning, critical=critical
        )
        log.info(
            "%s [%s, %s): %.4g vs median %.4g of %s (spread %.3g): score %+.1f, %s",
            metric.name, start, end, observed, median, baseline, spread, z, severity or "normal",
        )  # fmt: skip
        if severity:
            findings.append(Finding(metric.name, start, end, observed, median, spread, z, severity, tuple(baseline)))
    return findings


def record(hook: Any, cur: Any, finding: Finding, run_id: str) -> tuple[int, bool]:
    """Store the finding (idempotent per metric and window: ``warehouse.upsert_row``); returns (id, whether it
    should alert).

    It alerts only if it has not alerted before and does not continue an
    anomaly that already alerted.
    """
    window = (finding.metric, finding.window_start, finding.window_end)
    upsert_row(
        hook, cur, "ops.anomalies", dict(zip(("metric", "window_start", "window_end"), window, strict=True)),
        {"observed": finding.observed, "expected": finding.expected, "scale": finding.scale, "score": finding.score,
         "severity": finding.severity, "direction": finding.direction,
         "baseline": hook.array_param(finding.baseline), "run_id": run_id},
        placeholders={"baseline": hook.array_placeholder("double precision")},
    )  # fmt: skip
    cur.execute(
        "SELECT anomaly_id, alerted_at IS NULL AND suppressed_by IS NULL FROM ops.anomalies "
        "WHERE metric = %s AND window_start = %s AND window_end = %s",
        window,
    )
    anomaly_id, pending = cur.fetchone()
    if not pending:
        return anomaly_id, False
    cur.execute(
        """
        SELECT anomaly_id FROM ops.anomalies
        WHERE metric = %s AND direction = %s AND anomaly_id <> %s
          AND (alerted_at IS NOT NULL OR suppressed_by IS NOT NULL)
          AND window_start <= %s AND window_end >= %s
        ORDER BY window_start LIMIT 1
        """,
        (finding.metric, finding.direction, anomaly_id, finding.window_end, finding.window_start),
    )
    ongoing = cur.fetchone()
    if ongoing:
        cur.execute("UPDATE ops.anomalies SET suppressed_by = %s WHERE anomaly_id = %s", (ongoing[0], anomaly_id))
        return anomaly_id, False
    return anomaly_id, True


def detect(
    hook: Any,
    start: datetime,
    end: datetime,
    *,
    weeks: int,
    warning: float,
    critical: float,
    run_id: str,
    log: Any,
) -> tuple[list[Finding], list[tuple[int, Finding]]]:
    """Score the window ``[start, end)`` against the same window on up to ``weeks`` weeks before and record
    the findings in ``ops.anomalies`` (one transaction); returns the findings and, of them, the ones to alert
    (with their ids)."""
    from acme_pipelines.migrations import require_current

    with hook.scoped_connection() as conn:
        require_current(conn)
        with conn.cursor() as cur:
            rows = hook.query_rows(cur, (SQL / "window_metrics.sql").read_text(), {"start": start, "end": end,
                                                                                   "weeks": weeks})  # fmt: skip
        found = evaluate(rows, start, end, warning=warning, critical=critical, log=log)
        alerts = []
        with conn.cursor() as cur:
            hook.begin(cur)
            for finding in found:
                anomaly_id, alert = record(hook, cur, finding, run_id)
                if alert:
                    alerts.append((anomaly_id, finding))
        conn.commit()
    return found, alerts


def mark_alerted(hook: Any, anomaly_id: int, via: str) -> None:
    """Note that the anomaly alerted, and where (its own transaction, after the alert went out)."""
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.anomalies SET alerted_at = CURRENT_TIMESTAMP, alerted_via = %s WHERE anomaly_id = %s",
            (via, anomaly_id),
        )
        conn.commit()
