"""A small JSON-over-HTTP client with the retry policy the contract asks for (§1.3).

5xx answers, timeouts and connection errors are transient: retried with
exponential backoff. 429 waits for ``Retry-After`` (capped). Any other 4xx is
not retried and raises ``ApiError`` with the status and the answer's text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

log = logging.getLogger(__name__)


class ApiError(RuntimeError):
    """The API refused the request (4xx) or stayed unavailable after all retries."""


def get_json(
    url: str,
    params: Mapping[str, str] | None = None,
    *,
    attempts: int = 5,
    backoff_seconds: float = 0.5,
    max_wait_seconds: float = 60.0,
    timeout_seconds: float = 10.0,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    http = session or requests.Session()
    for attempt in range(1, attempts + 1):
        wait = min(backoff_seconds * 2 ** (attempt - 1), max_wait_seconds)
        try:
            response = http.get(url, params=params, timeout=timeout_seconds)
        except (requests.Timeout, requests.ConnectionError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.ok:
                return response.json()
            problem = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code == 429:
                wait = min(_retry_after(response, wait), max_wait_seconds)
            elif response.status_code < 500:
                raise ApiError(f"GET {response.url} refused: {problem} (not retried: a 4xx will not heal)")
        if attempt == attempts:
            raise ApiError(f"GET {url} {dict(params or {})} failed after {attempts} attempts; last: {problem}")
        log.warning("GET %s attempt %d/%d: %s; retrying in %.1fs", url, attempt, attempts, problem, wait)
        sleep(wait)
    raise AssertionError("unreachable")


def _retry_after(response: requests.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
