"""The layers of plugins/acme_pipelines (pyproject.toml [tool.importlinter], run by `make lint`) hold, and
the check fails on an upward import or an import circle added to a copy of the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(plugins: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(plugins)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "plugins" / "acme_pipelines", tmp_path / "acme_pipelines",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return tmp_path / "acme_pipelines"


def add_import(module: Path, statement: str) -> None:
    text = module.read_text()
    head = "from __future__ import annotations\n"
    module.write_text(text.replace(head, f"{head}\n{statement}  # noqa\n", 1))


def test_the_package_keeps_its_layers():
    done = lint_imports(ROOT / "plugins")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_upward_import_fails_naming_it(tmp_path):
    package = package_copy(tmp_path)
    add_import(package / "contract.py", "import acme_pipelines.operators")  # the bottom layer reaching the top
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "acme_pipelines.contract is not allowed to import acme_pipelines.operators" in done.stdout, done.stdout


def test_a_circle_within_a_layer_fails(tmp_path):
    package = package_copy(tmp_path)
    add_import(package / "warehouse.py", "import acme_pipelines.snowflake_warehouse")  # it imports warehouse
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "No cycles are allowed in acme_pipelines" in done.stdout, done.stdout


def test_a_module_outside_every_layer_fails(tmp_path):
    package = package_copy(tmp_path)
    (package / "misc_helpers.py").write_text("from acme_pipelines import contract  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "acme_pipelines.misc_helpers" in done.stdout, done.stdout


@pytest.mark.parametrize("implementation", ["day_partitions.PartitionedDays", "snowflake_warehouse.SnowflakeDays"])
def test_each_day_storage_has_the_protocols_methods_and_parameters(implementation):
    """The archival calls ``warehouse.DayStorage``'s methods on whichever ``warehouse_hooks.day_storage`` returns:
    each backend's class takes the same parameters (a renamed or missing one would fail only on that backend)."""
    import importlib
    import inspect

    from acme_pipelines.warehouse import DayStorage

    module, name = implementation.split(".")
    cls = getattr(importlib.import_module(f"acme_pipelines.{module}"), name)
    for method in ("lock", "delete", "restore"):
        wanted = [p for p in inspect.signature(getattr(DayStorage, method)).parameters.values() if p.name != "self"]
        found = list(inspect.signature(getattr(cls, method)).parameters.values())
        assert [(p.name, p.kind) for p in found] == [(p.name, p.kind) for p in wanted], f"{implementation}.{method}"
