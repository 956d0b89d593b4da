"""Prometheus metrics (names follow Prometheus conventions: ``sentinel_…_total``, base units).

The flow counts every message, span and event at each stage so that the books
balance: ``spans = events_decoded + span dead letters + skipped``, and
``events_decoded = events_valid + events_invalid``. :func:`summary` reads the
counters back for the console summary and reports.

Serving, one of two modes (:func:`serve`):

* **Per process (the norm).** Each process serves its own registry on
  ``metrics.port``. In Kubernetes there is one Bytewax process per pod, so every
  pod is scraped on its own address and Prometheus adds the ``pod``/``instance``
  labels; worker threads of one process share the registry. Counters of a
  multi-process cluster are summed by the query (``sum(rate(...))``).
* **Multi-process on one host.** When ``PROMETHEUS_MULTIPROC_DIR`` is set
  *before* the processes start (``prometheus_client`` then keeps values in
  per-process mmap files there), the first process to bind ``metrics.port``
  serves the aggregate of all of them through a ``MultiProcessCollector``; the
  others find the port taken and serve nothing (logged). Clear the directory
  between runs. Gauges use ``livesum`` so dead processes drop out. The
  ``sentinel_kafka_consumer_lag`` alias is per-process only (in this mode read
  ``bytewax_kafka_consumer_lag``, which carries a ``pid`` label).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "ACTIVE_KEYS",
    "ALERTS",
    "ANOMALIES",
    "API_REQUESTS",
    "API_SECONDS",
    "CONFIG_RELOADS",
    "CONFIG_VERSION",
    "DEAD_LETTERS",
    "EVENTS_DECODED",
    "EVENTS_INVALID",
    "EVENTS_UNPRICED",
    "EVENTS_VALID",
    "LATE_EVENTS",
    "MESSAGES",
    "SINK_RECORDS",
    "SNAPSHOT_BYTES",
    "SNAPSHOT_SECONDS",
    "SPANS",
    "SPANS_SKIPPED",
    "STAGE_SECONDS",
    "WINDOWS",
    "KafkaLagCollector",
    "serve",
    "summary",
]

log = logging.getLogger(__name__)

MESSAGES = Counter("sentinel_messages", "Messages read from the source (Kafka records or file lines)")
SPANS = Counter("sentinel_spans", "Spans (or native events) found in decoded messages")
EVENTS_DECODED = Counter("sentinel_events_decoded", "LLM events decoded from spans")
SPANS_SKIPPED = Counter("sentinel_spans_skipped", "Spans skipped because they are not LLM calls")
EVENTS_UNPRICED = Counter("sentinel_events_unpriced", "Events whose model is not in the pricing table (cost 0)")
EVENTS_VALID = Counter("sentinel_events_valid", "Events that passed validation")
EVENTS_INVALID = Counter("sentinel_events_invalid", "Events refused by validation", ["reason"])
DEAD_LETTERS = Counter("sentinel_dead_letters", "Dead letters written", ["stage"])
ANOMALIES = Counter("sentinel_anomalies", "Anomalies detected", ["anomaly_type", "severity"])
ALERTS = Counter("sentinel_alerts", "Alerts by channel and outcome", ["channel", "outcome"])
SINK_RECORDS = Counter("sentinel_sink_records", "Records handed to external sinks by outcome", ["sink", "outcome"])
WINDOWS = Counter("sentinel_windows", "Event-time windows closed")
LATE_EVENTS = Counter("sentinel_late_events", "Events that arrived after their window closed")
ACTIVE_KEYS = Gauge("sentinel_active_keys", "service|model keys with live detector state", multiprocess_mode="livesum")
STAGE_SECONDS = Histogram(
    "sentinel_stage_seconds",
    "Processing time per batch and stage",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SNAPSHOT_SECONDS = Histogram(
    "sentinel_snapshot_duration_seconds",
    "Time to snapshot (pickle) one key's detector state",
    ["step"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
SNAPSHOT_BYTES = Histogram(
    "sentinel_snapshot_size_bytes",
    "Size of one key's pickled detector state",
    ["step"],
    buckets=(1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576),
)
CONFIG_VERSION = Gauge(
    "sentinel_config_version",
    "Version of the runtime detection settings applied by this process (0: the config file's)",
    multiprocess_mode="max",
)
CONFIG_RELOADS = Counter("sentinel_config_reloads", "Runtime detection-settings versions picked up by this process")
API_REQUESTS = Counter("sentinel_api_requests", "HTTP API requests", ["method", "route", "status"])
API_SECONDS = Histogram(
    "sentinel_api_request_duration_seconds",
    "HTTP API request latency",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class KafkaLagCollector(Collector):
    """Re-exports Bytewax's ``bytewax_kafka_consumer_lag`` as ``sentinel_kafka_consumer_lag{topic,partition}``.

    Reads the Bytewax gauge only if its module is already imported (a Kafka
    source exists), so registering this costs nothing for file sources.
    """

    NAME = "sentinel_kafka_consumer_lag"

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.NAME, "Messages between the consumed offset and the partition end")]

    def collect(self) -> Iterable[Metric]:
        fam = GaugeMetricFamily(
            self.NAME,
            "Messages between the consumed offset and the partition end",
            labels=["step_id", "topic", "partition"],
        )
        kafka = sys.modules.get("bytewax.connectors.kafka")
        gauge = getattr(kafka, "BYTEWAX_CONSUMER_LAG_GAUGE", None) if kafka is not None else None
        if gauge is not None:
            for metric in gauge.collect():
                for s in metric.samples:
                    labels = s.labels
                    fam.add_metric(
                        [labels.get("step_id", ""), labels.get("topic", ""), labels.get("partition", "")], s.value
                    )
        return [fam]


_lag_collector = KafkaLagCollector()
REGISTRY.register(_lag_collector)


def _total(name: str, registry: CollectorRegistry = REGISTRY) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _sum(name: str) -> float:
    return sum(_total(name).values())


def summary() -> dict[str, Any]:
    """The counters of this process as a JSON-able dict."""
    anomalies: dict[str, int] = {}
    for labels, v in _total("sentinel_anomalies_total").items():
        typ = dict(labels)["anomaly_type"]
        anomalies[typ] = anomalies.get(typ, 0) + int(v)
    invalid = {dict(k)["reason"]: int(v) for k, v in _total("sentinel_events_invalid_total").items()}
    dead = {dict(k)["stage"]: int(v) for k, v in _total("sentinel_dead_letters_total").items()}
    return {
        "messages": int(_sum("sentinel_messages_total")),
        "spans": int(_sum("sentinel_spans_total")),
        "events_decoded": int(_sum("sentinel_events_decoded_total")),
        "spans_skipped": int(_sum("sentinel_spans_skipped_total")),
        "events_unpriced": int(_sum("sentinel_events_unpriced_total")),
        "events_valid": int(_sum("sentinel_events_valid_total")),
        "events_invalid": invalid,
        "dead_letters": dead,
        "windows": int(_sum("sentinel_windows_total")),
        "late_events": int(_sum("sentinel_late_events_total")),
        "anomalies": dict(sorted(anomalies.items())),
        "anomalies_total": sum(anomalies.values()),
    }


_served: tuple[str, int] | None = None


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when multi-process mode is on (see the module docstring)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def serve(host: str, port: int) -> tuple[str, int] | None:
    """Expose metrics at ``http://host:port/metrics`` (idempotent per process).

    Per-process mode serves this process's registry. Multi-process mode serves the
    aggregate of every process sharing ``PROMETHEUS_MULTIPROC_DIR``; a process that
    finds the port taken (another process serves the aggregate) returns ``None``.
    """
    global _served
    if _served is not None:
        return _served
    from prometheus_client import start_http_server

    mp = multiprocess_dir()
    registry: CollectorRegistry = REGISTRY
    if mp is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=mp)  # type: ignore[no-untyped-call]
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        if mp is not None:
            log.info("metrics: %s:%d is taken; another process serves the aggregate (%s)", host, port, e)
            return None
        raise
    _served = (host, int(server.server_port))
    log.info("metrics: serving http://%s:%d/metrics", host, _served[1], extra={"multiprocess": mp is not None})
    return _served
