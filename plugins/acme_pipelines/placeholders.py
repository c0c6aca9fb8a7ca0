"""A loud stand-in for a DAG whose pipeline is not built yet.

The DAG id and schedule exist from the start (so the UI, governance tests and
settings are complete), but running it fails at once with the issue that will
build it, and it is paused when first seen so it never fails on a schedule.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


class NotBuiltError(AirflowFailException):
    """Raised by a DAG that exists only as a placeholder; fails at once, without retries."""


class NotBuiltOperator(BaseOperator):
    """Fails with a message naming the issue that builds this DAG."""

    ui_color = "#f4cccc"

    def __init__(self, *, issue: int, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", "not_built")
        super().__init__(**kwargs)
        self.issue = issue

    def execute(self, context: Any) -> None:
        raise NotBuiltError(
            f"{self.dag_id} is a placeholder: its pipeline is built in issue #{self.issue}. "
            "Nothing was read or written."
        )
