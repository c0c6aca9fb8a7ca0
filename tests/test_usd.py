"""amount_usd from Arrow integer arithmetic equals PostgreSQL's round(amount / per_usd, 2)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from acme_pipelines.usd import amount_usd
from conftest import query


@pytest.mark.integration
def test_matches_postgres_rounding(pg_database):
    rng = random.Random(7)
    rates = {"EUR": 92_000_000, "GBP": 78_273_100, "JPY": 15_012_345_678, "ODD": 33_333_333}
    amounts = [f"{rng.randint(0, 10**7)}.{rng.randint(0, 99):02d}" for _ in range(3000)]
    amounts += ["0", "1", "1.5", "0.01", "0.02", "9999999999.99", "8500000000.00", "46116860184.27"[:13]]
    currencies = [rng.choice(sorted(rates)) for _ in amounts]
    got, missing = amount_usd(pa.array(amounts), pa.array(currencies), rates)
    assert not any(missing.to_pylist())
    values = ", ".join(
        f"('{a}'::numeric, {rates[c]}::numeric / 100000000)" for a, c in zip(amounts, currencies, strict=True)
    )
    expected = query(pg_database, f"SELECT round(a / r, 2)::text FROM (VALUES {values}) v(a, r)")
    assert got.to_pylist() == [e for (e,) in expected]


@pytest.mark.unit
def test_unknown_currency_is_flagged_and_nulls_pass_through():
    got, missing = amount_usd(pa.array(["1.00", None, "2"]), pa.array(["XXX", None, "EUR"]), {"EUR": 100_000_000})
    assert missing.to_pylist() == [True, False, False]
    assert got.to_pylist() == [None, None, "2.00"]
