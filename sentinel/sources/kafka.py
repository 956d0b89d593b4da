"""Kafka input: Bytewax's ``KafkaSource`` with per-partition start/stop offsets and a dead-letter stream.

Bytewax 0.21's source takes one ``starting_offset`` for every partition and
stops only at partition EOF. Backtests need more: start each partition at its
own offset (``--from-offset``, or ``offsets_for_times`` for ``--from-time``) and
stop at the end offsets the topic had when the replay started, so a topic that
keeps growing still yields a bounded run. :class:`SentinelKafkaSource` adds
both, still snapshotting offsets through Bytewax recovery (a resumed run
ignores the start offsets: recovery state wins).

Every Kafka error surfaced by the consumer becomes a dead letter
(``stage="source"``) — Bytewax's ``errs`` stream would otherwise drop them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.connectors.kafka import _KafkaSourcePartition as _BwPartition
from bytewax.dataflow import Dataflow, Stream, operator
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from sentinel.config import KafkaSettings
from sentinel.models import DeadLetter
from sentinel.sources.file import RawMessage
from sentinel.sources.shutdown import shutdown_requested

__all__ = [
    "KafkaIn",
    "SentinelKafkaSource",
    "end_offsets",
    "kafka_input",
    "offsets_for_time",
    "part_key",
    "partition_config",
]

PartitionOffsets = Mapping[str, int]  # "<partition>-<topic>" (Bytewax's partition key) → offset


PREFETCH_KBYTES = 32_768  # per partition consumer; kafka.config can override it


def part_key(topic: str, partition: int) -> str:
    """Bytewax's key for a Kafka partition."""
    return f"{partition}-{topic}"


def _consumer(brokers: list[str], config: Mapping[str, str]) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(brokers),
        "group.id": "sentinel-offsets",
        "enable.auto.commit": "false",
    }
    conf.update(config)
    return Consumer(conf)


def _partitions(c: Consumer, topics: Iterable[str], timeout: float) -> list[TopicPartition]:
    md = c.list_topics(timeout=timeout)
    out: list[TopicPartition] = []
    for t in topics:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None:
            raise RuntimeError(f"Kafka topic {t!r} not found on {c}: {tm.error if tm else 'missing'}")
        out.extend(TopicPartition(t, p) for p in sorted(tm.partitions))
    return out


def end_offsets(
    brokers: list[str], topics: list[str], config: Mapping[str, str] | None = None, timeout: float = 10.0
) -> dict[str, int]:
    """The high watermark of every partition now (where a bounded replay stops)."""
    c = _consumer(brokers, config or {})
    try:
        out = {}
        for tp in _partitions(c, topics, timeout):
            _low, high = c.get_watermark_offsets(tp, timeout=timeout)
            out[part_key(tp.topic, tp.partition)] = high
        return out
    finally:
        c.close()


def offsets_for_time(
    brokers: list[str], topics: list[str], ts_ms: int, config: Mapping[str, str] | None = None, timeout: float = 10.0
) -> dict[str, int]:
    """Per partition, the first offset whose broker timestamp is ≥ ``ts_ms`` (end offset if none)."""
    c = _consumer(brokers, config or {})
    try:
        tps = [TopicPartition(tp.topic, tp.partition, ts_ms) for tp in _partitions(c, topics, timeout)]
        out = {}
        for tp in c.offsets_for_times(tps, timeout=timeout):
            off = tp.offset
            if off < 0:  # no message at or after ts: start at the end
                _low, off = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            out[part_key(tp.topic, tp.partition)] = off
        return out
    finally:
        c.close()


