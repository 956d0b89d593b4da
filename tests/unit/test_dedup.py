from __future__ import annotations

import pickle

from sentinel.alerting.dedup import AlertDeduper, alert_id
from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, Severity


def an(t: float, typ: AnomalyType = AnomalyType.LATENCY_SPIKE, sev: Severity = Severity.MEDIUM) -> AnomalyEvent:
    return AnomalyEvent(t, "svc", "gpt-4o", typ, sev, DetectionMethod.ZSCORE, "latency_ms", 900.0, 300.0, 4.0, 6.0)


def test_burst_within_window_is_one_alert() -> None:
    d = AlertDeduper(window_s=300)
    alerts = [a for t in range(0, 300, 10) if (a := d.on_anomaly(an(float(t))))]
    assert len(alerts) == 1
    assert alerts[0].occurrences == 1 and alerts[0].first_seen == 0.0
    assert alerts[0].routing_key == "alert.medium.svc"


def test_gap_longer_than_window_starts_a_new_incident() -> None:
    d = AlertDeduper(window_s=300)
    first = d.on_anomaly(an(0.0))
    assert d.on_anomaly(an(200.0)) is None
    second = d.on_anomaly(an(200.0 + 301))
    assert first and second and first.alert_id != second.alert_id
    assert second.first_seen == 501.0


def test_types_are_independent() -> None:
    d = AlertDeduper()
    assert d.on_anomaly(an(0.0)) is not None
    assert d.on_anomaly(an(1.0, AnomalyType.COST_SPIKE)) is not None


def test_escalation_realerts_with_new_id_and_counts() -> None:
    d = AlertDeduper()
    a1 = d.on_anomaly(an(0.0, sev=Severity.LOW))
    assert d.on_anomaly(an(10.0, sev=Severity.LOW)) is None
    a2 = d.on_anomaly(an(20.0, sev=Severity.HIGH))
    assert a1 and a2 and a2.alert_id != a1.alert_id
    assert (a2.first_seen, a2.last_seen, a2.occurrences) == (0.0, 20.0, 3)
    assert a2.routing_key == "alert.high.svc"
    assert d.on_anomaly(an(30.0, sev=Severity.MEDIUM)) is None  # de-escalation is not news


def test_ids_are_deterministic_across_replay_and_pickle() -> None:
    stream = [an(float(t), sev=s) for t, s in ((0, Severity.LOW), (5, Severity.CRITICAL), (900, Severity.LOW))]
    d1 = AlertDeduper()
    ids1 = [a.alert_id for x in stream if (a := d1.on_anomaly(x))]
    d2 = AlertDeduper()
    d2.on_anomaly(stream[0])
    d2 = pickle.loads(pickle.dumps(d2))
    ids2 = [ids1[0]] + [a.alert_id for x in stream[1:] if (a := d2.on_anomaly(x))]
    assert ids1 == ids2
    assert ids1[0] == alert_id("svc", "gpt-4o", "latency_spike", 0.0, Severity.LOW)


def test_state_is_bounded_by_the_anomaly_types() -> None:
    d = AlertDeduper(window_s=60)
    for day in range(30):  # a month of incidents of every type: one open incident per type at most
        for i, typ in enumerate(AnomalyType):
            d.on_anomaly(an(day * 86_400.0 + i, typ))
    assert d.open_incidents == len(AnomalyType) == 12


def test_alert_record_has_every_field() -> None:
    a = AlertDeduper().on_anomaly(an(1_700_000_000.0))
    assert a is not None
    rec = a.to_dict()
    for k in (
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
        "alert_id",
        "first_seen",
        "last_seen",
        "occurrences",
        "routing_key",
    ):
        assert k in rec
    assert rec["first_seen"] == "2023-11-14T22:13:20.000Z"


def test_late_window_anomaly_extends_incident_backwards() -> None:
    d = AlertDeduper(window_s=300)
    assert d.on_anomaly(an(1000.0)) is not None
    escalated = d.on_anomaly(an(900.0, sev=Severity.HIGH))  # a window anomaly for an earlier span
    assert escalated is not None
    assert (escalated.first_seen, escalated.last_seen) == (900.0, 1000.0)


def test_routing_key_has_three_words() -> None:
    from sentinel.alerting.dedup import routing_key

    assert routing_key(Severity.HIGH, "pay.api.v2") == "alert.high.pay_api_v2"
