"""A real Prometheus, fed with the StatsD datagrams one run emitted, answering PromQL over HTTP.

The deployed chain is Airflow -> StatsD (UDP) -> statsd_exporter (``deploy/statsd/mapping.yml``)
-> Prometheus scraping it every 15 s (``deploy/prometheus/prometheus.yml``) -> Grafana. Here, for
a capture file of ``recorder.StatsdCapture`` (``<unix ts> <statsd line>`` per line, what
``make demo`` writes to ``data/artifacts/metrics/statsd.log``):

1. ``exporter_scrapes`` replays the datagrams in time order into what statsd_exporter would
   expose on /metrics (counters summed and scaled by their ``@rate``, gauges set or moved,
   ``ms`` timers observed in seconds into the histogram buckets of the rule's
   ``histogram_options``) and samples that exposition every ``scrape_interval`` of
   ``deploy/prometheus/prometheus.yml``, on the same 15 s grid a scrape would see it;
2. ``write_openmetrics`` writes those scrapes as OpenMetrics text with timestamps;
3. ``promtool tsdb create-blocks-from openmetrics`` (Debian's ``prometheus`` package) turns
   it into TSDB blocks, Prometheus' own backfill;
4. ``PrometheusServer`` starts ``prometheus`` on those blocks on a free 127.0.0.1 port, and
   its HTTP API (``/api/v1/query``, ``/api/v1/query_range``) answers the dashboards' PromQL.

Why this pipeline, and what is not the real tool:

- statsd_exporter itself is not run: Debian 12 has no package of it (nor PyPI or npm), and
  nothing else can be installed here. Step 1 is therefore ``observability.map_statsd_name``'s
  reading of the mapping rules (glob before regex, first match, ``match_metric_type``), the
  one home-made link of the chain; ``tests/test_observability_files.py`` checks it.
- The samples are backfilled rather than scraped live: a live scrape of a replaying exporter
  takes as long as the run took (minutes for ``make demo``), and Prometheus refuses scraped
  samples stamped in the past. Backfilling with ``promtool`` is Prometheus' documented way to
  import samples with their own timestamps, and the samples are those a 15 s scrape takes.
- ``zero_start`` (the default): statsd_exporter creates a counter or histogram series with
  its first datagram, so the first scrape already sees the first increment and PromQL's
  ``increase()`` never counts it: a series incremented once (a table loaded once by one run)
  would show 0. The replay exposes such a series at 0 on the scrape before its first
  datagram, as a client library's pre-initialised counter would, so every increment the run
  made is counted. ``zero_start=False`` reproduces statsd_exporter exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acme_localdev import observability as obs

PROMETHEUS_CONFIG = obs.ROOT / "deploy" / "prometheus" / "prometheus.yml"
INSTALL_HINT = "make prometheus (apt-get install prometheus: Debian's package has the server and promtool)"
# client_golang's DefBuckets: statsd_exporter's histogram buckets when a rule names none.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, without __name__


class PrometheusMissingError(RuntimeError):
    """``prometheus`` or ``promtool`` is not installed."""


class QueryError(RuntimeError):
    """Prometheus rejected a query (its errorType and error are in the message)."""


def binaries() -> tuple[str, str]:
    """Paths of ``prometheus`` and ``promtool``; PrometheusMissingError saying how to install them."""
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise PrometheusMissingError(f"{' and '.join(missing)} not found: {INSTALL_HINT}")
    return found["prometheus"] or "", found["promtool"] or ""


def scrape_interval(config: Path = PROMETHEUS_CONFIG) -> float:
    """The deployed Prometheus' global scrape_interval, in seconds."""
    data = yaml.safe_load(config.read_text()) or {}
    return parse_duration(str((data.get("global") or {}).get("scrape_interval", "1m")))


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration (``15s``, ``1h30m``, ``1d``) in seconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|[smhdwy])", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration (``60s`` -> ``1m``, ``90s`` -> ``1m30s``, ``0.5`` -> ``500ms``)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


# --- the capture, replayed as statsd_exporter would expose it -------------------------------------


@dataclass(frozen=True)
class Datagram:
    ts: float
    name: str  # the StatsD name, tags split off
    tags: Mapping[str, str]
    value: float
    type: str  # c, g, ms, h, d
    rate: float = 1.0
    relative: bool = False  # a gauge line with a sign: +N / -N moves the gauge


