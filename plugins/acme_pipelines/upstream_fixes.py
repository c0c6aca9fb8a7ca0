"""Workarounds for defects of the apache-airflow release this project runs on; each one narrow and version-guarded.

``plugins/airflow_local_settings.py`` calls ``install()``. Airflow imports that
module while it initialises its settings, in every process that imports
``airflow`` (CLI, scheduler, dag-processor, triggerer, workers, api-server,
``dag.test`` in a test or a script): the plugins folder is on ``sys.path`` there
(``PYTHONPATH`` in the image, compose and Helm; Airflow adds ``[core]
plugins_folder`` itself before it imports local settings).

Each fix names its upstream issue (or the defect, where none is on record) and the apache-airflow versions known to
have the defect. On any other version it does nothing. It patches one function
when the module that defines it is first imported (nothing is imported early:
the settings are still initialising at ``install()`` time), and logs one line
when it does. docs/operations.md ("Upstream workarounds") says when to drop each.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamFix:
    issue: str  # the upstream issue (or, with none on record, a name for the defect)
    summary: str  # what it works around, for the log line
    affected: frozenset[str]  # apache-airflow versions known to have the defect
    module: str  # patched when this module is imported
    apply: Callable[[ModuleType], None]


def _deadline_alerts_from_their_encoding(module: ModuleType) -> None:
    """``DeadlineAlert.get_by_id`` answers an encoded alert (a dict) from its own content.

    ``dag.test()`` (``airflow dags test``) schedules a DAG deserialised in memory,
    whose ``deadline`` holds the encoded alerts instead of the ids of their
    ``deadline_alert`` rows; when the run succeeds, ``DagRun.update_state`` looks
    each up by id to prune the run's deadlines and fails in the UUID bind with
    "'dict' object has no attribute 'hex'", so the CLI exits 1 for a run that
    succeeded. The upstream fix (apache/airflow#73430) decodes dict entries
    directly; so does this. Ids (the scheduler's case) take the original path.
    """
    model = module.DeadlineAlert
    original = model.get_by_id  # bound classmethod

    def get_by_id(cls: Any, deadline_alert_id: Any, **kwargs: Any) -> Any:
        if isinstance(deadline_alert_id, dict):
            encoded = deadline_alert_id.get("__var", deadline_alert_id)
            # transient (never added to a session): only its reference_class is read
            return cls(
                reference=encoded["reference"],
                interval=encoded.get("interval"),
                callback_def=encoded.get("callback"),
                name=encoded.get("name"),
            )
        return original(deadline_alert_id, **kwargs)

    get_by_id.__doc__ = original.__doc__
    get_by_id.__wrapped__ = original  # type: ignore[attr-defined]
    model.get_by_id = classmethod(get_by_id)


def _process_exit_noticed_at_once(module: ModuleType) -> None:
    """A supervisor notices its process's exit as it happens, not up to ``min_heartbeat_interval`` later.

    The task SDK's supervisor (``WatchedSubprocess``: task processes on every
    worker, the triggerer's and the callback runners' children) waits in
    ``select()`` on the child's sockets, then polls for its exit. A child
    closes its sockets before it exits; when the last EOF is read before the
    exit, the selector is empty and the next ``select()`` sleeps its whole
    timeout, ``[workers] min_heartbeat_interval`` (5 s), before the exit is
    seen. The task is done but its worker slot stays taken: seen on a third
    of the task tries of tests/test_local_stack.py's Celery cluster. With every socket closed and
    nothing left to select on, this waits for the process itself, for the
    same time at most; in every other case Airflow's method runs.
    """
    watched = module.WatchedSubprocess
    original = watched._service_subprocess

    def _service_subprocess(
        self: Any, max_wait_time: float, raise_on_timeout: bool = False, expect_signal: int | None = None
    ) -> int | None:
        if self._exit_code is None and not self._open_sockets and not self.selector.get_map():  # all at EOF
            with contextlib.suppress(self._process.TimeoutExpired):
                self._process.wait(timeout=max(0.01, max_wait_time))
            return self._check_subprocess_exit(raise_on_timeout=raise_on_timeout, expect_signal=expect_signal)
        return original(self, max_wait_time, raise_on_timeout=raise_on_timeout, expect_signal=expect_signal)

    _service_subprocess.__doc__ = original.__doc__
    _service_subprocess.__wrapped__ = original  # type: ignore[attr-defined]
    watched._service_subprocess = _service_subprocess


SUPERVISOR_EXIT = "task-sdk supervisor: exit seen up to min_heartbeat_interval late"

FIXES = (
    UpstreamFix(
        issue="apache/airflow#73428",
        summary="dag.test() of a DAG with Deadline Alerts fails after its run succeeded (fix: PR #73430, unreleased)",
        affected=frozenset({"3.3.1", "3.3.2"}),
        module="airflow.models.deadline_alert",
        apply=_deadline_alerts_from_their_encoding,
    ),
    UpstreamFix(
        issue=SUPERVISOR_EXIT,  # no upstream issue found for it (docs/operations.md)
        summary="a task's worker slot is held for up to [workers] min_heartbeat_interval after the task exited",
        affected=frozenset({"3.3.2"}),
        module="airflow.sdk.execution_time.supervisor",
        apply=_process_exit_noticed_at_once,
    ),
)


def airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def applicable(version: str | None = None) -> list[UpstreamFix]:
    """The fixes for this apache-airflow version (none for a version not known to have their defects)."""
    version = version or airflow_version()
    return [fix for fix in FIXES if version in fix.affected]


_applied: set[str] = set()


def _apply(fix: UpstreamFix, module: ModuleType) -> None:
    if fix.issue in _applied:
        return
    fix.apply(module)
    _applied.add(fix.issue)
    log.info("apache-airflow %s: workaround for %s on: %s", airflow_version(), fix.issue, fix.summary)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies fixes to a module right after it is first executed; finds nothing itself."""

    def __init__(self, pending: dict[str, list[UpstreamFix]]) -> None:
        self.pending = pending

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_fix(module: ModuleType) -> None:
            exec_module(module)
            for fix in self.pending.pop(fullname, []):
                _apply(fix, module)
            if not self.pending and self in sys.meta_path:
                sys.meta_path.remove(self)

        spec.loader.exec_module = exec_then_fix  # this spec's own loader (one per module found)
        return spec


def install(version: str | None = None) -> list[str]:
    """Apply the fixes for this apache-airflow version (now, or when their module is imported); their issues."""
    fixes = applicable(version=version)
    pending: dict[str, list[UpstreamFix]] = {}
    for fix in fixes:
        if fix.module in sys.modules:
            _apply(fix, sys.modules[fix.module])
        else:
            pending.setdefault(fix.module, []).append(fix)
    if pending:
        finder = next((f for f in sys.meta_path if isinstance(f, _PatchOnImport)), None)
        if finder is None:
            sys.meta_path.insert(0, _PatchOnImport(pending))
        else:
            for name, waiting in pending.items():
                finder.pending.setdefault(name, []).extend(waiting)
    return [fix.issue for fix in fixes]
