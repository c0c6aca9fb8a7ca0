"""The daily business report: numbers from the marts (SQL in ``include/sql/reports``),
rendered as an HTML page with a PNG chart and CSV files, and a short Slack summary.

The report's figures are read from ``marts.daily_revenue`` as they are (no
recomputation), so the report always equals the mart it cites.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

INCLUDE = Path(__file__).resolve().parents[2] / "include"
SQL = INCLUDE / "sql" / "reports"
TEMPLATE = INCLUDE / "templates" / "daily_report.html.j2"
TOP_PRODUCTS = INCLUDE / "sql" / "shared" / "top_products.sql"
METRICS = (  # (label, column, previous-day column, previous-week column)
    ("Revenue (USD)", "revenue_usd", "revenue_prev_day", "revenue_prev_week"),
    ("Orders", "orders", "orders_prev_day", "orders_prev_week"),
    ("Average order value (USD)", "avg_order_value_usd", "aov_prev_day", "aov_prev_week"),
    ("Refunds (USD)", "refunds_usd", "refunds_prev_day", "refunds_prev_week"),
)


class ReportDataMissingError(RuntimeError):
    """The mart has no row for the day: the ETL has not published it."""


@dataclass
class Metric:
    label: str
    value: Decimal | int | None
    prev_day: Decimal | int | None
    prev_week: Decimal | int | None

    @property
    def dod_pct(self) -> float | None:
        return change_pct(self.value, self.prev_day)

    @property
    def wow_pct(self) -> float | None:
        return change_pct(self.value, self.prev_week)


@dataclass
class DailyReport:
    dt: date
    metrics: list[Metric]
    paid_orders: int
    top_products: list[dict[str, Any]]
    trend: list[dict[str, Any]]

    def metric(self, label: str) -> Metric:
        return next(m for m in self.metrics if m.label == label)


def change_pct(value: Any, before: Any) -> float | None:
    """Percent change from ``before`` to ``value``; None when there is nothing to compare with."""
    if value is None or before is None or before == 0:
        return None
    return round(float((Decimal(value) - Decimal(before)) / Decimal(before) * 100), 2)


def fetch(hook: Any, conn: Any, dt: date, top_n: int = 5) -> DailyReport:
    """The day's report from the warehouse (``hook``, on ``conn``)."""
    with conn.cursor() as cur:

        def rows(name: str | Path, params: dict[str, Any]) -> list[dict[str, Any]]:
            return hook.query_rows(cur, (SQL / name).read_text(), params)

        summary = rows("daily_summary.sql", {"dt": dt})
        if not summary:
            raise ReportDataMissingError(f"marts.daily_revenue has no row for {dt}: run daily_etl for it first")
        [row] = summary
        day = datetime.combine(dt, time(), UTC)
        top = rows(TOP_PRODUCTS, {"day_start": day, "until": day + timedelta(days=1), "limit": top_n})
        trend = rows("revenue_trend.sql", {"dt": dt})
    metrics = [Metric(label, row[col], row[day], row[week]) for label, col, day, week in METRICS]
    return DailyReport(dt, metrics, row["paid_orders"], top, trend)


def render_chart(report: DailyReport) -> bytes:
    """Revenue and refunds of the 14 days up to the report's day, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    days = [r["dt"] for r in report.trend]
    labels = [d.strftime("%m-%d") for d in days]
    revenue = [float(r["revenue_usd"]) for r in report.trend]
    refunds = [float(r["refunds_usd"]) for r in report.trend]
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    try:
        colors = ["#1f77b4" if d == report.dt else "#9ecae1" for d in days]
        positions = list(range(len(days)))
        ax.bar(positions, revenue, color=colors, label="revenue (captured)")
        ax.bar(positions, [-r for r in refunds], color="#e6550d", label="refunds")
        ax.set_xticks(positions, labels)
        ax.axhline(0, color="#444", linewidth=0.8)
        ax.set_title(f"Revenue and refunds in USD, 14 days to {report.dt}")
        ax.set_ylabel("USD")
        ax.yaxis.set_major_formatter(FuncFormatter(_usd_tick))
        ax.legend(loc="upper left", fontsize=8)
        ax.tick_params(axis="x", labelsize=8, rotation=45)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
        return out.getvalue()
    finally:
        plt.close(fig)


def _usd_tick(value: float, _position: int) -> str:
    size = abs(value)
    if size >= 1e6:
        return f"${value / 1e6:,.1f}M"
    if size >= 1e3:
        return f"${value / 1e3:,.0f}k"
    return f"${value:,.0f}"


def render_csv(report: DailyReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["dt", "metric", "value", "previous_day", "day_over_day_pct", "previous_week", "week_over_week_pct"]
    )
    for m in report.metrics:
        writer.writerow([report.dt, m.label, m.value, m.prev_day, m.dod_pct, m.prev_week, m.wow_pct])
    for rank, p in enumerate(report.top_products, 1):
        writer.writerow(
            [report.dt, f"Top product {rank}: {p['name']} ({p['category']})", p["booked_usd"], "", "", "", ""]
        )
    return out.getvalue().encode()


def render_html(report: DailyReport, chart_name: str, csv_name: str) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE.read_text()).render(report=report, chart=chart_name, csv=csv_name)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def slack_text(report: DailyReport, link: str) -> str:
    revenue = report.metric("Revenue (USD)")
    orders = report.metric("Orders")
    aov = report.metric("Average order value (USD)")
    refunds = report.metric("Refunds (USD)")
    return (
        f":bar_chart: Daily report {report.dt}: revenue ${revenue.value:,.2f} "
        f"({_pct(revenue.dod_pct)} d/d, {_pct(revenue.wow_pct)} w/w), "
        f"{orders.value:,} orders ({_pct(orders.dod_pct)} d/d), "
        f"AOV ${aov.value or 0:,.2f}, refunds ${refunds.value:,.2f}.\n"
        f"Report: {link}"
    )
