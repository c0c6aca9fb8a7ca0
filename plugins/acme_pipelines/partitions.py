"""Which partition (hour, day, week or window) a DAG run processes.

This is the one place that answers the question, so that a scheduled run, a
manual trigger in the UI, ``airflow dags test`` and a backfill all agree.
The rule, in order of precedence:

1. ``params.partition`` if the run names one (UI trigger form, ``-c``/``--conf``,
   and the runs a producer triggers for the partition it published: ``downstream``).
2. The run's data interval: the partition is the grain-aligned period in which
   ``data_interval_start`` falls. Scheduled DAGs use data-interval timetables
   (``CronDataIntervalTimetable``), so the run the scheduler starts at
   2026-11-02T02:00 covers [11-01T02:00, 11-02T02:00) and processes day
   2026-11-01; a backfill ``--from-date 2026-11-01`` processes 2026-11-01
   first; a manual run without a partition processes the last complete one.

A partition whose end lies after the run's ``run_after`` is refused: its data
is not complete yet. All times are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

# A Monday at midnight UTC: weeks are ISO weeks, and every grain that divides a
# week is aligned to this anchor.
_ANCHOR = datetime(1970, 1, 5, tzinfo=UTC)

PARAM_NAME = "partition"
END_PARAM_NAME = "partition_end"


class PartitionError(AirflowFailException, ValueError):
    """The run's partition is ambiguous, malformed or not complete yet.

    A mistake in how the run was started, not a transient fault: the task
    fails at once instead of spending its retries on it.
    """


@dataclass(frozen=True)
class Grain:
    """The length of one partition; it must divide a week."""

    name: str
    length: timedelta

    def __post_init__(self) -> None:
        if self.length <= timedelta(0) or timedelta(weeks=1) % self.length:
            raise ValueError(f"grain {self.name!r}: {self.length} does not divide a week")

    @classmethod
    def minutes(cls, n: int) -> Grain:
        return cls(f"{n}min", timedelta(minutes=n))

    @property
    def is_sub_daily(self) -> bool:
        return self.length < timedelta(days=1)

    def floor(self, moment: datetime) -> datetime:
        """The start of the partition of this grain that contains ``moment``."""
        moment = _as_utc(moment)
        return _ANCHOR + ((moment - _ANCHOR) // self.length) * self.length


HOUR = Grain("hour", timedelta(hours=1))
DAY = Grain("day", timedelta(days=1))
WEEK = Grain("week", timedelta(weeks=1))


@dataclass(frozen=True)
class Partition:
    """A half-open period [start, end) of whole grains, and how it was chosen.

    Usually one grain long; a run may name a longer range (``partition_end``)
    where the DAG allows it (catch-up loads whose windows may overlap).
    """

    start: datetime
    grain: Grain
    source: str = "data_interval"
    end: datetime = None  # type: ignore[assignment]  # defaults to start + one grain

    def __post_init__(self) -> None:
        if self.end is None:
            object.__setattr__(self, "end", self.start + self.grain.length)
        if self.end <= self.start:
            raise PartitionError(f"partition end {self.end} is not after its start {self.start}")

    @property
    def is_range(self) -> bool:
        return self.end - self.start != self.grain.length

    @property
    def dt(self) -> date:
        """The partition's day (for weeks: its Monday)."""
        return self.start.date()

    @property
    def key(self) -> str:
        """The partition as users write it: ``2026-11-01``, ``2026-11-01T05:00``; a range is ``start/end``."""
        if self.is_range:
            return f"{_key(self.start, self.grain)}/{_key(self.end, self.grain)}"
        return _key(self.start, self.grain)

    def __str__(self) -> str:
        return f"{self.grain.name} {self.key} [{self.start:%Y-%m-%dT%H:%M}Z, {self.end:%Y-%m-%dT%H:%M}Z)"

    def days(self) -> list[date]:
        """The days the partition covers (for day grains: one per grain step)."""
        out, day = [], self.start
        while day < self.end:
            out.append(day.date())
            day += timedelta(days=1)
        return out


def _key(moment: datetime, grain: Grain) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M") if grain.is_sub_daily else moment.date().isoformat()


def parse_partition(key: str, grain: Grain, *, source: str = "param") -> Partition:
    """Turn ``2026-11-01`` / ``2026-11-01T05:00[+00:00]`` into a partition of ``grain``.

    Naive times are UTC. The key must be the start of a partition: a day for
    daily, a Monday for weekly, a whole hour for hourly. Anything else is an
    error that names the aligned value, never silently rounded.
    """
    text = str(key).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PartitionError(
            f"partition {key!r} is not an ISO date or time (expected e.g. "
            f"{'2026-11-01T05:00' if grain.is_sub_daily else '2026-11-01'})"
        ) from None
    moment = _as_utc(moment)
    start = grain.floor(moment)
    if start != moment:
        aligned = Partition(start, grain).key
        raise PartitionError(
            f"partition {key!r} is not the start of a {grain.name} partition; did you mean {aligned!r}?"
        )
    return Partition(start, grain, source)


def resolve_partition(context: Mapping[str, Any], grain: Grain, *, allow_range: bool = False) -> Partition:
    """The partition this run processes (see the module docstring).

    With ``allow_range``, ``params.partition_end`` extends a named partition to
    a range [partition, partition_end) processed as one window.
    """
    params = context.get("params") or {}
    named = params.get(PARAM_NAME)
    named_end = params.get(END_PARAM_NAME)
    if named_end and not allow_range:
        raise PartitionError(f"this DAG processes one partition per run: drop params.{END_PARAM_NAME}")
    if named_end and not named:
        raise PartitionError(f"params.{END_PARAM_NAME} needs params.{PARAM_NAME}")
    if named:
        found = parse_partition(named, grain, source="param")
        if named_end:
            last = parse_partition(named_end, grain, source="param")
            found = Partition(found.start, grain, "param", last.start)
    else:
        found = _from_data_interval(context, grain)
    run_after = _run_after(context)
    if run_after is not None and found.end > run_after:
        raise PartitionError(
            f"partition {found} is not complete at this run's run_after "
            f"{run_after:%Y-%m-%dT%H:%M}Z: its data may still be arriving. "
            f"Name a past partition with params.{PARAM_NAME}."
        )
    return found


def _from_data_interval(context: Mapping[str, Any], grain: Grain) -> Partition:
    start = context.get("data_interval_start")
    if start is None:
        raise PartitionError(
            f"this run has no data interval and names no partition: trigger it with params.{PARAM_NAME}"
        )
    return Partition(grain.floor(start), grain, "data_interval")


def _run_after(context: Mapping[str, Any]) -> datetime | None:
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None) if dag_run is not None else None
    return _as_utc(run_after) if run_after is not None else None


def _as_utc(moment: datetime) -> datetime:
    """A plain ``datetime`` in UTC (Airflow hands out pendulum objects; naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    m = moment.astimezone(UTC)
    return datetime(m.year, m.month, m.day, m.hour, m.minute, m.second, m.microsecond, tzinfo=UTC)
