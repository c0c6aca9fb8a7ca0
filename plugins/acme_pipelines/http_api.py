"""JSON over HTTP through the HTTP provider's ``HttpHook``, with the retry policy the contract asks for (§1.3).

Connection errors, timeouts, 5xx and 429 are transient: ``run_with_advanced_retry``
retries them (tenacity) with exponential backoff; a 429 waits for its
``Retry-After`` instead when it sends one (capped). Any other 4xx is not retried
and raises ``ApiError`` naming the URL, the status and the answer's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

ATTEMPTS = 5
BACKOFF_SECONDS = 0.5  # the first wait; doubled after each failed attempt
MAX_WAIT_SECONDS = 60.0  # no wait longer, whether backoff or Retry-After
TIMEOUT_SECONDS = 10.0  # per request


class ApiError(RuntimeError):
    """The API refused the request (4xx) or stayed unavailable after all retries."""


class ApiStatusError(ApiError):
    """A non-2xx answer; ``transient`` (5xx, 429) ones are retried."""

    def __init__(self, response: requests.Response) -> None:
        self.status = response.status_code
        self.transient = self.status >= 500 or self.status == 429
        self.problem = f"HTTP {self.status}: {response.text[:300]}"
        self.retry_after = _retry_after(response) if self.status == 429 else None
        why = "answered" if self.transient else "refused"
        tail = "" if self.transient else " (not retried: a 4xx will not heal)"
        super().__init__(f"GET {response.url} {why}: {self.problem}{tail}")


class JsonApiHook(HttpHook):
    """GET JSON from the API of an ``http`` connection (host, schema, port), retrying transient failures.

    :param http_conn_id: the connection of the API's base URL
    :param attempts: requests made at most, the first included
    :param backoff_seconds: the wait after the first failure, doubled after each next one
    :param max_wait_seconds: the longest wait (backoff or ``Retry-After``)
    :param timeout_seconds: per request (it wins over a ``timeout`` in the connection's extra)
    """

    def __init__(
        self,
        http_conn_id: str,
        *,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        max_wait_seconds: float = MAX_WAIT_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=http_conn_id, **kwargs)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.max_wait_seconds = max_wait_seconds
        self.timeout_seconds = timeout_seconds

    def check_response(self, response: requests.Response) -> None:
        """Raise ``ApiStatusError`` on a non-2xx/3xx answer.

        Overridden because ``HttpHook``'s raises ``AirflowException("503:Service Unavailable")``:
        the retry decision needs the status and ``Retry-After``, the error message the answer's text.
        """
        if not response.ok:
            raise ApiStatusError(response)

    def get_json(self, endpoint: str, params: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON answer of ``GET {base}{endpoint}?{params}``."""
        url = requests.Request("GET", self.url_from_endpoint(endpoint), params=dict(params or {})).prepare().url

        def give_up(state: tenacity.RetryCallState) -> Any:
            raise ApiError(
                f"GET {url} failed after {state.attempt_number} attempts; last: {_problem(state)}"
            ) from state.outcome.exception()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0.0
            self.log.warning(
                "GET %s attempt %d/%d: %s; retrying in %.1fs", url, state.attempt_number, self.attempts,
                _problem(state), wait,
            )  # fmt: skip

        response = self.run_with_advanced_retry(
            {
                "stop": tenacity.stop_after_attempt(self.attempts),
                "wait": self._wait,
                "retry": tenacity.retry_if_exception(_transient),
                "before_sleep": before_sleep,
                "retry_error_callback": give_up,
            },
            endpoint,
            data=dict(params or {}),
            extra_options={"timeout": self.timeout_seconds},
        )
        return response.json()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff; a 429's ``Retry-After`` when it has one. Both capped at ``max_wait_seconds``.

        tenacity has no wait that reads the failed answer, hence this one (a tenacity wait all the same).
        """
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ApiStatusError) and error.retry_after is not None:
            return min(error.retry_after, self.max_wait_seconds)
        backoff = tenacity.wait_exponential(multiplier=self.backoff_seconds, min=0, max=self.max_wait_seconds)
        return backoff(state)


def _transient(error: BaseException) -> bool:
    if isinstance(error, ApiStatusError):
        return error.transient
    return isinstance(error, requests.ConnectionError | requests.Timeout)


def _problem(state: tenacity.RetryCallState) -> str:
    error = state.outcome.exception() if state.outcome else None
    return error.problem if isinstance(error, ApiStatusError) else f"{type(error).__name__}: {error}"


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds; None when absent or an HTTP date (then the backoff applies)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
