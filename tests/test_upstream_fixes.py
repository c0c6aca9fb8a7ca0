"""acme_pipelines.upstream_fixes: on for the Airflow versions known to need it, in every process, nowhere else.

The CLI end to end (``airflow dags test daily_etl`` exits 0) is tests/test_dags_test_cli.py;
here: the version guard, that Airflow's own settings initialisation installs the fixes (this
test process and a fresh interpreter; no test code does it), what the patched lookup
answers for the encoded alerts ``dag.test()`` holds, and when the task supervisor sees its
process exit (the same on a Celery worker: tests/test_local_stack.py checks the cluster's
tasks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from acme_pipelines import upstream_fixes
from conftest import ROOT


@pytest.mark.unit
@pytest.mark.parametrize(
    ("version", "on"),
    [
        ("3.3.1", ["apache/airflow#73428"]),
        ("3.3.2", ["apache/airflow#73428", upstream_fixes.SUPERVISOR_EXIT]),
        ("3.3.3", []),
        ("3.2.2", []),
        ("3.4.0", []),
    ],
)
def test_each_fix_is_on_only_for_versions_known_to_have_its_defect(version, on):
    assert [fix.issue for fix in upstream_fixes.applicable(version=version)] == on


@pytest.mark.integration
def test_airflow_installs_it_when_it_initialises_its_settings():
    """A fresh interpreter that only imports airflow (as the scheduler, the CLI and a worker do)."""
    probe = (
        "import json, sys\n"
        "import airflow\n"
        "installed = 'airflow.models.deadline_alert' not in sys.modules\n"  # patched later, on import
        "from airflow.models.dagrun import DeadlineAlertModel\n"
        "print(json.dumps({'lazy': installed, 'patched': hasattr(DeadlineAlertModel.get_by_id, '__wrapped__'),\n"
        "                  'settings': sys.modules['airflow_local_settings'].__file__}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"lazy": True, "patched": True, "settings": str(ROOT / "plugins" / "airflow_local_settings.py")}
    assert (
        result.stdout.count("workaround for apache/airflow#73428 on")
        + result.stderr.count("workaround for apache/airflow#73428 on")
        == 1
    ), "logged once"


@pytest.mark.unit
def test_this_test_process_has_it_too():
    """The tests' dag.test() runs (conftest.run_dag) rely on the same global fix, not on a test-only patch."""
    from airflow.models.deadline_alert import DeadlineAlert

    assert hasattr(DeadlineAlert.get_by_id, "__wrapped__")


@pytest.mark.unit
def test_plugin_loader_leaves_the_local_settings_alone():
    """plugins/.airflowignore: Airflow's plugin loader would otherwise import it a second time as a plugin."""
    from airflow._shared.module_loading import find_path_from_directory

    files = {os.path.basename(f) for f in find_path_from_directory(str(ROOT / "plugins"), ".airflowignore")}
    assert "airflow_local_settings.py" not in files


@pytest.mark.integration
def test_an_encoded_alert_is_answered_from_its_content_and_an_id_from_the_table(dagbag, airflow_db):
    """What dag.test() holds (DagSerialization round trip) reads as the same reference as the stored row."""
    from airflow.models.deadline_alert import DeadlineAlert
    from airflow.serialization.definitions.deadline import SerializedReferenceModels
    from airflow.serialization.serialized_objects import DagSerialization
    from sqlalchemy.exc import NoResultFound

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags["daily_etl"]))
    [encoded] = scheduler_dag.deadline
    assert isinstance(encoded, dict), "the defect's precondition: an encoded alert, not a row id"
    alert = DeadlineAlert.get_by_id(encoded)
    assert alert.reference_class is SerializedReferenceModels.DagRunLogicalDateDeadline
    assert alert.reference_class in SerializedReferenceModels.TYPES.DAGRUN  # so update_state prunes the deadlines
    with pytest.raises(NoResultFound):  # an id still goes to the table
        DeadlineAlert.get_by_id(str(uuid.uuid4()))


@pytest.mark.unit
def test_a_fix_waits_for_its_module_and_is_applied_once(tmp_path, monkeypatch):
    """A fix whose module is not imported yet is applied right after that module runs, then never again."""
    (tmp_path / "acme_fake_upstream.py").write_text("def answer():\n    return 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []

    def patch(module):
        calls.append(module.__name__)
        module.answer = lambda: 42

    fix = upstream_fixes.UpstreamFix("example#1", "an example", frozenset({"9.9.9"}), "acme_fake_upstream", patch)
    monkeypatch.setattr(upstream_fixes, "FIXES", (fix,))
    monkeypatch.setattr(upstream_fixes, "airflow_version", lambda: "9.9.9")
    monkeypatch.setattr(upstream_fixes, "_applied", set())
    meta_path = list(sys.meta_path)
    try:
        assert upstream_fixes.install(version="9.9.9") == ["example#1"]
        assert calls == []
        import acme_fake_upstream

        assert acme_fake_upstream.answer() == 42
        assert calls == ["acme_fake_upstream"]
        assert upstream_fixes.install(version="9.9.9") == ["example#1"]  # already imported: applied now, once
        assert calls == ["acme_fake_upstream"]
        assert upstream_fixes.install(version="1.0.0") == []
    finally:
        sys.meta_path[:] = meta_path
        sys.modules.pop("acme_fake_upstream", None)


LINGER = 0.3  # a task process's teardown after its sockets are closed


def _close_sockets_then_linger() -> None:
    """A child as a task process ends: every socket to the supervisor closed, then the interpreter's teardown."""
    os.closerange(0, 256)
    time.sleep(LINGER)


@pytest.mark.integration
def test_the_supervisor_sees_its_process_exit_when_it_happens_not_a_heartbeat_interval_later():
    """The real ``WatchedSubprocess`` (what a worker runs each task in), serviced as its wait loop does. Airflow's
    own method waits out the whole select timeout once the selector is empty; the installed one does not."""
    from airflow.sdk.execution_time.supervisor import WatchedSubprocess

    installed = WatchedSubprocess._service_subprocess
    assert hasattr(installed, "__wrapped__"), "installed by Airflow's settings initialisation"
    interval = 2.0  # the loop's select timeout ([workers] min_heartbeat_interval, 5 s by default)

    def seen_after(service) -> float:
        proc = WatchedSubprocess.start(id=uuid.uuid4(), target=_close_sockets_then_linger)
        started = time.monotonic()
        while proc._exit_code is None or proc._open_sockets:
            service(proc, max_wait_time=interval)
        assert proc._exit_code == 0
        return time.monotonic() - started

    assert seen_after(installed.__wrapped__) >= interval, "the defect: seen only when select() times out"
    assert LINGER <= seen_after(installed) < LINGER + 0.5 * (interval - LINGER)