@dataclass
class Capture:
    """The well-formed datagrams of a capture file, in time order, and what was skipped."""

    datagrams: list[Datagram] = field(default_factory=list)
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)

    @property
    def start(self) -> float | None:
        return self.datagrams[0].ts if self.datagrams else None

    @property
    def end(self) -> float | None:
        return self.datagrams[-1].ts if self.datagrams else None


def parse_line(line: str) -> Datagram:
    """``<unix ts> <statsd line>`` -> Datagram; ValueError for what statsd_exporter would reject."""
    stamp, _, text = line.strip().partition(" ")
    ts = float(stamp)
    sample = obs.parse_statsd_line(text)
    if not sample.name or any(c.isspace() for c in sample.name) or sample.value is None:
        raise ValueError(f"not a StatsD sample: {line!r}")
    if sample.type not in obs.STATSD_TYPES:
        raise ValueError(f"unknown StatsD type in {line!r}")
    value = float(sample.value)
    rates = [float(part[1:]) for part in text.partition(":")[2].split("|")[2:] if part.startswith("@")]
    rate = rates[-1] if rates else 1.0
    if not math.isfinite(value) or not math.isfinite(ts) or not 0 < rate <= 1:
        raise ValueError(f"bad value or sample rate in {line!r}")
    if sample.type == "c" and value < 0:
        raise ValueError(f"negative counter in {line!r}")
    relative = sample.type == "g" and sample.value.startswith(("+", "-"))
    return Datagram(ts, sample.name, dict(sample.tags), value, sample.type, rate, relative)


def read_capture(lines: Path | Iterable[str]) -> Capture:
    """A capture file (or its lines): blank lines and ``#`` comments skipped, malformed ones counted."""
    if isinstance(lines, Path):
        lines = lines.read_text(errors="replace").splitlines()
    out = Capture()
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            out.datagrams.append(parse_line(line))
        except ValueError:
            out.malformed += 1
            if len(out.malformed_examples) < 5:
                out.malformed_examples.append(line.strip()[:200])
    out.datagrams.sort(key=lambda d: d.ts)
    return out


