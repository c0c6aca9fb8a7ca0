"""Check that the services the demo and the tests need answer, with a fix if not."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    start_hint: str


POSTGRES = Service(
    "PostgreSQL",
    "127.0.0.1",
    5432,
    "pg_ctlcluster --skip-systemctl-redirect 15 main start",
)
REDIS = Service(
    "Redis",
    "127.0.0.1",
    6379,
    'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
)


class ServiceMissingError(RuntimeError):
    pass


def answers(service: Service, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((service.host, service.port), timeout=timeout):
            return True
    except OSError:
        return False


def require(*services: Service) -> None:
    """Raise one error naming every service that does not answer and how to start it."""
    down = [s for s in services if not answers(s)]
    if down:
        lines = [f"- {s.name} is not answering on {s.host}:{s.port}; start it with: {s.start_hint}" for s in down]
        raise ServiceMissingError("required services are down:\n" + "\n".join(lines))
