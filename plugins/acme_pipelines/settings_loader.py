"""``airflow_settings.yaml`` (Astro CLI format) as the files Airflow's own import commands read.

The one step Airflow lacks: the file's values may reference the environment as
``${NAME}`` (required) or ``${NAME:-default}``. This fills them in and writes
``connections.json``, ``pools.json`` and ``variables.json``; every missing
required name is reported at once, by name, before anything is written.
Secrets therefore never live in the file. Importing is Airflow's: its
commands upsert what the files list and leave everything else alone.

    python -m acme_pipelines.settings_loader airflow_settings.yaml --out DIR [--only pools,variables]
    airflow connections import --overwrite DIR/connections.json
    airflow variables import --action-on-existing-key overwrite DIR/variables.json
    airflow pools import DIR/pools.json

In staging and production, connections come from ``AIRFLOW_CONN_*``
environment variables or a secrets backend instead; ``--only pools,variables``
reads and writes only those sections (the connections' ``${NAME}`` need not
be set then). No Airflow import here: this runs in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("connections", "pools", "variables")
# The `airflow` command (arguments after `airflow`, the file last) that imports each section's file. The
# options make a re-import replace what an earlier one wrote: connections import skips an existing
# conn_id without --overwrite; variables import overwrites by default (the option only says so);
# pools import always updates.
IMPORT_COMMANDS = {
    "connections": ("connections", "import", "--overwrite"),
    "variables": ("variables", "import", "--action-on-existing-key", "overwrite"),
    "pools": ("pools", "import"),
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Astro CLI's connection keys -> the keys of Airflow's connection JSON (airflow.models.Connection's arguments)
_CONNECTION_FIELDS = {
    "conn_description": "description",
    "conn_host": "host",
    "conn_schema": "schema",
    "conn_login": "login",
    "conn_password": "password",
}


class SettingsError(ValueError):
    """The settings file is malformed or needs environment values that are not set."""


@dataclass(frozen=True)
class Settings:
    """Each section as its import file holds it (a section that was not read is empty)."""

    connections: dict[str, dict[str, Any]]  # conn_id -> {"conn_type", "host", "port", "extra", ...}
    pools: dict[str, dict[str, Any]]  # name -> {"slots", "description", "include_deferred"}
    variables: dict[str, str]  # key -> value

    def section(self, name: str) -> dict[str, Any]:
        return getattr(self, name)


def interpolate(value: Any, environ: Mapping[str, str], where: str, missing: list[str]) -> Any:
    """Replace ``${NAME}``/``${NAME:-default}`` in strings (recursively); record what is missing.

    Defaults may themselves hold references (``${A:-file://${ROOT}/x}``); a
    default is only evaluated when its variable is unset.
    """
    if isinstance(value, str):
        return _expand(value, environ, where, missing)
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{where}.{k}", missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    return value


def _expand(text: str, environ: Mapping[str, str], where: str, missing: list[str]) -> str:
    out: list[str] = []
    i = 0
    while (start := text.find("${", i)) != -1:
        out.append(text[i:start])
        end, depth = start + 2, 1
        while end < len(text) and depth:
            if text.startswith("${", end):
                depth, end = depth + 1, end + 2
                continue
            depth -= text[end] == "}"
            end += 1
        if depth:
            raise SettingsError(f"{where}: unclosed '${{' in {text!r}")
        body = text[start + 2 : end - 1]
        name, has_default, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            raise SettingsError(f"{where}: {body!r} is not a variable name")
        if name in environ:
            out.append(environ[name])
        elif has_default:
            out.append(_expand(default, environ, where, missing))
        else:
            missing.append(f"{name} (needed by {where})")
        i = end
    out.append(text[i:])
    return "".join(out)


def load_settings(
    path: str | Path, environ: Mapping[str, str] | None = None, sections: Iterable[str] = SECTIONS
) -> Settings:
    """Parse and interpolate the given sections; raise ``SettingsError`` naming what is wrong."""
    environ = os.environ if environ is None else environ
    sections = _check_sections(sections)
    raw = yaml.safe_load(Path(path).read_text()) or {}
    airflow = raw.get("airflow") if isinstance(raw, dict) else None
    if not isinstance(airflow, dict):
        raise SettingsError(f"{path}: expected a top-level 'airflow:' mapping (Astro CLI format)")
    unknown = set(airflow) - set(SECTIONS)
    if unknown:
        raise SettingsError(f"{path}: unknown sections {sorted(unknown)}; allowed: {list(SECTIONS)}")

    missing: list[str] = []
    parsed: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for section, key, convert in (
        ("connections", "conn_id", _connection),
        ("pools", "pool_name", _pool),
        ("variables", "variable_name", _variable),
    ):
        if section not in sections:
            continue
        items = airflow.get(section) or []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise SettingsError(f"{path}: '{section}' must be a list of mappings")
        entries: dict[str, Any] = {}
        for item in items:
            if key not in item:
                raise SettingsError(f"{path}: an entry of {section} lacks {key!r}: {item}")
            name = str(item[key])
            if name in entries:
                raise SettingsError(f"{path}: {section[:-1]} {name!r} is defined twice")
            entries[name] = convert(interpolate(item, environ, f"{section}.{name}", missing), path)
        parsed[section] = entries
    if missing:
        raise SettingsError(
            f"{path} needs environment variables that are not set: {', '.join(missing)}. "
            "Export them (locally, local.env holds the development values)."
        )
    return Settings(**parsed)


def write_import_files(
    settings: Settings, directory: str | Path, sections: Iterable[str] = SECTIONS
) -> dict[str, Path]:
    """Write ``<section>.json`` for each section into ``directory`` (only readable by its owner: the
    connections hold passwords); return section -> path."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {}
    for section in _check_sections(sections):
        path = files[section] = directory / f"{section}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(settings.section(section), out, indent=2)
            out.write("\n")
    return files


def import_commands(files: Mapping[str, str | Path]) -> list[list[str]]:
    """The ``airflow`` commands (arguments after ``airflow``) that import ``files`` (section -> path)."""
    return [[*command, str(files[section])] for section, command in IMPORT_COMMANDS.items() if section in files]


def _check_sections(sections: Iterable[str]) -> tuple[str, ...]:
    sections = tuple(sections)
    bad = set(sections) - set(SECTIONS)
    if bad:
        raise SettingsError(f"unknown sections {sorted(bad)}; allowed: {list(SECTIONS)}")
    return tuple(s for s in SECTIONS if s in sections)


def _connection(item: dict[str, Any], path: str | Path) -> dict[str, Any]:
    if not item.get("conn_type"):
        raise SettingsError(f"{path}: connection {item['conn_id']!r} lacks 'conn_type'")
    connection: dict[str, Any] = {"conn_type": item["conn_type"]}
    for astro, airflow in _CONNECTION_FIELDS.items():
        if item.get(astro) not in (None, ""):
            connection[airflow] = item[astro]
    if item.get("conn_port") not in (None, ""):
        try:
            connection["port"] = int(item["conn_port"])
        except ValueError:
            raise SettingsError(f"{path}: connection {item['conn_id']!r}: port {item['conn_port']!r}") from None
    extra = item.get("conn_extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    if extra:
        connection["extra"] = extra
    return connection


def _pool(item: dict[str, Any], path: str | Path) -> dict[str, Any]:
    try:
        slots = int(item["pool_slot"])
    except (KeyError, TypeError, ValueError):
        raise SettingsError(f"{path}: pool {item['pool_name']!r} needs an integer pool_slot") from None
    if slots < 1:
        raise SettingsError(f"{path}: pool {item['pool_name']!r} needs at least one slot")
    return {"slots": slots, "description": str(item.get("pool_description") or ""), "include_deferred": False}


def _variable(item: dict[str, Any], path: str | Path) -> str:
    return str(item.get("variable_value", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="airflow_settings.yaml")
    parser.add_argument("--out", required=True, help="directory to write <section>.json into")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to write")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    try:
        settings = load_settings(args.path, sections=sections)
        files = write_import_files(settings, args.out, sections)
    except SettingsError as exc:
        parser.exit(2, f"error: {exc}\n")
    counts = ", ".join(f"{len(settings.section(s))} {s}" for s in files)
    print(f"wrote {counts} to {args.out}; import them with:")
    for command in import_commands(files):
        print("  airflow " + shlex.join(command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
