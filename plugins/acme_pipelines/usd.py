"""``amount_usd`` computed with Arrow in exact integer arithmetic.

FX rates are units per USD with 8 decimals (``core.fx_rates.per_usd``), so
``amount / rate`` in cents is ``cents * 10^8 / rate_e8``, rounded half up
(amounts are >= 0) exactly as PostgreSQL's ``round(amount / per_usd, 2)``.
Computing it here lets a load write finished rows straight into the fact table.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pyarrow.compute as pc

SCALE = 10**8
# 2 * cents * SCALE must fit in int64: amounts above this are done in Python (rare).
_FAST_MAX_CENTS = (2**63 - 1) // (2 * SCALE) - 1


def rates_e8(rows: list[tuple[str, int]]) -> dict[str, int]:
    """{currency: per_usd * 10^8} from ``SELECT currency, (per_usd * 1e8)::bigint``."""
    return {code.strip(): int(rate) for code, rate in rows}


def amount_usd(amount: pa.Array, currency: pa.Array, rates: dict[str, int]) -> tuple[pa.Array, pa.Array]:
    """(amount_usd as "D.CC" strings, mask of rows whose currency has no rate) for validated rows.

    ``amount`` holds validated decimals (``12``, ``12.5``, ``12.50``); nulls stay null.
    """
    parts = pc.extract_regex(amount, r"^(?P<i>[0-9]+)(?:\.(?P<f>[0-9]{1,2}))?$")
    whole = pc.cast(pc.struct_field(parts, "i"), pa.int64())
    frac = pc.cast(pc.utf8_rpad(pc.struct_field(parts, "f"), width=2, padding="0"), pa.int64())
    cents = pc.add(pc.multiply(whole, 100), frac)
    codes = pa.array(sorted(rates), pa.string())
    rate = pc.take(pa.array([rates[c] for c in codes.to_pylist()], pa.int64()), pc.index_in(currency, codes))
    missing = pc.and_kleene(pc.is_valid(amount), pc.is_null(rate))
    big = pc.fill_null(pc.greater(cents, _FAST_MAX_CENTS), False)
    small_cents = pc.if_else(big, pa.scalar(0, pa.int64()), cents)
    usd_cents = pc.divide(pc.add(pc.multiply(small_cents, 2 * SCALE), rate), pc.multiply(rate, 2))
    if pc.any(big).as_py():
        exact = [
            _exact(c, r) if b and r else u
            for c, r, b, u in zip(
                cents.to_pylist(), rate.to_pylist(), big.to_pylist(), usd_cents.to_pylist(), strict=True
            )
        ]
        usd_cents = pa.array(exact, pa.int64())
    dollars = pc.divide(usd_cents, 100)
    rest = pc.subtract(usd_cents, pc.multiply(dollars, 100))
    text = pc.binary_join_element_wise(
        pc.cast(dollars, pa.string()), pc.utf8_lpad(pc.cast(rest, pa.string()), width=2, padding="0"), "."
    )
    return text, pc.fill_null(missing, False)


def _exact(cents: int, rate: int) -> int:
    return int((Decimal(cents) * SCALE / Decimal(rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
