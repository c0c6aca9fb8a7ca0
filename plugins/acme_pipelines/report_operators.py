"""The daily report's operator (logic in ``reports``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acme_pipelines.operators import WarehouseOperator, Work
from acme_pipelines.partitions import Partition

INPUTS = ("marts.daily_revenue", "core.fact_orders", "core.fact_order_items", "core.dim_product", "core.fx_rates")


class DailyReportOperator(WarehouseOperator):
    """Render the day's report into ``{artifacts_root}/reports/dt=<day>/`` and post its summary to Slack.

    Files: ``report.html``, ``revenue_14d.png`` and ``report.csv``, written
    (overwritten on a rerun) through ``ObjectStoragePath``. The Slack post goes
    to the ``slack_conn_id`` webhook and links to the HTML page; with
    ``report_base_url`` set (e.g. a CDN or bucket website) the link uses it.
    """

    template_fields: Sequence[str] = ("artifacts_root", "report_base_url", "slack_conn_id")

    def __init__(
        self,
        *,
        artifacts_root: str = "{{ var.value.artifacts_root }}",
        report_base_url: str = "{{ var.value.get('report_base_url', '') }}",
        slack_conn_id: str = "slack_reports",
        top_n: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.artifacts_root = artifacts_root
        self.report_base_url = report_base_url
        self.slack_conn_id = slack_conn_id
        self.top_n = top_n

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
        from airflow.sdk import ObjectStoragePath

        from acme_pipelines import reports
        from acme_pipelines.lineage import storage_dataset

        with hook.scoped_connection() as conn:
            report = reports.fetch(hook, conn, partition.dt, self.top_n)
        folder = ObjectStoragePath(self.artifacts_root) / "reports" / f"dt={partition.key}"
        folder.mkdir(parents=True, exist_ok=True)
        files = {"revenue_14d.png": reports.render_chart(report), "report.csv": reports.render_csv(report)}
        files["report.html"] = reports.render_html(report, "revenue_14d.png", "report.csv").encode()
        for name, content in files.items():  # the page last: it is what the link points at
            (folder / name).write_bytes(content)
        page = folder / "report.html"
        base = (self.report_base_url or "").rstrip("/")
        text = reports.slack_text(report, f"{base}/reports/dt={partition.key}/report.html" if base else str(page))
        SlackWebhookHook(slack_webhook_conn_id=self.slack_conn_id).send(text=text)
        self.log.info("report %s written to %s; posted to Slack: %s", partition.key, folder, text)
        return Work(
            {"partition": partition.key, "report": str(page), "files": sorted(files), "slack_text": text},
            inputs=[hook.dataset(t) for t in INPUTS],
            outputs=[storage_dataset(str(folder / name)) for name in files],
        )
