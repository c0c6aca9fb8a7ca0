"""Checks of the container deployment files (Dockerfile, docker-compose.yaml, .env.example, Helm values).

No image is built or run. The unit tests catch the mistakes that do not need a Docker
engine to find -- unpinned images, dangling depends_on/bind mounts/COPY
sources, a base image that drifts from requirements.txt, required settings
missing from .env.example -- plus a scan of the tracked files for secrets.
The integration tests run the settings steps of compose's airflow-init and the
Helm migration Job for real (the loader, then `airflow ... import`) on a
throwaway SQLite metadata DB and read back what they imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from acme_pipelines.settings_loader import SECTIONS, import_commands, load_settings
from conftest import ROOT, ThrowawayAirflow

COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS = ROOT / "airflow_settings.yaml"
ONE_SHOT_SERVICES = {"postgres-init", "airflow-init"}  # run to completion; nothing to health-check

# ${NAME} without a default: the settings loader fails when it is unset.
REQUIRED_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# ${NAME:?message} in the compose file: compose refuses to start without it.
COMPOSE_REQUIRED_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")
AIRFLOW_PIN = re.compile(r"^apache-airflow(?:\[[^\]]*\])?==([^\s;#]+)", re.MULTILINE)
VERSION_TAG = re.compile(r"\d+\.\d+")

# Split so that this file does not match its own patterns.
SECRET_PATTERNS = {
    "AWS access key": re.compile("AK" + "IA[0-9A-Z]{16}"),
    "Slack token": re.compile("xo" + "x[baprs]-[0-9A-Za-z-]{10,}"),
    "private key": re.compile("-----BEGIN (RSA |EC |OPENSSH )?" + "PRIVATE KEY-----"),
    "Slack webhook URL": re.compile(r"hooks\.slack\.com/" + r"services/T[A-Z0-9]{8,}/"),
}


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # also resolves the `<<: *anchor` merges
    assert isinstance(data, dict), f"{COMPOSE.name} is not a mapping"
    assert isinstance(data.get("services"), dict), f"{COMPOSE.name} has no services mapping"
    assert data["services"], f"{COMPOSE.name} has no services"
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest); a registry port is not a tag."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        logical.append(pending)
    out = []
    for text in logical:
        keyword, _, args = text.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def env_example_names() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].removeprefix("export ").strip())
    return names


def env_example_values() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.removeprefix("export ").strip()] = value.strip()
    return values


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


# --- docker-compose.yaml ------------------------------------------------------------------------


@pytest.mark.unit
def test_compose_services_have_pinned_images() -> None:
    problems = []
    for name, service in services().items():
        image, build = service.get("image"), service.get("build")
        if not image and not build:
            problems.append(f"{name}: neither image nor build")
            continue
        if not image:
            continue  # built and left unnamed: nothing pulled
        _, tag, digest = split_image(image)
        if digest:
            continue
        if tag is None or tag == "latest":
            problems.append(f"{name}: image {image!r} needs an explicit tag other than latest")
        elif not build and not VERSION_TAG.search(tag):
            problems.append(f"{name}: pulled image {image!r} needs an exact version tag (e.g. 15.10)")
        elif "${" in image:
            problems.append(f"{name}: image {image!r} is chosen by the environment")
    assert not problems, "\n".join(problems)


@pytest.mark.unit
def test_compose_depends_on_defined_services() -> None:
    defined = set(services())
    problems = []
    for name, service in services().items():
        targets = service.get("depends_on") or {}
        for target in targets if isinstance(targets, list) else targets.keys():
            if target not in defined:
                problems.append(f"{name} depends on undefined service {target!r}")
            if target == name:
                problems.append(f"{name} depends on itself")
    assert not problems, "\n".join(problems)


@pytest.mark.unit
def test_compose_long_running_services_have_healthchecks() -> None:
    missing = [
        name
        for name, service in services().items()
        if name not in ONE_SHOT_SERVICES
        and (not isinstance(service.get("healthcheck"), dict) or not service["healthcheck"].get("test"))
    ]
    assert not missing, f"services without a healthcheck test: {missing}"


@pytest.mark.unit
def test_compose_volumes_exist() -> None:
    declared = set(compose().get("volumes") or {})
    problems = []
    for name, service in services().items():
        for entry in service.get("volumes") or []:
            if isinstance(entry, dict):
                source, kind = str(entry.get("source", "")), entry.get("type")
            else:
                source = str(entry).split(":", 1)[0]
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "bind":
                if not source.startswith("./"):
                    problems.append(f"{name}: bind mount {source!r} is not relative to the repo (./...)")
                elif not (ROOT / source).exists():
                    problems.append(f"{name}: bind-mounted {source!r} does not exist in the repo")
            elif kind == "volume" and source and source not in declared:
                problems.append(f"{name}: named volume {source!r} is not declared under top-level volumes")
    assert not problems, "\n".join(problems)


@pytest.mark.unit
def test_compose_required_variables_are_in_env_example() -> None:
    needed = set(COMPOSE_REQUIRED_REF.findall(COMPOSE.read_text()))
    assert needed, "expected ${NAME:?...} references for the secrets in docker-compose.yaml"
    missing = sorted(needed - env_example_names())
    assert not missing, f".env.example lacks variables docker-compose.yaml requires: {missing}"


# --- Dockerfile ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_dockerfile_base_image_matches_requirements() -> None:
    pins = AIRFLOW_PIN.findall((ROOT / "requirements.txt").read_text())
    assert len(pins) == 1, f"expected one apache-airflow pin in requirements.txt, found {pins}"
    (version,) = pins
    lock_pins = AIRFLOW_PIN.findall((ROOT / "requirements.lock").read_text())
    assert lock_pins == [version], f"requirements.lock pins apache-airflow {lock_pins}, not {version}"

    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) == 1, f"expected a single FROM, found {froms}"
    image = froms[0].split()[0]
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+[^-\s]*)(-python\d+\.\d+)?", image)
    assert match, f"FROM {image!r} is not a pinned apache/airflow:<version>[-pythonX.Y] image"
    assert match.group(1) == version, f"FROM {image!r} but requirements.txt pins apache-airflow=={version}"


@pytest.mark.unit
def test_dockerfile_copy_sources_exist() -> None:
    copies = [args for keyword, args in dockerfile_instructions() if keyword in {"COPY", "ADD"}]
    assert copies, "the Dockerfile copies nothing"
    problems = []
    for args in copies:
        parts = json.loads(args) if args.startswith("[") else args.split()
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue  # from another build stage or image, not the repo
        paths = [p for p in parts if not p.startswith("--")]
        if len(paths) < 2:
            problems.append(f"COPY {args!r}: needs a source and a destination")
            continue
        for source in paths[:-1]:
            if not list(ROOT.glob(source.rstrip("/"))) and not (ROOT / source).exists():
                problems.append(f"COPY source {source!r} does not exist in the repo")
    assert not problems, "\n".join(problems)


@pytest.mark.unit
def test_dockerfile_sets_no_secrets() -> None:
    suspicious = re.compile(r"(PASSWORD|SECRET|TOKEN|FERNET|ROUTING_KEY|API_KEY)", re.IGNORECASE)
    bad = [
        f"{keyword} {args}"
        for keyword, args in dockerfile_instructions()
        if keyword in {"ENV", "ARG"} and suspicious.search(args)
    ]
    assert not bad, f"secrets must come from the environment at run time, not the image: {bad}"


# --- .env.example and .gitignore ----------------------------------------------------------------


def strings_in(value: Any) -> list[str]:
    """Every string value of a parsed YAML document (comments are not values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


@pytest.mark.unit
def test_env_example_lists_required_settings_variables() -> None:
    values = strings_in(yaml.safe_load(SETTINGS.read_text()))
    needed = {name for value in values for name in REQUIRED_REF.findall(value)}
    assert needed, "expected ${NAME} references in airflow_settings.yaml"
    # Optional in compose: unset, airflow-init drops the pagerduty_events connection (paging off).
    needed -= {"PAGERDUTY_ROUTING_KEY"}
    missing = sorted(needed - env_example_names())
    assert not missing, f".env.example lacks variables airflow_settings.yaml requires: {missing}"


@pytest.mark.unit
@pytest.mark.parametrize(("path", "ignored"), [(".env", True), (".env.example", False)])
def test_env_file_is_git_ignored(path: str, ignored: bool) -> None:
    result = git("check-ignore", "--quiet", "--no-index", path)
    assert result.returncode in {0, 1}, result.stderr
    assert (result.returncode == 0) is ignored, f"{path} should {'' if ignored else 'not '}be git-ignored"


# --- secret scan --------------------------------------------------------------------------------


def scanned_files() -> list[Path]:
    listed = git("ls-files", "-z")
    assert listed.returncode == 0, listed.stderr
    tracked = {ROOT / p for p in listed.stdout.split("\0") if p}
    # The deployment files are checked even before they are committed.
    return sorted(tracked | {p for p in (COMPOSE, DOCKERFILE, ENV_EXAMPLE, Path(__file__)) if p.exists()})


@pytest.mark.unit
def test_no_secrets_in_tracked_files() -> None:
    findings = []
    for path in scanned_files():
        if not path.is_file():
            continue  # deleted in the worktree
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for kind, pattern in SECRET_PATTERNS.items():
                if pattern.search(line):
                    findings.append(f"{path.relative_to(ROOT)}:{lineno}: looks like a {kind}")
    assert not findings, "\n".join(findings)


@pytest.mark.unit
def test_secret_patterns_catch_examples() -> None:
    """Guard the scanner itself: each pattern matches a made-up sample."""
    samples = {
        "AWS access key": "AK" + "IA" + "ABCDEFGHIJKLMNOP",
        "Slack token": "xo" + "xb-" + "1234567890-abcdef",
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "Slack webhook URL": "https://hooks.slack.com/" + "services/T01234567/B0/x",
    }
    assert samples.keys() == SECRET_PATTERNS.keys()
    for kind, sample in samples.items():
        assert SECRET_PATTERNS[kind].search(sample), kind


# --- the Airflow stack: Celery, auth, secrets (issue #8) -------------------------------------------

HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
SECRET_SETTINGS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")


def airflow_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in services()[service]["environment"].items()}


