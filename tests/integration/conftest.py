"""Fixtures for tests against the real services started by scripts/services.sh (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BROKERS = ["127.0.0.1:9092"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_admin() -> AdminClient:
    admin = AdminClient({"bootstrap.servers": ",".join(BROKERS)})
    try:
        admin.list_topics(timeout=10)
    except Exception as e:  # pragma: no cover - environment problem, made loud
        pytest.fail(f"Kafka is not reachable on {BROKERS}: {e} — start it with `make services-up`")
    return admin


@pytest.fixture
def kafka_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Factory: a fresh, uniquely named topic (deleted afterwards)."""
    made: list[str] = []

    def make(partitions: int = 1, prefix: str = "test", max_message_bytes: int = 8 * 1024 * 1024) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        futures = kafka_admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=1,
                    # retention off: tests replay months-old event times as broker timestamps
                    config={"max.message.bytes": str(max_message_bytes), "retention.ms": "-1"},
                )
            ]
        )
        futures[name].result(timeout=30)
        made.append(name)
        return name

    yield make
    if made:
        for f in kafka_admin.delete_topics(made, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                f.result(timeout=30)


def consume_all(topic: str, timeout_s: float = 30.0, expect: int | None = None) -> list[Any]:
    """Read a topic from the beginning until ``expect`` messages or every partition's end."""
    c = Consumer(
        {
            "bootstrap.servers": ",".join(BROKERS),
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    md = c.list_topics(topic, timeout=10).topics[topic]
    parts = sorted(md.partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[Any] = []
    at_end: set[int] = set()
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                at_end.add(m.partition())
                if len(at_end) == len(parts) and (expect is None or len(out) >= expect):
                    break
            continue
        out.append(m)
        if expect is not None and len(out) >= expect:
            break
    c.close()
    return out
