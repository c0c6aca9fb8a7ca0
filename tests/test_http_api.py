"""The FX API client's retry policy over real HTTP (a local recording server), and the rates' row rules."""

from __future__ import annotations

import json
from datetime import date

import pytest

from acme_pipelines.fx_rates import FxResponseError, parse_rates
from acme_pipelines.http_api import ApiError, get_json
from conftest import free_port

pytestmark = pytest.mark.unit

BODY = {"base": "USD", "date": "2026-11-01", "rates": {"EUR": 0.92}}


def test_5xx_is_retried_with_backoff(http_recorder):
    http_recorder.script("/rates", (503, "busy"), (502, "bad gateway"), (200, json.dumps(BODY)))
    waits: list[float] = []
    assert get_json(f"{http_recorder.url}/rates", {"date": "2026-11-01"}, sleep=waits.append) == BODY
    assert len(http_recorder.requests) == 3
    assert http_recorder.requests[0].path == "/rates?date=2026-11-01"
    assert waits == [0.5, 1.0]


def test_429_waits_for_retry_after(http_recorder):
    http_recorder.script("/rates", (429, "slow down"), (200, json.dumps(BODY)))
    http_recorder.headers_for_status = {429: {"Retry-After": "7"}}
    waits: list[float] = []
    get_json(f"{http_recorder.url}/rates", sleep=waits.append)
    assert waits == [7.0]


def test_other_4xx_is_not_retried_and_says_why(http_recorder):
    http_recorder.script("/rates", (404, "no rates for that day"))
    with pytest.raises(ApiError, match=r"HTTP 404: no rates for that day.*not retried"):
        get_json(f"{http_recorder.url}/rates", sleep=lambda _: None)
    assert len(http_recorder.requests) == 1


def test_unreachable_api_gives_up_after_its_attempts():
    waits: list[float] = []
    with pytest.raises(ApiError, match=r"failed after 3 attempts.*ConnectionError"):
        get_json(f"http://127.0.0.1:{free_port()}/rates", attempts=3, sleep=waits.append)
    assert waits == [0.5, 1.0]


def test_rates_are_accounted_like_rows():
    body = {"base": "USD", "date": "2026-11-01", "rates": {"EUR": 0.92, "gbp": 0.8, "JPY": -1, "CHF": "0.9"}}
    rates, rejects, rows_in = parse_rates(body, date(2026, 11, 1))
    assert rates == {"EUR": 0.92, "USD": 1.0}
    assert sorted(r[1] for r in rejects) == ["bad_format:currency", "bad_value:rate", "bad_value:rate"]
    assert rows_in == 4


def test_answer_for_another_day_is_refused():
    with pytest.raises(FxResponseError, match="not USD 2026-11-02"):
        parse_rates(BODY, date(2026, 11, 2))
