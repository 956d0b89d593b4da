"""The whole dataflow over Bytewax's testing source, on 1 worker and a 2-worker cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentinel import metrics
from sentinel.models import AnomalyType, DetectionMethod, Severity, TelemetryEvent
from sentinel.sources.file import RawMessage
from tests.flow.factories import NON_LLM_SPAN, POISON, T0, normal_stream, run_flow, to_messages

ANOMALY_FIELDS = (
    "id",
    "timestamp",
    "detected_at",
    "service",
    "model",
    "anomaly_type",
    "severity",
    "detection_method",
    "metric",
    "observed",
    "expected",
    "threshold",
    "score",
    "window",
    "details",
)
SPIKE_START, SPIKE_END = T0 + 5400, T0 + 5400 + 600


def incident_stream() -> list:
    rng = np.random.default_rng(7)
    quiet = normal_stream(rng, "chat", "gpt-4o", 7200)
    spiky = normal_stream(
        rng, "search", "gpt-4o-mini", 7200, latency_factor=lambda t: 6.0 if SPIKE_START <= t < SPIKE_END else 1.0
    )
    return quiet + spiky


@pytest.mark.parametrize("workers", [1, 2])
def test_flow_detects_incident_and_reconciles(tmp_path: Path, workers: int) -> None:
    events = incident_stream()
    messages = [
        *to_messages(events),
        RawMessage(NON_LLM_SPAN, "non-llm"),
        *(RawMessage(p, f"poison:{i}") for i, p in enumerate(POISON)),
    ]
    before = metrics.summary()
    run = run_flow(messages, tmp_path, workers=workers)
    after = metrics.summary()
    spans = after["spans"] - before["spans"]
    skipped = after["spans_skipped"] - before["spans_skipped"]
    assert skipped == 1
    # the native record with a wrong type is one (bad) event; the other poison holds no span at all
    assert spans == len(events) + skipped + 1

    # counts reconcile: every span is an event, a dead letter or a counted skip
    n_events = len(run.taps["events"])
    assert n_events == len(events)
    assert len(run.taps["dead"]) == len(POISON)
    assert all(d.error for d in run.taps["dead"])
    assert len(run.jsonl("dlq")) == len(POISON)

    anomalies = run.jsonl("anomalies")
    assert len(anomalies) == len(run.taps["anomalies"])
    for a in anomalies:
        assert set(ANOMALY_FIELDS) <= set(a)
        AnomalyType(a["anomaly_type"]), Severity(a["severity"]), DetectionMethod(a["detection_method"])
    latency = [
        a
        for a in anomalies
        if a["service"] == "search" and a["anomaly_type"] in ("latency_spike", "latency_degradation")
    ]
    assert latency, "the 6× latency incident was not detected"
    # every latency anomaly on the spiky series lies in (or just after) the incident
    ts = [run.taps["anomalies"][i].timestamp for i, a in enumerate(anomalies) if a in latency]
    assert all(SPIKE_START <= t <= SPIKE_END + 300 for t in ts), ts
    # the quiet series raises no latency alarm
    assert not [a for a in anomalies if a["service"] == "chat" and a["anomaly_type"].startswith("latency")]

    alerts = run.jsonl("alerts")
    assert alerts and len(alerts) <= len(anomalies)
    assert len({a["alert_id"] for a in alerts}) == len(alerts)

    windows = run.jsonl("windows")
    assert sum(w["requests"] for w in windows) + len(run.jsonl("late")) >= n_events
    assert {w["service"] for w in windows} == {"chat", "search"}


def test_one_and_two_workers_agree(tmp_path: Path) -> None:
    messages = to_messages(incident_stream())
    one = run_flow(messages, tmp_path / "one", workers=1)
    two = run_flow(messages, tmp_path / "two", workers=2)
    key = lambda a: (a["id"], a["anomaly_type"])  # noqa: E731
    assert sorted(map(key, one.jsonl("anomalies"))) == sorted(map(key, two.jsonl("anomalies")))
    assert sorted(a["alert_id"] for a in one.jsonl("alerts")) == sorted(a["alert_id"] for a in two.jsonl("alerts"))


def test_an_event_in_the_last_microsecond_stays_in_its_window(tmp_path: Path) -> None:
    """datetime rounds to the microsecond: the window operator must not move the event to the next window."""
    ev = TelemetryEvent(timestamp=T0 + 59.9999996, service="svc", model="m", latency_ms=100.0, output_tokens=5)
    run = run_flow(to_messages([ev]), tmp_path, windows={"length_s": 60, "late_s": 0})
    (w,) = run.taps["windows"]
    assert (w.start, w.requests) == (T0, 1)
