"""`make test`, `make demo` and `make env` land here.

python -m acme_localdev env     # print `export ...` lines for this checkout's Airflow
python -m acme_localdev init    # migrate the metadata DB and import airflow_settings.yaml
python -m acme_localdev migrate # apply the warehouse's schema migrations (make migrate)
python -m acme_localdev test [pytest args]  # every tier; test-fast (-m unit, no services needed),
                                            # test-integration, test-e2e: one tier (docs/development.md)
python -m acme_localdev demo [--days N --scale X]
python -m acme_localdev images  # the README's lineage and dashboard images, from the last demo
python -m acme_localdev up [--port 8080] / down  # Airflow's services on .airflow/, no Docker
python -m acme_localdev snowflake-compare [--days N]  # the ETL into PostgreSQL and fakesnow, side by side
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from acme_localdev import env
from acme_localdev.services import POSTGRES, REDIS, ServiceMissingError, require


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def detail(message: str) -> None:
    print(f"    {message}", flush=True)


def init_airflow() -> None:
    """Create and migrate the project-local metadata DB, import the settings file (idempotent)."""
    started = time.monotonic()
    if env.ensure_database(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]):
        detail(f"created the metadata DB {os.environ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}")
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ
    )
    if result.returncode:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"airflow db migrate failed (exit {result.returncode}); see the output above")
    counts = import_settings()
    step(
        f"Airflow ready in {time.monotonic() - started:.1f}s: AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}, "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
    )


# what `connections import` and `variables import` print for an entry they skip (they go on, and exit 0)
IMPORT_PROBLEM = re.compile(r"could not import|failed", re.IGNORECASE)


def import_settings(sections: Iterable[str] | None = None, path: Path | None = None) -> dict[str, int]:
    """airflow_settings.yaml into the metadata DB: acme_pipelines.settings_loader writes the files of
    Airflow's `connections|variables|pools import`, and those commands import them, as compose's init
    runs them (settings_loader.IMPORT_COMMANDS) but in this process: parsed by Airflow's own CLI parser
    and run by the functions `airflow` would run, without three more `airflow` start-ups. Returns
    section -> entries imported. ``sections``: all of them unless given (as settings_loader's --only);
    ``path``: the checkout's airflow_settings.yaml unless given."""
    from acme_pipelines.settings_loader import (
        SECTIONS,
        SettingsError,
        import_commands,
        load_settings,
        write_import_files,
    )

    sections = SECTIONS if sections is None else tuple(sections)
    try:
        settings = load_settings(path or env.ROOT / "airflow_settings.yaml", sections=sections)
    except SettingsError as exc:
        raise SystemExit(f"ERROR: {exc}") from None
    from airflow.cli import cli_parser

    if settings.connections and (stale := forget_undecryptable_connections(settings.connections)):
        detail(f"deleted before the import, encrypted with another Fernet key: {', '.join(stale)}")
    parser = cli_parser.get_parser()
    with tempfile.TemporaryDirectory(prefix="acme-settings-") as directory:
        files = write_import_files(settings, directory, sections)
        for command in import_commands(files):
            args = parser.parse_args(command)
            with contextlib.redirect_stdout(io.StringIO()) as output:
                args.func(args)
            if problems := [line for line in output.getvalue().splitlines() if IMPORT_PROBLEM.search(line)]:
                raise SystemExit(f"ERROR: airflow {' '.join(command[:2])}: " + "; ".join(problems))
    return {section: len(settings.section(section)) for section in files}


def forget_undecryptable_connections(conn_ids: Iterable[str]) -> list[str]:
    """Delete those of ``conn_ids`` whose password this checkout's Fernet key cannot decrypt; return them.

    The PostgreSQL metadata DB of `make up` (acme_airflow) outlives .airflow/fernet.key (`make clean`, or a
    second checkout on the same server). `airflow connections import --overwrite` loads the connection it
    replaces, and loading decrypts the password: with another key's password it fails (InvalidToken). The
    file replaces those connections anyway; nothing else is touched."""
    from airflow.models import Connection
    from airflow.models.crypto import get_fernet
    from airflow.utils.session import create_session
    from cryptography.fernet import InvalidToken
    from sqlalchemy import delete, select

    fernet, stale = get_fernet(), []
    with create_session() as session:
        query = select(Connection.conn_id, Connection._password).where(
            Connection.conn_id.in_(list(conn_ids)), Connection.is_encrypted, Connection._password.is_not(None)
        )
        for conn_id, password in session.execute(query):
            try:
                fernet.decrypt(password.encode())
            except InvalidToken:
                stale.append(conn_id)
        if stale:
            session.execute(delete(Connection).where(Connection.conn_id.in_(stale)))
    return stale


def private_metadata_db(name: str) -> None:
    """A tool that runs DAGs with dag.test (one process, nothing concurrent) gets a SQLite metadata DB of its
    own: its runs, and the downstream runs they trigger, stay out of the DB that `make up` schedules from."""
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = env.sqlite_dsn(env.ROOT / ".airflow" / f"{name}.db")


@contextmanager
def settings_connection(conn_id: str) -> Iterator[None]:
    """While inside: the Airflow connection ``conn_id`` as airflow_settings.yaml defines it (an
    ``AIRFLOW_CONN_*`` variable), unless the environment already sets one. No metadata DB needed."""
    from acme_pipelines.settings_loader import SettingsError, load_settings

    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if variable in os.environ:
        yield
        return
    try:
        settings = load_settings(env.ROOT / "airflow_settings.yaml", sections=("connections",))
    except SettingsError as exc:
        raise SystemExit(f"ERROR: {exc}") from None
    if conn_id not in settings.connections:
        raise SystemExit(f"ERROR: no connection {conn_id!r} in airflow_settings.yaml, and {variable} is not set")
    # the connections import's JSON object is also the JSON form of an AIRFLOW_CONN_* variable
    os.environ[variable] = json.dumps(settings.connections[conn_id])
    try:
        yield
    finally:
        del os.environ[variable]


def migrate_warehouse(conn_id: str = "warehouse") -> list:
    """Apply the warehouse's schema migrations (``acme_pipelines.migrations``) to ``conn_id``, from the
    environment's connection or airflow_settings.yaml's; a missing PostgreSQL database is created first."""
    from acme_pipelines import migrations
    from acme_pipelines.warehouse_hooks import warehouse_hook

    started = time.monotonic()
    with settings_connection(conn_id):
        hook = warehouse_hook(conn_id)
        if hook.backend == "postgres" and migrations.create_database_if_missing(hook):
            detail(f"created the warehouse database {hook.database_name()}")
        try:
            applied = migrations.upgrade(hook)
        except migrations.MigrationError as exc:
            raise SystemExit(f"ERROR: {exc}") from None
    step(
        f"warehouse schema ({conn_id}, {hook.backend}) at version {migrations.LATEST} in "
        f"{time.monotonic() - started:.1f}s: " + (", ".join(map(str, applied)) or "nothing to apply")
    )
    return applied


def cmd_env(_: list[str]) -> int:
    for name, value in env.local_environment().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_init(_: list[str]) -> int:
    env.activate()
    init_airflow()
    return 0


def cmd_migrate(_: list[str]) -> int:
    env.activate()
    migrate_warehouse()
    return 0


def run_pytest(args: list[str], tier: str | None = None) -> int:
    """pytest over tests/, all tiers or the one ``tier`` (a marker: unit, integration, e2e)."""
    # The tests make their own AIRFLOW_HOME and databases; only the paths come from here.
    os.environ.update(env.local_environment(airflow_home=env.ROOT / ".airflow-test"))
    step(f"running the {tier + ' tests' if tier else 'test suite'} (pytest)")
    selection = ["-m", tier] if tier else []
    return subprocess.call([sys.executable, "-m", "pytest", *selection, *args], cwd=env.ROOT)


# make test's pytest processes (pytest-xdist). The suite waits on Airflow's schedulers and subprocesses for
# much of its time, so on 2 cores a third process still fills gaps: one runs the clusters, two the rest
# (docs/development.md).
TEST_PROCESSES = os.environ.get("TEST_PROCESSES", "3")


def cmd_test(args: list[str]) -> int:
    require(POSTGRES, REDIS)
    parallel = ["-n", TEST_PROCESSES, "--dist", "loadscope"] if TEST_PROCESSES not in ("0", "1") else []
    return run_pytest([*parallel, *args])


def cmd_test_fast(args: list[str]) -> int:
    """The unit tier: no PostgreSQL, Redis or metadata DB, so no require()."""
    return run_pytest(args, "unit")


def cmd_test_integration(args: list[str]) -> int:
    require(POSTGRES, REDIS)
    return run_pytest(args, "integration")


def cmd_test_e2e(args: list[str]) -> int:
    require(POSTGRES, REDIS)  # the stack it starts keeps its metadata DB on PostgreSQL
    return run_pytest(args, "e2e")


def cmd_demo(args: list[str]) -> int:
    from acme_localdev import demo

    require(POSTGRES, REDIS)
    private_metadata_db("demo")
    os.environ.setdefault("AIRFLOW__CORE__DEFAULT_TASK_RETRIES", "0")  # a demo failure shows at once, not after backoff
    env.activate()
    return demo.main(args)


CHROMIUM = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def cmd_images(_: list[str]) -> int:
    """Screenshot the demo's lineage page with headless Chromium; copy its dashboard previews to docs/images."""
    artifacts, images = env.ROOT / "data" / "artifacts", env.ROOT / "docs" / "images"
    page = artifacts / "lineage" / "lineage.html"
    if not page.exists():
        print(f"ERROR: {page.relative_to(env.ROOT)} is missing: run `make demo` first", file=sys.stderr)
        return 1
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    if browser is None:
        print("ERROR: no headless Chromium: apt-get install chromium (or chromium-headless-shell)", file=sys.stderr)
        return 1
    shot = images / "lineage_fact_payments.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,1000",
         f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True,
    )  # fmt: skip
    step(f"{shot.relative_to(env.ROOT)} <- {page.relative_to(env.ROOT)} ({browser})")
    for preview in sorted((artifacts / "metrics").glob("*.png")):
        target = images / f"dashboard_{preview.name}"
        shutil.copyfile(preview, target)
        step(f"{target.relative_to(env.ROOT)} <- {preview.relative_to(env.ROOT)}")
    return 0


def cmd_snowflake_compare(args: list[str]) -> int:
    from acme_localdev import warehouse_compare

    require(POSTGRES)
    private_metadata_db("snowflake-compare")
    os.environ.setdefault("AIRFLOW__CORE__DEFAULT_TASK_RETRIES", "0")
    env.activate()
    return warehouse_compare.main(args)


def cmd_up(args: list[str]) -> int:
    from acme_localdev import stack

    require(POSTGRES, REDIS)
    return stack.main(["up", *args])


def cmd_down(args: list[str]) -> int:
    from acme_localdev import stack

    return stack.main(["down", *args])


def cmd_audit(args: list[str]) -> int:
    from acme_localdev import audit

    return audit.main(args)


COMMANDS = {
    "env": cmd_env,
    "init": cmd_init,
    "migrate": cmd_migrate,
    "test": cmd_test,
    "test-fast": cmd_test_fast,
    "test-integration": cmd_test_integration,
    "test-e2e": cmd_test_e2e,
    "demo": cmd_demo,
    "images": cmd_images,
    "snowflake-compare": cmd_snowflake_compare,
    "up": cmd_up,
    "down": cmd_down,
    "audit": cmd_audit,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except ServiceMissingError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 3
