"""Alert scoring against generator labels: small hand-made cases."""

from __future__ import annotations

import pytest

from sentinel.eval.labels import score_alerts
from sentinel.models import parse_ts

LABELS = {
    "version": 1,
    "series": [
        {"service": "a", "model": "m", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T10:00:00Z"},
        {"service": "b", "model": "m", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T10:00:00Z"},
    ],
    "incidents": [
        {
            "id": "i1",
            "service": "a",
            "model": "m",
            "kind": "latency_spike",
            "start": "2026-01-01T01:00:00Z",
            "end": "2026-01-01T01:10:00Z",
        },
        {
            "id": "i2",
            "service": "a",
            "model": "m",
            "kind": "traffic_drop",
            "start": "2026-01-01T05:00:00Z",
            "end": "2026-01-01T05:30:00Z",
        },
        {
            "id": "i3",
            "service": "b",
            "model": "m",
            "kind": "error_rate_spike",
            "start": "2026-01-01T02:00:00Z",
            "end": "2026-01-01T02:20:00Z",
        },
    ],
}
T = parse_ts("2026-01-01T00:00:00Z")


def _alert(svc: str, kind: str, first: float, last: float | None = None) -> dict[str, object]:
    return {
        "service": svc,
        "model": "m",
        "anomaly_type": kind,
        "first_seen": T + first,
        "last_seen": T + (last if last is not None else first),
    }


def test_recall_precision_false_alerts_and_delay() -> None:
    alerts = [
        _alert("a", "latency_spike", 3600 + 120),  # i1 matching, delay 120
        _alert("a", "latency_degradation", 5 * 3600 + 600),  # i2 any-type only, delay 600
        _alert("a", "latency_spike", 8 * 3600),  # false
        _alert("b", "error_rate_spike", 2 * 3600 + 20 * 60 + 200),  # within grace of i3 (end + 200 s)
        _alert("b", "traffic_spike", 2 * 3600 - 3600),  # false (before tolerance)
    ]
    r = score_alerts(alerts, LABELS)
    assert r["recall"] == 1.0
    assert r["recall_matching"] == pytest.approx(2 / 3)
    assert r["per_kind"]["traffic_drop"]["recall_matching"] == 0.0
    assert r["precision"] == pytest.approx(3 / 5)
    assert r["false_alerts"] == 2
    assert r["false_alerts_per_series_hour"] == pytest.approx(2 / 20)
    assert r["delay_s"]["median"] == pytest.approx(600.0)
    assert r["delay_s"]["p90"] == pytest.approx(600 + 0.8 * (1400 - 600))


def test_alert_spanning_an_incident_overlaps_and_wrong_series_does_not() -> None:
    r = score_alerts([_alert("a", "latency_spike", 3000, 4000), _alert("b", "latency_spike", 3700)], LABELS)
    assert r["per_kind"]["latency_spike"]["recall_matching"] == 1.0
    assert r["delay_s"]["median"] == 0.0  # alert already open at the start
    assert r["false_alerts"] == 1


def test_outside_grace_is_false_and_tolerance_before_start_counts() -> None:
    r = score_alerts(
        [_alert("a", "latency_spike", 3600 + 600 + 301), _alert("a", "traffic_drop", 5 * 3600 - 30)], LABELS
    )
    assert r["false_alerts"] == 1
    assert r["per_kind"]["traffic_drop"]["recall_matching"] == 1.0


def test_no_alerts() -> None:
    r = score_alerts([], LABELS)
    assert r["recall"] == 0.0
    assert r["precision"] is None
    assert r["undetected"] == ["i1", "i2", "i3"]
