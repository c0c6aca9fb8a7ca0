"""`make test`, `make demo` and `make env` land here.

python -m acme_localdev env     # print `export ...` lines for this checkout's Airflow
python -m acme_localdev init    # migrate the metadata DB and apply airflow_settings.yaml
python -m acme_localdev test [pytest args]
python -m acme_localdev demo [--days N --scale X]
python -m acme_localdev images  # the README's lineage and dashboard images, from the last demo
python -m acme_localdev up [--port 8080] / down  # Airflow's services on .airflow/, no Docker
python -m acme_localdev snowflake-compare [--days N]  # the ETL into PostgreSQL and fakesnow, side by side
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

from acme_localdev import env
from acme_localdev.services import POSTGRES, REDIS, ServiceMissingError, require


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def detail(message: str) -> None:
    print(f"    {message}", flush=True)


def init_airflow() -> None:
    """Migrate the project-local metadata DB and apply the settings file (idempotent)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ
    )
    if result.returncode:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"airflow db migrate failed (exit {result.returncode}); see the output above")
    from acme_pipelines.settings_loader import SettingsError, apply_settings, load_settings

    try:
        counts = apply_settings(load_settings(env.ROOT / "airflow_settings.yaml"))
    except SettingsError as exc:
        raise SystemExit(f"ERROR: {exc}") from None
    step(
        f"Airflow ready in {time.monotonic() - started:.1f}s: AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}, "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
    )


def cmd_env(_: list[str]) -> int:
    for name, value in env.local_environment().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_init(_: list[str]) -> int:
    env.activate()
    init_airflow()
    return 0


def cmd_test(args: list[str]) -> int:
    require(POSTGRES, REDIS)
    # The tests make their own AIRFLOW_HOME and databases; only the paths come from here.
    os.environ.update(env.local_environment(airflow_home=env.ROOT / ".airflow-test"))
    step("running the test suite (pytest)")
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=env.ROOT)


def cmd_demo(args: list[str]) -> int:
    from acme_localdev import demo

    require(POSTGRES, REDIS)
    env.activate()
    os.environ.setdefault("ACME_TASK_RETRIES", "0")  # a demo failure shows at once, not after backoff
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
    env.activate()
    os.environ.setdefault("ACME_TASK_RETRIES", "0")
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
    "test": cmd_test,
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
