"""What the runtime image holds, derived from the Dockerfile without a Docker engine.

The build context is the repository minus .dockerignore; the image gets the files its COPY lines
name, and the packages requirements.lock pins (the only lock it installs). No test or dev tool, and
nothing of tools/ (the development tooling: acme_localdev, acme_bench, acme_lineage,
acme_sample_data, the compose validator), may be among them; include/ holds runtime assets only.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess

import pytest

from test_deploy_files import DOCKERFILE, ROOT, dockerfile_instructions

pytestmark = pytest.mark.unit

TOOLS = "tools/"
TOOLING_PACKAGES = ("acme_localdev", "acme_bench", "acme_lineage", "acme_sample_data")
RUNTIME_INCLUDE = {"sql", "migrations", "templates", "auth"}
DEV_PACKAGES = ("pytest", "pytest-timeout", "moto", "fakesnow", "ruff", "playwright", "pip-audit", "duckdb")
DEV_PREFIXES = ("pytest",)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for these simple patterns: a pattern matches the path or one of its parent directories."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def context_files() -> list[str]:
    """Tracked and untracked (not git-ignored) files of the repository, minus .dockerignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    patterns = dockerignore_patterns()
    return [p for p in listed if (ROOT / p).is_file() and not ignored(p, patterns)]


def copied_files() -> list[str]:
    """Files of the build context that the Dockerfile's COPY/ADD lines put into the image."""
    files = context_files()
    out = []
    for keyword, args in dockerfile_instructions():
        if keyword not in {"COPY", "ADD"}:
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        for source in parts[:-1]:
            source = source.rstrip("/")
            out += [f for f in files if f == source or f.startswith(source + "/")]
    return sorted(set(out))


def lock_pins(name: str) -> dict[str, str]:
    return {k.lower(): v for k, v in PIN.findall((ROOT / name).read_text())}


def test_the_image_copies_no_tooling_tests_or_local_state() -> None:
    copied = copied_files()
    assert any(f.startswith("dags/") for f in copied)
    assert any(f.startswith("plugins/acme_pipelines/") for f in copied)
    for needed in ("include/sql", "include/migrations", "include/templates", "include/auth"):
        assert any(f.startswith(needed + "/") for f in copied), needed
    bad = [
        f
        for f in copied
        if f.startswith((TOOLS, "tests/", ".venv/", ".airflow", "data/", "docs/"))
        or f in {".env", "requirements-dev.lock", "requirements-dev.txt"}
        or "__pycache__" in f
        or any(part in TOOLING_PACKAGES for part in f.split("/"))
    ]
    assert not bad, f"the image would get tooling or local files: {bad}"
    include_dirs = {f.split("/")[1] for f in copied if f.startswith("include/")}
    assert include_dirs == RUNTIME_INCLUDE, include_dirs


def test_the_dockerignore_keeps_tooling_out_of_the_context() -> None:
    assert TOOLS.rstrip("/") in dockerignore_patterns()
    files = context_files()
    assert not [f for f in files if f.startswith((TOOLS, "tests/", ".venv/", ".git/"))]
    assert not [f for f in files if any(part in TOOLING_PACKAGES for part in f.split("/"))]


def test_the_tooling_lives_in_tools_and_include_holds_runtime_assets_only() -> None:
    for name in TOOLING_PACKAGES:
        assert (ROOT / "tools" / name / "__init__.py").is_file(), name
    tracked = subprocess.run(
        ["git", "ls-files", "include"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert {f.split("/")[1] for f in tracked} == RUNTIME_INCLUDE, tracked
    assert not [f for f in tracked if f.endswith("__init__.py")], "include/ holds no Python package"


def test_the_image_installs_the_runtime_lock_only_and_checks_it() -> None:
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    assert runs == ["pip install --no-cache-dir -r /opt/airflow/requirements.lock && pip check"], runs
    copies = [args for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    assert not [c for c in copies if "requirements-dev" in c or c.split()[-1] == "/opt/airflow/"]
    assert "requirements-dev" not in DOCKERFILE.read_text().split("FROM", 1)[1]


def test_the_runtime_lock_holds_no_test_or_dev_tool() -> None:
    runtime = lock_pins("requirements.lock")
    bad = sorted(p for p in runtime if p in DEV_PACKAGES or p.startswith(DEV_PREFIXES))
    assert not bad, f"test/dev tools in the runtime lock: {bad}"
    assert "apache-airflow" in runtime
    assert "sqlglot" in runtime  # acme_pipelines.dialects imports it


def test_the_dev_lock_agrees_with_the_runtime_lock() -> None:
    runtime, dev = lock_pins("requirements.lock"), lock_pins("requirements-dev.lock")
    differ = {p: (v, dev.get(p)) for p, v in runtime.items() if dev.get(p) != v}
    assert not differ, f"requirements-dev.lock pins these differently (or not at all): {differ}"
    assert {"pytest", "ruff", "playwright", "moto", "fakesnow", "pip-audit", "duckdb"} <= set(dev)
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()


def test_dags_and_plugins_import_no_tooling_package() -> None:
    tooling = {*TOOLING_PACKAGES, "duckdb", "pytest", "moto", "fakesnow"}
    imports = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
    bad = []
    for path in [*ROOT.glob("dags/*.py"), *ROOT.glob("plugins/**/*.py")]:
        found = set(imports.findall(path.read_text())) & tooling
        if found:
            bad.append((str(path.relative_to(ROOT)), sorted(found)))
    assert not bad, bad
