"""Row accounting of a load, backend-neutral (contract §2): counts, the audit entry, and when a load must not publish.

Below every warehouse backend: the PostgreSQL and the Snowflake loads, the metrics and the
operators all count rows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException


@dataclass
class LoadCounts:
    """Contract §2: rows_in = rows_loaded + rows_rejected + rows_duplicate."""

    rows_in: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rows rejected for ``reason``."""
        self.rows_rejected += n
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + n

    def check(self) -> None:
        if self.rows_in != self.rows_loaded + self.rows_rejected + self.rows_duplicate:
            raise AssertionError(f"row accounting does not add up: {self}")

    @property
    def reject_ratio(self) -> float:
        return self.rows_rejected / self.rows_in if self.rows_in else 0.0


class LoadFailedError(RuntimeError):
    """The load was refused (too many rejects, missing inputs); nothing was published."""


class TooManyRejectsError(LoadFailedError, AirflowFailException):
    """Contract §2: the rejected share is over ``max_reject_ratio``. The rejects are recorded and nothing is
    published. The same input fails again, so it is an AirflowFailException: the task fails without retries."""


def refuse(counts: LoadCounts, max_reject_ratio: float, missing_fx: set[str] | None = None, day: Any = None) -> str:
    """Why a counted load must not publish ("" when it may): too many rejects, or currencies without a rate."""
    if counts.reject_ratio > max_reject_ratio:
        return (
            f"{counts.rows_rejected} of {counts.rows_in} rows rejected "
            f"({counts.reject_ratio:.2%} > max_reject_ratio {max_reject_ratio:.2%})"
        )
    if missing_fx:
        return f"no FX rate for {', '.join(sorted(missing_fx))} on {day}: load core.fx_rates first"
    return ""


def refusal_error(what: str, error: str, counts: LoadCounts, max_reject_ratio: float) -> LoadFailedError:
    """The exception for a refused load (``refuse``): TooManyRejectsError when that is the reason."""
    kind = TooManyRejectsError if counts.reject_ratio > max_reject_ratio else LoadFailedError
    return kind(f"{what}: {error}; nothing was published")


@dataclass(frozen=True)
class AuditEntry:
    dag_id: str
    task_id: str
    run_id: str
    source: str
    target: str
    partition: str
    started_at: datetime
