"""Consumer settings of the Kafka source (no broker needed)."""

from __future__ import annotations

from sentinel.config import load_settings
from sentinel.sources.kafka import PREFETCH_KBYTES, partition_config


def test_prefetch_is_bounded_per_partition_consumer() -> None:
    cfg = partition_config(["127.0.0.1:9092"], tail=False, add_config={})
    assert cfg["queued.max.messages.kbytes"] == PREFETCH_KBYTES < 65_536  # librdkafka's default is 64 MB
    assert cfg["bootstrap.servers"] == "127.0.0.1:9092"
    assert cfg["enable.partition.eof"] == "True"  # a bounded replay stops at the end
    assert partition_config(["a:1", "b:2"], tail=True, add_config={})["enable.partition.eof"] == "False"


def test_kafka_config_overrides_the_defaults() -> None:
    ks = load_settings(
        None, kafka={"config": {"queued.max.messages.kbytes": "131072", "security.protocol": "SASL_SSL"}}
    ).kafka
    cfg = partition_config(ks.brokers, ks.tail, ks.librdkafka_config())
    assert cfg["queued.max.messages.kbytes"] == "131072"
    assert cfg["security.protocol"] == "SASL_SSL"
