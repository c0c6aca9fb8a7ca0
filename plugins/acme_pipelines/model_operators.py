"""The churn model's training operator (logic in ``churn_model``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acme_pipelines.operators import WarehouseOperator, mark_outlets
from acme_pipelines.partitions import DAY, resolve_partition

REGISTRY = "ml.model_registry"


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

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk import ObjectStoragePath
        from airflow.sdk.exceptions import AirflowSkipException

        from acme_pipelines import churn_model as cm
        from acme_pipelines.lineage import storage_dataset
        from acme_pipelines.migrations import require_current

        partition = resolve_partition(context, DAY)
        version = f"churn-{partition.dt:%Y%m%d}"
        hook = self.warehouse
        with hook.connection() as conn:
            require_current(conn)
            data = cm.load_labelled(
                hook,
                conn,
                partition.dt,
                horizon_days=int(self.horizon_days),
                history_days=int(self.history_days),
                max_rows=self.max_rows,
            )
            self.log.info("%d labelled customer-days (horizon %s days)", len(data.y), self.horizon_days)
            try:
                split = cm.time_split(data)
            except cm.NotEnoughHistoryError as exc:
                raise AirflowSkipException(f"not training {version}: {exc}") from None
            trained = cm.train(split, int(self.seed))
            self.log.info(
                "%s: %s %.4f on %d test rows (%s), trained on %d rows (%s)",
                version, cm.METRIC, trained.metric_value, len(split.test.y), split.test_dates,
                len(split.train.y), split.train_dates,
            )  # fmt: skip
            folder = ObjectStoragePath(self.artifacts_root) / "models" / "churn" / version
            folder.mkdir(parents=True, exist_ok=True)
            artifact = folder / "model.joblib"
            artifact.write_bytes(trained.artifact)  # before the registry row: a crash leaves a file a rerun replaces
            with conn.cursor() as cur:
                hook.begin(cur)
                hook.lock(cur, REGISTRY)
                found = cm.current_champion(cur, excluding=version)
                champion = None
                if found:
                    champion_version, champion_path, champion_sha = found
                    champion_blob = ObjectStoragePath(champion_path).read_bytes()
                    champion = (champion_version, cm.score_artifact(champion_blob, champion_sha, split.test))
                promote = champion is None or trained.metric_value > champion[1] + float(self.min_improvement)
                cm.register(
                    hook,
                    cur,
                    version=version,
                    dt=partition.dt,
                    run_id=context["run_id"],
                    trained=trained,
                    artifact_path=str(artifact),
                    champion=champion,
                    promote=promote,
                )
            conn.commit()
        verdict = "promoted to champion" if promote else "not promoted"
        against = f" (champion {champion[0]}: {champion[1]:.4f} on the same rows)" if champion else " (no champion yet)"
        self.log.info("%s %s %.4f: %s%s", version, cm.METRIC, trained.metric_value, verdict, against)
        self._set_lineage(
            hook,
            [hook.dataset("features.customer_features"), hook.dataset("core.fact_orders")],
            [hook.dataset(REGISTRY), storage_dataset(str(artifact))],
        )
        mark_outlets(context, self.outlets, partition)
        return {
            "model_version": version,
            "metric": cm.METRIC,
            "value": trained.metric_value,
            "champion": promote,
            "compared_with": champion[0] if champion else None,
            "artifact": str(artifact),
        }
