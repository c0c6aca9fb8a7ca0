"""Session-wide test setup and the fixtures every pipeline test builds on.

Real parts, not mocks: the local PostgreSQL (fresh databases per session),
the local Redis (a key namespace per test), S3 through a moto server over
HTTP, Snowflake through the fakesnow server, and Slack/HTTP APIs through a
local recording server. Airflow gets a fresh AIRFLOW_HOME per session, set
before anything imports airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from acme_localdev import env as localenv
from acme_localdev.recorder import HttpRecorder
from acme_localdev.runs import run_in_process
from acme_localdev.warehouse_compare import pipeline_environment, postgres_connection

ROOT = localenv.ROOT
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="acme-airflow-test-"))
# Paths and local values as make sets them, but a throwaway AIRFLOW_HOME and DB.
os.environ.update(localenv.local_environment(airflow_home=_SESSION_HOME))
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_HOME / 'airflow.db'}"
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME)
os.environ["AIRFLOW__CORE__FERNET_KEY"] = localenv.fernet_key(_SESSION_HOME)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
# OpenLineage events of every run in this session go to one file (its config is read once per process).
OPENLINEAGE_EVENTS = localenv.lineage_events(_SESSION_HOME)
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
    {"type": "file", "log_file_path": str(OPENLINEAGE_EVENTS), "append": True}
)
# StatsD metrics of every run in this session go to this UDP socket (the stats client is configured
# when airflow is first imported, so the port is fixed here, before that). See the statsd fixture.
STATSD_SOCKET = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
STATSD_SOCKET.bind(("127.0.0.1", 0))
STATSD_SOCKET.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
os.environ["AIRFLOW__METRICS__STATSD_HOST"] = "127.0.0.1"
os.environ["AIRFLOW__METRICS__STATSD_PORT"] = str(STATSD_SOCKET.getsockname()[1])

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


# -- test tiers (docs/development.md) --------------------------------------------------

TIERS = ("unit", "integration", "e2e")


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test is checked, whatever the run selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Governance as a test: every test has exactly one tier marker (pytestmark or a decorator)."""
    wrong = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            wrong.append(f"  {item.nodeid}: {', '.join(tiers) or 'no tier'}")
    if wrong:
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one tier marker ({', '.join(f'@pytest.mark.{t}' for t in TIERS)}; "
            "per module: pytestmark = pytest.mark.<tier>), see docs/development.md:\n" + "\n".join(wrong)
        )
    clusters = {item.nodeid.split("::")[0] for item in items if hasattr(item.module, "running_cluster")}
    if outside := sorted(clusters - set(CLUSTER_MODULES)):
        raise pytest.UsageError(f"modules that start a cluster outside CLUSTER_MODULES (tests/conftest.py): {outside}")


# -- make test in 3 processes (pytest-xdist) ------------------------------------------------

