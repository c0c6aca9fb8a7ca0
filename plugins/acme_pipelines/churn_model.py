"""Churn model: labelled training data from the feature store, a time split, training,
evaluation against the current champion on the same held-out rows, and the registry.

A customer (with at least one order) *churns* after ``as_of_date`` when they
place no order in the ``horizon_days`` that follow. Labels of day ``dt``'s
training only use orders up to ``dt``, so only as-of dates at least
``horizon_days`` old are labelled. The newest labelled as-of dates are the
test split, the older ones the training split (no customer-day of the test
period is seen in training). Everything is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from acme_pipelines.warehouse import upsert_row

FEATURES = (
    "days_since_signup",
    "recency_days",
    "orders_7d",
    "orders_30d",
    "orders_lifetime",
    "monetary_30d_usd",
    "avg_order_value_30d_usd",
    "refunds_30d_usd",
    "refund_count_30d",
    "failed_payments_30d",
    "events_7d",
    "events_30d",
)
METRIC = "roc_auc"
ALGORITHM = "logistic_regression"
REGISTRY = "ml.model_registry"

LABELLED_SQL = f"""
SELECT f.as_of_date, {", ".join(f"f.{c}::float8 AS {c}" for c in FEATURES)},
       NOT EXISTS (
           SELECT 1 FROM core.fact_orders o
           WHERE o.customer_id = f.customer_id
             AND o.created_at >= f.as_of_date + 1
             AND o.created_at < f.as_of_date + 1 + %(horizon)s
       ) AS churned
FROM features.customer_features f
WHERE f.as_of_date <= %(dt)s::date - %(horizon)s
  AND f.as_of_date > %(dt)s::date - %(horizon)s - %(history)s
  AND f.orders_lifetime > 0
ORDER BY f.as_of_date, f.customer_id
LIMIT %(max_rows)s
"""


class NotEnoughHistoryError(Exception):
    """Too few labelled as-of dates for a time split; training is skipped, not failed."""


@dataclass
class Dataset:
    dates: np.ndarray  # as_of_date per row
    x: np.ndarray
    y: np.ndarray

    def where(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.dates[mask], self.x[mask], self.y[mask])


@dataclass
class Split:
    train: Dataset
    test: Dataset
    train_dates: list[date]
    test_dates: list[date]


@dataclass
class TrainedModel:
    model: Any
    params: dict[str, Any]
    metric_value: float
    artifact: bytes
    sha256: str
    split: Split


def load_labelled(hook: Any, conn: Any, dt: date, *, horizon_days: int, history_days: int, max_rows: int) -> Dataset:
    """Labelled rows (features + churned) as arrays, read in Arrow batches (``hook.query_batches`` on ``conn``).

    Training needs the whole matrix in memory; ``max_rows`` bounds it.
    """
    params = {"dt": dt, "horizon": horizon_days, "history": history_days, "max_rows": max_rows}
    batches = list(hook.query_batches(conn, LABELLED_SQL, params))
    if not batches:
        return Dataset(np.array([], dtype="datetime64[D]"), np.empty((0, len(FEATURES))), np.array([], dtype=bool))
    table = pa.Table.from_batches(batches)
    x = np.column_stack(
        [table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in FEATURES]
    )  # nulls become nan
    dates = table.column("as_of_date").to_numpy(zero_copy_only=False).astype("datetime64[D]")
    y = table.column("churned").to_numpy(zero_copy_only=False).astype(bool)
    return Dataset(dates, x, y)


def time_split(data: Dataset, test_share: float = 0.25) -> Split:
    """Newest as-of dates (at least one) for testing, the rest for training."""
    days = np.unique(data.dates)
    if len(days) < 2:
        raise NotEnoughHistoryError(
            f"{len(days)} labelled as-of date(s) ({', '.join(str(d) for d in days) or 'none'}); "
            "a time split needs at least 2"
        )
    n_test = max(1, round(len(days) * test_share))
    test_days = days[-n_test:]
    is_test = np.isin(data.dates, test_days)
    split = Split(
        data.where(~is_test), data.where(is_test), [d.item() for d in days[:-n_test]], [d.item() for d in test_days]
    )
    for name, part in (("training", split.train), ("test", split.test)):
        if len(np.unique(part.y)) < 2:
            raise NotEnoughHistoryError(f"the {name} split has only one class (churned={bool(part.y[0])})")
    return split


def train(split: Split, seed: int) -> TrainedModel:
    """Fit the pipeline on the training split, score ROC AUC on the test split."""
    import joblib
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {"C": 1.0, "max_iter": 1000, "class_weight": "balanced", "random_state": seed}
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(**params))
    model.fit(split.train.x, split.train.y)
    auc = float(roc_auc_score(split.test.y, model.predict_proba(split.test.x)[:, 1]))
    buffer = io.BytesIO()
    joblib.dump({"model": model, "features": FEATURES, "algorithm": ALGORITHM}, buffer)
    artifact = buffer.getvalue()
    return TrainedModel(model, params, auc, artifact, hashlib.sha256(artifact).hexdigest(), split)


def score_artifact(artifact: bytes, expected_sha256: str, test: Dataset) -> float:
    """ROC AUC of a stored model on ``test``; the artifact must match the registry's checksum."""
    import joblib
    from sklearn.metrics import roc_auc_score

    actual = hashlib.sha256(artifact).hexdigest()
    if actual != expected_sha256:
        raise ValueError(f"champion artifact checksum {actual} != registry's {expected_sha256}: not loading it")
    stored = joblib.load(io.BytesIO(artifact))
    if tuple(stored["features"]) != FEATURES:
        raise ValueError(f"champion was trained on other features: {stored['features']}")
    return float(roc_auc_score(test.y, stored["model"].predict_proba(test.x)[:, 1]))


