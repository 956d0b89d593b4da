"""Prometheus metrics: conventions, the Kafka lag alias, snapshot metrics, per-process and multi-process serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

from sentinel import metrics
from sentinel.detect.settings import DetectionSettings
from sentinel.models import TelemetryEvent
from sentinel.operators import KeyChunk, _DetectLogic


def exposition() -> str:
    return generate_latest(REGISTRY).decode()


def test_names_follow_prometheus_conventions() -> None:
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("sentinel_")}
    expected = {
        "sentinel_messages",
        "sentinel_events_decoded",
        "sentinel_events_invalid",
        "sentinel_spans_skipped",
        "sentinel_events_valid",
        "sentinel_dead_letters",
        "sentinel_anomalies",
        "sentinel_alerts",
        "sentinel_sink_records",
        "sentinel_late_events",
        "sentinel_active_keys",
        "sentinel_stage_seconds",
        "sentinel_snapshot_duration_seconds",
        "sentinel_snapshot_size_bytes",
        "sentinel_kafka_consumer_lag",
        "sentinel_config_version",
        "sentinel_api_requests",
        "sentinel_api_request_duration_seconds",
    }
    assert expected <= names
    for m in REGISTRY.collect():
        if m.name.startswith("sentinel_") and m.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in m.samples), m.name
    text = exposition()
    assert "# TYPE sentinel_anomalies_total counter" in text
    assert "# TYPE sentinel_stage_seconds histogram" in text


def test_kafka_lag_is_re_exported() -> None:
    from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE

    BYTEWAX_CONSUMER_LAG_GAUGE.labels(step_id="kafka_in.in", topic="llm.telemetry", partition="3").set(17)
    text = exposition()
    assert 'sentinel_kafka_consumer_lag{partition="3",step_id="kafka_in.in",topic="llm.telemetry"} 17.0' in text


def test_snapshot_duration_and_size_are_measured() -> None:
    def count(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"step": "detect"}) or 0.0

    n0, b0 = count("sentinel_snapshot_size_bytes_count"), count("sentinel_snapshot_size_bytes_sum")
    logic = _DetectLogic(DetectionSettings(), None, 3600.0)
    logic.on_batch(
        [KeyChunk("s|m", [TelemetryEvent(1_767_600_000.0 + i, "s", "m", 800.0, 100, 50) for i in range(20)])]
    )
    state = logic.snapshot()
    assert count("sentinel_snapshot_size_bytes_count") == n0 + 1
    assert count("sentinel_snapshot_size_bytes_sum") - b0 == len(state)
    assert count("sentinel_snapshot_duration_seconds_count") >= 1


def test_serve_per_process_on_a_free_port() -> None:
    code = (
        "from sentinel import metrics;import urllib.request as u;"
        "metrics.EVENTS_VALID.inc(5);h,p=metrics.serve('127.0.0.1',0);"
        "print(u.urlopen(f'http://127.0.0.1:{p}/metrics').read().decode())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "sentinel_events_valid_total 5.0" in out


def test_multiprocess_mode_serves_the_aggregate(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    # two "worker processes" count into the shared directory and exit
    for n in (3, 4):
        subprocess.run(
            [sys.executable, "-c", f"from sentinel import metrics; metrics.EVENTS_VALID.inc({n})"],
            env=env,
            check=True,
            timeout=60,
        )
    code = (
        "import socket,sys\n"
        "from sentinel import metrics\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); port=s.getsockname()[1]; s.close()\n"
        "metrics.EVENTS_VALID.inc(1)\n"
        "h,p=metrics.serve('127.0.0.1',port)\n"
        "assert metrics.serve('127.0.0.1',port)==(h,p)\n"
        "import urllib.request as u; print(u.urlopen(f'http://127.0.0.1:{p}/metrics').read().decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "sentinel_events_valid_total 8.0" in out.stdout, out.stdout[-2000:]


def test_summary_reads_the_counters() -> None:
    before = metrics.summary()["events_valid"]
    metrics.EVENTS_VALID.inc(2)
    assert metrics.summary()["events_valid"] == before + 2
