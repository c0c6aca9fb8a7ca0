"""A local HTTP server that records every request: the Slack (and any API) stand-in.

Tests and the demo point connections at it instead of the real service, so a
notifier's real code path runs over real HTTP and the test reads what arrived.
Responses can be scripted per path to exercise retries (e.g. 503, then 200).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpRecorder:
    """Records requests on 127.0.0.1:``port`` (0 picks a free port); answers 200 "ok"."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        self.headers_for_status: dict[int, dict[str, str]] = {}  # extra response headers by status
        self._scripted: dict[str, deque[tuple[int, bytes]]] = defaultdict(deque)
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._lock:
                    recorder.requests.append(Request(self.command, self.path, dict(self.headers), body))
                    queue = recorder._scripted.get(self.path.split("?")[0])
                    status, payload = queue.popleft() if queue else (200, b"ok")
                self.send_response(status)
                for name, value in recorder.headers_for_status.get(status, {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815 (http.server API)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http-recorder", daemon=True)

    def script(self, path: str, *responses: tuple[int, bytes | str]) -> None:
        """Answer the next requests to ``path`` with these (status, body) pairs, then 200."""
        with self._lock:
            for status, body in responses:
                self._scripted[path].append((status, body.encode() if isinstance(body, str) else body))

    def __enter__(self) -> HttpRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