def current_champion(cur: Any, excluding: str) -> tuple[str, str, str] | None:
    """(model_version, artifact_path, sha256) of the champion, other than ``excluding``."""
    cur.execute(
        "SELECT model_version, artifact_path, artifact_sha256 FROM ml.model_registry "
        "WHERE is_champion AND model_version <> %s",
        (excluding,),
    )
    return cur.fetchone()


def register(
    hook: Any,
    cur: Any,
    *,
    version: str,
    dt: date,
    run_id: str,
    trained: TrainedModel,
    artifact_path: str,
    champion: tuple[str, float] | None,
    promote: bool,
) -> None:
    """Update or insert the version's registry row; on promotion make it the only champion. The caller holds
    the registry's lock (``hook.lock``) and commits (``warehouse.upsert_row``)."""
    split = trained.split
    upsert_row(
        hook, cur, REGISTRY, {"model_version": version},
        {"run_id": run_id, "params": json.dumps(trained.params), "train_rows": len(split.train.y),
         "test_rows": len(split.test.y), "train_dates": ",".join(map(str, split.train_dates)),
         "test_dates": ",".join(map(str, split.test_dates)), "metric_value": trained.metric_value,
         "compared_with": champion[0] if champion else None, "compared_metric_value": champion[1] if champion else None,
         "artifact_path": artifact_path, "artifact_sha256": trained.sha256},
        on_insert={"trained_for_dt": dt, "algorithm": ALGORITHM, "metric_name": METRIC, "is_champion": False},
        placeholders={"params": hook.json_placeholder()},
    )  # fmt: skip
    if promote:
        cur.execute(
            "UPDATE ml.model_registry SET is_champion = false WHERE is_champion AND model_version <> %s", (version,)
        )
        cur.execute(
            "UPDATE ml.model_registry SET is_champion = true, promoted_at = coalesce(promoted_at, CURRENT_TIMESTAMP) "
            "WHERE model_version = %s",
            (version,),
        )


@dataclass(frozen=True)
class Registered:
    """What ``train_and_register`` did: the version, its metric, where its artifact is, the champion it was
    compared with (version, metric on the same test rows) and whether it was promoted."""

    version: str
    metric_value: float
    artifact: str
    champion: tuple[str, float] | None
    promoted: bool


def version_of(dt: date) -> str:
    return f"churn-{dt:%Y%m%d}"


def train_and_register(
    hook: Any,
    dt: date,
    run_id: str,
    *,
    artifacts_root: str,
    horizon_days: int,
    history_days: int,
    max_rows: int,
    seed: int,
    min_improvement: float,
    log: Any,
) -> Registered:
    """Train the day's model on the warehouse's labelled rows, write its artifact to
    ``{artifacts_root}/models/churn/<version>/model.joblib``, register it and promote it if it beats the
    champion on the same test rows by more than ``min_improvement``. ``NotEnoughHistoryError`` when there is
    too little labelled history (nothing written)."""
    from airflow.sdk import ObjectStoragePath

    from acme_pipelines.migrations import require_current

    version = version_of(dt)
    with hook.scoped_connection() as conn:
        require_current(conn)
        data = load_labelled(hook, conn, dt, horizon_days=horizon_days, history_days=history_days, max_rows=max_rows)
        log.info("%d labelled customer-days (horizon %s days)", len(data.y), horizon_days)
        split = time_split(data)
        trained = train(split, seed)
        log.info(
            "%s: %s %.4f on %d test rows (%s), trained on %d rows (%s)",
            version, METRIC, trained.metric_value, len(split.test.y), split.test_dates,
            len(split.train.y), split.train_dates,
        )  # fmt: skip
        folder = ObjectStoragePath(artifacts_root) / "models" / "churn" / version
        folder.mkdir(parents=True, exist_ok=True)
        artifact = folder / "model.joblib"
        artifact.write_bytes(trained.artifact)  # before the registry row: a crash leaves a file a rerun replaces
        with conn.cursor() as cur:
            hook.begin(cur)
            hook.lock(cur, REGISTRY)
            found = current_champion(cur, excluding=version)
            champion = None
            if found:
                champion_version, champion_path, champion_sha = found
                champion_blob = ObjectStoragePath(champion_path).read_bytes()
                champion = (champion_version, score_artifact(champion_blob, champion_sha, split.test))
            promote = champion is None or trained.metric_value > champion[1] + min_improvement
            register(hook, cur, version=version, dt=dt, run_id=run_id, trained=trained, artifact_path=str(artifact),
                     champion=champion, promote=promote)  # fmt: skip
        conn.commit()
    return Registered(version, trained.metric_value, str(artifact), champion, promote)
