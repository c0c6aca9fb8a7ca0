"""Fetch a day's FX rates from the API and publish them to ``core.fx_rates``.

Every rate is accounted for like any source row: a code that is not three
upper-case letters or a rate that is not a positive number is rejected
(``ops.rejected_rows``), never coerced. USD is always 1.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from acme_pipelines.accounting import AuditEntry, LoadCounts
from acme_pipelines.migrations import require_current
from acme_pipelines.warehouse import WarehouseHook

_CODE = re.compile(r"^[A-Z]{3}$")


class FxResponseError(ValueError):
    """The API answered, but not with the contract's shape."""


def parse_rates(body: Any, day: date) -> tuple[dict[str, float], list[tuple[str, str, str]], int]:
    """(valid rates, rejects as (locator, reason, raw), rows_in) from one API answer."""
    if not isinstance(body, dict) or not isinstance(body.get("rates"), dict):
        raise FxResponseError(f"FX answer for {day} has no 'rates' object: {str(body)[:200]}")
    if body.get("base") != "USD" or body.get("date") != day.isoformat():
        raise FxResponseError(f"FX answer is for base {body.get('base')!r} date {body.get('date')!r}, not USD {day}")
    rates: dict[str, float] = {}
    rejects = []
    for code, value in body["rates"].items():
        locator = f"fx_api:/rates?date={day.isoformat()}#{code}"
        raw = json.dumps({code: value})
        if not _CODE.match(str(code)):
            rejects.append((locator, "bad_format:currency", raw))
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            rejects.append((locator, "bad_value:rate", raw))
        else:
            rates[code] = float(value)
    rates.setdefault("USD", 1.0)
    return rates, rejects, len(body["rates"])


def publish_rates(
    hook: WarehouseHook, day: date, rates: dict[str, float], rejects: list, rows_in: int, audit: AuditEntry
) -> LoadCounts:
    counts = LoadCounts(rows_in=rows_in, rows_loaded=rows_in - len(rejects))
    for _, reason, _ in rejects:
        counts.reject(reason)
    with hook.scoped_connection() as conn:
        require_current(conn)
        with conn.cursor() as cur:  # the same SQL on PostgreSQL and Snowflake
            hook.begin(cur)
            cur.execute("DELETE FROM core.fx_rates WHERE dt = %s", (day,))
            cur.executemany(
                "INSERT INTO core.fx_rates (dt, currency, per_usd, _run_id, _loaded_at) "
                "VALUES (%s, %s, %s, %s, CURRENT_TIMESTAMP)",
                [(day, code, rate, audit.run_id) for code, rate in sorted(rates.items())],
            )
            hook.clear_rejects(cur, audit)
            if rejects:
                cur.executemany(
                    "INSERT INTO ops.rejected_rows (run_id, source, partition, locator, reason, raw_record) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [(audit.run_id, audit.source, audit.partition, *r) for r in rejects],
                )
            hook.record_audit(cur, audit, counts, "success", None)
        conn.commit()
    return counts
