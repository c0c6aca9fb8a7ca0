"""OpenLineage datasets, named one way: namespace per system, name per table or path."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def storage_dataset(uri: str) -> tuple[str, str]:
    """``file:///data/landing/x`` -> ("file", "/data/landing/x"); ``s3://b/p`` -> ("s3://b", "p")."""
    parts = urlsplit(str(uri))
    if parts.scheme in ("", "file"):
        return "file", parts.path
    bucket = parts.hostname or parts.netloc.split("@")[-1]
    return f"{parts.scheme}://{bucket}", parts.path.lstrip("/")


def operator_lineage(inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]) -> Any:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in outputs],
    )
