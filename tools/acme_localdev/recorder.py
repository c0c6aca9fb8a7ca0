"""A local HTTP server that records every request: the Slack (and any API) stand-in.

Tests and the demo point connections at it instead of the real service, so a
notifier's real code path runs over real HTTP and the test reads what arrived.
Responses can be scripted per path to exercise retries (e.g. 503, then 200).
``tls=True`` serves HTTPS with a throwaway self-signed certificate for
127.0.0.1 (``ca_file``), for clients that only accept https:// (PagerDuty's).

The serving is pytest-httpserver's ``HTTPServer`` (werkzeug; it needs no pytest), a dev
dependency (requirements-dev.txt): scripted answers are its one-shot handlers, fixed answers
its permanent ones, and ``requests`` is read from its log.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request as WerkzeugRequest
from werkzeug.wrappers import Response


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent: with its query string, not percent-decoded
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:  # no access-log line per request (errors still show)
        pass


class StandinServer(HTTPServer):
    """pytest-httpserver's ``HTTPServer`` as the local stand-ins run it.

    Threaded (tasks post concurrently), quiet, and started at once: the port is held from
    construction on (port 0 picks a free one), and a port that cannot be bound raises ``OSError``
    here (werkzeug's server would end the process). A request no handler matches gets
    ``fallback(request)`` instead of pytest-httpserver's 500 and its failed assertion.
    """

    def __init__(
        self,
        host: str,
        port: int,
        fallback: Callable[[WerkzeugRequest], Response],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host, port, ssl_context, threaded=True)
        self.fallback = fallback
        self._dispatching = threading.Lock()  # a one-shot handler is matched, then removed: one at a time
        try:
            self.start()
        except SystemExit as exc:  # werkzeug printed why and called sys.exit(1) in its `except OSError`
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise OSError(f"cannot listen on {host}:{port}") from None
        assert self.server is not None
        self.server.RequestHandlerClass = _QuietRequestHandler

    def dispatch(self, request: WerkzeugRequest) -> Response:
        with self._dispatching:
            return super().dispatch(request)

    def respond_nohandler(self, request: WerkzeugRequest, extra_message: str = "") -> Response:
        return self.fallback(request)


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


class HttpRecorder:
    """Records requests on ``host``:``port`` (127.0.0.1; port 0 picks a free one); answers 200 "ok"."""

    def __init__(self, port: int = 0, *, tls: bool = False, host: str = "127.0.0.1") -> None:
        self.headers_for_status: dict[int, dict[str, str]] = {}  # extra response headers by status
        self._answers: dict[str, tuple[int, bytes]] = {}
        self._seen: list[Request] = []
        self._lock = threading.Lock()
        self.ca_file: str | None = None
        context = None
        if tls:
            self.ca_file = _self_signed_certificate()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file)
        self.server = StandinServer(host, port, lambda _: self._respond(200, b"ok"), context)
        self.port = self.server.port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order."""
        with self._lock:
            for request, _ in self.server.log[len(self._seen) :]:
                self._seen.append(
                    Request(
                        request.method,
                        request.environ.get("RAW_URI") or request.full_path.rstrip("?"),
                        dict(request.headers),
                        request.get_data(),
                    )
                )
            return list(self._seen)

    def _respond(self, status: int, body: bytes) -> Response:
        return Response(body, status, headers=self.headers_for_status.get(status, {}))

    def script(self, path: str, *responses: tuple[int, bytes | str]) -> None:
        """Answer the next requests to ``path`` with these (status, body) pairs, then 200."""
        for status, body in responses:
            answer = self._respond_with(status, _bytes(body))
            self.server.expect_oneshot_request(path).respond_with_handler(answer)

    def answer(self, path: str, status: int, body: bytes | str) -> None:
        """Answer every request to ``path`` (after any scripted ones) with this (status, body)."""
        first = path not in self._answers
        self._answers[path] = (status, _bytes(body))
        if first:  # a second answer for the path replaces the first: the handler reads it per request
            self.server.expect_request(path).respond_with_handler(lambda _: self._respond(*self._answers[path]))

    def _respond_with(self, status: int, body: bytes) -> Callable[[WerkzeugRequest], Response]:
        return lambda _: self._respond(status, body)

    def __enter__(self) -> HttpRecorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.__exit__(*exc)


def _self_signed_certificate() -> str:
    """A PEM file holding a one-day certificate for 127.0.0.1 and its key (it is its own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with tempfile.NamedTemporaryFile("wb", prefix="recorder-", suffix=".pem", delete=False) as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return out.name


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: str

    def text(self) -> str:
        """Subject and every text part, decoded."""
        import email

        message = email.message_from_string(self.data)
        parts = [str(message["Subject"])]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"))
        return "\n".join(parts)


class SmtpRecorder:
    """A minimal local SMTP server (plain, no auth) that records every message: the email stand-in."""

    def __init__(self, port: int = 0) -> None:
        import socketserver

        self.messages: list[Mail] = []
        recorder = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self) -> None:
                sender, recipients = "", []
                self.reply("220 localhost recorder")
                while line := self.rfile.readline():
                    command = line.decode(errors="replace").strip()
                    verb = command[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 localhost")
                    elif verb == "MAIL":
                        sender, recipients = command.split(":", 1)[1].strip().strip("<>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        lines = []
                        while (body := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            lines.append(body.decode(errors="replace"))
                        recorder.messages.append(Mail(sender, recipients, "".join(lines)))
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # RSET, NOOP, ...
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="smtp-recorder", daemon=True)

    def __enter__(self) -> SmtpRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class StatsdCapture:
    """A UDP listener on 127.0.0.1 that appends every StatsD line it receives to ``path``, timestamped.

    ``make demo`` points Airflow's StatsD client at it, so the metrics of the demo's runs can be read
    without statsd-exporter; ``acme_localdev.prometheus`` backfills such a capture into a real
    Prometheus, which answers the dashboards' queries for their previews.
    """

    def __init__(self, path: Any, port: int = 0) -> None:
        import socket
        from pathlib import Path

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lines = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statsd-capture", daemon=True)

    def _run(self) -> None:
        import time

        self.sock.settimeout(0.2)
        with self.path.open("a") as out:
            while not self._stop.is_set():
                try:
                    payload = self.sock.recv(65536)
                except TimeoutError:
                    continue
                stamp = f"{time.time():.3f}"
                for line in payload.decode(errors="replace").splitlines():
                    if line:
                        out.write(f"{stamp} {line}\n")
                        self.lines += 1
                out.flush()

    def __enter__(self) -> StatsdCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        time.sleep(0.3)  # the last datagrams of the last run
        self._stop.set()
        self._thread.join()
        self.sock.close()
