"""Kafka sinks: the dead-letter topic and the optional anomaly mirror.

Bytewax 0.21's ``KafkaSink`` calls ``produce`` in a loop and lets librdkafka's
``BufferError`` (local queue full) escape under load, crashing the worker. Our
partition instead serves delivery callbacks and retries until the queue has
room, so back-pressure slows the flow instead of killing it; ``close`` flushes.
Delivery failures are counted and logged, never ignored.

The DLQ keeps every dead letter even when its bytes do not fit: messages up to
``validation.max_message_bytes`` (4 MB) are read, while a topic takes
``max.message.bytes`` (1 MB by default) per record *batch*. The DLQ partition reads
the topic's limit at start, keeps its producer's batches under it, and sends a dead
letter whose payload would not fit with an empty value and the reason in a
``sentinel.payload_dropped`` header; a record the broker still refuses is sent
again the same way.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from sentinel import metrics
from sentinel.models import AnomalyEvent, DeadLetter
from sentinel.sinks.jsonl import dumps

__all__ = ["KafkaRecord", "KafkaRecordSink", "anomaly_record", "dead_letter_record", "produce_blocking"]

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]
KafkaRecord = tuple[bytes | None, bytes, Headers]  # key, value, headers


def dead_letter_record(d: DeadLetter) -> KafkaRecord:
    """DLQ record: the original bytes, with the reason and origin as headers (DESIGN.md ⚑ Sinks)."""
    headers: Headers = [("sentinel.error", d.error.encode()[:4096]), ("sentinel.stage", d.stage.encode())]
    if d.source:
        parts = d.source.rsplit("/", 2)
        if len(parts) == 3 and parts[1].isdigit():
            headers += [
                ("sentinel.source.topic", parts[0].encode()),
                ("sentinel.source.partition", parts[1].encode()),
                ("sentinel.source.offset", parts[2].encode()),
            ]
        else:
            headers.append(("sentinel.source", d.source.encode()))
    headers += [(k, v.encode()) for k, v in d.headers.items()]
    return (None, d.payload, headers)


def anomaly_record(a: AnomalyEvent) -> KafkaRecord:
    return (a.key.encode(), dumps(a.to_dict()), [("sentinel.anomaly_type", a.anomaly_type.value.encode())])


def produce_blocking(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None = None,
    headers: Headers | None = None,
    on_delivery: Any = None,
    deadline: float | None = None,
) -> None:
    """``produce`` that waits for room in librdkafka's local queue instead of raising ``BufferError``.

    ``deadline`` (``time.monotonic()`` seconds): give up with ``TimeoutError`` after it.
    """
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"librdkafka's queue for {topic} stayed full") from None
            producer.poll(0.05)  # serve delivery reports, which frees queue space


PAYLOAD_DROPPED = "sentinel.payload_dropped"
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # the broker's default for topics that do not set it
_RECORD_OVERHEAD = 1024  # batch and record headers beside key, value and our headers


def topic_max_message_bytes(conf: dict[str, Any], topic: str, timeout_s: float = 10.0) -> int:
    """The topic's ``max.message.bytes``; for a topic not made yet (auto-created on first write) the
    broker's ``message.max.bytes``, which it will inherit; Kafka's default when neither can be read."""
    admin_conf = {k: v for k, v in conf.items() if k.startswith(("bootstrap.", "security.", "sasl.", "ssl."))}
    admin = AdminClient(admin_conf)  # kept referenced until the answers are in
    errors = []
    try:
        broker = str(next(iter(admin.list_topics(timeout=timeout_s).brokers)))
    except Exception as e:  # unreachable cluster: the first write will say more
        broker, errors = "", [e]
    asks = [(ConfigResource.Type.TOPIC, topic, "max.message.bytes")]
    if broker:
        asks.append((ConfigResource.Type.BROKER, broker, "message.max.bytes"))
    for kind, name, key in asks:
        try:
            fut = admin.describe_configs([ConfigResource(kind, name)])
            for f in fut.values():
                return int(f.result(timeout=timeout_s)[key].value)
        except Exception as e:  # no such topic yet, no DescribeConfigs permission…
            errors.append(e)
    log.warning(
        "kafka: cannot read the record size limit for %s (%s); assuming %d",
        topic,
        "; ".join(map(str, errors)),
        KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    )
    return KAFKA_DEFAULT_MAX_MESSAGE_BYTES


class _Partition(StatelessSinkPartition[KafkaRecord]):
    def __init__(
        self, conf: dict[str, Any], topic: str, channel: str, flush_timeout_s: float, keep_without_payload: bool
    ) -> None:
        self._topic = topic
        self._channel = channel
        self._flush_timeout = flush_timeout_s
        self._keep_without_payload = keep_without_payload
        self._max_record = 0  # 0: no limit of our own
        if keep_without_payload:
            limit = topic_max_message_bytes(conf, topic)
            self._max_record = limit - _RECORD_OVERHEAD
            conf = {**conf, "batch.size": min(int(conf.get("batch.size", 1_000_000)), self._max_record)}
        self._producer = Producer(conf)

    def _produce(self, key: bytes | None, value: bytes, headers: Headers) -> None:
        on_delivery: Callable[[Any, Any], None] = self._on_delivery
        if self._keep_without_payload:  # a delivery report carries no headers: keep them for a resend
            on_delivery = functools.partial(self._on_delivery, headers=headers)
        try:
            produce_blocking(self._producer, self._topic, value, key, headers, on_delivery)
        except KafkaException as e:  # e.g. larger than the producer's message.max.bytes
            self._failed(key, value, headers, f"refused: {e}")

    def _on_delivery(self, err: Any, msg: Any, headers: Headers | None = None) -> None:
        if err is None:
            metrics.SINK_RECORDS.labels(self._channel, "published").inc()
        else:
            self._failed(msg.key(), msg.value() or b"", headers or [], f"delivery failed: {err}")

    def _failed(self, key: bytes | None, value: bytes, headers: Headers, reason: str) -> None:
        if self._keep_without_payload and value and all(k != PAYLOAD_DROPPED for k, _ in headers):
            metrics.SINK_RECORDS.labels(self._channel, "payload_dropped").inc()
            log.error(
                "kafka %s to %s: %s; sending it again without its %d-byte payload",
                self._channel,
                self._topic,
                reason,
                len(value),
            )
            self._produce(key, b"", [*headers, (PAYLOAD_DROPPED, f"{len(value)} bytes; {reason}".encode())])
            return
        metrics.SINK_RECORDS.labels(self._channel, "failed").inc()
        log.error("kafka %s to %s: %s", self._channel, self._topic, reason)

    def write_batch(self, items: list[KafkaRecord]) -> None:
        limit = self._max_record
        for key, value, headers in items:
            if limit and len(value) + len(key or b"") + sum(len(k) + len(v or b"") for k, v in headers) > limit:
                self._failed(key, value, headers, f"larger than the topic's limit of {limit + _RECORD_OVERHEAD} bytes")
            else:
                self._produce(key, value, headers)
        self._producer.poll(0)

    def close(self) -> None:
        remaining = self._producer.flush(self._flush_timeout)
        if remaining:
            metrics.SINK_RECORDS.labels(self._channel, "failed").inc(remaining)
            log.error("kafka sink %s closed with %d undelivered messages", self._topic, remaining)


class KafkaRecordSink(DynamicSink[KafkaRecord]):
    """Produce ``(key, value, headers)`` records to ``topic`` from every worker.

    ``keep_without_payload`` (the DLQ): a record the topic refuses is sent again with an
    empty value and a ``sentinel.payload_dropped`` header saying why.
    """

    def __init__(
        self,
        brokers: list[str],
        topic: str,
        config: dict[str, str] | None = None,
        *,
        channel: str,
        flush_timeout_s: float = 30.0,
        keep_without_payload: bool = False,
    ) -> None:
        self._conf: dict[str, Any] = {
            "bootstrap.servers": ",".join(brokers),
            "linger.ms": 20,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "message.max.bytes": 8 * 1024 * 1024,
        }
        self._conf.update(config or {})
        self._topic = topic
        self._channel = channel
        self._flush_timeout = flush_timeout_s
        self._keep_without_payload = keep_without_payload

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(dict(self._conf), self._topic, self._channel, self._flush_timeout, self._keep_without_payload)