class _Partition(_BwPartition):
    """Bytewax's partition, stopping at a fixed end offset and on graceful shutdown."""

    def __init__(self, *args: Any, stop_at: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_at = stop_at
        if stop_at is not None and self._offset >= 0 and self._offset >= stop_at:
            self._eof = True

    def next_batch(self) -> list[Any]:
        if shutdown_requested():
            raise StopIteration
        if self._stop_at is not None and self._stop_at <= 0:
            raise StopIteration
        batch: list[Any] = super().next_batch()
        if self._stop_at is None:
            return batch
        kept = [m for m in batch if _offset_of(m) < self._stop_at]
        if len(kept) < len(batch) or (self._offset >= 0 and self._offset >= self._stop_at):
            self._eof = True
        return kept


def _offset_of(m: Any) -> int:
    msg = m.msg if isinstance(m, KafkaError) else m
    off = msg.offset
    return int(off) if off is not None else -1


def partition_config(brokers: Iterable[str], tail: bool, add_config: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka settings of one partition's consumer (``kafka.config`` entries win)."""
    config: dict[str, Any] = {
        "group.id": "BYTEWAX_IGNORED",
        "enable.auto.commit": "false",
        "bootstrap.servers": ",".join(brokers),
        "enable.partition.eof": str(not tail),
        "statistics.interval.ms": 1000,
        # Bytewax runs one consumer per partition, each prefetching up to
        # queued.max.messages.kbytes (librdkafka default 64 MB): 4 partitions held
        # ~256 MB before a single event was processed. 32 MB per partition is still
        # ~80 Collector batches ahead of the flow (16 MB starved a decode-only flow).
        "queued.max.messages.kbytes": PREFETCH_KBYTES,
    }
    config.update(add_config)
    return config


class SentinelKafkaSource(KafkaSource):
    """``KafkaSource`` with optional per-partition start offsets and end offsets."""

    def __init__(
        self,
        brokers: list[str],
        topics: list[str],
        *,
        tail: bool = True,
        starting_offset: int = OFFSET_BEGINNING,
        add_config: dict[str, str] | None = None,
        batch_size: int = 1000,
        start_offsets: PartitionOffsets | None = None,
        stop_offsets: PartitionOffsets | None = None,
    ) -> None:
        super().__init__(brokers, topics, tail, starting_offset, add_config, batch_size, raise_on_errors=False)
        self._start_offsets = dict(start_offsets or {})
        self._stop_offsets = dict(stop_offsets or {})

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        idx, topic = for_part.split("-", 1)
        config = partition_config(self._brokers, self._tail, self._add_config)
        start = self._start_offsets.get(for_part, self._starting_offset)
        return _Partition(
            step_id,
            config,
            topic,
            int(idx),
            start,
            resume_state,
            self._batch_size,
            False,
            stop_at=self._stop_offsets.get(for_part),
        )


@dataclass(frozen=True)
class KafkaIn:
    messages: Stream[RawMessage]
    dead: Stream[DeadLetter]


def _source_ref(m: KafkaSourceMessage[Any, Any]) -> str:
    return f"{m.topic}/{m.partition}/{m.offset}"


def _to_raw(m: Any) -> RawMessage:
    return RawMessage(m.value if m.value is not None else b"", _source_ref(m))


def _to_dead(e: Any) -> DeadLetter:
    m = e.msg
    value = m.value if isinstance(m.value, bytes) else b""
    return DeadLetter(stage="source", error=f"kafka: {e.err}", payload=value, source=_source_ref(m))


@operator
def kafka_input(
    step_id: str,
    flow: Dataflow,
    ks: KafkaSettings,
    *,
    tail: bool | None = None,
    start_offsets: PartitionOffsets | None = None,
    stop_offsets: PartitionOffsets | None = None,
) -> KafkaIn:
    """Consume ``ks.topics``; Kafka errors are routed to dead letters, never dropped."""
    src = SentinelKafkaSource(
        ks.brokers,
        ks.topics,
        tail=ks.tail if tail is None else tail,
        starting_offset=OFFSET_BEGINNING if ks.starting_offset == "beginning" else OFFSET_END,
        add_config=ks.librdkafka_config(),
        batch_size=ks.batch_size,
        start_offsets=start_offsets,
        stop_offsets=stop_offsets,
    )
    raw = op.input("source", flow, src)
    split = op.branch("split", raw, lambda x: isinstance(x, KafkaSourceMessage))
    return KafkaIn(
        messages=op.map("raw", split.trues, _to_raw),
        dead=op.map("errors", split.falses, _to_dead),
    )
