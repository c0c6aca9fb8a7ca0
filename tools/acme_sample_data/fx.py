"""FX rates for local runs: deterministic per day, served like the real API.

``GET /rates?date=YYYY-MM-DD`` returns ``{"base": "USD", "date": ..., "rates": {...}}``
(units of each currency per 1 USD), CONTRACT.md §1.3. Unknown dates are 404,
a malformed date is 400, as a real API would answer. ``FxServer`` serves it with
pytest-httpserver (``acme_localdev.recorder.StandinServer``), a dev dependency.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, timedelta, timezone
from typing import Any

CET = timezone(timedelta(hours=1), "CET")
BASE_RATES = {"EUR": 0.92, "GBP": 0.79, "USD": 1.0}


def rates_for(day: date) -> dict[str, float]:
    """A smooth, deterministic wobble around the base rates (6 decimals)."""
    phase = day.toordinal()
    return {
        code: 1.0 if code == "USD" else round(base * (1 + 0.02 * math.sin(phase / 5 + i)), 6)
        for i, (code, base) in enumerate(sorted(BASE_RATES.items()))
    }


def response_for(day: date) -> dict:
    return {"base": "USD", "date": day.isoformat(), "rates": rates_for(day)}


class FxServer:
    """A local FX API for the given days, on ``host`` (127.0.0.1; port 0 picks a free one)."""

    def __init__(self, days: list[date] | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        from werkzeug.wrappers import Request, Response

        from acme_localdev.recorder import StandinServer

        known = set(days) if days is not None else None

        def answer(status: int, body: dict) -> Response:
            return Response(json.dumps(body), status, mimetype="application/json")

        def rates(request: Request) -> Response:
            try:
                day = date.fromisoformat(request.args["date"])
            except (KeyError, ValueError):
                return answer(400, {"error": "date=YYYY-MM-DD is required"})
            if known is not None and day not in known:
                return answer(404, {"error": f"no rates for {day}"})
            return answer(200, response_for(day))

        self.server = StandinServer(host, port, lambda r: answer(404, {"error": f"no such endpoint {r.path}"}))
        self.server.expect_request(re.compile(r"/rates/?$")).respond_with_handler(rates)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FxServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.__exit__(*exc)

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C), then stop."""
        assert self.server.server_thread is not None
        try:
            self.server.server_thread.join()
        finally:
            self.__exit__(None, None, None)
