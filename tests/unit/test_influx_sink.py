"""InfluxDB sink: line protocol, retries, bounded buffer, close — against a stdlib HTTP server in a thread.

The fake server speaks just enough of the InfluxDB v2 write API: it records every
``POST /api/v2/write`` and answers with a scripted status. The dashboard test at the
end keeps ``k8s/grafana-dashboard.yaml`` in step with what the sink writes.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from sentinel.config import InfluxSettings
from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, Severity, WindowStats
from sentinel.sinks.influx import (
    ANOMALY_FIELDS,
    ANOMALY_MEASUREMENT,
    ANOMALY_TAGS,
    WINDOW_FIELDS,
    WINDOW_MEASUREMENT,
    WINDOW_TAGS,
    InfluxSink,
    anomaly_line,
    to_line,
    to_point,
    window_line,
)

DASHBOARD = Path(__file__).resolve().parents[2] / "k8s" / "grafana-dashboard.yaml"


def window(service: str = "chat-api", model: str = "gpt-4o", start: float = 1_767_600_000.0, **kw: Any) -> WindowStats:
    values: dict[str, Any] = {
        "requests": 120,
        "errors": 3,
        "latency_p50_ms": 812.5,
        "latency_p95_ms": 2040.0,
        "latency_p99_ms": 3125.25,
        "input_tokens": 98_000,
        "output_tokens": 21_500,
        "cost_usd": 0.46,
        "output_tokens_per_s": 61.25,
    }
    values.update(kw)
    return WindowStats(service=service, model=model, start=start, end=start + 60.0, **values)


def anomaly(service: str = "chat-api", model: str = "gpt-4o", ts: float = 1_767_600_012.345, **kw: Any) -> AnomalyEvent:
    values: dict[str, Any] = {
        "anomaly_type": AnomalyType.LATENCY_SPIKE,
        "severity": Severity.HIGH,
        "detection_method": DetectionMethod.ZSCORE,
        "metric": "latency_ms",
        "observed": 5120.0,
        "expected": 800.5,
        "threshold": 3.0,
        "score": 7.25,
    }
    values.update(kw)
    return AnomalyEvent(timestamp=ts, service=service, model=model, **values)


# ----------------------------------------------------------------------------- line protocol


def test_window_line_exact() -> None:
    w = window(service="chat api,eu=1", model="gpt-4o")
    assert window_line(w) == (
        r"llm_window,model=gpt-4o,service=chat\ api\,eu\=1 "
        "cost_usd=0.46,error_rate=0.025,errors=3i,input_tokens=98000i,latency_p50_ms=812.5,"
        "latency_p95_ms=2040,latency_p99_ms=3125.25,output_tokens=21500i,output_tokens_per_s=61.25,"
        "requests=120i 1767600000000"
    )


def test_anomaly_line_exact() -> None:
    a = anomaly(service="support bot", model="claude sonnet,4")
    assert anomaly_line(a) == (
        r"llm_anomaly,anomaly_type=latency_spike,detection_method=zscore,model=claude\ sonnet\,4,"
        r"service=support\ bot,severity=high expected=800.5,observed=5120,score=7.25 1767600012345"
    )


def test_timestamps_are_event_time_ms_and_deterministic() -> None:
    # window start, not end; anomaly event time rounded to the ms like AnomalyEvent.id
    assert window_line(window(start=1_767_600_060.0)).endswith(" 1767600060000")
    assert anomaly_line(anomaly(ts=1_767_600_000.0004999)).endswith(" 1767600000000")  # type: ignore[union-attr]
    assert to_line(window()) == to_line(window())


def test_field_types_are_stable() -> None:
    # counts are always integers, everything else always float (InfluxDB refuses a type change)
    line = window_line(window(requests=1, errors=0, cost_usd=0, latency_p50_ms=5))
    fields = dict(kv.split("=") for kv in line.split(" ")[1].split(","))
    assert fields["requests"] == "1i" and fields["errors"] == "0i"
    assert fields["cost_usd"] == "0" and fields["latency_p50_ms"] == "5"  # float without ".0", as Point writes it


def test_non_finite_fields_are_left_out() -> None:
    line = anomaly_line(anomaly(expected=math.nan, score=math.inf))
    assert line is not None and line.split(" ")[1] == "observed=5120"
    assert anomaly_line(anomaly(expected=math.nan, observed=math.inf, score=-math.inf)) is None


def test_empty_tag_value_is_left_out() -> None:
    assert window_line(window(model="")).startswith("llm_window,service=chat-api ")


def test_numpy_values_are_plain_numbers() -> None:
    np = pytest.importorskip("numpy")
    line = window_line(window(requests=np.int64(7), errors=np.int64(1), cost_usd=np.float64(0.5)))
    assert "requests=7i" in line and "errors=1i" in line and "cost_usd=0.5," in line


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_num = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(
    service=_text,
    model=_text,
    counts=st.lists(st.integers(0, 2**40), min_size=4, max_size=4),
    floats=st.lists(_num, min_size=6, max_size=6),
    start=st.integers(0, 2**33),
)
def test_window_line_equals_influxdb_client_point(
    service: str, model: str, counts: list[int], floats: list[float], start: int
) -> None:
    w = WindowStats(
        service, model, start / 8, start / 8 + 60, counts[0], counts[1], *floats[:3], counts[2], counts[3], *floats[3:]
    )
    assert window_line(w) == to_point(w).to_line_protocol()


@settings(max_examples=300, deadline=None)
@given(
    service=_text,
    model=_text,
    kind=st.sampled_from(AnomalyType),
    sev=st.sampled_from(Severity),
    method=st.sampled_from(DetectionMethod),
    vals=st.lists(_num, min_size=3, max_size=3),
    ts=st.floats(0, 4e9),
)
def test_anomaly_line_equals_influxdb_client_point(
    service: str, model: str, kind: AnomalyType, sev: Severity, method: DetectionMethod, vals: list[float], ts: float
) -> None:
    a = anomaly(service, model, ts, anomaly_type=kind, severity=sev, detection_method=method)
    a.observed, a.expected, a.score = vals
    assert (anomaly_line(a) or "") == to_point(a).to_line_protocol()


def test_formatting_is_cheap() -> None:
    items = [window(service=f"svc-{i % 50}") for i in range(20_000)]
    t = time.perf_counter()
    for w in items:
        window_line(w)
    per_point = (time.perf_counter() - t) / len(items)
    assert per_point < 50e-6, f"{per_point * 1e6:.1f} µs per point"  # ~4 µs on a laptop core


def test_unknown_item_type_is_refused() -> None:
    with pytest.raises(TypeError):
        to_line("not a record")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- a fake InfluxDB


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    lines: list[str]
    at: float


@dataclass
class FakeInflux:
    """Records writes; ``respond`` decides the answer to each: ``(status, headers)``."""

    respond: Callable[[Request], tuple[int, dict[str, str]]] = lambda req: (204, {})
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def written(self) -> list[str]:
        """Lines of every request that got a 2xx answer, in order."""
        with self.lock:
            return [line for r in self.requests if r.headers.get("_status", "").startswith("2") for line in r.lines]

    def wait_for(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out; requests so far: {len(self.requests)}"
            time.sleep(0.005)


@pytest.fixture
def influx() -> Iterator[FakeInflux]:
    fake = FakeInflux()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            parts = urlsplit(self.path)
            req = Request(parts.path, parse_qs(parts.query), dict(self.headers), body.split("\n"), time.monotonic())
            status, headers = fake.respond(req)
            req.headers["_status"] = str(status)
            with fake.lock:
                fake.requests.append(req)
            payload = b"" if status == 204 else json.dumps({"code": "invalid", "message": f"status {status}"}).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("sentinel_sink_records_total", {"sink": "influxdb", "outcome": outcome}) or 0.0


class Counts:
    """Deltas of the sink's outcome counters since construction."""

    OUTCOMES = ("written", "retried", "rejected", "dropped")

    def __init__(self) -> None:
        self.base = {o: count(o) for o in self.OUTCOMES}

    def __call__(self) -> dict[str, int]:
        return {o: int(count(o) - self.base[o]) for o in self.OUTCOMES}


