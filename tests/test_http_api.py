"""The FX API client (``JsonApiHook``, the HTTP provider's ``HttpHook`` with tenacity retries) over real HTTP:
the FX stand-in and a local recording server behind an ``http`` connection; and the rates' row rules.

Waits are a few milliseconds (``backoff_seconds``), so the retries really sleep and the tests stay fast.
"""

from __future__ import annotations

import json
import time
from datetime import date

import pytest

from acme_pipelines.fx_rates import FxResponseError, parse_rates
from acme_pipelines.http_api import ApiError, JsonApiHook
from acme_sample_data.fx import FxServer, response_for
from conftest import free_port

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 1)
BODY = {"base": "USD", "date": "2026-11-01", "rates": {"EUR": 0.92}}
FAST = {"backoff_seconds": 0.01, "max_wait_seconds": 0.5}


@pytest.fixture
def fx_conn(monkeypatch):
    """Point the ``fx_api`` connection (conn_type http) at a server; returns the connection id."""

    def point(**conn: object) -> str:
        monkeypatch.setenv("AIRFLOW_CONN_FX_API", json.dumps({"conn_type": "http", **conn}))
        return "fx_api"

    return point


def test_fx_stand_in_through_host_and_port_of_the_connection(fx_conn):
    with FxServer([DAY]) as fx:
        api = JsonApiHook(fx_conn(host="127.0.0.1", port=fx.port, schema="http"), **FAST)
        assert api.get_json("rates", {"date": DAY.isoformat()}) == response_for(DAY)
        assert api.base_url == f"http://127.0.0.1:{fx.port}"


def test_a_day_the_fx_stand_in_does_not_know_is_a_404_named_with_its_url(fx_conn):
    with FxServer([DAY]) as fx:
        api = JsonApiHook(fx_conn(host=fx.url), **FAST)
        with pytest.raises(ApiError, match=r"GET http://127\.0\.0\.1:\d+/rates\?date=2026-12-25 refused: HTTP 404"):
            api.get_json("rates", {"date": "2026-12-25"})


def test_5xx_is_retried_until_the_api_answers(http_recorder, fx_conn):
    http_recorder.script("/rates", (503, "busy"), (502, "bad gateway"), (503, "busy"), (200, json.dumps(BODY)))
    api = JsonApiHook(fx_conn(host=http_recorder.url), attempts=5, backoff_seconds=0.02, max_wait_seconds=1.0)
    started = time.monotonic()
    assert api.get_json("rates", {"date": "2026-11-01"}) == BODY
    assert len(http_recorder.requests) == 4, "3 failures, 3 retries"
    assert {r.path for r in http_recorder.requests} == {"/rates?date=2026-11-01"}
    assert time.monotonic() - started >= 0.02 + 0.04 + 0.08, "exponential backoff between the attempts"


def test_a_5xx_that_stays_fails_after_the_configured_attempts(http_recorder, fx_conn):
    http_recorder.answer("/rates", 503, "down for maintenance")
    api = JsonApiHook(fx_conn(host=http_recorder.url), attempts=3, **FAST)
    with pytest.raises(ApiError, match=r"/rates\?date=2026-11-01 failed after 3 attempts; last: HTTP 503: down for"):
        api.get_json("rates", {"date": "2026-11-01"})
    assert len(http_recorder.requests) == 3


def test_429_waits_for_retry_after(http_recorder, fx_conn):
    http_recorder.script("/rates", (429, "slow down"), (200, json.dumps(BODY)))
    http_recorder.headers_for_status = {429: {"Retry-After": "0.3"}}
    api = JsonApiHook(fx_conn(host=http_recorder.url), backoff_seconds=0.001, max_wait_seconds=5.0)
    started = time.monotonic()
    assert api.get_json("rates") == BODY
    assert time.monotonic() - started >= 0.3, "Retry-After, not the 1 ms backoff"
    assert len(http_recorder.requests) == 2


def test_other_4xx_is_not_retried_and_says_why(http_recorder, fx_conn):
    http_recorder.script("/rates", (404, "no rates for that day"))
    api = JsonApiHook(fx_conn(host=http_recorder.url), **FAST)
    with pytest.raises(ApiError, match=r"HTTP 404: no rates for that day.*not retried"):
        api.get_json("rates", {"date": "2026-11-01"})
    assert len(http_recorder.requests) == 1


def test_unreachable_api_gives_up_after_its_attempts(fx_conn):
    api = JsonApiHook(fx_conn(host=f"http://127.0.0.1:{free_port()}"), attempts=3, **FAST)
    with pytest.raises(ApiError, match=r"failed after 3 attempts.*ConnectionError"):
        api.get_json("rates", {"date": "2026-11-01"})


def test_rates_are_accounted_like_rows():
    body = {"base": "USD", "date": "2026-11-01", "rates": {"EUR": 0.92, "gbp": 0.8, "JPY": -1, "CHF": "0.9"}}
    rates, rejects, rows_in = parse_rates(body, date(2026, 11, 1))
    assert rates == {"EUR": 0.92, "USD": 1.0}
    assert sorted(r[1] for r in rejects) == ["bad_format:currency", "bad_value:rate", "bad_value:rate"]
    assert rows_in == 4


def test_answer_for_another_day_is_refused():
    with pytest.raises(FxResponseError, match="not USD 2026-11-02"):
        parse_rates(BODY, date(2026, 11, 2))
