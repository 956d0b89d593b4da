"""Prometheus metrics (one registry per process; names follow Prometheus conventions).

The flow counts every message, span and event at each stage so that the books
balance: ``spans = events_decoded + span dead letters + skipped``, and
``events_decoded = events_valid + events_invalid``. :func:`summary` reads the
counters back for the console summary and reports.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "ACTIVE_KEYS",
    "ALERTS",
    "ANOMALIES",
    "DEAD_LETTERS",
    "EVENTS_DECODED",
    "EVENTS_INVALID",
    "EVENTS_UNPRICED",
    "EVENTS_VALID",
    "LATE_EVENTS",
    "MESSAGES",
    "SINK_RECORDS",
    "SPANS",
    "SPANS_SKIPPED",
    "STAGE_SECONDS",
    "WINDOWS",
    "summary",
]

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


def serve(host: str, port: int) -> tuple[str, int]:
    """Expose this process's metrics at ``http://host:port/metrics`` (idempotent per process)."""
    global _served
    if _served is None:
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host)
        _served = (host, int(server.server_port))
    return _served