def make_sink(url: str, **kw: Any) -> Any:
    opts: dict[str, Any] = {"batch_size": 100, "flush_interval_ms": 20, "max_buffer": 1000, "timeout_ms": 2000}
    sink_kw = {k: kw.pop(k) for k in ("retry_initial_s", "retry_max_s", "close_timeout_s") if k in kw}
    sink_kw.setdefault("retry_initial_s", 0.02)
    sink_kw.setdefault("retry_max_s", 0.2)
    sink_kw.setdefault("close_timeout_s", 5.0)
    opts.update(kw)
    settings = InfluxSettings(url=url, org="acme", bucket="sentinel", token="s3cret", **opts)
    return InfluxSink(settings, **sink_kw).build("influxdb", 0, 1)


def windows(n: int, service: str = "svc") -> list[WindowStats]:
    return [window(service=service, start=1_767_600_000.0 + 60 * i) for i in range(n)]


# ----------------------------------------------------------------------------- writing


def test_writes_both_measurements_with_token_org_bucket_and_ms_precision(influx: FakeInflux) -> None:
    counts = Counts()
    part = make_sink(influx.url)
    items: list[WindowStats | AnomalyEvent] = [window(), anomaly()]
    part.write_batch(items)
    part.close()
    assert influx.written() == [to_line(x) for x in items]
    req = influx.requests[0]
    assert req.path == "/api/v2/write"
    assert req.query == {"org": ["acme"], "bucket": ["sentinel"], "precision": ["ms"]}
    assert req.headers["Authorization"] == "Token s3cret"
    assert counts() == {"written": 2, "retried": 0, "rejected": 0, "dropped": 0}


