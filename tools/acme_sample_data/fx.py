"""FX rates for local runs: deterministic per day, served like the real API.

``GET /rates?date=YYYY-MM-DD`` returns ``{"base": "USD", "date": ..., "rates": {...}}``
(units of each currency per 1 USD), CONTRACT.md §1.3. Unknown dates are 404,
a malformed date is 400, as a real API would answer.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import date, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

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
        known = set(days) if days is not None else None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path.rstrip("/") != "/rates":
                    return self._send(404, {"error": f"no such endpoint {url.path}"})
                try:
                    day = date.fromisoformat(parse_qs(url.query)["date"][0])
                except (KeyError, ValueError):
                    return self._send(400, {"error": "date=YYYY-MM-DD is required"})
                if known is not None and day not in known:
                    return self._send(404, {"error": f"no rates for {day}"})
                return self._send(200, response_for(day))

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fx-api", daemon=True)

    def __enter__(self) -> FxServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_forever(self) -> None:
        self.httpd.serve_forever()
