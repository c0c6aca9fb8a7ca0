"""Wait, in the triggerer, for a day's landing files before the loads read them.

``LandingFilesSensor`` checks once on the worker; if a source's files are not
there yet it defers to ``LandingFilesTrigger``, which polls the landing root
from the triggerer until every source has files or the wait times out. While
deferred the task holds no worker slot and no pool slot (the project's pools
are created with ``include_deferred=False``, ``settings_loader``).

Why not a provider sensor: ``FileSensor(deferrable=True)`` (standard provider)
and its ``FileTrigger`` glob local paths only (an ``fs_conn_id`` base path,
``os.walk``), and ``S3KeySensor`` only S3; the landing root is an
``ObjectStoragePath`` that is ``file://`` locally and ``s3://conn@bucket/...``
in production, and neither provider sensor applies the loads' rule of which
files count (``*.csv[.gz]`` / ``*.jsonl[.gz]`` / ``*.sqlite``, ``readers.data_files``): a
stray ``_tmp`` or ``.part`` file would satisfy them and the load would then
fail. Here the check is the loads' own ``landing_batches.partition_files`` on the
same landing root, so the sensor passes exactly when the loads find files.

The timeout comes from the ``landing_wait_timeout_minutes`` variable (default
360). On timeout the task fails without retries (a retry would wait the whole
timeout again) with a message naming the missing prefixes and the variable.
The task's ``execution_timeout`` (1 hour, ``dag_defaults``) bounds each check on
the worker, not the deferred wait: Airflow 3.3 does not apply it to deferrals.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, AirflowSkipException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from acme_pipelines.contract import SOURCES
from acme_pipelines.partitions import DAY, resolve_partition

TIMEOUT_VARIABLE = "landing_wait_timeout_minutes"
DEFAULT_TIMEOUT_MINUTES = 360
TIMEOUT_MINUTES = f"{{{{ var.value.get('{TIMEOUT_VARIABLE}', '{DEFAULT_TIMEOUT_MINUTES}') }}}}"
# How much later than the trigger's own deadline the scheduler fails a trigger that never answered
# (triggerer down): the trigger normally reports the timeout itself, with the missing prefixes.
BACKSTOP = timedelta(minutes=10)


def prefix(landing_root: str, source: str, day: date) -> str:
    """The folder of ``source``'s files of ``day``, as written in messages (as the loads' lineage writes it)."""
    return f"{landing_root.rstrip('/')}/{source}/dt={day.isoformat()}/"


def missing_sources(landing_root: str, sources: Sequence[str], day: date) -> list[str]:
    """The sources without files of ``day`` under ``landing_root``, by the loads' own rule (blocking I/O)."""
    from airflow.sdk import ObjectStoragePath

    from acme_pipelines.accounting import LoadFailedError
    from acme_pipelines.landing_batches import partition_files

    root = ObjectStoragePath(landing_root)
    missing = []
    for name in sources:
        folder = root / name / f"dt={day.isoformat()}"
        # s3fs caches listings per process (the triggerer's lives for days): list afresh every time
        with contextlib.suppress(AttributeError, NotImplementedError):
            folder.fs.invalidate_cache(folder.path)
        try:
            partition_files(root, SOURCES[name], day)
        except LoadFailedError:
            missing.append(name)
    return missing