def test_batches_are_at_most_batch_size(influx: FakeInflux) -> None:
    part = make_sink(influx.url, batch_size=10)
    part.write_batch(windows(35))
    part.close()
    assert [len(r.lines) for r in influx.requests] == [10, 10, 10, 5]
    assert influx.written() == [window_line(w) for w in windows(35)]


def test_retries_503_then_succeeds(influx: FakeInflux) -> None:
    answers = iter([503, 503, 204])
    influx.respond = lambda req: (next(answers, 204), {})
    counts = Counts()
    part = make_sink(influx.url)
    part.write_batch(windows(3))
    part.close()
    assert len(influx.requests) == 3
    assert all(r.lines == influx.requests[0].lines for r in influx.requests)
    gaps = [b.at - a.at for a, b in zip(influx.requests, influx.requests[1:], strict=False)]
    assert gaps[1] > gaps[0] * 1.2, f"backoff does not grow: {gaps}"
    assert influx.written() == [window_line(w) for w in windows(3)]
    assert counts() == {"written": 3, "retried": 6, "rejected": 0, "dropped": 0}


def test_429_retry_after_is_honoured(influx: FakeInflux) -> None:
    answers = iter([(429, {"Retry-After": "1"}), (204, {})])
    influx.respond = lambda req: next(answers, (204, {}))
    counts = Counts()
    part = make_sink(influx.url, retry_initial_s=0.01)
    part.write_batch(windows(2))
    part.close()
    assert len(influx.requests) == 2
    assert influx.requests[1].at - influx.requests[0].at >= 0.95  # not the 10 ms backoff
    assert counts() == {"written": 2, "retried": 2, "rejected": 0, "dropped": 0}


def test_400_is_rejected_not_retried(influx: FakeInflux, caplog: pytest.LogCaptureFixture) -> None:
    influx.respond = lambda req: (400, {}) if "bad" in req.lines[0] else (204, {})
    counts = Counts()
    part = make_sink(influx.url)
    part.write_batch(windows(2, service="bad"))
    influx.wait_for(lambda: len(influx.requests) == 1)
    part.write_batch(windows(1, service="good"))
    part.close()
    assert len(influx.requests) == 2
    assert influx.written() == [window_line(w) for w in windows(1, service="good")]
    assert counts() == {"written": 1, "retried": 0, "rejected": 2, "dropped": 0}
    assert "rejected 2 points" in caplog.text and "400" in caplog.text
    assert "s3cret" not in caplog.text


def test_connection_refused_is_retried_and_write_batch_never_blocks() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    counts = Counts()
    part = make_sink(f"http://127.0.0.1:{port}", close_timeout_s=0.3)
    t = time.perf_counter()
    for _ in range(20):
        part.write_batch(windows(50))
    assert time.perf_counter() - t < 0.5
    time.sleep(0.2)
    part.close()
    c = counts()
    assert c["retried"] > 0 and c["written"] == 0
    assert c["dropped"] == 1000  # 1000 buffered, none written: all counted at close


def test_overflow_drops_oldest_and_counts(influx: FakeInflux, caplog: pytest.LogCaptureFixture) -> None:
    accept = threading.Event()
    influx.respond = lambda req: (204, {}) if accept.is_set() else (503, {})
    counts = Counts()
    part = make_sink(influx.url, max_buffer=10, batch_size=100)
    items = windows(25)
    part.write_batch(items[:10])
    influx.wait_for(lambda: len(influx.requests) >= 1)  # the first 10 are failing
    t = time.perf_counter()
    part.write_batch(items[10:])  # 15 more: the 15 oldest must go
    assert time.perf_counter() - t < 0.05
    newest = [window_line(w) for w in items[15:]]
    influx.wait_for(lambda: influx.requests[-1].lines == newest)  # the writer retries with the new head
    accept.set()
    part.close()
    assert influx.written() == newest
    c = counts()
    assert c["dropped"] == 15 and c["written"] == 10 and c["rejected"] == 0
    # logged (rate-limited, the rest at close): the logged counts add up to the loss
    assert sum(int(n) for n in re.findall(r"dropped (\d+) points \(buffer full", caplog.text)) == 15


