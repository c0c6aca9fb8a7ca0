"""Rebuild one day of a derived table from its SQL file in one transaction (PostgreSQL warehouse)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from psycopg2 import sql

from acme_pipelines.migrations import require_current
from acme_pipelines.warehouse import lock_day, qualified


def rebuild_partition(
    hook: Any,
    sql_text: str,
    params: dict[str, Any],
    target: str,
    partition_column: str,
    precondition_text: str | None = None,
) -> int:
    """Run a partition's SQL file (delete + insert of ``params["dt"]``) in one transaction; its row count.

    ``precondition_text`` returns one row (ok, message): not ok fails the task and changes nothing.
    PostgreSQL warehouse; ``backends.rebuild_partition`` picks this or ``snowflake_loads.rebuild_partition``.
    """
    with hook.scoped_connection() as conn:
        require_current(conn)
        with conn.cursor() as cur:
            lock_day(cur, target, params["dt"])
            if precondition_text:
                cur.execute(precondition_text, params)
                ok, message = cur.fetchone()
                if not ok:
                    raise AirflowFailException(f"{target} {params['dt']}: {message}")
            cur.execute(sql_text, params)
            cur.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                    qualified(target), sql.Identifier(partition_column)
                ),
                (params["dt"],),
            )
            rows = cur.fetchone()[0]
        conn.commit()
    return rows
