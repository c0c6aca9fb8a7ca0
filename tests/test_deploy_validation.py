"""docker-compose.yaml and deploy/helm/values.yaml checked by real validators, not by hand-written rules.

- Compose: dclint (pinned in tools/compose-validate/package-lock.json, installed by `make test*`) validates
  the file against the Compose specification's JSON schema, as it ships it. The schema refuses unknown
  keys (top level, service, healthcheck, ...) and mistyped values.
- Helm: deploy/helm/values.schema.json restates, for the key paths the values use, what the official chart's
  values.schema.json says (name, type, allowed values, additionalProperties: false; source in its $comment);
  jsonschema validates deploy/helm/values.yaml against it.

Each validator is also fed deliberately broken copies and must reject them.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.unit

COMPOSE = ROOT / "docker-compose.yaml"
VALIDATOR_DIR = ROOT / "tools" / "compose-validate"
DCLINT = VALIDATOR_DIR / "node_modules" / "dclint" / "bin" / "dclint.cjs"
DCLINT_SCHEMA = VALIDATOR_DIR / "node_modules" / "dclint" / "schemas" / "compose.schema.json"
DCLINT_CONFIG = VALIDATOR_DIR / "dclintrc.json"  # schema validation only: dclint's style rules are off
# dclint's rules for a file that does not parse or does not match the Compose schema
SCHEMA_RULES = {"invalid-yaml", "invalid-schema", "unknown-error"}

HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
HELM_SCHEMA = ROOT / "deploy" / "helm" / "values.schema.json"


# --- docker-compose.yaml: dclint ------------------------------------------------------------------


def pinned_dclint_version() -> str:
    lock = json.loads((VALIDATOR_DIR / "package-lock.json").read_text())
    return lock["packages"]["node_modules/dclint"]["version"]


def require_dclint() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: apt-get install nodejs npm (Node.js >= 20.19), then make test-fast")
    assert DCLINT.is_file(), (
        f"{DCLINT.relative_to(ROOT)} missing: make test-fast installs it "
        f"(or: npm ci --prefix {VALIDATOR_DIR.relative_to(ROOT)})"
    )
    installed = json.loads((DCLINT.parent.parent / "package.json").read_text())["version"]
    assert installed == pinned_dclint_version(), (
        f"dclint {installed} installed, the lock pins {pinned_dclint_version()}: make test-fast reinstalls it"
    )


def dclint(paths: list[Path], workdir: Path) -> tuple[int, dict[Path, list[dict[str, Any]]]]:
    """dclint's exit code and, per compose file, its messages (from its JSON report, written to a file).
    One run for every file: Node's start-up is most of the time."""
    report = workdir / "dclint-report.json"
    report.unlink(missing_ok=True)
    run = subprocess.run(
        ["node", str(DCLINT), *map(str, paths), "-c", str(DCLINT_CONFIG), "-f", "json", "-o", str(report)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.is_file(), f"dclint wrote no report (exit {run.returncode}): {run.stdout}\n{run.stderr}"
    results = json.loads(report.read_text())
    assert isinstance(results, list), results
    by_file = {Path(r["filePath"]).resolve(): r["messages"] for r in results}
    assert set(by_file) == {p.resolve() for p in paths}, results
    return run.returncode, by_file


def schema_errors(messages: list[dict[str, Any]]) -> list[str]:
    return [m["message"] for m in messages if m["rule"] in SCHEMA_RULES]


def test_the_pinned_compose_schema_knows_the_syntax_this_file_uses() -> None:
    """dclint's bundled Compose schema is recent enough for the file: a schema without these keys
    would reject a valid file (or, worse, be an older schema that accepts a wrong one)."""
    require_dclint()
    schema = json.loads(DCLINT_SCHEMA.read_text())
    definitions = schema["definitions"]
    assert schema["additionalProperties"] is False
    assert definitions["service"]["additionalProperties"] is False
    assert "content" in definitions["config"]["properties"]  # configs.content (inline)
    assert "profiles" in definitions["service"]["properties"]
    env_file_object = definitions["env_file"]["oneOf"][1]["items"]["oneOf"][1]  # env_file: [{path, required}]
    assert {"path", "required"} <= set(env_file_object["properties"])
    depends_on = definitions["service"]["properties"]["depends_on"]["oneOf"][1]["patternProperties"]
    [condition] = [entry["properties"]["condition"] for entry in depends_on.values()]
    assert {"service_healthy", "service_completed_successfully"} <= set(condition["enum"])


def break_compose(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the compose file changed: {old!r} is not there once"
    return text.replace(old, new)


BROKEN_COMPOSE = {
    # an unknown top-level key
    "unknown top-level key": (
        "\nvolumes:\n  postgres-db-volume:",
        "\nvolume:\n  spare: {}\nvolumes:\n  postgres-db-volume:",
        '""',
    ),
    # a misspelled service key
    "unknown service key": (
        "  redis:\n    image: redis:7.2.5\n",
        "  redis:\n    image: redis:7.2.5\n    healthchek: {}\n",
        '"/services/redis"',
    ),
    # a duration written as a number (Compose wants "15s")
    "mistyped value": ("      interval: 15s\n", "      interval: 15\n", '"/services/marquez/healthcheck/interval"'),
    # a list written as a string
    "string instead of list": ("    profiles: [local]", "    profiles: local", '"/services/standins/profiles"'),
}


@pytest.fixture(scope="module")
def compose_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """dclint on docker-compose.yaml and on one broken copy per BROKEN_COMPOSE case, in one run."""
    require_dclint()
    workdir = tmp_path_factory.mktemp("compose")
    files = {"docker-compose.yaml": COMPOSE}
    for index, (case, (old, new, _)) in enumerate(BROKEN_COMPOSE.items()):
        broken = workdir / f"broken{index}" / "docker-compose.yaml"
        broken.parent.mkdir()
        broken.write_text(break_compose(COMPOSE.read_text(), old, new))
        files[case] = broken
    code, by_file = dclint(list(files.values()), workdir)
    return code, {case: by_file[path.resolve()] for case, path in files.items()}


def test_compose_file_is_valid_against_the_compose_spec(compose_reports) -> None:
    """dclint parses the file (YAML merge keys resolved) and validates it against the Compose schema.
    It validates before interpolation, so no ${VAR} needs a value."""
    _, reports = compose_reports
    messages = reports["docker-compose.yaml"]
    assert messages == [], "\n".join(m["message"] for m in messages)


@pytest.mark.parametrize("case", BROKEN_COMPOSE)
def test_the_compose_validator_rejects_a_broken_copy(case: str, compose_reports) -> None:
    code, reports = compose_reports
    errors = schema_errors(reports[case])
    assert code != 0
    assert errors, reports[case]
    _, _, where = BROKEN_COMPOSE[case]
    assert any(f"instancePath={where}" in e for e in errors), errors


# --- deploy/helm/values.yaml: jsonschema against the restated chart schema --------------------------


def helm_errors(values: dict[str, Any]) -> list[jsonschema.ValidationError]:
    schema = json.loads(HELM_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return list(jsonschema.Draft7Validator(schema).iter_errors(values))


def helm_values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


def test_helm_values_are_valid_against_the_chart_schema() -> None:
    errors = helm_errors(helm_values())
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_helm_schema_covers_every_top_level_key_and_names_its_source() -> None:
    schema = json.loads(HELM_SCHEMA.read_text())
    assert schema["additionalProperties"] is False
    assert set(helm_values()) <= set(schema["properties"])
    assert "apache/airflow" in schema["$comment"]
    assert "chart/values.schema.json" in schema["$comment"]


def test_every_subtree_the_values_use_is_restated() -> None:
    """No subtree of the values is accepted as "any object": each names at least one property or value type."""
    schema = json.loads(HELM_SCHEMA.read_text())["properties"]
    for key, value in helm_values().items():
        if isinstance(value, dict):
            node = schema[key]
            assert "properties" in node or isinstance(node.get("additionalProperties"), dict), key
            for child in set(value) - set(node.get("properties", {})):
                assert isinstance(node.get("additionalProperties"), dict), f"{key}.{child} not restated"


def test_the_user_job_renders_and_takes_passwords_by_secret_reference() -> None:
    """The chart renders the user Job only if webserver.defaultUser.enabled and createUserJob.enabled;
    the restated createUserJob.env accepts valueFrom.secretKeyRef entries."""
    values = helm_values()
    assert values["webserver"]["defaultUser"]["enabled"] is True
    assert values["createUserJob"]["enabled"] is True
    env = json.loads(HELM_SCHEMA.read_text())["properties"]["createUserJob"]["properties"]["env"]
    assert "secretKeyRef" in env["items"]["properties"]["valueFrom"]["properties"]
    assert env["items"]["additionalProperties"] is False


def broken_values(path: list[str | int], value: Any) -> dict[str, Any]:
    values = copy.deepcopy(helm_values())
    target = values
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return values


BROKEN_VALUES = {
    "unknown top-level key": (["webserverReplicas"], 2, "webserverReplicas"),
    "unknown nested key": (["workers", "keda", "maxReplicas"], 8, "maxReplicas"),
    "mistyped value": (["workers", "replicas"], "2", "is not of type 'integer'"),
    "value outside the allowed set": (["images", "airflow", "pullPolicy"], "Sometimes", "is not one of"),
    # typos inside subtrees restated from the chart's schema (additionalProperties: false there)
    "misspelled statsd key": (["statsd", "overideMappings"], [], "overideMappings"),
    "misspelled user Job key": (["createUserJob", "comand"], ["bash"], "comand"),
    "user Job env entry with an unknown key": (
        ["createUserJob", "env", 0, "valueFromm"],
        {"secretKeyRef": {"name": "x", "key": "y"}},
        "valueFromm",
    ),
    "mistyped triggerer replicas": (["triggerer", "replicas"], "1", "is not of type 'integer'"),
    "config option that is not a scalar": (["config", "core", "load_examples"], ["False"], "is not of type"),
}


@pytest.mark.parametrize("case", BROKEN_VALUES)
def test_the_helm_validator_rejects_a_broken_copy(case: str) -> None:
    path, value, expected = BROKEN_VALUES[case]
    errors = helm_errors(broken_values(path, value))
    assert errors, case
    assert any(expected in e.message for e in errors), [e.message for e in errors]