class LandingFilesTrigger(BaseTrigger):
    """Poll the landing root (in a thread: the storage clients block) until every source has files of ``day``.

    Fires once: ``{"status": "found", ...}``, ``{"status": "timeout", "missing": [...]}`` at
    ``deadline``, or ``{"status": "error", "error": ...}`` when the storage cannot be listed.
    ``since`` (when the worker found files missing) and ``deadline`` are absolute UTC times, so a
    trigger restarted on another triggerer keeps them. Everything the task needs on resume is in
    the event: ``dag.test()`` (Airflow 3.3) resumes with the event only, not ``defer(kwargs=...)``.
    """

    def __init__(
        self,
        *,
        landing_root: str,
        sources: Sequence[str],
        day: str,
        since: str,
        deadline: str,
        poke_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.landing_root = landing_root
        self.sources = list(sources)
        self.day = day
        self.since = since
        self.deadline = deadline
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "landing_root": self.landing_root,
                "sources": self.sources,
                "day": self.day,
                "since": self.since,
                "deadline": self.deadline,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        day = date.fromisoformat(self.day)
        since, deadline = datetime.fromisoformat(self.since), datetime.fromisoformat(self.deadline)
        checks = 0

        def event(status: str, **extra: Any) -> TriggerEvent:
            waited = (datetime.now(UTC) - since).total_seconds()
            return TriggerEvent({"status": status, "day": self.day, "checks": checks, "waited_seconds": waited} | extra)

        while True:
            checks += 1
            try:
                missing = await asyncio.to_thread(missing_sources, self.landing_root, self.sources, day)
            except Exception as exc:  # a storage or connection error: the task fails (and retries) with it
                yield event("error", error=f"{type(exc).__name__}: {exc}")
                return
            if not missing:
                self.log.info("landing files of %s found for %s (check %d)", day, self.sources, checks)
                yield event("found")
                return
            left = (deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                yield event("timeout", missing=missing)
                return
            pause = min(self.poke_interval, left)
            self.log.info("%s of %s missing; next check in %.0fs (%.0fs left)", missing, day, pause, left)
            await asyncio.sleep(pause)


class LandingFilesSensor(BaseSensorOperator):
    """Succeed once the run's day (``resolve_partition(context, DAY)``, as the loads) has files of every source.

    Deferrable: one check on the worker, then ``LandingFilesTrigger`` in the triggerer every
    ``poke_interval`` seconds. A malformed or future partition fails at once (``PartitionError``);
    a wait longer than ``timeout_minutes`` fails without retries, naming the missing prefixes.

    :param sources: sources of ``contract.SOURCES`` (their landing folders).
    :param landing_root: ``file://...`` or ``s3://[conn_id@]bucket/prefix`` (templated), as the loads.
    :param timeout_minutes: how long to wait (templated); by default the ``landing_wait_timeout_minutes``
        variable, else 360.
    """

    template_fields: Sequence[str] = ("landing_root", "timeout_minutes")
    ui_color = "#fce5cd"

    def __init__(
        self,
        *,
        sources: Sequence[str] = ("payments", "events"),
        landing_root: str = "{{ var.value.landing_root }}",
        timeout_minutes: str | float = TIMEOUT_MINUTES,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown or not sources:
            raise ValueError(f"sources must be some of {sorted(SOURCES)}, not {list(sources)}")
        self.sources = list(sources)
        self.landing_root = landing_root
        self.timeout_minutes = timeout_minutes

    def _timeout_minutes(self) -> float:
        try:
            minutes = float(self.timeout_minutes)
        except (TypeError, ValueError):
            minutes = math.nan
        if not math.isfinite(minutes) or minutes < 0:
            raise AirflowFailException(
                f"the Airflow variable {TIMEOUT_VARIABLE} must be a number of minutes >= 0, "
                f"not {self.timeout_minutes!r}"
            )
        return minutes

    def poke(self, context: Any) -> bool:
        partition = resolve_partition(context, DAY)
        return not missing_sources(self.landing_root, self.sources, partition.dt)

    def execute(self, context: Any) -> dict[str, Any]:
        partition = resolve_partition(context, DAY)  # PartitionError: fails at once, no retries
        minutes = self._timeout_minutes()
        self.timeout = minutes * 60  # BaseSensorOperator's attribute, for anything that reads it
        missing = missing_sources(self.landing_root, self.sources, partition.dt)
        if not missing:
            self.log.info("landing files of %s are there for %s", partition.key, self.sources)
            return {"partition": partition.key, "waited": False}
        since = datetime.now(UTC)
        deadline = since + timedelta(minutes=minutes)
        self.log.info(
            "waiting in the triggerer for %s (every %ss, until %s UTC)",
            ", ".join(prefix(self.landing_root, s, partition.dt) for s in missing),
            self.poke_interval, f"{deadline:%Y-%m-%d %H:%M:%S}",
        )  # fmt: skip
        self.defer(
            trigger=LandingFilesTrigger(
                landing_root=self.landing_root,
                sources=self.sources,
                day=partition.key,
                since=since.isoformat(),
                deadline=deadline.isoformat(),
                poke_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(minutes=minutes) + BACKSTOP,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = event or {}
        day = date.fromisoformat(event.get("day") or resolve_partition(context, DAY).key)
        status = event.get("status")
        if status == "found":
            waited = event.get("waited_seconds")
            self.log.info("landing files of %s arrived after %ss (%s checks)", day, waited, event.get("checks"))
            return {"partition": day.isoformat(), "waited": True, "waited_seconds": waited}
        if status == "timeout":
            message = self.timeout_message(day, event.get("missing") or self.sources, event.get("waited_seconds"))
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)  # not retried: a retry would wait the whole timeout again
        raise AirflowException(f"could not list the landing files of {day}: {event.get('error') or event}")

    def timeout_message(self, day: date, missing: Sequence[str], waited_seconds: float | None = None) -> str:
        """What on-call reads first (the Slack alert quotes 300 characters): the day, the missing
        prefixes relative to the landing root, the variable to raise; then the full prefixes."""
        minutes = self._timeout_minutes()
        waited = minutes if waited_seconds is None else waited_seconds / 60
        relative = ", ".join(f"{s}/dt={day.isoformat()}/" for s in missing)
        full = ", ".join(prefix(self.landing_root, s, day) for s in missing)
        return (
            f"landing files of {day} still missing after {waited:.3g} min: {relative}. "
            f"If they are only late, raise the Airflow variable {TIMEOUT_VARIABLE} (now {minutes:g}) "
            f"and clear {self.task_id}. Missing prefixes: {full}"
        )