@pytest.mark.unit
def test_compose_runs_every_airflow_component_on_celery_with_health_checks() -> None:
    for name, command in AIRFLOW_COMPONENTS.items():
        service = services()[name]
        assert service["command"] == command, name
        assert "test" in service.get("healthcheck", {}), f"{name} has no health check"
        environment = airflow_env(name)
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        broker = environment["AIRFLOW__CELERY__BROKER_URL"]
        assert broker.startswith("redis://redis:"), broker  # the compose service
        assert environment["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name
    assert services()["redis"]["healthcheck"]["test"]


@pytest.mark.unit
def test_compose_secrets_are_required_from_env_never_defaulted() -> None:
    """A fernet key, JWT and API secret must come from .env: compose refuses to start without them."""
    for name in AIRFLOW_COMPONENTS:
        environment = airflow_env(name)
        for setting in SECRET_SETTINGS:
            value = environment[setting]
            assert ":?" in value, (name, setting, value)
            assert ":-" not in value, (name, setting, value)
            referenced = COMPOSE_REQUIRED_REF.findall(value)
            assert referenced, (name, setting, value)
            assert set(referenced) <= env_example_names(), (name, setting, value)


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
USERS_FILE = ROOT / "include" / "auth" / "users.yaml"
CREATE_USERS = "python /opt/airflow/include/auth/create_users.py /opt/airflow/include/auth/users.yaml"


def auth_users() -> dict[str, str]:
    """username -> role of include/auth/users.yaml."""
    raw = yaml.safe_load(USERS_FILE.read_text())
    return {name: spec if isinstance(spec, str) else spec["role"] for name, spec in raw.items()}


def password_variable(username: str) -> str:
    return "ACME_USER_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", username.upper())


