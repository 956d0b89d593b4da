"""Kafka ingestion on the real broker: spans made by the OpenTelemetry SDK, encoded as the Collector's
Kafka exporter does (otlp_proto / otlp_json), consumed by the flow from a 3-partition topic."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from sentinel.cli import main as sentinel_main
from sentinel.models import TelemetryEvent
from tests.flow.factories import T0, normal_stream
from tests.integration.conftest import BROKERS, consume_all

SPIKE = (T0 + 5400, T0 + 6000)


def sdk_spans(events: list[TelemetryEvent], service: str, with_http: bool = True) -> list[ReadableSpan]:
    """Record ``events`` as real SDK spans with current GenAI semantic-convention attributes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.genai", "1.0")
    for i, ev in enumerate(events):
        start = int((ev.timestamp - ev.latency_ms / 1000) * 1e9)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": ev.model,
            "gen_ai.response.model": f"{ev.model}-2024-08-06",
            "gen_ai.usage.input_tokens": ev.input_tokens,
            "gen_ai.usage.output_tokens": ev.output_tokens,
            "gen_ai.response.finish_reasons": ["stop"],
        }
        span = tracer.start_span(f"chat {ev.model}", kind=SpanKind.CLIENT, start_time=start, attributes=attrs)
        if ev.is_error:
            span.set_attribute("error.type", "timeout")
            span.set_status(Status(StatusCode.ERROR, "timeout"))
        span.end(end_time=int(ev.timestamp * 1e9))
        if with_http and i % 25 == 0:  # the app's own HTTP spans travel in the same batches: not LLM calls
            http = tracer.start_span(
                "POST /chat",
                kind=SpanKind.SERVER,
                start_time=start,
                attributes={"http.request.method": "POST", "http.route": "/chat"},
            )
            http.end(end_time=int(ev.timestamp * 1e9) + 1000)
    provider.shutdown()
    return sorted(exporter.get_finished_spans(), key=lambda s: s.end_time or 0)


def collector_payloads(spans: list[ReadableSpan], encoding: str, batch: int = 100) -> list[bytes]:
    """Batches encoded like the Collector's Kafka exporter: otlp_proto bytes, or otlp_json (hex ids)."""
    out = []
    for i in range(0, len(spans), batch):
        req = encode_spans(spans[i : i + batch])
        if encoding == "otlp_proto":
            out.append(req.SerializeToString())
        else:
            d = json_format.MessageToDict(req)  # camelCase, int64 as strings — as pdata's JSON marshaler

            def hexify(node: Any) -> Any:
                if isinstance(node, dict):
                    return {
                        k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hexify(v))
                        for k, v in node.items()
                    }
                if isinstance(node, list):
                    return [hexify(v) for v in node]
                return node

            out.append(orjson.dumps(hexify(d)))
    return out


