"""The LLM-Sentinel dataflow — wiring only (DESIGN.md "The flow").

    source ─► ingest (decode, mask, validate) ─► key service|model
                 └─► dead letters                   ├─► windows ─┐
                                                    └────────────┴─► detect ─► anomalies ─► dedup ─► alerts
                                                                                 └─► sinks ◄──────────┘

Run it with ``python -m bytewax.run dataflows.sentinel:flow`` (configuration from
``SENTINEL_CONFIG`` and ``SENTINEL_*`` variables; none needed for the embedded
default) or build it yourself with :func:`build_flow`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from sentinel import control, metrics
from sentinel import operators as sop
from sentinel.api import server as api_server
from sentinel.api.server import check_bind
from sentinel.config import Settings, load_settings
from sentinel.control import ControlPoller
from sentinel.decode import Decoder
from sentinel.gc_tuning import tune_gc
from sentinel.logs import setup_logging
from sentinel.models import DeadLetter, WindowStats
from sentinel.pricing import Pricing
from sentinel.privacy import Masker
from sentinel.sinks.console import ConsoleAlertSink, print_summary_at_exit
from sentinel.sinks.jsonl import JsonlSink, dumps
from sentinel.sinks.store import AnomalyStoreSink
from sentinel.sources.file import JsonLinesSource, ProgressFn, RawMessage
from sentinel.sources.shutdown import install_graceful_shutdown
from sentinel.validate import Validator

__all__ = ["SourceOverride", "build_flow", "flow", "sample_path"]  # noqa: F822 - `flow` is lazy (__getattr__)


def sample_path() -> Path:
    """The bundled sample telemetry (OTLP JSON lines, made by ``sentinel generate``)."""
    return Path(__file__).resolve().parent.parent / "sentinel" / "data" / "sample.jsonl.gz"


@dataclass(frozen=True)
class SourceOverride:
    """Inject a source (tests: ``TestingSource`` of :class:`RawMessage`) and Kafka offset bounds (backtests)."""

    source: Source[RawMessage] | None = None
    start_offsets: Mapping[str, int] | None = None
    stop_offsets: Mapping[str, int] | None = None


def _source(
    flow: Dataflow, settings: Settings, progress: ProgressFn | None, override: SourceOverride | None
) -> tuple[Stream[RawMessage], Stream[DeadLetter] | None]:
    src = settings.source
    if override is not None and override.source is not None:
        return op.input("test_in", flow, override.source), None
    if src.type == "kafka":
        from sentinel.sources.kafka import kafka_input

        kin = kafka_input(
            "kafka_in",
            flow,
            settings.kafka,
            start_offsets=override.start_offsets if override else None,
            stop_offsets=override.stop_offsets if override else None,
        )
        return kin.messages, kin.dead
    path = sample_path() if src.type == "sample" else src.path
    assert path is not None  # guaranteed by SourceSettings validation
    return op.input("file_in", flow, JsonLinesSource(path, batch_size=1000, progress=progress)), None


def _record(x: Any) -> tuple[str, bytes]:
    return "", dumps(x if isinstance(x, dict) else x.to_dict())


def _jsonl(step_id: str, up: Stream[Any], path: Path) -> None:
    path.touch()  # every output exists after a run, even when empty (appending nothing changes no content)
    op.output(step_id, op.map(f"{step_id}_json", up, _record), JsonlSink(path))


def build_flow(
    settings: Settings | None = None,
    *,
    progress: ProgressFn | None = None,
    source: SourceOverride | None = None,
    taps: Mapping[str, Sink[Any]] | None = None,
) -> Dataflow:
    """Build the dataflow from ``settings`` (default: :func:`load_settings`).

    ``taps`` sends named streams (``events``, ``dead``, ``windows``, ``anomalies``,
    ``alerts``) to extra sinks as well — tests use Bytewax's ``TestingSink``.

    Also configures logging (:mod:`sentinel.logs`) and the garbage collector
    (:mod:`sentinel.gc_tuning`), serves metrics when
    ``metrics.enabled`` and, when ``api.enabled``, writes anomalies to the store,
    connects the detect step to the control channel and starts this process's
    HTTP API server (:mod:`sentinel.api`).
    """
    s = settings if settings is not None else load_settings()
    setup_logging(s.logging, s.privacy)
    out = s.output.dir
    out.mkdir(parents=True, exist_ok=True)

    flow = Dataflow("llm_sentinel")
    raw, source_dead = _source(flow, s, progress, source)

    decoder = Decoder(
        Pricing(s.pricing), Masker(s.privacy), fmt=s.source.format, max_message_bytes=s.validation.max_message_bytes
    )
    ingested = sop.ingest("ingest", raw, decoder, Validator(s.validation))
    keyed = sop.key_chunks("key", ingested.chunks)

    win = sop.windows("windows", keyed, s.windows.length_s, s.windows.late_s)
    to_detect: Stream[tuple[str, sop.KeyChunk | WindowStats]] = op.merge("detect_in", keyed, win.stats)
    store_path = s.api.effective_store_path(out)
    runtime = None
    if s.api.enabled:
        check_bind(s.api)  # fail fast, before anything runs
        poller = ControlPoller(store_path, s.detection, s.api.control_poll_s)
        runtime = sop.DetectRuntime(poller, s.api.baselines_interval_s)
    anomalies = sop.detect("detect", to_detect, s.detection, s.detection.idle_expiry_s, runtime)
    alerts = sop.dedup_alerts("dedup", anomalies, s.alerting.dedup_window_s)

    streams: dict[str, Stream[Any]] = {
        "dead": sop.count_dead(
            "count_dead", ingested.dead if source_dead is None else op.merge("dead", ingested.dead, source_dead)
        ),
        "windows": op.key_rm("window_values", win.stats),
        "anomalies": op.key_rm("anomaly_values", anomalies),
        "alerts": op.key_rm("alert_values", alerts),
        "late": op.key_rm("late_values", win.late),
    }

    _jsonl("anomalies_jsonl", streams["anomalies"], out / "anomalies.jsonl")
    if s.api.enabled:
        store = AnomalyStoreSink(store_path, s.api.store_retention_s, s.api.store_max_rows)
        op.output("anomaly_store", streams["anomalies"], store)
    _jsonl("alerts_jsonl", streams["alerts"], out / "alerts.jsonl")
    _jsonl("windows_jsonl", streams["windows"], out / "windows.jsonl")
    _jsonl("late_jsonl", streams["late"], out / "late.jsonl")
    if s.output.dlq == "kafka" or (s.output.dlq == "auto" and s.source.type == "kafka"):
        from sentinel.sinks.kafka import KafkaRecordSink, dead_letter_record

        dlq = KafkaRecordSink(
            s.kafka.brokers,
            s.kafka.effective_dlq_topic,
            s.kafka.librdkafka_config(),
            channel="dlq",
            keep_without_payload=True,
        )
        op.output("dlq_kafka", op.map("dlq_records", streams["dead"], dead_letter_record), dlq)
    else:
        _jsonl("dlq_jsonl", streams["dead"], out / "dlq.jsonl")
    if s.kafka.anomalies_topic and s.source.type == "kafka":
        from sentinel.sinks.kafka import KafkaRecordSink, anomaly_record

        mirror = KafkaRecordSink(
            s.kafka.brokers, s.kafka.anomalies_topic, s.kafka.librdkafka_config(), channel="kafka_anomalies"
        )
        op.output("anomalies_kafka", op.map("anomaly_records", streams["anomalies"], anomaly_record), mirror)
    if s.influxdb.url:
        from sentinel.sinks.influx import InfluxSink

        points = op.merge("influx_in", streams["windows"], streams["anomalies"])
        op.output("influxdb", points, InfluxSink(s.influxdb))
    if s.rabbitmq.url is not None:
        from sentinel.sinks.rabbitmq import RabbitAlertSink

        op.output("rabbitmq", streams["alerts"], RabbitAlertSink(s.rabbitmq))
    if s.webhook.url:
        from sentinel.sinks.webhook import WebhookAlertSink

        op.output("webhook", streams["alerts"], WebhookAlertSink(s.webhook))
    if s.output.console:
        op.output("console", streams["alerts"], ConsoleAlertSink())
        print_summary_at_exit(str(out / "summary.json"))
    if taps and "events" in taps:  # only when asked for: un-chunking costs per event
        streams["events"] = sop.chunk_events("events", keyed)
    for name, sink in (taps or {}).items():
        if name not in streams:
            raise ValueError(f"unknown tap {name!r}; streams are {sorted(streams)}")
        op.output(f"tap_{name}", streams[name], sink)

    if s.metrics.enabled:
        metrics.serve(s.metrics.host, s.metrics.port)
    if s.api.enabled:
        api_server.start(s.api, s.detection, store_path)
    install_graceful_shutdown()
    tune_gc(s.runtime.gc_threshold)
    control.activity.started = time.time()
    return flow


def __getattr__(name: str) -> Dataflow:
    # `flow` is built on first access, not at import time, so importing this module
    # (tests, tools) does not read configuration or touch the file system.
    if name == "flow":
        return build_flow()
    raise AttributeError(name)
