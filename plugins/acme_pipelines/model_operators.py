"""The churn model's training operator (logic in ``churn_model``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acme_pipelines.operators import WarehouseOperator, Work
from acme_pipelines.partitions import Partition


class TrainChurnModelOperator(WarehouseOperator):
    """Train the churn model for the run's day, register it, promote it if it beats the champion.

    The artifact goes to ``{artifacts_root}/models/churn/<version>/model.joblib``
    (object storage); the registry row carries its sha256, its metric and the
    champion's metric on the *same* test rows. A rerun of the day rewrites the
    same version (same bytes for the same seed), never a second row. Too little
    labelled history skips the task (nothing registered) with the reason.

    :param horizon_days: days without an order that count as churn (templated).
    :param min_improvement: how much higher the new ROC AUC must be to promote (templated).
    """

    template_fields: Sequence[str] = ("artifacts_root", "horizon_days", "history_days", "min_improvement", "seed")

    def __init__(
        self,
        *,
        artifacts_root: str = "{{ var.value.artifacts_root }}",
        horizon_days: int | str = "{{ var.value.get('churn_horizon_days', '3') }}",
        history_days: int | str = 90,
        min_improvement: float | str = "{{ var.value.get('churn_min_improvement', '0.0') }}",
        seed: int | str = 42,
        max_rows: int = 2_000_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.artifacts_root = artifacts_root
        self.horizon_days = horizon_days
        self.history_days = history_days
        self.min_improvement = min_improvement
        self.seed = seed
        self.max_rows = max_rows

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from airflow.sdk.exceptions import AirflowSkipException

        from acme_pipelines import churn_model as cm
        from acme_pipelines.lineage import storage_dataset

        try:
            result = cm.train_and_register(
                hook, partition.dt, context["run_id"], artifacts_root=self.artifacts_root,
                horizon_days=int(self.horizon_days), history_days=int(self.history_days), max_rows=self.max_rows,
                seed=int(self.seed), min_improvement=float(self.min_improvement), log=self.log,
            )  # fmt: skip
        except cm.NotEnoughHistoryError as exc:
            raise AirflowSkipException(f"not training {cm.version_of(partition.dt)}: {exc}") from None
        champion = result.champion
        verdict = "promoted to champion" if result.promoted else "not promoted"
        against = f" (champion {champion[0]}: {champion[1]:.4f} on the same rows)" if champion else " (no champion yet)"
        self.log.info("%s %s %.4f: %s%s", result.version, cm.METRIC, result.metric_value, verdict, against)
        return Work(
            {"model_version": result.version, "metric": cm.METRIC, "value": result.metric_value,
             "champion": result.promoted, "compared_with": champion[0] if champion else None,
             "artifact": result.artifact},
            inputs=[hook.dataset("features.customer_features"), hook.dataset("core.fact_orders")],
            outputs=[hook.dataset(cm.REGISTRY), storage_dataset(result.artifact)],
        )  # fmt: skip