def test_close_flushes_without_waiting_for_the_interval(influx: FakeInflux) -> None:
    part = make_sink(influx.url, flush_interval_ms=60_000, batch_size=1000)
    part.write_batch(windows(3))
    time.sleep(0.05)
    assert influx.requests == []  # not due yet
    t = time.perf_counter()
    part.close()
    assert time.perf_counter() - t < 1.0
    assert influx.written() == [window_line(w) for w in windows(3)]


def test_close_gives_up_after_its_timeout_and_counts_the_loss(influx: FakeInflux) -> None:
    influx.respond = lambda req: (503, {})
    counts = Counts()
    part = make_sink(influx.url, close_timeout_s=0.5)
    part.write_batch(windows(7))
    t = time.perf_counter()
    part.close()
    assert time.perf_counter() - t < 2.5
    c = counts()
    assert c["dropped"] == 7 and c["written"] == 0 and c["retried"] >= 7


def test_sink_needs_a_url() -> None:
    with pytest.raises(ValueError, match="url"):
        InfluxSink(InfluxSettings())


# ----------------------------------------------------------------------------- the Grafana dashboard

_FLUX_COLUMNS = {"_value", "_time", "_field", "_measurement", "_start", "_stop"}
_WRITES = {
    WINDOW_MEASUREMENT: (set(WINDOW_TAGS), set(WINDOW_FIELDS)),
    ANOMALY_MEASUREMENT: (set(ANOMALY_TAGS), set(ANOMALY_FIELDS)),
}


def _dashboard() -> dict[str, Any]:
    cm = yaml.safe_load(DASHBOARD.read_text(encoding="utf-8"))
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name,) = cm["data"]
    assert name.endswith(".json")
    dash: dict[str, Any] = json.loads(cm["data"][name])
    return dash


def _queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(f"panel {p['title']!r}", t["query"]) for p in dash["panels"] for t in p.get("targets", [])]
    out += [(f"variable {v['name']}", v["query"]) for v in dash["templating"]["list"] if v["type"] == "query"]
    out += [
        (f"annotation {a['name']}", a["target"]["query"])
        for a in dash["annotations"]["list"]
        if a.get("datasource", {}).get("type") == "influxdb"
    ]
    return out


def test_dashboard_queries_only_name_what_the_sink_writes() -> None:
    dash = _dashboard()
    queries = _queries(dash)
    assert len(queries) >= 9
    for where, q in queries:
        measurements = set(re.findall(r'_measurement\s*==\s*"([^"]*)"', q))
        measurements |= set(re.findall(r'measurement:\s*"([^"]*)"', q))
        assert measurements, f"{where} names no measurement"
        assert measurements <= set(_WRITES), f"{where}: unknown measurement(s) {measurements - set(_WRITES)}"
        tags = set().union(*(_WRITES[m][0] for m in measurements))
        fields = set().union(*(_WRITES[m][1] for m in measurements))
        named_fields = set(re.findall(r'_field\s*==\s*"([^"]*)"', q))
        assert named_fields <= fields, f"{where}: fields {named_fields - fields} are not written to {measurements}"
        columns = set(re.findall(r"\br\.(\w+)", q)) | set(re.findall(r'\br\["([^"]+)"\]', q))
        columns |= set(re.findall(r'tag:\s*"([^"]*)"', q))
        unknown = columns - tags - fields - _FLUX_COLUMNS
        assert not unknown, f"{where}: columns {unknown} are neither tags nor fields of {measurements}"
        assert 'from(bucket: "${bucket}")' in q or 'bucket: "${bucket}"' in q, f"{where} ignores the bucket variable"


def test_dashboard_charts_every_window_field_and_overlays_anomalies() -> None:
    dash = _dashboard()
    charted = set()
    for p in dash["panels"]:
        for t in p.get("targets", []):
            if '"llm_window"' in t["query"]:
                charted |= set(re.findall(r'_field\s*==\s*"([^"]*)"', t["query"]))
        assert p["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
    # error_rate is computed from errors/requests (a ratio of sums), the rest charted directly
    assert set(WINDOW_FIELDS) - {"error_rate"} <= charted
    assert any(p["title"] == "Error rate" for p in dash["panels"])
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"datasource", "bucket", "service", "model"} <= set(variables)
    assert variables["datasource"]["query"] == "influxdb"
    assert variables["bucket"]["query"] == "sentinel"
    (anno,) = [a for a in dash["annotations"]["list"] if a["name"] == "Anomalies"]
    assert '"llm_anomaly"' in anno["target"]["query"] and anno["enable"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
