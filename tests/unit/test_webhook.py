"""The webhook sink against a local HTTP server (stdlib ``http.server`` in a thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import REGISTRY

from sentinel.alerting.dedup import AlertDeduper
from sentinel.config import WebhookSettings
from sentinel.models import AlertEvent, AnomalyEvent, AnomalyType, DetectionMethod, Severity
from sentinel.sinks._buffered import Backoff, BufferedPartition
from sentinel.sinks.webhook import WebhookAlertSink, sign, verify_signature

SECRET = "s3cret-for-tests"
FAST = Backoff(initial_s=0.02, max_s=0.1)


def make_alert(i: int = 0, sev: Severity = Severity.HIGH, service: str = "chat-api") -> AlertEvent:
    a = AnomalyEvent(
        1_767_600_000.0 + i * 1000,
        service,
        "gpt-4o",
        AnomalyType.LATENCY_SPIKE,
        sev,
        DetectionMethod.ZSCORE,
        "latency_ms",
        2400.0,
        800.0,
        4.0,
        9.5,
        details={"i": i},
    )
    out = AlertDeduper().on_anomaly(a)
    assert out is not None
    return out


@dataclass
class Recorded:
    headers: Message
    body: bytes


@dataclass
class Server:
    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # responses, in order; then 200
    requests: list[Recorded] = field(default_factory=list)


@contextmanager
def http_server(*script: int | tuple[int, dict[str, str]]) -> Iterator[Server]:
    server = Server(url="")
    server.script = [s if isinstance(s, tuple) else (s, {}) for s in script]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                server.requests.append(Recorded(self.headers, body))
                status, headers = server.script.pop(0) if server.script else (200, {})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/sentinel"
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts TCP connections (kernel backlog) but never reads or answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    finally:
        s.close()


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now: connection refused
    return f"http://127.0.0.1:{port}/hook"


def partition(url: str, **kw: Any) -> BufferedPartition[AlertEvent]:
    kw.setdefault("secret", SECRET)
    kw.setdefault("min_severity", "low")
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("close_timeout_s", 5.0)
    return WebhookAlertSink(WebhookSettings(url=url, **kw), backoff=FAST).build("webhook", 0, 1)


def counter(outcome: str) -> float:
    return REGISTRY.get_sample_value("sentinel_alerts_total", {"channel": "webhook", "outcome": outcome}) or 0.0


# ------------------------------------------------------------------ signature


def test_sign_and_verify_roundtrip() -> None:
    body = b'{"alert_id":"al-1"}'
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, body, header)
    assert verify_signature(SECRET.encode(), body, header)
    assert not verify_signature("other", body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "")
    assert not verify_signature(SECRET, body, header[7:])  # the prefix is part of the value
    assert not verify_signature(SECRET, body, "sha256=\u00e9" * 3)  # non-ASCII: False, not an exception


def test_request_is_signed_json_with_idempotency_key() -> None:
    alert = make_alert(1)
    with http_server() as srv:
        p = partition(srv.url)
        p.write_batch([alert])
        p.close()
    assert len(srv.requests) == 1
    req = srv.requests[0]
    assert orjson.loads(req.body) == orjson.loads(orjson.dumps(alert.to_dict()))
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == alert.alert_id
    assert verify_signature(SECRET, req.body, req.headers["X-Sentinel-Signature"])
    assert not verify_signature("wrong", req.body, req.headers["X-Sentinel-Signature"])
    assert abs(int(req.headers["X-Sentinel-Timestamp"]) - time.time()) < 60
    assert p.stats().published == 1


def test_no_secret_sends_unsigned() -> None:
    with http_server() as srv:
        p = partition(srv.url, secret=None)
        p.write_batch([make_alert()])
        p.close()
    assert "X-Sentinel-Signature" not in srv.requests[0].headers


# ------------------------------------------------------------------ retries


def test_500_then_200_is_retried_and_delivered_once() -> None:
    before = counter("published")
    alert = make_alert(2)
    with http_server(500) as srv:
        p = partition(srv.url)
        p.write_batch([alert])
        p.close()
    assert len(srv.requests) == 2
    first, second = srv.requests
    assert first.body == second.body  # same bytes, same signature, same idempotency key
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == alert.alert_id
    assert verify_signature(SECRET, second.body, second.headers["X-Sentinel-Signature"])
    s = p.stats()
    assert (s.published, s.failed, s.pending) == (1, 0, 0)
    assert counter("published") - before == 1


@pytest.mark.parametrize("status", [502, 503, 408, 429])
def test_transient_statuses_are_retried(status: int) -> None:
    with http_server(status, status) as srv:
        p = partition(srv.url)
        p.write_batch([make_alert()])
        p.close()
    assert len(srv.requests) == 3
    assert p.stats().published == 1


def test_retry_after_is_honoured() -> None:
    with http_server((429, {"Retry-After": "0.3"})) as srv:
        p = partition(srv.url)
        t0 = time.monotonic()
        p.write_batch([make_alert()])
        p.close()
        elapsed = time.monotonic() - t0
    assert len(srv.requests) == 2 and p.stats().published == 1
    assert elapsed >= 0.1  # capped at the backoff maximum (0.1 s here), not the 0.02 s first delay


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_client_errors_give_up_without_retrying(status: int) -> None:
    before = counter("failed")
    with http_server(status) as srv:
        p = partition(srv.url)
        p.write_batch([make_alert(0), make_alert(1)])
        p.close()
    assert len(srv.requests) == 2  # the first alert once (given up), the second delivered
    s = p.stats()
    assert (s.failed, s.published) == (1, 1)
    assert counter("failed") - before == 1


def test_redirects_are_not_followed() -> None:
    with http_server((302, {"Location": "/elsewhere"})) as srv:
        p = partition(srv.url)
        p.write_batch([make_alert()])
        p.close()
    assert len(srv.requests) == 1
    assert p.stats().failed == 1


def test_retries_are_bounded_by_max_retries() -> None:
    with http_server(*([500] * 10)) as srv:
        p = partition(srv.url, max_retries=3)
        p.write_batch([make_alert()])
        p.close()
    assert len(srv.requests) == 4  # 1 + 3 retries
    s = p.stats()
    assert (s.failed, s.published) == (1, 0)


def test_alerts_arrive_in_order() -> None:
    alerts = [make_alert(i) for i in range(20)]
    with http_server(500, 503) as srv:
        p = partition(srv.url)
        p.write_batch(alerts[:10])
        p.write_batch(alerts[10:])
        p.close()
    keys = [r.headers["Idempotency-Key"] for r in srv.requests]
    assert list(dict.fromkeys(keys)) == [a.alert_id for a in alerts]
    assert p.stats().published == 20


# ------------------------------------------------------------------ routing


def test_min_severity_and_service_filter() -> None:
    alerts = [
        make_alert(0, Severity.LOW),
        make_alert(1, Severity.HIGH),
        make_alert(2, Severity.CRITICAL),
        make_alert(3, Severity.CRITICAL, service="billing"),
    ]
    with http_server() as srv:
        p = partition(srv.url, min_severity="high", services=["chat-*"])
        p.write_batch(alerts)
        p.close()
    assert [r.headers["Idempotency-Key"] for r in srv.requests] == [alerts[1].alert_id, alerts[2].alert_id]
    assert p.stats().buffered == 2


def test_default_minimum_is_high() -> None:
    with http_server() as srv:
        p = WebhookAlertSink(WebhookSettings(url=srv.url, secret=SECRET)).build("webhook", 0, 1)
        p.write_batch([make_alert(0, Severity.MEDIUM), make_alert(1, Severity.HIGH)])
        p.close()
    assert len(srv.requests) == 1


# ------------------------------------------------------------------ dead endpoints do not stall


def test_connection_refused_does_not_stall_the_flow() -> None:
    before = counter("failed")
    alerts = [make_alert(i) for i in range(200)]
    p = partition(closed_port_url(), max_retries=2, close_timeout_s=1.5)
    t0 = time.perf_counter()
    for i in range(0, 200, 20):
        p.write_batch(alerts[i : i + 20])
    enqueue_s = time.perf_counter() - t0
    assert enqueue_s < 0.05, f"write_batch blocked for {enqueue_s:.3f}s"
    t1 = time.monotonic()
    p.close()
    close_s = time.monotonic() - t1
    assert close_s < 1.5 + 0.6, f"close took {close_s:.2f}s"
    s = p.stats()
    assert (s.buffered, s.published, s.pending) == (200, 0, 0)
    assert s.failed == 200  # retries exhausted for some, the rest left at the close deadline
    assert counter("failed") - before == 200


def test_server_that_never_answers_does_not_stall_the_flow() -> None:
    with silent_server() as url:
        p = partition(url, timeout_s=0.3, max_retries=1, close_timeout_s=1.0)
        t0 = time.perf_counter()
        p.write_batch([make_alert(i) for i in range(50)])
        assert time.perf_counter() - t0 < 0.05
        time.sleep(0.2)  # the worker is now blocked in a request that will time out
        t0 = time.perf_counter()
        p.write_batch([make_alert(i) for i in range(50, 60)])
        assert time.perf_counter() - t0 < 0.05, "write_batch waited for the stuck request"
        t1 = time.monotonic()
        p.close()
        assert time.monotonic() - t1 < 1.0 + 0.6
    s = p.stats()
    assert (s.buffered, s.published, s.failed, s.pending) == (60, 0, 60, 0)


def test_close_returns_even_when_a_request_outlives_the_close_timeout() -> None:
    with silent_server() as url:
        p = partition(url, timeout_s=5.0, max_retries=0, close_timeout_s=0.5)
        p.write_batch([make_alert(0), make_alert(1)])
        time.sleep(0.1)
        t0 = time.monotonic()
        p.close()  # the worker is inside a 5 s request: close abandons it after 0.5 s (+0.5 s grace)
        assert time.monotonic() - t0 < 1.5
    s = p.stats()
    assert (s.failed, s.pending) == (2, 0)


def test_full_buffer_drops_the_oldest_and_counts_it() -> None:
    before = counter("dropped")
    alerts = [make_alert(i) for i in range(11)]
    with silent_server() as url:
        p = partition(url, timeout_s=1.0, max_retries=0, max_buffer=3, close_timeout_s=0.2)
        p.write_batch(alerts[:1])
        time.sleep(0.1)  # alerts[0] is now in flight and must not be dropped
        p.write_batch(alerts[1:])
        s = p.stats()
        assert (s.buffered, s.dropped, s.pending) == (11, 8, 3)
        p.close()
    assert counter("dropped") - before == 8


def test_endpoint_that_recovers_gets_the_backlog() -> None:
    # 503s for a while (the endpoint is "down"), then everything that waited is delivered
    alerts = [make_alert(i) for i in range(30)]
    with http_server(*([503] * 5)) as srv:
        p = partition(srv.url, max_retries=10)
        p.write_batch(alerts)
        p.close()
    delivered = {r.headers["Idempotency-Key"] for r in srv.requests}
    assert delivered == {a.alert_id for a in alerts}
    assert p.stats().published == 30


# ------------------------------------------------------------------ in the real flow


def test_dead_endpoint_does_not_stall_the_flow(tmp_path: Path) -> None:
    from tests.flow.factories import T0, normal_stream, run_flow, to_messages

    rng = np.random.default_rng(3)
    burst = T0 + 5400.0
    events = normal_stream(
        rng, "chat-api", "gpt-4o", 7200.0, latency_factor=lambda t: 6.0 if burst <= t < burst + 600 else 1.0
    )
    messages = to_messages(events, max_spans=200)
    before = counter("buffered")
    t0 = time.monotonic()
    run = run_flow(
        messages,
        tmp_path,
        webhook={"url": closed_port_url(), "min_severity": "low", "timeout_s": 0.5, "close_timeout_s": 1.0},
    )
    elapsed = time.monotonic() - t0
    alerts = run.jsonl("alerts")
    assert alerts, "the burst raised no alert"
    assert counter("buffered") - before == len(alerts)  # every alert reached the webhook sink
    assert elapsed < 15.0, f"the flow took {elapsed:.1f}s with a dead webhook"
