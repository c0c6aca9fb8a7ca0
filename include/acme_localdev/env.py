"""The environment of a project-local Airflow: one definition for make, tests and users.

Everything Airflow needs to run from this checkout without touching anything
outside it: ``AIRFLOW_HOME`` in the project, a SQLite metadata DB with an
absolute path, LocalExecutor, the project's dags/ and plugins/, no examples,
a per-checkout Fernet key, and the non-secret development values of
``local.env``. Variables already set in the environment win.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines; blank lines and ``#`` comments are skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip()
    return values


def fernet_key(airflow_home: Path) -> str:
    """This checkout's Fernet key, created once and kept out of git (.airflow/ is ignored)."""
    path = airflow_home / "fernet.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        airflow_home.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def local_environment(airflow_home: Path | None = None, root: Path = ROOT) -> dict[str, str]:
    """The variables to add to ``os.environ`` (existing values are kept)."""
    home = (airflow_home or root / ".airflow").resolve()
    defaults = {
        "PROJECT_ROOT": str(root),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key(home),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PYTHONPATH": os.pathsep.join([str(root / "plugins"), str(root / "include")]),
        **read_env_file(root / "local.env"),
    }
    return {name: os.environ.get(name, value) for name, value in defaults.items()}


def activate(airflow_home: Path | None = None) -> dict[str, str]:
    """Set the local environment in this process (before airflow is imported)."""
    env = local_environment(airflow_home)
    os.environ.update(env)
    return env
