"""Quality results and the write-audit-publish gate, stored in the warehouse.

``ops.quality_results`` keeps every check's outcome per DAG run and day (a retry
of the run replaces its own rows); ``ops.quality_gate`` holds the day's verdict
that consumers wait on: features, training and reports read only days whose
status is ``passed``. The SQL runs on either warehouse; the hook supplies what differs (an array
parameter, the day's lock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from acme_pipelines.migrations import require_current
from acme_pipelines.warehouse import upsert_row

PASSED = "passed"
FAILED = "failed"


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result, whichever operator ran it."""

    name: str
    check_type: str
    passed: bool
    table: str | None = None
    column: str | None = None
    observed: str | None = None
    expected: str | None = None
    content: str | None = None


def outcomes_from_sql_checks(results: Iterable[Any], default_table: str | None = None) -> list[CheckOutcome]:
    """common-sql's ``SQLCheckResult`` objects as outcomes."""
    return [
        CheckOutcome(
            name=f"{r.table or default_table}:{r.name}" if (r.table or default_table) and ":" not in r.name else r.name,
            check_type=r.check_type,
            passed=bool(r.success),
            table=r.table or default_table,
            column=r.column,
            observed=r.actual,
            expected=r.expected,
            content=r.content,
        )
        for r in results
    ]


def record_results(hook: Any, dt: date, run_id: str, task_id: str, outcomes: list[CheckOutcome]) -> None:
    """Replace this task's results of this run and day with ``outcomes`` (one transaction)."""
    with hook.scoped_connection() as conn:
        require_current(conn)
        with conn.cursor() as cur:
            hook.begin(cur)
            cur.execute(
                "DELETE FROM ops.quality_results WHERE dt = %s AND run_id = %s AND task_id = %s", (dt, run_id, task_id)
            )
            if outcomes:
                cur.executemany(
                    "INSERT INTO ops.quality_results (dt, run_id, task_id, check_name, check_type, table_name, "
                    "column_name, passed, observed, expected, content) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",  # two checks of one name: an error
                    [
                        (dt, run_id, task_id, o.name, o.check_type, o.table, o.column, o.passed, o.observed,
                         o.expected, o.content)
                        for o in outcomes
                    ],
                )  # fmt: skip
        conn.commit()


def decide_gate(hook: Any, dt: date, run_id: str, checks: Iterable[str] = ()) -> tuple[str, list[str]]:
    """Set the day's gate from this run's results: passed only if every check of the run passed and each of
    ``checks`` (task ids) recorded a result (a check task that failed before checking, e.g. killed, records none).

    Runs after the checks, whose ``record_results`` created the tables. The day's row is updated or inserted
    under the day's lock (``warehouse.upsert_row``).
    """
    with hook.scoped_connection() as conn:
        with conn.cursor() as cur:
            hook.begin(cur)
            cur.execute(
                "SELECT check_name, passed, task_id FROM ops.quality_results WHERE dt = %s AND run_id = %s",
                (dt, run_id),
            )
            results = cur.fetchall()
            failed = sorted(name for name, passed, _ in results if not passed)
            silent = sorted(set(checks) - {task for _, _, task in results})
            failed += [f"{task}: no result (the task failed before checking; see its log)" for task in silent]
            if not results:
                failed.append("no quality results recorded for this run")
            status = FAILED if failed else PASSED
            upsert_row(
                hook, cur, "ops.quality_gate", {"dt": dt},
                {"status": status, "run_id": run_id, "failed": hook.array_param(failed),
                 "decided_at": datetime.now(UTC)},
                placeholders={"failed": hook.array_placeholder("text")},
            )  # fmt: skip
        conn.commit()
    return status, failed


def gate_status(hook: Any, dt: date) -> tuple[str | None, list[str]]:
    """The day's gate: (``passed``/``failed``/None when not decided yet, failed check names).

    A sensor pokes this every few minutes: no DDL; a warehouse where no quality run has happened yet reads
    as "not decided".
    """
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE lower(table_schema) = 'ops' AND lower(table_name) = 'quality_gate'"
        )
        if not cur.fetchone()[0]:
            return None, []
        cur.execute("SELECT status, failed FROM ops.quality_gate WHERE dt = %s", (dt,))
        row = cur.fetchone()
    return (row[0], hook.array_result(row[1])) if row else (None, [])


def days_passed(hook: Any, days: list[date]) -> set[date]:
    """Which of ``days`` have a ``passed`` gate."""
    if not days:
        return set()
    with hook.scoped_connection() as conn, conn.cursor() as cur:
        placeholders = ", ".join(["%s"] * len(days))
        cur.execute(f"SELECT dt FROM ops.quality_gate WHERE status = %s AND dt IN ({placeholders})", (PASSED, *days))
        return {row[0] for row in cur.fetchall()}
