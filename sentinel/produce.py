"""``sentinel produce``: load a telemetry file into a Kafka topic, encoded as the Collector would.

Input: OTLP JSON lines (``.jsonl`` / ``.jsonl.gz``, the Collector file-exporter
format that ``sentinel generate`` writes) or native event JSON lines. Output
formats mirror the Collector's Kafka exporter encodings: ``otlp_proto`` (the
exporter's default: a serialised ``ExportTraceServiceRequest`` per message),
``otlp_json``, or ``native`` (one event JSON per message).
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from confluent_kafka import Producer
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sentinel.sinks.kafka import produce_blocking
from sentinel.sources.file import JsonLinesSource, RawMessage

__all__ = ["Format", "hex_ids_to_base64", "otlp_json_to_proto", "produce_file"]

Format = Literal["otlp_proto", "otlp_json", "native"]
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def hex_ids_to_base64(node: Any) -> Any:
    """OTLP JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes fields."""
    if isinstance(node, dict):
        return {
            k: (
                base64.b64encode(bytes.fromhex(v)).decode()
                if k in _ID_KEYS and isinstance(v, str) and v
                else hex_ids_to_base64(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [hex_ids_to_base64(v) for v in node]
    return node


def otlp_json_to_proto(obj: dict[str, Any]) -> bytes:
    """Re-encode one OTLP JSON request as protobuf bytes (lossless for spans and attributes)."""
    msg = ExportTraceServiceRequest()
    json_format.ParseDict(hex_ids_to_base64(obj), msg, ignore_unknown_fields=True)
    return bytes(msg.SerializeToString())


def _read(path: Path) -> Iterator[RawMessage]:
    part = JsonLinesSource(path, batch_size=500).build_part("produce", str(path), None)
    try:
        while True:
            try:
                yield from part.next_batch()
            except StopIteration:
                return
    finally:
        part.close()


def _encode(line: bytes, fmt: Format) -> list[bytes]:
    if fmt == "otlp_json":
        return [line]
    obj = orjson.loads(line)
    is_otlp = isinstance(obj, dict) and ("resourceSpans" in obj or "resource_spans" in obj)
    if fmt == "otlp_proto":
        if not is_otlp:
            raise ValueError("native events cannot be re-encoded as OTLP protobuf; use --format native")
        return [otlp_json_to_proto(obj)]
    if is_otlp:
        raise ValueError("OTLP input cannot be produced as native events; use --format otlp_json or otlp_proto")
    return [orjson.dumps(o) for o in (obj if isinstance(obj, list) else [obj])]


def produce_file(
    path: Path,
    topic: str,
    brokers: list[str],
    fmt: Format = "otlp_proto",
    config: dict[str, str] | None = None,
    progress: bool = True,
) -> int:
    """Produce every line of ``path`` to ``topic``; returns the number of Kafka messages delivered."""
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(brokers),
        "linger.ms": 50,
        "compression.type": "lz4",
        "enable.idempotence": True,
        "message.max.bytes": 8 * 1024 * 1024,
    }
    conf.update(config or {})
    producer = Producer(conf)
    failed: list[str] = []
    delivered = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failed.append(str(err))
        else:
            delivered += 1

    sent = 0
    t0 = last = time.monotonic()
    for raw in _read(path):
        for value in _encode(raw.payload, fmt):
            produce_blocking(producer, topic, value, on_delivery=on_delivery)
            sent += 1
        now = time.monotonic()
        if progress and now - last > 0.5:
            last = now
            sys.stderr.write(f"\rproduce: {sent:,} messages → {topic} ({sent / (now - t0):,.0f}/s)")
    remaining = producer.flush(60)
    if progress:
        sys.stderr.write(f"\rproduce: {delivered:,} messages delivered to {topic} in {time.monotonic() - t0:.1f}s\n")
    if remaining or failed:
        raise RuntimeError(
            f"{remaining} messages not delivered, {len(failed)} failed"
            + (f" (first error: {failed[0]})" if failed else "")
        )
    return delivered
