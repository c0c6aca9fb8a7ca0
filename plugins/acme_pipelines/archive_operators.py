"""The archival operator (logic in ``archive``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from acme_pipelines.operators import WarehouseOperator, Work
from acme_pipelines.partitions import Partition


class ArchivePartitionsOperator(WarehouseOperator):
    """Move every day of ``tables`` older than ``hot_retention_days`` before the run's day to cold storage.

    :param tables: the tables (default: every day-partitioned fact table, ``archive.ARCHIVED``).
    :param cold_storage_root: ``file://...`` or ``s3://[conn_id@]bucket/prefix`` (templated).
    :param storage_class: S3 storage class of the files (e.g. ``GLACIER_IR``; templated; ignored for file://).
    """

    template_fields: Sequence[str] = ("cold_storage_root", "hot_retention_days", "storage_class")

    def __init__(
        self,
        *,
        tables: Sequence[str] | None = None,
        cold_storage_root: str = "{{ var.value.cold_storage_root }}",
        hot_retention_days: int | str = "{{ var.value.get('hot_retention_days', '90') }}",
        storage_class: str = "{{ var.value.get('cold_storage_class', '') }}",
        fail_after: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tables = list(tables) if tables is not None else None
        self.cold_storage_root = cold_storage_root
        self.hot_retention_days = hot_retention_days
        self.storage_class = storage_class
        self.fail_after = fail_after

    def run(self, context: Any, partition: Partition, hook: Any) -> Work:
        from airflow.sdk import ObjectStoragePath

        from acme_pipelines import archive
        from acme_pipelines.lineage import storage_dataset
        from acme_pipelines.metrics import emit_count
        from acme_pipelines.migrations import require_current

        before = partition.dt - timedelta(days=int(self.hot_retention_days))
        root = ObjectStoragePath(self.cold_storage_root)
        # s3fs passes StorageClass on to put_object / the multipart upload
        options = {"StorageClass": self.storage_class} if self.storage_class and root.protocol == "s3" else {}
        with hook.scoped_connection() as conn:
            require_current(conn)
        tables = self.tables or sorted(archive.ARCHIVED)
        outcomes = []
        for table in tables:
            days = archive.days_to_archive(hook, table, before)
            self.log.info("%s: %d day(s) before %s to archive: %s", table, len(days), before, days)
            for number, day in enumerate(days, 1):
                outcome = archive.archive_partition(
                    hook, table, day, root, context["run_id"], storage_options=options, fail_after=self.fail_after
                )
                outcomes.append(outcome)
                self.log.info("[%d/%d] %s %s: %s, %d rows -> %s", number, len(days), table, day, outcome.action,
                              outcome.rows, outcome.path)  # fmt: skip
            # per table as it finishes (not in the Work): a later table's failure must not lose this count
            emit_count("partitions_archived", len(days), dag_id=self.dag_id, task_id=self.task_id, table=table)
        return Work(
            {"before": before.isoformat(), "archived": [(o.table, o.day.isoformat(), o.rows) for o in outcomes]},
            inputs=[hook.dataset(t) for t in tables],
            outputs=[storage_dataset(o.path) for o in outcomes] + [hook.dataset("ops.archive_manifest")],
        )
