"""Kafka sinks: the dead-letter topic and the optional anomaly mirror.

Bytewax 0.21's ``KafkaSink`` calls ``produce`` in a loop and lets librdkafka's
``BufferError`` (local queue full) escape under load, crashing the worker. Our
partition instead serves delivery callbacks and retries until the queue has
room, so back-pressure slows the flow instead of killing it; ``close`` flushes.
Delivery failures are counted and logged, never ignored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaException, Producer

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
) -> None:
    """``produce`` that waits for room in librdkafka's local queue instead of raising ``BufferError``."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)  # serve delivery reports, which frees queue space


class _Partition(StatelessSinkPartition[KafkaRecord]):
    def __init__(self, conf: dict[str, Any], topic: str, channel: str, flush_timeout_s: float) -> None:
        self._producer = Producer(conf)
        self._topic = topic
        self._channel = channel
        self._flush_timeout = flush_timeout_s

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            metrics.SINK_RECORDS.labels(self._channel, "failed").inc()
            log.error("kafka delivery to %s failed: %s", self._topic, err)
        else:
            metrics.SINK_RECORDS.labels(self._channel, "published").inc()

    def write_batch(self, items: list[KafkaRecord]) -> None:
        for key, value, headers in items:
            try:
                produce_blocking(self._producer, self._topic, value, key, headers, self._on_delivery)
            except KafkaException as e:  # e.g. message larger than message.max.bytes
                metrics.SINK_RECORDS.labels(self._channel, "failed").inc()
                log.error("kafka produce to %s refused: %s", self._topic, e)
        self._producer.poll(0)

    def close(self) -> None:
        deadline = time.monotonic() + self._flush_timeout
        remaining = self._producer.flush(self._flush_timeout)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(1.0)
        if remaining:
            metrics.SINK_RECORDS.labels(self._channel, "failed").inc(remaining)
            log.error("kafka sink %s closed with %d undelivered messages", self._topic, remaining)


class KafkaRecordSink(DynamicSink[KafkaRecord]):
    """Produce ``(key, value, headers)`` records to ``topic`` from every worker."""

    def __init__(
        self,
        brokers: list[str],
        topic: str,
        config: dict[str, str] | None = None,
        *,
        channel: str,
        flush_timeout_s: float = 30.0,
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

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(dict(self._conf), self._topic, self._channel, self._flush_timeout)