@pytest.mark.unit
def test_compose_runs_fab_and_creates_every_user_of_users_yaml_after_the_migration() -> None:
    """FAB keeps users in the metadata DB (nothing regenerated per container); airflow-init creates them
    from include/auth/users.yaml with passwords from .env, each required, after `airflow db migrate`."""
    assert sorted(auth_users().values()) == ["Admin", "Op", "User", "Viewer"]
    for name in [*AIRFLOW_COMPONENTS, "airflow-init"]:
        environment = airflow_env(name)
        assert environment["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER, name
        assert environment["AIRFLOW__FAB__CONFIG_FILE"] == "/opt/airflow/include/auth/webserver_config.py"
        assert not [k for k in environment if "SIMPLE_AUTH_MANAGER" in k], name
    init = " ".join(services()["airflow-init"]["command"])
    assert init.index("airflow db migrate") < init.index(CREATE_USERS), init
    environment = airflow_env("airflow-init")
    for username in auth_users():
        variable = password_variable(username)
        assert environment[variable] == f"${{{variable}:?set it in .env}}", variable
        assert variable in env_example_names(), variable
    assert (ROOT / "include" / "auth" / "webserver_config.py").is_file()


@pytest.mark.unit
def test_compose_creates_the_databases_the_connections_name() -> None:
    """app_db and warehouse point at databases of the compose PostgreSQL; postgres-init creates them."""
    connections = {c["conn_id"]: c for c in yaml.safe_load(SETTINGS.read_text())["airflow"]["connections"]}
    names = {
        re.fullmatch(r"\$\{[A-Z_]+:-(\w+)\}", connections[c]["conn_schema"]).group(1) for c in ("app_db", "warehouse")
    }
    assert names == {"app", "warehouse"}
    environment = airflow_env("airflow-init")
    assert environment["APP_DB_HOST"] == environment["WAREHOUSE_HOST"] == "postgres"
    assert "APP_DB_NAME" not in environment  # the default: app
    assert "WAREHOUSE_DB_NAME" not in environment  # the default: warehouse
    init = services()["postgres-init"]
    script = " ".join(init["command"])
    for part in ("for db in app warehouse", "CREATE DATABASE", "pg_database"):
        assert part in script, part
    assert init["environment"]["PGHOST"] == "postgres"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services()["airflow-init"]["depends_on"]["postgres-init"]["condition"] == "service_completed_successfully"


AIRFLOW_SERVICES = [*AIRFLOW_COMPONENTS, "airflow-init"]


@pytest.mark.unit
def test_compose_every_airflow_service_shares_one_data_volume() -> None:
    assert "airflow-data" in compose()["volumes"]
    for name in AIRFLOW_SERVICES:
        mounts = [str(m) for m in services()[name]["volumes"] if str(m).endswith(":/opt/airflow/data")]
        assert mounts == ["airflow-data:/opt/airflow/data"], (name, mounts)
    assert set(AIRFLOW_COMPONENTS) >= {
        "airflow-worker",
        "airflow-scheduler",
        "airflow-triggerer",
        "airflow-dag-processor",
        "airflow-apiserver",
    }


@pytest.mark.unit
def test_compose_local_profile_runs_the_standins_with_tooling_outside_the_image() -> None:
    standins = services()["standins"]
    assert standins["profiles"] == ["local"]
    # the stand-ins serve through pytest-httpserver (dev lock only): installed at start, at the dev lock's pin,
    # without dependencies: its werkzeug is in the image, at the version the dev lock has
    dev_pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", (ROOT / "requirements-dev.lock").read_text(), re.MULTILINE))
    runtime_pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE))
    assert "pytest-httpserver" not in runtime_pins
    assert runtime_pins["werkzeug"] == dev_pins["werkzeug"]
    assert standins["command"] == [
        "bash",
        "-c",
        f"pip install --user --quiet --no-cache-dir --no-deps pytest-httpserver=={dev_pins['pytest-httpserver']}"
        " && exec python -m acme_localdev.stack standins",
    ]
    assert standins["environment"]["ACME_STANDINS_HOST"] == "0.0.0.0"  # the other containers reach them
    assert "./tools:/opt/acme-tooling/tools:ro" in standins["volumes"]
    assert standins["environment"]["PYTHONPATH"] == "/opt/acme-tooling/tools"
    assert not [v for v in standins["volumes"] if str(v).startswith("./include")]  # runtime assets: in the image
    assert [n for n, s in services().items() if s.get("profiles")] == ["standins"]
    environment = airflow_env("airflow-worker")
    assert environment["FX_API_URL"] == "${FX_API_URL:-http://standins:18080}"
    assert environment["SLACK_WEBHOOK_BASE"] == "${SLACK_WEBHOOK_BASE:-http://standins:18081/services}"


