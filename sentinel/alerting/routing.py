"""Severity routing: which alerts a channel (RabbitMQ, webhook, …) receives.

Every channel has a minimum severity and an optional list of services. An alert
passes when its severity is at least the minimum and, if the list is not empty,
its service matches one entry. Entries are shell-style patterns matched
case-sensitively (:func:`fnmatch.fnmatchcase`): ``chat-api``, ``chat-*``,
``billing-v?``.

>>> from sentinel.alerting.dedup import AlertDeduper
>>> from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, Severity
>>> a = AlertDeduper().on_anomaly(AnomalyEvent(0.0, "chat-api", "gpt-4o", AnomalyType.LATENCY_SPIKE,
...     Severity.HIGH, DetectionMethod.ZSCORE, "latency_ms", 900.0, 300.0, 4.0, 6.0))
>>> accepts(a, Severity.MEDIUM, []), accepts(a, Severity.CRITICAL, [])
(True, False)
>>> accepts(a, Severity.LOW, ["chat-*"]), accepts(a, Severity.LOW, ["billing"])
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from sentinel.models import AlertEvent, Severity

__all__ = ["accepts", "service_matches"]

_GLOB_CHARS = frozenset("*?[")


def service_matches(service: str, services: Sequence[str]) -> bool:
    """True when ``services`` is empty or one of its patterns matches ``service``."""
    if not services:
        return True
    for pattern in services:
        if _GLOB_CHARS.isdisjoint(pattern):
            if pattern == service:
                return True
        elif fnmatchcase(service, pattern):
            return True
    return False


def accepts(alert: AlertEvent, min_severity: Severity, services: Sequence[str]) -> bool:
    """Whether a channel with this minimum severity and service filter receives ``alert``."""
    return alert.severity.rank >= min_severity.rank and service_matches(alert.anomaly.service, services)
