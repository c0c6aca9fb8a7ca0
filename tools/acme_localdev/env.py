"""The environment of a project-local Airflow: one definition for make, tests and users.

Everything Airflow needs to run from this checkout without touching anything
outside it: ``AIRFLOW_HOME`` in the project, a metadata DB of its own on the
local PostgreSQL (``acme_airflow``; a scheduler needs one that takes concurrent
writers: SQLite refuses backfills), LocalExecutor, the project's dags/ and plugins/, no examples,
a per-checkout Fernet key, and the non-secret development values of
``local.env``. Variables already set in the environment win.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of an env file, read by python-dotenv (quotes, ``export``, comments,
    ``${NAME:-default}`` from the environment); a line without a value is an error naming it."""
    from dotenv import dotenv_values

    values = dotenv_values(path, interpolate=True)
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise ValueError(f"{path}: expected NAME=value, found {', '.join(missing)} without a value")
    return {name: value for name, value in values.items() if value is not None}


def local_secret(airflow_home: Path, name: str, make: Callable[[], str] | None = None) -> str:
    """A secret of this checkout, created once in AIRFLOW_HOME (mode 600) and kept out of git (.airflow/ is
    ignored): ``make()`` creates it, a random URL-safe token by default."""
    path = airflow_home / name
    if not path.exists():
        import secrets

        airflow_home.mkdir(parents=True, exist_ok=True)
        path.write_text((make or (lambda: secrets.token_urlsafe(32)))())
        path.chmod(0o600)
    return path.read_text().strip()


def fernet_key(airflow_home: Path) -> str:
    """This checkout's Fernet key (encrypts connection passwords and variables in the metadata DB)."""

    def make() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    return local_secret(airflow_home, "fernet.key", make)


def lineage_events(airflow_home: Path) -> Path:
    """The OpenLineage file transport's file (its folder is created: the transport does not)."""
    folder = airflow_home / "openlineage"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "events.jsonl"


# The metadata DB of `make up`, `make env` and the airflow CLI; `make demo` runs in a SQLite file of its
# own (one process, nothing concurrent), so its runs never reach the scheduler's queue.
METADATA_DB = "acme_airflow"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def metadata_dsn(database: str = METADATA_DB) -> str:
    """SQLAlchemy URL of a metadata DB on the local PostgreSQL."""
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"


def sqlite_dsn(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def redis_client() -> object:
    """The Redis of the ``redis_cache`` connection, from the variables airflow_settings.yaml reads for it."""
    import redis

    return redis.Redis(
        host=os.environ.get("REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
        db=int(os.environ.get("REDIS_DB", "0")),
    )


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names if it is missing (a no-op for SQLite); True if created."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return False
    from acme_pipelines.migrations import create_database

    server = {"host": parsed.host, "port": parsed.port or 5432, "user": parsed.username, "password": parsed.password}
    return create_database(parsed.database, **server)


# The ports of the FX API and Slack stand-ins that airflow_settings.yaml's default connections name.
FX_PORT, SLACK_PORT = 18080, 18081

# Arrow's allocator on every process that runs tasks (here, and the Dockerfile's ENV, which compose
# and Helm run; a test keeps them equal). jemalloc returns freed memory sooner than the default
# mimalloc: on `make bench` the payments load peaked 50 MB lower and ran as fast or faster.
ARROW_MEMORY_POOL = "jemalloc"


def local_environment(airflow_home: Path | None = None, root: Path = ROOT) -> dict[str, str]:
    """The variables to add to ``os.environ`` (existing values are kept)."""
    home = (airflow_home or root / ".airflow").resolve()
    defaults = {
        "PROJECT_ROOT": str(root),
        "ARROW_DEFAULT_MEMORY_POOL": ARROW_MEMORY_POOL,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "3",  # as deployed; make demo and the tests set 0
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "60",  # seconds before a task's first retry (dag_defaults)
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_dsn(),
        "AIRFLOW__CORE__FERNET_KEY": fernet_key(home),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # Metrics: StatsD with InfluxDB-style tags, as deployed (docs/metrics.md); nothing listens
        # locally unless you start statsd-exporter, and UDP to a closed port costs nothing.
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": "8125",
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
        # Lineage: OpenLineage events to a file (python -m acme_lineage reads it); Marquez in compose.
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "acme_local",
        # dag.test() runs tasks in-process; the listener's default forked emitter cannot reach the
        # connections through that in-process supervisor and each event waits out its 10 s timeout.
        # A thread can. Deployed workers keep the default (fork).
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(lineage_events(home)), "append": True}
        ),
        "PYTHONPATH": os.pathsep.join([str(root / "plugins"), str(root / "tools")]),
        **read_env_file(root / "local.env"),
    }
    return {name: os.environ.get(name, value) for name, value in defaults.items()}


def activate(airflow_home: Path | None = None) -> dict[str, str]:
    """Set the local environment in this process (before airflow is imported)."""
    env = local_environment(airflow_home)
    os.environ.update(env)
    return env
