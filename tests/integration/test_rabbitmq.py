"""RabbitMQ alert sink against the real broker (``bash scripts/services.sh up rabbitmq``).

Every test binds its own durable queue to the ``incidents`` exchange with a
routing key that only matches a unique service name (``alert.*.<service>``), so
runs never see each other's alerts; queues are deleted afterwards. The fault
test stops and restarts the broker with ``scripts/services.sh`` and always
starts it again in ``finally``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pika
import pytest
from bytewax.testing import run_main

from dataflows.sentinel import build_flow
from sentinel.alerting.dedup import AlertDeduper
from sentinel.config import RabbitSettings, load_settings
from sentinel.encode import batch_spans, events_to_otlp_json
from sentinel.models import AlertEvent, AnomalyEvent, AnomalyType, DetectionMethod, Severity
from sentinel.sinks._buffered import BufferedPartition
from sentinel.sinks.rabbitmq import RabbitAlertSink, connection_parameters
from tests.flow.factories import T0, normal_stream

HOST = os.environ.get("SENTINEL_TEST_RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("SENTINEL_TEST_RABBITMQ_PORT", "5672"))
URL = f"amqp://guest:guest@{HOST}:{PORT}/"
EXCHANGE = "incidents"
ROOT = Path(__file__).resolve().parents[2]


def _require_rabbitmq() -> None:
    try:
        with socket.create_connection((HOST, PORT), timeout=3):
            return
    except OSError as exc:
        pytest.fail(
            f"RabbitMQ is not reachable on {HOST}:{PORT} ({exc}); start it with: bash scripts/services.sh up rabbitmq",
            pytrace=False,
        )


def _services(action: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), action, "rabbitmq"], check=True, timeout=120)


def unique_service() -> str:
    return f"it-rmq-{uuid.uuid4().hex[:10]}"  # no dots: one routing-key word


@dataclass
class Message:
    routing_key: str
    props: Any
    body: bytes

    @property
    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = orjson.loads(self.body)
        return out


@contextmanager
def bound_queue(service: str) -> Iterator[str]:
    """A durable queue receiving every alert of ``service`` (survives a broker restart)."""
    _require_rabbitmq()
    queue = f"it-alerts-{uuid.uuid4().hex[:12]}"
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        ch = conn.channel()
        ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, EXCHANGE, routing_key=f"alert.*.{service}")
    finally:
        conn.close()
    try:
        yield queue
    finally:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(URL))
            conn.channel().queue_delete(queue)
            conn.close()
        except Exception as e:  # the broker may be down if the test failed mid-restart
            print(f"could not delete queue {queue}: {e!r}")


def drain(queue: str) -> list[Message]:
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        ch = conn.channel()
        out: list[Message] = []
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=0.5):
            if method is None:  # nothing more for 0.5 s: the sink had closed, everything confirmed is here
                return out
            out.append(Message(method.routing_key, props, body))
        return out
    finally:
        conn.close()


def sink(**kw: Any) -> BufferedPartition[AlertEvent]:
    return RabbitAlertSink(RabbitSettings(url=URL, **kw)).build("rabbitmq", 0, 1)


def anomaly(service: str, t: float, sev: Severity, typ: AnomalyType = AnomalyType.LATENCY_SPIKE) -> AnomalyEvent:
    return AnomalyEvent(t, service, "gpt-4o", typ, sev, DetectionMethod.ZSCORE, "latency_ms", 2400.0, 800.0, 4.0, 9.0)


def synthetic_alerts(service: str, n: int) -> list[AlertEvent]:
    """``n`` alerts with distinct ids (one incident each, 10 minutes apart)."""
    d = AlertDeduper(window_s=300)
    sevs = list(Severity)
    out = []
    for i in range(n):
        a = d.on_anomaly(anomaly(service, T0 + i * 600.0, sevs[i % 4]))
        assert a is not None
        out.append(a)
    return out


def assert_message_matches(m: Message, alert: dict[str, Any]) -> None:
    assert m.routing_key == alert["routing_key"] == f"alert.{alert['severity']}.{alert['service']}"
    assert m.record == alert
    assert m.props.message_id == alert["alert_id"]
    assert m.props.delivery_mode == 2
    assert m.props.content_type == "application/json"
    assert m.props.headers["severity"] == alert["severity"]


# ------------------------------------------------------------------ the real flow


def write_incident_file(path: Path, service: str) -> None:
    """2 h of normal traffic (~2 req/s, log-normal latency), then a 10-minute ×6 latency burst, then 20 min normal."""
    rng = np.random.default_rng(7)
    burst = T0 + 7200.0
    events = normal_stream(
        rng,
        service,
        "gpt-4o-mini",
        7200.0 + 1800.0,
        latency_factor=lambda t: 6.0 if burst <= t < burst + 600.0 else 1.0,
    )
    offset = 0
    with path.open("wb") as f:
        for batch in batch_spans(events, max_spans=200):
            f.write(orjson.dumps(events_to_otlp_json(batch, index_offset=offset)) + b"\n")
            offset += len(batch)


@pytest.mark.integration
def test_flow_publishes_every_alert_with_routing_key_body_and_message_id(tmp_path: Path) -> None:
    service = unique_service()
    write_incident_file(tmp_path / "in.jsonl", service)
    settings = load_settings(
        output={"dir": tmp_path / "out", "console": False},
        rabbitmq={"url": URL},
        source={"type": "file", "path": tmp_path / "in.jsonl"},
    )
    with bound_queue(service) as queue:
        run_main(build_flow(settings))  # type: ignore[no-untyped-call]
        messages = drain(queue)

    def read(name: str) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in (tmp_path / "out" / name).read_bytes().splitlines()]

    alerts, anomalies = read("alerts.jsonl"), read("anomalies.jsonl")
    assert alerts, "the latency burst raised no alert"
    assert {a["service"] for a in alerts} == {service}

    # every alert of alerts.jsonl, exactly once (a clean run has no reason to duplicate)
    by_id = {m.props.message_id: m for m in messages}
    assert len(messages) == len(by_id) == len(alerts)
    for alert in alerts:
        assert_message_matches(by_id[alert["alert_id"]], alert)

    # dedup: within one incident (type + first_seen) a type is re-alerted only when severity escalates
    incidents: dict[tuple[str, str], list[int]] = {}
    for alert in alerts:
        incidents.setdefault((alert["anomaly_type"], alert["first_seen"]), []).append(
            list(Severity).index(Severity(alert["severity"]))
        )
    for key, ranks in incidents.items():
        assert ranks == sorted(set(ranks)), f"{key}: re-alerted without escalation: {ranks}"
    assert len(anomalies) >= len(alerts)


@pytest.mark.integration
def test_five_minute_burst_is_one_alert_and_escalation_realerts() -> None:
    service = unique_service()
    d = AlertDeduper(window_s=300)
    # a 5-minute burst of one anomaly type, every 10 s, all medium ...
    burst = [d.on_anomaly(anomaly(service, T0 + t, Severity.MEDIUM)) for t in range(0, 300, 10)]
    # ... then critical during the same incident (escalation), then medium again (no re-alert)
    escalated = d.on_anomaly(anomaly(service, T0 + 305.0, Severity.CRITICAL))
    after = d.on_anomaly(anomaly(service, T0 + 310.0, Severity.MEDIUM))
    alerts = [a for a in [*burst, escalated, after] if a is not None]
    assert len([a for a in burst if a is not None]) == 1 and escalated is not None and after is None

    with bound_queue(service) as queue:
        p = sink()
        p.write_batch(alerts)
        p.close()
        messages = drain(queue)

    assert [m.routing_key for m in messages] == [f"alert.medium.{service}", f"alert.critical.{service}"]
    first, second = (m.record for m in messages)
    assert first["occurrences"] == 1 and second["occurrences"] == 31
    assert first["first_seen"] == second["first_seen"]
    assert first["alert_id"] != second["alert_id"]
    for m, a in zip(messages, alerts, strict=True):
        assert_message_matches(m, orjson.loads(orjson.dumps(a.to_dict())))
    assert p.stats().published == 2


@pytest.mark.integration
def test_routing_filters_and_unroutable_alerts() -> None:
    service, other = unique_service(), unique_service()
    alerts = synthetic_alerts(service, 8) + synthetic_alerts(other, 4)  # 2 of each severity for `service`
    with bound_queue(service) as queue:
        p = sink(min_severity="high", services=["it-rmq-*"])
        p.write_batch(alerts)
        p.close()
        messages = drain(queue)
    assert sorted(m.routing_key.split(".")[1] for m in messages) == ["critical", "critical", "high", "high"]
    s = p.stats()
    # `other`'s high/critical alerts pass the filter but no queue is bound for them: unroutable, not retried
    assert (s.buffered, s.published, s.unroutable, s.failed, s.pending) == (6, 4, 2, 0, 0)


@pytest.mark.integration
def test_publish_rate_with_confirms() -> None:
    service = unique_service()
    alerts = synthetic_alerts(service, 2000)
    with bound_queue(service) as queue:
        p = sink(close_timeout_s=120.0)
        time.sleep(0.3)  # let the worker connect first: measure publishing, not the handshake
        t0 = time.perf_counter()
        p.write_batch(alerts)
        enqueue_s = time.perf_counter() - t0
        p.close()
        elapsed = time.perf_counter() - t0
        messages = drain(queue)
    rate = len(alerts) / elapsed
    print(f"\nrabbitmq: {len(alerts)} confirmed persistent publishes in {elapsed:.2f}s = {rate:.0f}/s")
    print(f"write_batch of {len(alerts)}: {enqueue_s * 1000:.2f} ms")
    assert {m.props.message_id for m in messages} == {a.alert_id for a in alerts}
    assert enqueue_s < 0.1
    assert rate > 50  # ~400/s measured: one fsync'd confirm at a time


# ------------------------------------------------------------------ broker down mid-stream


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_broker_restart_mid_stream_loses_nothing() -> None:
    service = unique_service()
    alerts = synthetic_alerts(service, 400)
    expected = {a.alert_id for a in alerts}
    slowest_write = 0.0

    def write(batch: list[AlertEvent]) -> None:
        nonlocal slowest_write
        t = time.perf_counter()
        p.write_batch(batch)
        slowest_write = max(slowest_write, time.perf_counter() - t)

    def write_slowly(items: list[AlertEvent]) -> None:
        for i in range(0, len(items), 5):
            write(items[i : i + 5])
            time.sleep(0.05)

    t_start = time.monotonic()
    with bound_queue(service) as queue:
        p = RabbitAlertSink(RabbitSettings(url=URL, close_timeout_s=40.0)).build("rabbitmq", 0, 1)
        try:
            write(alerts[:100])  # broker up
            deadline = time.monotonic() + 10
            while p.stats().published < 50 and time.monotonic() < deadline:
                time.sleep(0.02)
            # keep writing while the broker shuts down
            writer = threading.Thread(target=write_slowly, args=(alerts[100:200],))
            writer.start()
            t_down = time.monotonic()
            _services("down")
            down_s = time.monotonic() - t_down
            writer.join()
            write(alerts[200:300])  # broker down
            time.sleep(1.0)
            pending_while_down = p.stats().pending
            assert pending_while_down > 0
        finally:
            t_up = time.monotonic()
            _services("up")
            up_s = time.monotonic() - t_up
        write(alerts[300:])  # broker back
        t_close = time.monotonic()
        p.close()
        close_s = time.monotonic() - t_close
        messages = drain(queue)

    stats = p.stats()
    ids = [m.props.message_id for m in messages]
    print(
        f"\nbroker down {down_s:.1f}s, up {up_s:.1f}s, close {close_s:.1f}s, total {time.monotonic() - t_start:.1f}s; "
        f"{pending_while_down} pending while down; {len(ids)} messages for {len(expected)} alerts "
        f"({len(ids) - len(set(ids))} duplicates); slowest write_batch {slowest_write * 1000:.2f} ms; {stats}"
    )
    assert set(ids) == expected, f"missing {len(expected - set(ids))} alerts"
    for m in messages:  # a duplicate is the same alert under the same message_id
        assert m.record["alert_id"] == m.props.message_id
        assert m.routing_key == m.record["routing_key"]
    assert (stats.failed, stats.dropped, stats.pending) == (0, 0, 0)
    assert stats.published == len(expected)
    assert slowest_write < 0.05, "write_batch waited for the broker"


# ------------------------------------------------------------------ connection parameters (no broker needed)


def test_amqps_url_verifies_the_broker_host_name() -> None:
    params = connection_parameters(RabbitSettings(url="amqps://u:p@rabbit.example.com/prod"))
    assert params.port == 5671 and params.virtual_host == "prod"
    assert params.ssl_options is not None
    assert params.ssl_options.server_hostname == "rabbit.example.com"
    assert params.ssl_options.context.check_hostname
    assert params.connection_attempts == 1 and params.socket_timeout == 5.0


def test_url_query_overrides_our_defaults() -> None:
    params = connection_parameters(RabbitSettings(url="amqp://u:p@h:5673/?socket_timeout=1.5&heartbeat=10"))
    assert params.socket_timeout == 1.5 and params.heartbeat == 10 and params.ssl_options is None


def test_tls_files_need_an_amqps_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="amqps"):
        RabbitAlertSink(RabbitSettings(url="amqp://h/", ca_file=tmp_path / "ca.pem"))


def test_missing_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"rabbitmq\.url"):
        RabbitAlertSink(RabbitSettings())