@pytest.mark.unit
def test_compose_dags_start_paused() -> None:
    for name in AIRFLOW_SERVICES:
        assert airflow_env(name)["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "true", name


@pytest.mark.unit
def test_compose_helm_and_make_up_retry_tasks_3_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DAG sets retries (tests/test_dag_governance.py): Airflow's setting decides, the same everywhere."""
    from acme_localdev.env import local_environment

    for name in AIRFLOW_SERVICES:
        assert airflow_env(name)["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"] == "3", name
    assert helm_values()["config"]["core"]["default_task_retries"] == "3"
    assert "ACME_TASK_RETRIES" not in {e["name"] for e in helm_values()["env"]}
    monkeypatch.delenv("AIRFLOW__CORE__DEFAULT_TASK_RETRIES", raising=False)
    assert local_environment()["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"] == "3"


@pytest.mark.unit
def test_compose_pagerduty_is_off_until_a_key_is_set() -> None:
    """No default routing key anywhere; without PAGERDUTY_ROUTING_KEY, airflow-init removes the connection
    (acme_pipelines.alerting then logs "PagerDuty off: no connection pagerduty_events")."""
    from acme_pipelines.alert_config import PAGERDUTY_CONN_ID

    for name, service in services().items():
        assert "PAGERDUTY_ROUTING_KEY" not in (service.get("environment") or {}), name
    assert "change-me" not in [v for k, v in env_example_values().items() if "PAGERDUTY" in k]
    assert "PAGERDUTY_ROUTING_KEY" not in env_example_names()
    init = " ".join(services()["airflow-init"]["command"])
    assert 'if [ -n "$${PAGERDUTY_ROUTING_KEY:-}" ]' in init
    assert "PAGERDUTY_ROUTING_KEY=disabled-unset python -m acme_pipelines.settings_loader" in init.split("else", 1)[1]
    unset = init.split('if [ -z "$${PAGERDUTY_ROUTING_KEY:-}" ]; then', 1)[1].split("fi;", 1)[0]
    assert unset.strip() == f"airflow connections delete {PAGERDUTY_CONN_ID};"
    assert init.index("airflow connections import") < init.index(unset), "deleted after the import"


@pytest.mark.unit
def test_compose_states_the_minimum_compose_version_it_needs() -> None:
    text = COMPOSE.read_text()
    assert "Minimum Docker Compose: 2.24.0" in text
    assert all(s["env_file"] == [{"path": ".env", "required": False}] for s in map(services().get, AIRFLOW_SERVICES))


@cache
def helm_values() -> dict[str, Any]:
    data = yaml.safe_load(HELM_VALUES.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.unit
def test_helm_values_pin_the_project_image_at_the_airflow_version() -> None:
    values = helm_values()
    [airflow_version] = AIRFLOW_PIN.findall((ROOT / "requirements.txt").read_text())
    assert values["airflowVersion"] == airflow_version
    image = values["images"]["airflow"]
    assert image["tag"].startswith(airflow_version), image
    assert image["tag"] == values["defaultAirflowTag"]
    [(_, base)] = [(k, a) for k, a in dockerfile_instructions() if k == "FROM"]
    assert split_image(base)[1].startswith(airflow_version)


@pytest.mark.unit
def test_helm_values_take_secrets_by_reference_only() -> None:
    values = helm_values()
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    assert values["data"]["metadataSecretName"]
    inline = {"fernetKey", "jwtSecret", "apiSecretKey", "webserverSecretKey"} & set(values)
    assert inline == set(), f"secret values inline in the Helm values: {inline}"
    assert {"metadataConnection", "resultBackendConnection", "brokerUrl"} & set(values["data"]) == set()
    assert "secretRef" in values["extraEnvFrom"]


@pytest.mark.unit
def test_helm_values_match_the_compose_stack() -> None:
    values, environment = helm_values(), airflow_env("airflow-scheduler")
    assert values["executor"] == environment["AIRFLOW__CORE__EXECUTOR"]
    assert values["workers"]["keda"]["enabled"] is True
    assert values["workers"]["keda"]["maxReplicaCount"] > values["workers"]["keda"]["minReplicaCount"] >= 1
    config = values["config"]
    for section, options in config.items():
        for option, value in options.items():
            name = f"AIRFLOW__{section.upper()}__{option.upper()}"
            if name in environment and "${" not in environment[name] and section != "openlineage":
                assert str(value) == environment[name], name
    assert config["core"]["auth_manager"] == FAB_AUTH_MANAGER
    assert config["fab"]["config_file"] == environment["AIRFLOW__FAB__CONFIG_FILE"]
    assert config["core"]["dags_are_paused_at_creation"] == "true"
    for option in ("statsd_on", "statsd_influxdb_enabled", "legacy_names_on", "statsd_prefix"):
        assert str(config["metrics"][option]) == environment[f"AIRFLOW__METRICS__{option.upper()}"], option


@pytest.mark.unit
def test_every_task_process_uses_the_same_arrow_allocator() -> None:
    """The bench measures the loads with acme_localdev.env.ARROW_MEMORY_POOL; deployments must run them so.
    Compose builds, and Helm runs, the Dockerfile's image, so its ENV covers both."""
    from acme_localdev.env import ARROW_MEMORY_POOL, local_environment

    assert local_environment(ROOT / ".airflow")["ARROW_DEFAULT_MEMORY_POOL"] == ARROW_MEMORY_POOL
    assert f"ENV ARROW_DEFAULT_MEMORY_POOL={ARROW_MEMORY_POOL}" in DOCKERFILE.read_text()
    assert "ARROW_DEFAULT_MEMORY_POOL" not in airflow_env("airflow-worker"), "set once, in the Dockerfile"
    assert "ARROW_DEFAULT_MEMORY_POOL" not in {e["name"] for e in helm_values()["env"]}, "set once, in the Dockerfile"


@pytest.mark.unit
def test_setup_steps_apply_the_warehouse_migrations() -> None:
    """Tasks only check the warehouse schema's version (acme_pipelines.migrations): compose's one-shot init
    service and the Helm chart's migration job apply the migrations, after the metadata DB's."""
    upgrade = "python -m acme_pipelines.migrations upgrade --conn-id warehouse"
    init = " ".join(services()["airflow-init"]["command"])
    assert init.index("airflow db migrate") < init.index("settings_loader") < init.index(upgrade), init
    job = helm_values()["migrateDatabaseJob"]
    assert job["applyCustomEnv"] is True  # extraEnvFrom: the warehouse connection
    script = job["args"][-1]
    assert script.index("airflow db migrate") < script.index(upgrade), script


@pytest.mark.unit
def test_helm_statsd_mappings_are_the_projects() -> None:
    """overrideMappings replaces the chart's rules, without `defaults:`: each rule is the file's, with its defaults."""
    mapping = yaml.safe_load((ROOT / "deploy" / "statsd" / "mapping.yml").read_text())
    expected = [{**mapping["defaults"], **rule} for rule in mapping["mappings"]]
    assert helm_values()["statsd"]["enabled"] is True
    assert helm_values()["statsd"]["overrideMappings"] == expected


def import_lines(directory: str, sections: tuple[str, ...] = SECTIONS) -> list[str]:
    """settings_loader.IMPORT_COMMANDS as shell lines, for the files it writes into ``directory``."""
    return ["airflow " + " ".join(c) for c in import_commands({s: f"{directory}/{s}.json" for s in sections})]


COMPOSE_LOADER = "python -m acme_pipelines.settings_loader /opt/airflow/airflow_settings.yaml --out $$settings"
HELM_LOADER = (
    "python -m acme_pipelines.settings_loader /opt/airflow/airflow_settings.yaml --only pools --out /tmp/acme-settings"
)


@pytest.mark.unit
def test_compose_init_imports_the_settings_with_airflows_own_commands() -> None:
    """The loader only writes the files; Airflow's `connections|variables|pools import` upsert them."""
    init = " ".join(services()["airflow-init"]["command"])
    positions = [init.index(COMPOSE_LOADER), *(init.index(line + ";") for line in import_lines("$$settings"))]
    assert positions == sorted(positions), init
    assert init.count(COMPOSE_LOADER) == 2, "with and without a PagerDuty key"
    # the files hold passwords: a private directory, removed however the script ends
    assert "settings=$$(mktemp -d); trap 'rm -rf \"$$settings\"' EXIT;" in init
    assert "--only" not in init, "compose keeps its connections in the metadata DB"


@pytest.mark.unit
def test_helm_imports_the_pools_of_airflow_settings() -> None:
    """From the image's airflow_settings.yaml, not a copy in the values; only the pools (connections and
    variables: the extraEnvFrom secret)."""
    script = helm_values()["migrateDatabaseJob"]["args"][-1]
    [pools_import] = import_lines("/tmp/acme-settings", ("pools",))
    assert script.index("airflow db migrate") < script.index(HELM_LOADER) < script.index(f"exec {pools_import}")
    assert "extraConfigMaps" not in helm_values()
    assert "extraVolumes" not in helm_values()["migrateDatabaseJob"]
    assert "COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml" in DOCKERFILE.read_text()


# -- the same steps run for real: the loader and `airflow` on a throwaway SQLite metadata DB ---------------

SETTINGS_INPUTS = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", SETTINGS.read_text()))


def runnable(script: str, drop: list[str], paths: dict[str, str]) -> str:
    """A deployment script minus the steps other tests cover, with the repository's paths."""
    for part in drop:
        assert part in script, part
        script = script.replace(part, "")
    for old, new in paths.items():
        script = script.replace(old, new)
    return script


def settings_env(throwaway_airflow: ThrowawayAirflow, tmp_path: Path, inputs: dict[str, str]) -> dict[str, str]:
    """The throwaway Airflow's environment with ``inputs`` as the only values airflow_settings.yaml reads; the
    venv's python and airflow first on PATH; TMPDIR empty, to see what a script leaves there."""
    env = {k: v for k, v in throwaway_airflow.env.items() if k not in SETTINGS_INPUTS}
    (tmp_path / "tmp").mkdir()
    return {**env, **inputs, "TMPDIR": str(tmp_path / "tmp"), "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}


def compose_init_inputs() -> dict[str, str]:
    """What airflow-init gives airflow_settings.yaml: its environment (compose's ${NAME:-default} at the default,
    ${NAME:?...} a test value) and, from .env, the Slack webhook token; no PagerDuty key, as .env.example."""
    inputs = {}
    for name, value in airflow_env("airflow-init").items():
        if name in SETTINGS_INPUTS:
            value = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: f"test-{m.group(1)}", value)
            inputs[name] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    return {**inputs, "SLACK_WEBHOOK_TOKEN": "T1/B2/from-dotenv"}


def compose_init_settings_script() -> str:
    script = services()["airflow-init"]["command"][-1].replace("$$", "$")  # as compose hands it to bash
    return runnable(
        script,
        drop=[
            "airflow db migrate;",  # the throwaway DB is migrated
            f"{CREATE_USERS};",  # tests/test_fab_auth.py
            "python -m acme_pipelines.migrations upgrade --conn-id warehouse --create-database",  # test_migrations.py
        ],
        paths={"/opt/airflow/airflow_settings.yaml": str(SETTINGS)},
    )


@pytest.mark.integration
def test_compose_init_imports_the_settings_into_a_metadata_db(throwaway_airflow, tmp_path) -> None:
    inputs = compose_init_inputs()
    env = settings_env(throwaway_airflow, tmp_path, inputs)
    done = subprocess.run(["bash", "-c", compose_init_settings_script()], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    expected = load_settings(SETTINGS, {**inputs, "PAGERDUTY_ROUTING_KEY": "disabled-unset"})
    got = throwaway_airflow.read_settings()
    assert set(expected.connections) - set(got["connections"]) == {"pagerduty_events"}, "no key: paging off"
    assert got["connections"] == {k: v for k, v in expected.connections.items() if k != "pagerduty_events"}
    assert got["connections"]["app_db"] | {"description": ""} == {
        "conn_type": "postgres",
        "description": "",
        "host": "postgres",
        "schema": "app",
        "login": "airflow",
        "password": "test-POSTGRES_PASSWORD",
        "port": 5432,
    }
    assert got["connections"]["fx_api"]["host"] == "http://standins:18080"
    assert got["connections"]["aws_default"]["extra"] == {"region_name": "eu-west-1"}
    assert got["pools"] == {**expected.pools, "default_pool": got["pools"]["default_pool"]}
    assert got["pools"]["warehouse"] == {
        "slots": 4,
        "description": "Concurrent loads and heavy queries in the warehouse",
        "include_deferred": False,
    }
    assert got["variables"] == expected.variables
    assert got["variables"]["landing_root"] == "file:///opt/airflow/data/landing"
    assert list((tmp_path / "tmp").iterdir()) == [], "the files with the passwords are removed"


@pytest.mark.integration
def test_compose_init_stops_at_a_missing_secret_before_importing_anything(throwaway_airflow, tmp_path) -> None:
    inputs = {k: v for k, v in compose_init_inputs().items() if k != "SLACK_WEBHOOK_TOKEN"}
    env = settings_env(throwaway_airflow, tmp_path, inputs)
    done = subprocess.run(["bash", "-c", compose_init_settings_script()], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SLACK_WEBHOOK_TOKEN (needed by connections.slack_alerts.conn_password)" in done.stderr
    got = throwaway_airflow.read_settings()
    assert (got["connections"], got["variables"], list(got["pools"])) == ({}, {}, ["default_pool"])
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.integration
def test_helm_migration_job_imports_the_pools_without_any_connection_secret(throwaway_airflow, tmp_path) -> None:
    script = runnable(
        helm_values()["migrateDatabaseJob"]["args"][-1],
        drop=["airflow db migrate &&", "python -m acme_pipelines.migrations upgrade --conn-id warehouse &&"],
        paths={"/opt/airflow/airflow_settings.yaml": str(SETTINGS), "/tmp/acme-settings": str(tmp_path / "settings")},
    )
    env = settings_env(throwaway_airflow, tmp_path, {})  # none of the file's ${NAME} set
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got = throwaway_airflow.read_settings()
    assert (got["connections"], got["variables"]) == ({}, {})
    expected = {p["pool_name"]: int(p["pool_slot"]) for p in yaml.safe_load(SETTINGS.read_text())["airflow"]["pools"]}
    assert {name: pool["slots"] for name, pool in got["pools"].items() if name != "default_pool"} == expected


@pytest.mark.unit
def test_helm_creates_the_users_of_users_yaml_with_passwords_from_a_secret() -> None:
    """No `airflow users create` default user: the user Job runs create_users.py under FAB, every
    password of users.yaml by reference to a Kubernetes Secret."""
    job = helm_values()["createUserJob"]
    assert job["args"][-1].strip() == f"exec {CREATE_USERS}"
    assert "users create" not in HELM_VALUES.read_text()
    env = {e["name"]: e for e in job["env"]}
    assert set(env) == {password_variable(u) for u in auth_users()}
    for name, entry in env.items():
        assert "value" not in entry, name
        assert entry["valueFrom"]["secretKeyRef"] == {"name": "acme-airflow-user-passwords", "key": name}


@pytest.mark.unit
def test_compose_helm_and_make_up_run_celery_alike() -> None:
    """The settings tests/test_cluster_faults.py and tests/test_local_stack.py prove on make up's cluster (riding out a
    broker outage, the workers' preload) are the ones compose and Helm run."""
    from acme_localdev.stack import CELERY_SETTINGS

    celery = helm_values()["config"]["celery"]
    assert json.loads(CELERY_SETTINGS["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"])["imports"] == [
        "acme_pipelines.worker_preload"
    ]
    for name, value in CELERY_SETTINGS.items():
        assert airflow_env("airflow-scheduler")[name] == value, name
        assert celery[name.removeprefix("AIRFLOW__CELERY__").lower()] == value, name


@pytest.mark.unit
def test_env_files_are_read_as_dotenv_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from acme_localdev.env import read_env_file

    monkeypatch.setenv("ACME_TEST_HOST", "db.internal")
    monkeypatch.delenv("ACME_TEST_UNSET", raising=False)
    env_file = tmp_path / "test.env"
    env_file.write_text(
        '# a comment\n\nexport PLAIN=value\nQUOTED="two words"  # trailing comment\n'
        "URL=postgresql://${ACME_TEST_HOST}:5432/app\nFALLBACK=${ACME_TEST_UNSET:-default}\n"
    )
    assert read_env_file(env_file) == {"PLAIN": "value", "QUOTED": "two words",
                                       "URL": "postgresql://db.internal:5432/app", "FALLBACK": "default"}  # fmt: skip
    env_file.write_text("GOOD=1\nNOVALUE\n")
    with pytest.raises(ValueError, match="NOVALUE"):
        read_env_file(env_file)
    assert read_env_file(ROOT / "local.env")["PAGERDUTY_ROUTING_KEY"].startswith("disabled")