# The modules that start a whole Airflow cluster (tests/cluster.py; the hook above keeps this list complete).
CLUSTER_MODULES = (
    "tests/test_cluster_faults.py",
    "tests/test_local_stack.py",
    "tests/bench_cluster.py",  # make bench-cluster, not make test
    "tests/test_snowflake_cluster.py",
)
CLUSTERS = "clusters"
# Handed out right after the clusters, longest first (what the module summary at the end of make test printed),
# so that short modules end the run instead of a long one running alone on one core; the rest follow by test count.
LONGEST_MODULES = (
    "tests/test_dags_test_cli.py",
    "tests/test_analytics_dags.py",
    "tests/test_snowflake_dags.py",
    "tests/test_partitions.py",
    "tests/test_fab_auth.py",
    "tests/test_settings_loader.py",
    "tests/test_deploy_files.py",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` (``-n 3 --dist loadscope``): each process takes whole modules, so a module's fixtures (a
    generated world, a cluster) are built once. The cluster modules are one unit of work, handed out first, and
    the process running it takes nothing else until it is done: at most one cluster runs at a time, never two
    on 2 cores, and the longest line of work starts at once while the other processes run the other modules,
    the longest of them first (``LONGEST_MODULES``).

    A scheduler of our own because ``--dist loadgroup`` with ``xdist_group`` marks does not group on pytest 9.2:
    xdist 3.8 tags the group onto ``item._nodeid``, which pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386,
    open). Only for ``--dist loadscope``; any other mode keeps xdist's own scheduler.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return CLUSTERS if module in CLUSTER_MODULES else module

        def _assign_work_unit(self, node: Any) -> None:
            for scope in reversed((CLUSTERS, *LONGEST_MODULES)):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node: Any) -> None:
            if not all(self.assigned_work.get(node, {}).get(CLUSTERS, {}).values()):
                return  # its cluster tests are still running or waiting
            super()._reschedule(node)

    return ModuleScheduling(config, log)


_MODULE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each module's time (setup, call, teardown of its tests), in the process that prints the summary."""
    module = report.nodeid.split("::")[0]
    _MODULE_SECONDS[module] = _MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The 12 longest modules, the figures ``LONGEST_MODULES`` is ordered by."""
    if not _MODULE_SECONDS or hasattr(terminalreporter.config, "workerinput"):
        return
    terminalreporter.section("longest modules (setup + call + teardown of their tests)")
    for module, seconds in sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1])[:12]:
        terminalreporter.write_line(f"{seconds:8.1f}s {module}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Airflow ---------------------------------------------------------------------------


_MIGRATED_DB = _SESSION_HOME / "migrated.db"  # the session's metadata DB as `airflow db migrate` left it


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB in this session's AIRFLOW_HOME."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.copyfile(_SESSION_HOME / "airflow.db", _MIGRATED_DB)
    return _SESSION_HOME / "airflow.db"


@dataclass(frozen=True)
class ThrowawayAirflow:
    """An Airflow of its own for ``airflow`` CLI subprocesses: AIRFLOW_HOME in the test's tmp_path, a copy
    of the freshly migrated SQLite metadata DB (none of what the session wrote since)."""

    home: Path
    url: str
    env: dict[str, str]

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=self.env)
        assert done.returncode == 0 or not check, (
            f"airflow {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
        return done

    def read_settings(self) -> dict[str, dict]:
        """Connections, pools and variables of this DB, each as the import files hold them."""
        from airflow.models import Connection, Pool, Variable
        from sqlalchemy import create_engine, select
        from sqlalchemy.orm import Session

        engine = create_engine(self.url)
        try:
            with Session(engine) as session:
                fields = ("conn_type", "description", "host", "schema", "login", "password", "port")
                connections = {
                    c.conn_id: {
                        **{f: getattr(c, f) for f in fields if getattr(c, f) is not None},
                        **({"extra": c.extra_dejson} if c.extra else {}),
                    }
                    for c in session.scalars(select(Connection))
                }
                pools = {
                    p.pool: {"slots": p.slots, "description": p.description, "include_deferred": p.include_deferred}
                    for p in session.scalars(select(Pool))
                }
                variables = {v.key: v.val for v in session.scalars(select(Variable))}
                ids = {
                    "connections": {c.conn_id: c.id for c in session.scalars(select(Connection))},
                    "pools": {p.pool: p.id for p in session.scalars(select(Pool))},
                    "variables": {v.key: v.id for v in session.scalars(select(Variable))},
                }
        finally:
            engine.dispose()
        return {"connections": connections, "pools": pools, "variables": variables, "ids": ids}


@pytest.fixture
def throwaway_airflow(airflow_db, tmp_path) -> ThrowawayAirflow:
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copyfile(_MIGRATED_DB, home / "airflow.db")
    url = f"sqlite:///{home / 'airflow.db'}"
    return ThrowawayAirflow(
        home, url, {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    )


@pytest.fixture(scope="session")
def dagbag():
    """One DagBag for the whole session (parsing is the expensive part)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=ROOT / "dags")


# -- PostgreSQL ------------------------------------------------------------------------


@dataclass(frozen=True)
class PgDatabases:
    """Fresh databases for this session, dropped at the end."""

    app: str
    warehouse: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"

    def dsn(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def app_dsn(self) -> str:
        return self.dsn(self.app)

    @property
    def warehouse_dsn(self) -> str:
        return self.dsn(self.warehouse)


def _admin_execute(*statements: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgDatabases]:
    tag = uuid.uuid4().hex[:8]
    dbs = PgDatabases(app=f"test_{tag}_app", warehouse=f"test_{tag}_warehouse")
    _admin_execute(f'CREATE DATABASE "{dbs.app}"', f'CREATE DATABASE "{dbs.warehouse}"')
    try:
        yield dbs
    finally:
        _admin_execute(
            f'DROP DATABASE IF EXISTS "{dbs.app}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{dbs.warehouse}" WITH (FORCE)',
        )


@contextmanager
def scratch_databases() -> Iterator:
    """Yields a function that creates fresh, empty databases (DSNs); all are dropped at the end."""
    names: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:8]}_scratch"
        _admin_execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    try:
        yield make
    finally:
        for name in names:
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_database() -> Iterator:
    """Call it for fresh, empty databases (DSNs); all are dropped after the test."""
    with scratch_databases() as make:
        yield make


@pytest.fixture
def pg_database(make_database) -> str:
    """A fresh, empty database for one test; its DSN."""
    return make_database()


# -- Redis -----------------------------------------------------------------------------


@pytest.fixture
def redis_namespace() -> Iterator[tuple[object, str]]:
    """A real Redis client and a key prefix of this test's own; its keys are deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    try:
        yield client, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


# -- S3 (moto server over HTTP) --------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    region: str = "us-east-1"

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def connection_uri(self) -> str:
        """An Airflow ``aws`` connection (as AIRFLOW_CONN_* value) pointing at this server."""
        import json
        from urllib.parse import quote

        extra = json.dumps({"endpoint_url": self.endpoint_url, "region_name": self.region})
        return f"aws://testing:testing@/?__extra__={quote(extra)}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the moto server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


# -- Snowflake (fakesnow server) -------------------------------------------------------


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict]:
    """Connection kwargs for ``snowflake.connector.connect`` against a local fakesnow server."""
    import fakesnow

    with fakesnow.server() as kwargs:
        yield kwargs


# -- HTTP (Slack and APIs) -------------------------------------------------------------


class StatsdListener:
    """Reads the session's StatsD socket: ``drain()`` forgets what came before, ``lines()`` returns what came since."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _read(self, timeout: float) -> list[str]:
        lines = []
        self.sock.settimeout(timeout)
        try:
            while True:
                payload = self.sock.recv(65536)
                lines.extend(line for line in payload.decode().splitlines() if line)
        except (TimeoutError, BlockingIOError):
            return lines

    def drain(self) -> None:
        self._read(0.05)

    def lines(self) -> list[str]:
        return self._read(0.5)


@pytest.fixture
def statsd() -> StatsdListener:
    listener = StatsdListener(STATSD_SOCKET)
    listener.drain()
    return listener


@pytest.fixture
def http_recorder() -> Iterator[HttpRecorder]:
    with HttpRecorder() as recorder:
        yield recorder


@pytest.fixture
def pagerduty_server(monkeypatch) -> Iterator[HttpRecorder]:
    """A local HTTPS stand-in for the PagerDuty Events API v2, and the pagerduty_events connection pointing at it.

    PagerDuty's client accepts only https:// base URLs: the recorder serves TLS with a throwaway
    certificate that this test process trusts (SSL_CERT_FILE). Read the events from ``.requests``.
    """
    with HttpRecorder(tls=True) as recorder:
        recorder.answer("/v2/enqueue", 202, '{"status": "success", "message": "Event processed", "dedup_key": "k"}')
        monkeypatch.setenv("SSL_CERT_FILE", recorder.ca_file)
        monkeypatch.setenv(
            "AIRFLOW_CONN_PAGERDUTY_EVENTS",
            json.dumps({"conn_type": "pagerduty_events", "host": recorder.url, "password": "R0UTINGKEY"}),
        )
        yield recorder


# -- warehouse helpers -----------------------------------------------------------------


@pytest.fixture
def warehouse(pg_database):
    """A WarehouseHook on a fresh, empty database, with its schema migrated (every migration applied)."""
    from acme_pipelines.migrations import upgrade
    from acme_pipelines.warehouse import WarehouseHook

    hook = WarehouseHook(dsn=pg_database)
    upgrade(hook)
    return hook


def run_dag(dagbag, dag_id: str, expect: str = "success", **conf):
    """``dag.test()`` one run of ``dag_id`` with ``conf``; asserts its final state and returns the DagRun."""
    dag_run = run_in_process(dagbag.dags[dag_id], conf)
    assert dag_run.state == expect, f"{dag_id} {conf}: {dag_run.state}"
    return dag_run


def query(dsn: str, statement: str, params: tuple | dict = ()) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.commit()
        conn.close()


def seed_the_week_before(hook: Any, day: date) -> None:
    """marts.daily_revenue rows for the six days before ``day`` (``day``'s own row, re-dated), on either warehouse:
    weekly_aggregation's precondition wants all seven days of a week, and the mart is the only input it checks."""
    with hook.scoped_connection() as conn:
        cur = conn.cursor()
        for n in range(1, 7):
            cur.execute(
                "INSERT INTO marts.daily_revenue (dt, orders, paid_orders, revenue_usd, refunds_usd, "
                "avg_order_value_usd, _run_id, _loaded_at) SELECT %s, orders, paid_orders, revenue_usd, refunds_usd, "
                "avg_order_value_usd, 'test: the rest of the week', _loaded_at FROM marts.daily_revenue WHERE dt = %s",
                (day - timedelta(days=n), day),
            )
        conn.commit()


def add_day_partitions(dsn: str, first: date, last: date) -> None:
    """Day partitions of both fact tables from ``first`` to ``last``, for tests that INSERT rows themselves
    (the loads create their own)."""
    import psycopg2

    from acme_pipelines import day_partitions

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            for table in day_partitions.PARTITIONED:
                day = first
                while day <= last:
                    day_partitions.ensure(cur, table, day)
                    day += timedelta(days=1)
        conn.commit()
    finally:
        conn.close()


def table_checksum(dsn: str, table: str, key: str) -> tuple[int, str]:
    """(row count, md5 of every row's business columns in key order): equal means same published state."""
    columns = [
        r[0]
        for r in query(
            dsn,
            "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = %s "
            "AND column_name NOT IN ('_run_id', '_loaded_at') ORDER BY ordinal_position",
            (table,),
        )
    ]
    row = ", ".join(columns)
    [(count, digest)] = query(
        dsn, f"SELECT count(*), md5(coalesce(string_agg(({row})::text, '|' ORDER BY {key}), '')) FROM {table}"
    )
    return count, digest


@pytest.fixture
def pipeline_env(pipeline_config, monkeypatch, tmp_path, make_database, warehouse, http_recorder):
    """Generated app DB and landing files for the module's ``pipeline_config`` fixture (a GeneratorConfig); every
    connection of the DAGs pointing at test services."""
    from acme_sample_data.build import build
    from acme_sample_data.fx import FxServer

    app_dsn = make_database()
    landing = tmp_path / "landing"
    manifest = json.loads(build(pipeline_config, landing, app_dsn).manifest_path.read_text())["days"]
    with FxServer(pipeline_config.day_list()) as fx:
        connections = pipeline_environment(
            app_dsn, postgres_connection(warehouse.dsn), fx.url, http_recorder.url, landing
        )
        for name, value in connections.items():
            monkeypatch.setenv(name, value)
        yield {"manifest": manifest, "landing": landing, "warehouse": warehouse.dsn, "app": app_dsn}