@dataclass
class _Series:
    kind: str  # counter, gauge, histogram, summary
    value: float = 0.0  # counter, gauge
    bounds: tuple[float, ...] = ()  # histogram upper bounds, +Inf excluded
    counts: list[int] = field(default_factory=list)  # per bound (not cumulative) + one for +Inf
    total: float = 0.0  # observations' sum
    count: int = 0

    def observe(self, value: float, times: int) -> None:
        if self.kind == "histogram":
            index = next((i for i, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
            self.counts[index] += times
        self.total += value * times
        self.count += times

    def samples(self, name: str, zero: bool = False) -> Iterator[tuple[str, Labels, float]]:
        """(sample name, extra labels, value) as /metrics shows it; ``zero``: the series before its first datagram."""
        if self.kind in {"counter", "gauge"}:
            yield name, (), 0.0 if zero else self.value
            return
        if self.kind == "histogram":
            running = 0
            for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
                running += 0 if zero else n
                yield f"{name}_bucket", (("le", _le(bound)),), float(running)
        yield f"{name}_sum", (), 0.0 if zero else self.total
        yield f"{name}_count", (), 0.0 if zero else float(self.count)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else format(bound, "g")


@dataclass
class Exposition:
    """statsd_exporter's metrics over time: OpenMetrics samples and what the replay counted."""

    families: dict[str, str]  # metric name (the mapping's) -> counter, gauge, histogram, summary
    samples: dict[tuple[str, Labels], list[tuple[float, float]]]  # (sample name, labels) -> [(ts, value)]
    scrapes: list[float]  # the scrape times, every scrape_interval
    datagrams: int
    unmapped: Counter[str]  # StatsD names no rule maps (statsd_exporter would expose them under default names)
    conflicts: int  # datagrams of another type than the metric already has (statsd_exporter drops them)


def _rule_buckets(rules: Iterable[obs.Rule]) -> dict[int, tuple[float, ...]]:
    return {rule.index: tuple(rule.buckets) if rule.buckets else DEFAULT_BUCKETS for rule in rules}


def exporter_scrapes(
    capture: Capture,
    rules: Iterable[obs.Rule] | None = None,
    *,
    interval: float | None = None,
    zero_start: bool = True,
) -> Exposition:
    """The capture replayed into statsd_exporter's state, sampled at every scrape (see the module doc)."""
    rules = list(obs.load_mapping() if rules is None else rules)
    buckets = _rule_buckets(rules)
    interval = scrape_interval() if interval is None else interval
    families: dict[str, str] = {}
    state: dict[tuple[str, Labels], _Series] = {}
    born: dict[tuple[str, Labels], float] = {}  # series -> first scrape showing it
    samples: dict[tuple[str, Labels], list[tuple[float, float]]] = {}
    unmapped: Counter[str] = Counter()
    conflicts = 0
    if not capture.datagrams:
        return Exposition(families, samples, [], 0, unmapped, 0)

    first = (math.ceil(capture.datagrams[0].ts / interval) - 1) * interval  # strictly before the first datagram
    scrapes = [first]  # then every interval until the one at or after the last datagram
    while scrapes[-1] < capture.datagrams[-1].ts:
        scrapes.append(scrapes[-1] + interval)
    pending = iter(capture.datagrams)
    nxt = next(pending, None)
    for scrape in scrapes:
        while nxt is not None and nxt.ts <= scrape:
            datagram, nxt = nxt, next(pending, None)
            mapped = obs.map_statsd_name(datagram.name, datagram.type, rules)
            if mapped is None or mapped.dropped:
                unmapped[datagram.name] += 1
                continue
            labels = dict(datagram.tags) | dict(mapped.labels)
            key = (mapped.name, tuple(sorted((k, v) for k, v in labels.items() if v)))
            kind = obs.STATSD_TYPES[datagram.type]
            kind = mapped.rule.observer_type if kind == "observer" else kind
            if families.setdefault(mapped.name, kind) != kind:
                conflicts += 1
                continue
            series = state.get(key)
            if series is None:
                bounds = buckets.get(mapped.rule.index, DEFAULT_BUCKETS)
                series = state[key] = _Series(kind, bounds=bounds, counts=[0] * (len(bounds) + 1))
                born[key] = scrape
            if kind == "counter":
                series.value += datagram.value / datagram.rate
            elif kind == "gauge":
                series.value = series.value + datagram.value if datagram.relative else datagram.value
            else:
                seconds = datagram.value / 1000 if datagram.type == "ms" else datagram.value
                series.observe(seconds, max(1, int(1 / datagram.rate)))
        for key, series in state.items():
            if zero_start and born[key] == scrape and series.kind != "gauge":
                for name, extra, value in series.samples(key[0], zero=True):
                    samples.setdefault((name, tuple(sorted(key[1] + extra))), []).append((scrape - interval, value))
            for name, extra, value in series.samples(key[0]):
                samples.setdefault((name, tuple(sorted(key[1] + extra))), []).append((scrape, value))
    return Exposition(families, samples, scrapes, len(capture.datagrams), unmapped, conflicts)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family_of(sample: str, metrics: Mapping[str, str]) -> tuple[str, str]:
    """OpenMetrics' family name and type of a sample: a counter ``x_total`` is of family ``x``.

    A counter whose name lacks ``_total`` (the mapping's rules forbid it) is written untyped,
    so that its samples keep the name statsd_exporter gives them.
    """
    kind = metrics.get(sample)
    if kind == "counter":
        return (sample.removesuffix("_total"), "counter") if sample.endswith("_total") else (sample, "unknown")
    if kind == "gauge":
        return sample, "gauge"
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample.removesuffix(suffix)
        if base != sample and metrics.get(base) in {"histogram", "summary"}:
            return base, metrics[base]
    return sample, "unknown"


def write_openmetrics(exposition: Exposition, path: Path) -> int:
    """The exposition as OpenMetrics text with timestamps (``promtool``'s backfill input); returns the samples."""
    by_family: dict[tuple[str, str], list[tuple[str, Labels]]] = {}
    for key in exposition.samples:
        by_family.setdefault(_family_of(key[0], exposition.families), []).append(key)
    written = 0
    with path.open("w") as out:
        for family, kind in sorted(by_family):
            out.write(f"# TYPE {family} {kind}\n")
            for name, labels in sorted(by_family[(family, kind)]):
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                selector = f"{name}{{{text}}}" if text else name
                for ts, value in exposition.samples[(name, labels)]:
                    out.write(f"{selector} {value!r} {ts:.3f}\n")
                    written += 1
        out.write("# EOF\n")
    return written


def create_blocks(openmetrics: Path, data_dir: Path) -> None:
    """``promtool tsdb create-blocks-from openmetrics``: the samples as TSDB blocks in ``data_dir``."""
    _, promtool = binaries()
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool tsdb create-blocks-from openmetrics failed: {done.stderr or done.stdout}")


# --- the server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusServer:
    """``prometheus`` serving the TSDB in ``data_dir`` on 127.0.0.1 (a free port), scraping nothing.

    Its config is the deployed one's ``global`` section (scrape and evaluation intervals) without
    scrape jobs; retention is unlimited so that blocks of an old capture are kept.
    """

    def __init__(self, data_dir: Path, *, start_timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.start_timeout = start_timeout
        self.port = 0
        self.url = ""
        self.version = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.data_dir.parent / f"{self.data_dir.name}.prometheus.log"
        self.config = self.data_dir.parent / f"{self.data_dir.name}.prometheus.yml"

    def __enter__(self) -> PrometheusServer:
        prometheus, _ = binaries()
        deployed = yaml.safe_load(PROMETHEUS_CONFIG.read_text()) or {}
        self.config.write_text(
            "# The dashboard preview's Prometheus: no scrape jobs; it serves blocks backfilled from a capture.\n"
            + yaml.safe_dump({"global": deployed.get("global") or {}}, sort_keys=False)
        )
        for _ in range(3):  # a port taken between _free_port() and the bind: try another
            self.port = _free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    [
                        prometheus,
                        f"--config.file={self.config}",
                        f"--storage.tsdb.path={self.data_dir}",
                        "--storage.tsdb.retention.time=100y",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                info = self.get("/api/v1/status/buildinfo")
                self.version = str(info.get("version", ""))
                return self
            self.stop()
            if "address already in use" not in self.log.read_text(errors="replace"):
                break
        raise RuntimeError(f"prometheus did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET an API path; the ``data`` of a success, QueryError with Prometheus' error otherwise."""
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(params, doseq=True)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400 bad_data, 422 execution: the body says why
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise QueryError(f"HTTP {exc.code} from {path}") from None
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body.get("data")

    def query(self, expr: str, at: float) -> dict[str, Any]:
        """An instant query: ``{"resultType": ..., "result": ...}``."""
        return self.get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self.get(
            "/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        )

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        return list(self.get(f"/api/v1/label/{label}/values", {"match[]": match} if match else None) or [])


def series_points(data: Mapping[str, Any]) -> dict[Labels, list[tuple[float, float]]]:
    """A query's answer as label set (without __name__) -> [(time, value)]; a scalar is ``{(): [...]}``."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" or kind == "string":
        return {(): [(float(result[0]), float(result[1]))]}
    out: dict[Labels, list[tuple[float, float]]] = {}
    for item in result or []:
        labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__"))
        points = item.get("values") or ([item["value"]] if "value" in item else [])
        out[labels] = [(float(t), float(v)) for t, v in points]
    return out


@dataclass
class Loaded:
    """A capture loaded into a running Prometheus: the server, the exposition and its time grid."""

    server: PrometheusServer
    capture: Capture
    exposition: Exposition
    interval: float
    samples: int

    @property
    def start(self) -> float:
        return self.exposition.scrapes[0] if self.exposition.scrapes else time.time()

    @property
    def end(self) -> float:
        return self.exposition.scrapes[-1] if self.exposition.scrapes else time.time()


class CaptureServer:
    """A capture file backfilled into a fresh TSDB (in a temporary directory) and a Prometheus serving it.

    ``with CaptureServer(path) as loaded: loaded.server.query_range(...)``
    """

    def __init__(
        self,
        capture: Path | Iterable[str],
        *,
        rules: Iterable[obs.Rule] | None = None,
        interval: float | None = None,
        zero_start: bool = True,
        workdir: Path | None = None,
    ) -> None:
        self.source = capture
        self.rules = rules
        self.interval = scrape_interval() if interval is None else interval
        self.zero_start = zero_start
        self.workdir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: PrometheusServer | None = None

    def __enter__(self) -> Loaded:
        binaries()  # before any work: say how to install them
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="acme-prometheus-")
            base = Path(self._tmp.name)
        else:
            base = Path(self.workdir)
            shutil.rmtree(base / "tsdb", ignore_errors=True)
            base.mkdir(parents=True, exist_ok=True)
        capture = read_capture(self.source)
        exposition = exporter_scrapes(capture, self.rules, interval=self.interval, zero_start=self.zero_start)
        openmetrics = base / "capture.om.txt"
        samples = write_openmetrics(exposition, openmetrics)
        create_blocks(openmetrics, base / "tsdb")
        self._server = PrometheusServer(base / "tsdb").__enter__()
        return Loaded(self._server, capture, exposition, self.interval, samples)

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
