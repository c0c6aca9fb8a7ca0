"""daily_etl's ``load_fx_rates`` (``FxRatesOperator``) against a flaky, a dead and the stand-in FX API over real
HTTP, into a migrated warehouse: the retries happen inside one try and only a good answer is published.

Waits are a few milliseconds (``hook_params``), so the retries really sleep and the tests stay fast.
"""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest

from acme_localdev.warehouse_compare import postgres_connection
from acme_pipelines.http_api import ApiError
from acme_pipelines.operators import FxRatesOperator
from acme_sample_data.fx import FxServer, rates_for, response_for
from conftest import query

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 1)
FAST = {"attempts": 3, "backoff_seconds": 0.01, "max_wait_seconds": 0.5}


@pytest.fixture
def fx_env(warehouse, monkeypatch):
    """The migrated warehouse behind the ``warehouse`` connection; ``point(url)`` aims ``fx_api`` at a server."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_connection(warehouse.dsn))

    def point(url: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_FX_API", json.dumps({"conn_type": "http", "host": url}))

    return SimpleNamespace(dsn=warehouse.dsn, point=point)


def load(day: date = DAY) -> tuple[FxRatesOperator, dict]:
    op = FxRatesOperator(task_id="load_fx_rates", hook_params=FAST)
    context = {
        "params": {"partition": day.isoformat()},
        "run_id": "test-fx",
        "ti": SimpleNamespace(dag_id="daily_etl", task_id="load_fx_rates"),
    }
    return op, op.execute(context)


def published(dsn: str) -> dict[str, float]:
    return {c: float(r) for c, r in query(dsn, "SELECT currency, per_usd FROM core.fx_rates WHERE dt = %s", (DAY,))}


def audited(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT source, partition, rows_in, rows_loaded, status FROM ops.load_audit")


def test_a_flaky_api_is_retried_and_the_day_published(fx_env, http_recorder):
    http_recorder.script("/rates", (503, "busy"), (503, "busy"))
    http_recorder.answer("/rates", 200, json.dumps(response_for(DAY)))
    fx_env.point(http_recorder.url)
    op, result = load()
    assert len(http_recorder.requests) == 3, "2 x 503, then the answer"
    assert result["rates"] == rates_for(DAY)
    assert published(fx_env.dsn) == rates_for(DAY)
    assert audited(fx_env.dsn) == [("fx_api:rates", "2026-11-01", 3, 3, "success")]
    [api] = op.get_openlineage_facets_on_complete(None).inputs
    assert (api.namespace, api.name) == (http_recorder.url, "/rates")


def test_an_api_that_stays_down_fails_naming_url_and_day_and_publishes_nothing(fx_env, http_recorder):
    http_recorder.answer("/rates", 503, "down for maintenance")
    fx_env.point(http_recorder.url)
    with pytest.raises(ApiError, match=r"/rates\?date=2026-11-01 failed after 3 attempts; last: HTTP 503"):
        load()
    assert len(http_recorder.requests) == 3
    assert published(fx_env.dsn) == {}
    assert audited(fx_env.dsn) == []


def test_a_day_the_stand_in_does_not_know_fails_at_once(fx_env):
    with FxServer([DAY]) as fx:
        fx_env.point(fx.url)
        with pytest.raises(ApiError, match=r"/rates\?date=2026-11-02 refused: HTTP 404.*not retried"):
            load(date(2026, 11, 2))
        load()  # the stand-in's day, through the same connection
    assert published(fx_env.dsn) == rates_for(DAY)
