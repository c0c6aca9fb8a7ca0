"""OpenLineage datasets, named one way: namespace per system, name per table or path.

- warehouse and app tables: ``postgres://HOST:PORT`` / ``<database>.<schema>.<table>``
- files: ``file`` / ``/absolute/path``; object storage: ``s3://bucket`` / ``key``
- the FX API: ``https://host`` / ``<path>``

Each dataset carries a column-level schema facet where the columns are known:
warehouse tables from ``information_schema`` (one query per task, at completion),
landing files from the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

DatasetRef = tuple[str, str]  # (namespace, name)
Columns = Sequence[tuple[str, str]]  # (column, type) in ordinal order


def storage_dataset(uri: str) -> DatasetRef:
    """``file:///data/landing/x`` -> ("file", "/data/landing/x"); ``s3://b/p`` -> ("s3://b", "p")."""
    parts = urlsplit(str(uri))
    if parts.scheme in ("", "file"):
        return "file", parts.path
    bucket = parts.hostname or parts.netloc.split("@")[-1]
    return f"{parts.scheme}://{bucket}", parts.path.lstrip("/")


def landing_file_columns(name: str) -> Columns | None:
    """The contract's columns of a landing file (``.../<source>/dt=YYYY-MM-DD/<file>``), else None."""
    from acme_pipelines.contract import SOURCES

    for spec in SOURCES.values():
        if f"{spec.name}/dt=" in name:
            return [(c.name, c.pg_type) for c in spec.columns]
    return None


def warehouse_schemas(hook: Any, datasets: Iterable[DatasetRef]) -> dict[DatasetRef, Columns]:
    """Columns of the datasets that are tables of ``hook``'s database (one information_schema query)."""
    namespace, database = hook.namespace(), hook.database_name()
    wanted = {name: (ns, name) for ns, name in datasets if ns == namespace and name.startswith(f"{database}.")}
    if not wanted:
        return {}
    by_table = {name.removeprefix(f"{database}.").lower(): ref for name, ref in wanted.items()}
    tables = list(by_table)
    found: dict[DatasetRef, list[tuple[str, str]]] = {}
    with hook.scoped_connection() as conn:  # portable SQL: PostgreSQL and Snowflake (which upper-cases names)
        cur = conn.cursor()
        cur.execute(
            "SELECT lower(table_schema) || '.' || lower(table_name), lower(column_name), lower(data_type) "
            "FROM information_schema.columns WHERE lower(table_schema) || '.' || lower(table_name) IN ("
            + ", ".join(["%s"] * len(tables))
            + ") ORDER BY table_schema, table_name, ordinal_position",
            tuple(tables),
        )
        for table, column, data_type in cur.fetchall():
            found.setdefault(by_table[table], []).append((column, data_type))
    return found


def operator_lineage(
    inputs: Sequence[DatasetRef],
    outputs: Sequence[DatasetRef],
    schemas: Mapping[DatasetRef, Columns] | None = None,
) -> Any:
    """``OperatorLineage`` with a schema facet on every dataset whose columns are known."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[_dataset(ref, schemas or {}) for ref in inputs],
        outputs=[_dataset(ref, schemas or {}) for ref in outputs],
    )


def warehouse_lineage(hook: Any, inputs: Sequence[DatasetRef], outputs: Sequence[DatasetRef]) -> Any:
    """``operator_lineage`` with the schemas of ``hook``'s tables and of landing files filled in."""
    schemas: dict[DatasetRef, Columns] = {}
    try:
        schemas.update(warehouse_schemas(hook, [*inputs, *outputs]))
    except Exception:  # lineage never fails a task: the datasets go out without their schema
        import logging

        logging.getLogger(__name__).warning("no schema facets: the warehouse could not be asked", exc_info=True)
    for ref in [*inputs, *outputs]:
        if ref not in schemas and (columns := landing_file_columns(ref[1])):
            schemas[ref] = columns
    return operator_lineage(inputs, outputs, schemas)


def _dataset(ref: DatasetRef, schemas: Mapping[DatasetRef, Columns]) -> Any:
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    namespace, name = ref
    columns = schemas.get(ref)
    if not columns:
        return Dataset(namespace=namespace, name=name)
    fields = [SchemaDatasetFacetFields(name=column, type=kind) for column, kind in columns]
    return Dataset(namespace=namespace, name=name, facets={"schema": SchemaDatasetFacet(fields=fields)})
