"""The anomaly detection operator (scoring in ``anomalies``; SQL in ``include/sql/anomalies``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from acme_pipelines.operators import WarehouseOperator, Work
from acme_pipelines.partitions import Grain, Partition

HALF_HOUR = Grain.minutes(30)
INPUTS = ("core.fact_orders", "core.fact_payments", "ops.load_audit")


class AnomalyDetectionOperator(WarehouseOperator):
    """Score order count, revenue and payment failure rate of the window ending with the run's half hour.

    The window is the ``window_minutes`` before the end of the run's 30-minute
    partition, compared with the same window on up to ``weeks_back`` previous
    weeks (median and MAD, at least 3 weeks with data). A metric whose source
    has not reached the window yet (payments arrive with the next daily_etl)
    is not scored, and says so. Findings go to ``ops.anomalies``; new ones
    alert once: warnings to Slack, critical ones to PagerDuty and Slack.
    """

    template_fields: Sequence[str] = ("window_minutes", "weeks_back", "warning_score", "critical_score")
    partition_grain = HALF_HOUR

    def __init__(
        self,
        *,
        window_minutes: int | str = "{{ var.value.get('anomaly_window_minutes', '60') }}",
        weeks_back: int | str = 4,
        warning_score: float | str = "{{ var.value.get('anomaly_warning_score', '4') }}",
        critical_score: float | str = "{{ var.value.get('anomaly_critical_score', '8') }}",
        slack_conn_id: str = "slack_alerts",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_minutes = window_minutes
        self.weeks_back = weeks_back
        self.warning_score = warning_score
        self.critical_score = critical_score
        self.slack_conn_id = slack_conn_id

    def run(self, context: Any, half_hour: Partition, hook: Any) -> Work:
        from acme_pipelines import anomalies

        end = half_hour.end
        start = end - timedelta(minutes=int(self.window_minutes))
        found, alerts = anomalies.detect(
            hook, start, end, weeks=int(self.weeks_back), warning=float(self.warning_score),
            critical=float(self.critical_score), run_id=context["run_id"], log=self.log,
        )  # fmt: skip
        for anomaly_id, finding in alerts:  # after the commit: a failed send is retried by the next run
            anomalies.mark_alerted(hook, anomaly_id, self._alert(finding))
        return Work(
            {"window": f"{start:%Y-%m-%dT%H:%M}/{end:%Y-%m-%dT%H:%M}", "found": len(found), "alerted": len(alerts)},
            inputs=[hook.dataset(t) for t in INPUTS],
            outputs=[hook.dataset("ops.anomalies")],
            counters=[("anomalies_found", len(found), "ops.anomalies")],
        )

    def _alert(self, finding: Any) -> str:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        from acme_pipelines.alert_channels import page
        from acme_pipelines.alert_config import ALERT_ANCHORS, runbook_url
        from acme_pipelines.metrics import emit_count

        icon = ":rotating_light:" if finding.severity == "critical" else ":warning:"
        runbook = f"{runbook_url()}#{ALERT_ANCHORS['anomaly']}"
        text = (
            f"{icon} Anomaly ({finding.severity}): {finding.metric} {finding.direction} "
            f"{finding.observed:,.4g} vs {finding.expected:,.4g} expected (score {finding.score:+.1f}) "
            f"in [{finding.window_start:%Y-%m-%d %H:%M}, {finding.window_end:%H:%M}) UTC; "
            f"same window on past weeks: {', '.join(f'{v:,.4g}' for v in finding.baseline)}\n"
            f"runbook: {runbook}"
        )
        SlackWebhookHook(slack_webhook_conn_id=self.slack_conn_id).send(text=text)
        channels = ["slack"]
        if finding.severity == "critical":
            if page(
                summary=text.splitlines()[0][:1000],
                dedup_key=f"anomaly/{finding.metric}/{finding.window_start:%Y-%m-%dT%H:%M}",
                details={"text": text, "runbook": runbook},
            ):
                channels.append("pagerduty")
            else:
                self.log.info("PagerDuty disabled here: critical anomaly posted to Slack only")
        for channel in channels:
            emit_count("alerts_sent", 1, dag_id=self.dag_id, channel=channel, alert="anomaly")
        if finding.severity == "critical" and "pagerduty" not in channels:
            channels.append("pagerduty-disabled")  # recorded in ops.anomalies.alerted_via
        via = ",".join(channels)
        self.log.info("alerted via %s: %s", via, text)
        return via
