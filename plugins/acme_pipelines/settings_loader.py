"""Apply ``airflow_settings.yaml`` (Astro CLI format) to an Airflow metadata DB.

No Airflow command reads that file, so this does: it upserts the connections,
pools and variables it lists, and leaves everything else alone. Values may
reference the environment as ``${NAME}`` (required) or ``${NAME:-default}``;
every missing required name is reported at once, by name, before anything is
written. Secrets therefore never live in the file.

In staging and production, connections come from ``AIRFLOW_CONN_*``
environment variables or a secrets backend instead; run with
``--only pools,variables`` there (see the README).

    python -m acme_pipelines.settings_loader airflow_settings.yaml [--only pools,variables]
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("connections", "pools", "variables")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SettingsError(ValueError):
    """The settings file is malformed or needs environment values that are not set."""


@dataclass(frozen=True)
class ConnectionSpec:
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class Settings:
    connections: tuple[ConnectionSpec, ...]
    pools: tuple[PoolSpec, ...]
    variables: dict[str, str]


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


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and interpolate the settings file; raise ``SettingsError`` naming what is wrong."""
    environ = os.environ if environ is None else environ
    raw = yaml.safe_load(Path(path).read_text()) or {}
    airflow = raw.get("airflow")
    if not isinstance(airflow, dict):
        raise SettingsError(f"{path}: expected a top-level 'airflow:' mapping (Astro CLI format)")
    unknown = set(airflow) - set(SECTIONS)
    if unknown:
        raise SettingsError(f"{path}: unknown sections {sorted(unknown)}; allowed: {list(SECTIONS)}")

    missing: list[str] = []
    connections = tuple(
        _connection(interpolate(item, environ, f"connections.{item.get('conn_id', '?')}", missing), path)
        for item in airflow.get("connections") or []
    )
    pools = tuple(_pool(item, path) for item in airflow.get("pools") or [])
    variables = {
        str(item["variable_name"]): str(
            interpolate(item.get("variable_value", ""), environ, f"variables.{item['variable_name']}", missing)
        )
        for item in airflow.get("variables") or []
    }
    if missing:
        raise SettingsError(
            f"{path} needs environment variables that are not set: {', '.join(missing)}. "
            "Export them (locally, local.env holds the development values)."
        )
    _no_duplicates("connection", (c.conn_id for c in connections), path)
    _no_duplicates("pool", (p.name for p in pools), path)
    return Settings(connections, pools, variables)


def apply_settings(settings: Settings, sections: Iterable[str] = SECTIONS) -> dict[str, int]:
    """Upsert the given sections into the configured Airflow metadata DB; return counts."""
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session

    sections = set(sections)
    counts = dict.fromkeys(SECTIONS, 0)
    with create_session() as session:
        if "connections" in sections:
            for spec in settings.connections:
                # Replace, not patch: a field removed from the file must not linger.
                session.query(Connection).filter(Connection.conn_id == spec.conn_id).delete()
                session.add(
                    Connection(
                        conn_id=spec.conn_id,
                        conn_type=spec.conn_type,
                        description=spec.description,
                        host=spec.host,
                        schema=spec.schema,
                        login=spec.login,
                        password=spec.password,
                        port=spec.port,
                        extra=json.dumps(spec.extra) if spec.extra else None,
                    )
                )
                counts["connections"] += 1
        if "pools" in sections:
            for pool in settings.pools:
                Pool.create_or_update_pool(
                    name=pool.name,
                    slots=pool.slots,
                    description=pool.description,
                    include_deferred=False,
                    session=session,
                )
                counts["pools"] += 1
        if "variables" in sections:
            for key, value in settings.variables.items():
                Variable.set(key, value, session=session)
                counts["variables"] += 1
    return counts


def _connection(item: dict[str, Any], path: str | Path) -> ConnectionSpec:
    try:
        conn_id, conn_type = item["conn_id"], item["conn_type"]
    except KeyError as exc:
        raise SettingsError(f"{path}: a connection lacks {exc.args[0]!r}: {item}") from None
    extra = item.get("conn_extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    port = item.get("conn_port")
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=conn_type,
        host=_blank_to_none(item.get("conn_host")),
        schema=_blank_to_none(item.get("conn_schema")),
        login=_blank_to_none(item.get("conn_login")),
        password=_blank_to_none(item.get("conn_password")),
        port=int(port) if port not in (None, "") else None,
        extra=extra,
        description=item.get("conn_description"),
    )


def _pool(item: dict[str, Any], path: str | Path) -> PoolSpec:
    try:
        slots = int(item["pool_slot"])
    except (KeyError, TypeError, ValueError):
        raise SettingsError(f"{path}: pool {item.get('pool_name')!r} needs an integer pool_slot") from None
    if slots < 1:
        raise SettingsError(f"{path}: pool {item['pool_name']!r} needs at least one slot")
    return PoolSpec(str(item["pool_name"]), slots, str(item.get("pool_description") or ""))


def _blank_to_none(value: Any) -> Any:
    return None if value in (None, "") else value


def _no_duplicates(kind: str, names: Iterable[str], path: str | Path) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SettingsError(f"{path}: {kind} {name!r} is defined twice")
        seen.add(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="airflow_settings.yaml")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to apply")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = set(sections) - set(SECTIONS)
    if bad:
        parser.error(f"unknown sections {sorted(bad)}")
    try:
        counts = apply_settings(load_settings(args.path), sections)
    except SettingsError as exc:
        parser.exit(2, f"error: {exc}\n")
    print("applied " + ", ".join(f"{n} {k}" for k, n in counts.items() if k in sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