def produce(topic: str, payloads: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer({"bootstrap.servers": ",".join(BROKERS), "message.max.bytes": 8 * 1024 * 1024})
    for key, value in payloads:
        p.produce(topic, value=value, key=key)
    assert p.flush(30) == 0


def workload() -> tuple[dict[str, list[TelemetryEvent]], int]:
    rng = np.random.default_rng(99)
    by_service = {
        "chat": normal_stream(rng, "chat", "gpt-4o", 7200, rate=1.5),
        "search": normal_stream(
            rng,
            "search",
            "gpt-4o-mini",
            7200,
            rate=1.5,
            latency_factor=lambda t: 6.0 if SPIKE[0] <= t < SPIKE[1] else 1.0,
        ),
    }
    return by_service, sum(len(v) for v in by_service.values())


def backtest(input_: str, out: Path) -> dict[str, Any]:
    assert sentinel_main(["backtest", "--input", input_, "--output", str(out), "-q"]) == 0
    report: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    return report


@pytest.fixture(autouse=True)
def _brokers_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_KAFKA__BROKERS", ",".join(BROKERS))


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_collector_encoded_spans_on_three_partitions(encoding: str, kafka_topic: Any, tmp_path: Path) -> None:
    topic = kafka_topic(partitions=3)
    by_service, n_llm = workload()
    payloads: list[tuple[bytes | None, bytes]] = []
    n_http = 0
    file_lines: list[bytes] = []
    for service, events in by_service.items():
        spans = sdk_spans(events, service)
        n_http += sum(1 for s in spans if s.kind == SpanKind.SERVER)
        # keyed by service so each service's spans stay ordered within one partition
        payloads += [(service.encode(), p) for p in collector_payloads(spans, encoding)]
        file_lines += collector_payloads(spans, "otlp_json")
    produce(topic, payloads)

    report = backtest(f"kafka://{topic}", tmp_path / "kafka")
    c = report["counters"]
    assert c["events_valid"] == n_llm
    assert c["spans_skipped"] == n_http
    assert c["spans"] == n_llm + n_http
    assert report["dead_letters"] == 0
    anomalies = [orjson.loads(x) for x in (tmp_path / "kafka" / "anomalies.jsonl").read_bytes().splitlines()]
    spike = [a for a in anomalies if a["service"] == "search" and a["anomaly_type"].startswith("latency")]
    assert spike, "latency incident not detected from Kafka input"
    assert not [a for a in anomalies if a["service"] == "chat" and a["anomaly_type"].startswith("latency")]

    # the same spans from a file give the same anomalies
    f = tmp_path / "same.jsonl"
    f.write_bytes(b"\n".join(file_lines) + b"\n")
    from_file = backtest(str(f), tmp_path / "file")
    file_anoms = [orjson.loads(x) for x in (tmp_path / "file" / "anomalies.jsonl").read_bytes().splitlines()]
    assert from_file["counters"]["events_valid"] == n_llm
    assert sorted(a["id"] for a in anomalies) == sorted(a["id"] for a in file_anoms)


POISON: dict[str, bytes] = {
    "truncated_protobuf": b"",  # filled below
    "invalid_utf8": b'{"resourceSpans": [\xff\xfe]}',
    "wrong_shape_json": b'{"resourceSpans": {"not": "a list"}}',
    "wrong_types": orjson.dumps({"service": "s", "model": "gpt-4o", "latency_ms": "slow", "timestamp": T0}),
    "negative_tokens": orjson.dumps(
        {"service": "s", "model": "gpt-4o", "latency_ms": 100.0, "timestamp": T0, "input_tokens": -5}
    ),
    "huge_latency": orjson.dumps({"service": "s", "model": "gpt-4o", "latency_ms": 1e12, "timestamp": T0}),
    "missing_model": orjson.dumps({"service": "s", "latency_ms": 100.0, "timestamp": T0}),
    "five_mb": b'{"service": "s", "model": "gpt-4o", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}',
    "empty": b"",
}


def test_poison_corpus_goes_to_dlq_topic_and_flow_keeps_running(kafka_topic: Any, tmp_path: Path) -> None:
    topic = kafka_topic(partitions=3)
    dlq = f"{topic}.dlq"
    good_events = normal_stream(np.random.default_rng(5), "chat", "gpt-4o", 600, rate=1.0)
    good = collector_payloads(sdk_spans(good_events, "chat", with_http=False), "otlp_proto", batch=50)
    poison = dict(POISON)
    poison["truncated_protobuf"] = good[0][: len(good[0]) // 2]
    # interleave poison among good messages, all on partition-spreading null keys
    msgs: list[tuple[bytes | None, bytes]] = [(None, g) for g in good]
    for i, p in enumerate(poison.values()):
        msgs.insert(1 + 2 * i, (None, p))
    produce(topic, msgs)

    from sentinel.config import load_settings

    settings = load_settings(
        output={"dir": tmp_path, "console": False},
        source={"type": "kafka"},
        kafka={"brokers": BROKERS, "topics": [topic], "tail": False},
    )
    from bytewax.testing import run_main

    from dataflows.sentinel import build_flow
    from sentinel import metrics

    before = metrics.summary()
    run_main(build_flow(settings))
    after = metrics.summary()

    dead = consume_all(dlq, expect=len(poison))
    assert len(dead) == len(poison), [m.headers() for m in dead]
    by_payload = {m.value(): dict(m.headers() or []) for m in dead}
    for name, payload in poison.items():
        assert payload in by_payload, f"{name} not dead-lettered with its original bytes"
        h = by_payload[payload]
        assert h["sentinel.error"], name
        assert h["sentinel.stage"] in (b"decode", b"validate"), name
        assert h["sentinel.source.topic"] == topic.encode()
        assert int(h["sentinel.source.partition"]) in (0, 1, 2)
        assert int(h["sentinel.source.offset"]) >= 0
    reasons = {name: by_payload[p]["sentinel.error"].decode() for name, p in poison.items()}
    assert "latency" in reasons["huge_latency"]
    assert "model" in reasons["missing_model"]
    assert "token" in reasons["negative_tokens"]

    # in = out + dlq + skipped, from the run's own counters
    valid = after["events_valid"] - before["events_valid"]
    assert valid == len(good_events)
    assert after["messages"] - before["messages"] == len(good) + len(poison)


def test_produce_cli_round_trips_generated_file(kafka_topic: Any, tmp_path: Path) -> None:
    topic = kafka_topic(partitions=3)
    data = tmp_path / "g.jsonl.gz"
    from sentinel import generate

    with warnings.catch_warnings():  # half an hour leaves no room for incidents: expected
        warnings.simplefilter("ignore", UserWarning)
        generate.write(data, hours=0.5, seed=3, rate_scale=0.2)
    lines = sum(1 for _ in __import__("gzip").open(data))
    assert (
        sentinel_main(
            [
                "produce",
                "--input",
                str(data),
                "--topic",
                topic,
                "--format",
                "otlp_proto",
                "-q",
                "--brokers",
                ",".join(BROKERS),
            ]
        )
        == 0
    )
    got = consume_all(topic, expect=lines)
    assert len(got) == lines
    via_kafka = backtest(f"kafka://{topic}", tmp_path / "bt")
    via_file = backtest(str(data), tmp_path / "bt_file")
    labels = orjson.loads(Path(f"{data}.labels.json").read_bytes())
    assert via_kafka["counters"]["events_valid"] == via_file["counters"]["events_valid"] == labels["events"]
    assert via_kafka["counters"]["messages"] == lines


def test_anomalies_are_mirrored_to_a_kafka_topic(kafka_topic: Any, tmp_path: Path) -> None:
    topic, mirror = kafka_topic(partitions=2), kafka_topic(partitions=1, prefix="anomalies")
    by_service, _ = workload()
    payloads: list[tuple[bytes | None, bytes]] = []
    for service, events in by_service.items():
        payloads += [(service.encode(), p) for p in collector_payloads(sdk_spans(events, service), "otlp_proto")]
    produce(topic, payloads)

    from bytewax.testing import run_main

    from dataflows.sentinel import build_flow
    from sentinel.config import load_settings

    settings = load_settings(
        output={"dir": tmp_path, "console": False},
        source={"type": "kafka"},
        kafka={"brokers": BROKERS, "topics": [topic], "tail": False, "anomalies_topic": mirror},
    )
    run_main(build_flow(settings))
    written = [orjson.loads(x) for x in (tmp_path / "anomalies.jsonl").read_bytes().splitlines()]
    assert written, "the workload's incident must produce anomalies"
    got = consume_all(mirror, expect=len(written))
    assert sorted(orjson.loads(m.value())["id"] for m in got) == sorted(a["id"] for a in written)
    assert all(
        m.key().decode() == f"{orjson.loads(m.value())['service']}|{orjson.loads(m.value())['model']}" for m in got
    )


def test_a_dead_letter_too_large_for_the_dlq_topic_is_kept_without_its_payload(kafka_topic: Any) -> None:
    import os

    from sentinel.models import DeadLetter
    from sentinel.sinks.kafka import PAYLOAD_DROPPED, KafkaRecordSink, dead_letter_record

    topic = kafka_topic(prefix="dlq-small", max_message_bytes=100_000)
    part = KafkaRecordSink(BROKERS, topic, channel="dlq", keep_without_payload=True).build("dlq", 0, 1)
    small = DeadLetter(stage="decode", error="bad", payload=b"x" * 100, source="in/0/1")
    big = DeadLetter(stage="decode", error="too big", payload=os.urandom(500_000), source="in/0/2")  # incompressible
    part.write_batch([dead_letter_record(small), dead_letter_record(big)])
    part.close()
    got = {dict(m.headers())["sentinel.source.offset"]: m for m in consume_all(topic, expect=2)}
    assert set(got) == {b"1", b"2"}
    assert got[b"1"].value() == small.payload and PAYLOAD_DROPPED not in dict(got[b"1"].headers())
    kept = dict(got[b"2"].headers())
    assert not got[b"2"].value()
    assert kept["sentinel.error"] == b"too big"
    assert kept[PAYLOAD_DROPPED] == b"500000 bytes; larger than the topic's limit of 100000 bytes"


def test_a_dead_letter_the_broker_refuses_is_sent_again_without_its_payload(
    kafka_topic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from sentinel.models import DeadLetter
    from sentinel.sinks import kafka as kafka_sink

    topic = kafka_topic(prefix="dlq-refused", max_message_bytes=100_000)
    monkeypatch.setattr(kafka_sink, "topic_max_message_bytes", lambda conf, t: 8 * 1024 * 1024)  # a wrong guess
    part = kafka_sink.KafkaRecordSink(BROKERS, topic, channel="dlq", keep_without_payload=True).build("dlq", 0, 1)
    big = DeadLetter(stage="decode", error="too big", payload=os.urandom(500_000), source="in/0/7")
    part.write_batch([kafka_sink.dead_letter_record(big)])
    part.close()
    (msg,) = consume_all(topic, expect=1)
    headers = dict(msg.headers())
    assert not msg.value() and headers["sentinel.source.offset"] == b"7"
    assert headers[kafka_sink.PAYLOAD_DROPPED].startswith(b"500000 bytes; delivery failed")
