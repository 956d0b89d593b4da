from __future__ import annotations

import pytest

from sentinel.alerting.dedup import AlertDeduper
from sentinel.alerting.routing import accepts, service_matches
from sentinel.models import AlertEvent, AnomalyEvent, AnomalyType, DetectionMethod, Severity


def alert(sev: Severity = Severity.MEDIUM, service: str = "chat-api") -> AlertEvent:
    a = AnomalyEvent(
        0.0, service, "gpt-4o", AnomalyType.LATENCY_SPIKE, sev, DetectionMethod.ZSCORE, "latency_ms", 900, 300, 4, 6
    )
    out = AlertDeduper().on_anomaly(a)
    assert out is not None
    return out


@pytest.mark.parametrize("sev", list(Severity))
@pytest.mark.parametrize("minimum", list(Severity))
def test_severity_threshold_is_inclusive(sev: Severity, minimum: Severity) -> None:
    assert accepts(alert(sev), minimum, []) is (sev.rank >= minimum.rank)


def test_low_minimum_accepts_everything_and_critical_only_critical() -> None:
    assert all(accepts(alert(s), Severity.LOW, []) for s in Severity)
    assert [s for s in Severity if accepts(alert(s), Severity.CRITICAL, [])] == [Severity.CRITICAL]


def test_empty_service_list_means_all_services() -> None:
    assert accepts(alert(service="anything"), Severity.LOW, [])
    assert accepts(alert(service="anything"), Severity.LOW, ())


def test_exact_service_names() -> None:
    assert accepts(alert(service="chat-api"), Severity.LOW, ["billing", "chat-api"])
    assert not accepts(alert(service="chat-api-v2"), Severity.LOW, ["chat-api"])
    assert not accepts(alert(service="Chat-API"), Severity.LOW, ["chat-api"])  # case-sensitive


@pytest.mark.parametrize(
    ("service", "patterns", "expected"),
    [
        ("chat-api", ["chat-*"], True),
        ("chat", ["chat-*"], False),
        ("billing-v2", ["billing-v?"], True),
        ("billing-v10", ["billing-v?"], False),
        ("search-eu", ["search-[eu][us]"], True),
        ("a.b", ["a.*"], True),
        ("anything", ["*"], True),
        ("x", ["y", "z*"], False),
    ],
)
def test_glob_patterns(service: str, patterns: list[str], expected: bool) -> None:
    assert service_matches(service, patterns) is expected


def test_severity_and_service_must_both_pass() -> None:
    a = alert(Severity.HIGH, "chat-api")
    assert accepts(a, Severity.HIGH, ["chat-*"])
    assert not accepts(a, Severity.CRITICAL, ["chat-*"])
    assert not accepts(a, Severity.LOW, ["billing"])
