"""Smoke tests for the local services started by ``scripts/services.sh up``.

They assume Kafka (127.0.0.1:9092), RabbitMQ (127.0.0.1:5672, guest/guest) and
VictoriaMetrics (http://127.0.0.1:8428) are running; a service that cannot be reached
fails the test with a message naming the service and the command to start it (no skip).
Every test uses its own uniquely named topic / queue / measurement, so runs never
interfere and nothing needs cleaning between runs (topics and queues are deleted).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

KAFKA = os.environ.get("SENTINEL_TEST_KAFKA", "127.0.0.1:9092")
RABBITMQ_HOST = os.environ.get("SENTINEL_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("SENTINEL_TEST_RABBITMQ_PORT", "5672"))
VM_URL = os.environ.get("SENTINEL_TEST_VM_URL", "http://127.0.0.1:8428")

START_HINT = "start it with: bash scripts/services.sh up"


def _require_port(name: str, host: str, port: int) -> None:
    """Fail (not skip) with a clear message when nothing listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        pytest.fail(f"{name} is not reachable on {host}:{port} ({exc}); {START_HINT}", pytrace=False)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.mark.integration
def test_kafka_produce_consume_on_new_three_partition_topic() -> None:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    host, port = KAFKA.rsplit(":", 1)
    _require_port("Kafka", host, int(port))

    topic = _unique("it-services")
    admin = AdminClient({"bootstrap.servers": KAFKA})
    try:
        admin.list_topics(timeout=10)
    except KafkaException as exc:
        pytest.fail(f"Kafka on {KAFKA} does not answer metadata requests ({exc}); {START_HINT}", pytrace=False)

    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    futures[topic].result(timeout=30)
    try:
        md = admin.list_topics(topic=topic, timeout=10)
        assert len(md.topics[topic].partitions) == 3

        # One record per partition, plus a ~6 MB record: the broker allows big messages.
        big = b"x" * (6 * 1024 * 1024)
        producer = Producer({"bootstrap.servers": KAFKA, "message.max.bytes": 10 * 1024 * 1024})
        delivered: list[tuple[int, bytes]] = []

        def on_delivery(err, msg):  # type: ignore[no-untyped-def]
            assert err is None, f"delivery failed: {err}"
            delivered.append((msg.partition(), msg.key()))

        for p in range(3):
            producer.produce(topic, key=f"k{p}".encode(), value=f"v{p}".encode(), partition=p, on_delivery=on_delivery)
        producer.produce(topic, key=b"big", value=big, partition=0, on_delivery=on_delivery)
        assert producer.flush(30) == 0, "producer could not deliver every record within 30s"
        assert sorted(delivered) == [(0, b"big"), (0, b"k0"), (1, b"k1"), (2, b"k2")]

        consumer = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": _unique("it-group"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.max.bytes": 16 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
            got: dict[bytes, bytes] = {}
            deadline = time.monotonic() + 30
            while len(got) < 4 and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                got[msg.key()] = msg.value()
        finally:
            consumer.close()
        assert got.get(b"k0") == b"v0"
        assert got.get(b"k1") == b"v1"
        assert got.get(b"k2") == b"v2"
        assert got.get(b"big") == big, "the 6 MB record did not come back intact"
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


@pytest.mark.integration
def test_rabbitmq_publish_consume_on_new_queue() -> None:
    import pika

    _require_port("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    params = pika.ConnectionParameters(
        host=RABBITMQ_HOST,
        port=RABBITMQ_PORT,
        credentials=pika.PlainCredentials("guest", "guest"),  # guest is allowed on loopback only
        connection_attempts=3,
        retry_delay=1,
        socket_timeout=5,
    )
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"RabbitMQ on {RABBITMQ_HOST}:{RABBITMQ_PORT} refused AMQP ({exc!r}); {START_HINT}", pytrace=False)
    queue = _unique("it-services")
    body = json.dumps({"id": queue, "severity": "critical"}).encode()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue=queue, durable=False, auto_delete=False)
        ch.basic_publish(
            exchange="",
            routing_key=queue,
            body=body,
            properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
            mandatory=True,
        )
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            method, props, payload = ch.basic_get(queue=queue, auto_ack=True)
            if method is not None:
                got = (props.content_type, payload)
            else:
                time.sleep(0.1)
        assert got == ("application/json", body)
        ch.queue_delete(queue=queue)
    finally:
        conn.close()


@pytest.mark.integration
def test_victoriametrics_influx_v2_write_and_export() -> None:
    import requests
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    try:
        health = requests.get(f"{VM_URL}/health", timeout=5)
    except requests.RequestException as exc:
        pytest.fail(f"VictoriaMetrics is not reachable at {VM_URL} ({exc}); {START_HINT}", pytrace=False)
    assert health.text.strip() == "OK", f"VictoriaMetrics /health answered {health.status_code} {health.text!r}"

    measurement = _unique("it_services")
    ts_ms = int(time.time() * 1000)
    point = (
        Point(measurement)
        .tag("service", "checkout")
        .tag("model", "gpt-x")
        .field("latency_ms", 123.5)
        .field("tokens", 42)
        .time(ts_ms * 1_000_000)  # ns
    )
    with InfluxDBClient(url=VM_URL, token="x", org="o") as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket="b", record=point)

    # How VictoriaMetrics stores InfluxDB line protocol (checked against Debian's 1.79.5):
    #   * each field becomes its own series named  {measurement}_{field}
    #     (separator "_" = -influxMeasurementFieldSeparator; with a single field it is still
    #     {measurement}_{field}, since -influxSkipSingleField is off), e.g.
    #     "m,service=a latency_ms=1,tokens=2" -> m_latency_ms{service="a"}, m_tokens{service="a"};
    #   * tags become labels; org / bucket of /api/v2/write add no label;
    #   * values are float64, timestamps are truncated to milliseconds;
    #   * string fields are not kept as strings (1.79.5 stores them as 0): use tags for text.
    # Freshly written rows sit in an in-memory buffer for up to a few seconds;
    # /internal/force_flush makes them visible to /api/v1/export at once.
    selector = f'{{__name__=~"{measurement}.*"}}'
    rows: dict[str, dict] = {}
    deadline = time.monotonic() + 15
    while len(rows) < 2 and time.monotonic() < deadline:
        requests.get(f"{VM_URL}/internal/force_flush", timeout=5)
        resp = requests.get(
            f"{VM_URL}/api/v1/export",
            params={"match[]": selector},
            timeout=5,
        )
        resp.raise_for_status()
        rows = {r["metric"]["__name__"]: r for r in map(json.loads, resp.text.splitlines()) if r}
        if len(rows) < 2:
            time.sleep(0.2)

    assert set(rows) == {f"{measurement}_latency_ms", f"{measurement}_tokens"}, rows
    lat = rows[f"{measurement}_latency_ms"]
    assert lat["metric"] == {"__name__": f"{measurement}_latency_ms", "service": "checkout", "model": "gpt-x"}
    assert lat["values"] == [123.5]
    assert lat["timestamps"] == [ts_ms]
    assert rows[f"{measurement}_tokens"]["values"] == [42]

    requests.post(
        f"{VM_URL}/api/v1/admin/tsdb/delete_series",
        params={"match[]": selector},
        timeout=5,
    )
