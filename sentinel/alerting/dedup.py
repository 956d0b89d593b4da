"""Alert deduplication: one alert per service/model/anomaly-type burst.

Anomalies of the same type for the same key whose event times lie within
``window_s`` of the previous one belong to the same *incident*: the first becomes
an alert, the rest only bump ``occurrences``/``last_seen``. A higher severity
arriving during an incident *escalates*: it is alerted again (a new
``alert_id``), so consumers that filter by severity see it. A gap longer than
``window_s`` starts a new incident.

Time is event time, so a backtest deduplicates exactly like the live run, and
``alert_id`` is derived from the key, type, incident start and severity only —
a replay after crash recovery republishes the very same ids (idempotent sinks).

State per key is at most one open incident per anomaly type (12), so it is
bounded by construction: an incident that has ended is replaced when the next
anomaly of its type arrives (expiring other types eagerly would make the result
depend on how event- and window-anomalies interleave), and the whole state goes
when the key itself expires.

>>> from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, Severity
>>> d = AlertDeduper(window_s=300)
>>> def a(t, sev=Severity.MEDIUM):
...     return AnomalyEvent(t, "svc", "m", AnomalyType.LATENCY_SPIKE, sev, DetectionMethod.ZSCORE,
...                         "latency_ms", 900.0, 300.0, 4.0, 5.0)
>>> [x.occurrences for x in (d.on_anomaly(a(0.0)), d.on_anomaly(a(60.0))) if x]
[1]
>>> d.on_anomaly(a(120.0, Severity.CRITICAL)).occurrences
3
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sentinel.models import AlertEvent, AnomalyEvent, Severity

__all__ = ["AlertDeduper", "alert_id", "routing_key"]


def routing_key(severity: Severity, service: str) -> str:
    """RabbitMQ routing key of DESIGN.md ⚑ Sinks: ``alert.<severity>.<service>``.

    Dots in the service name become ``_`` so the key always has exactly three words
    and bindings such as ``alert.*.checkout`` or ``alert.critical.#`` match as expected.
    """
    return f"alert.{severity.value}.{service.replace('.', '_')}"


def alert_id(service: str, model: str, anomaly_type: str, first_seen: float, severity: Severity) -> str:
    raw = f"{service}\x1f{model}\x1f{anomaly_type}\x1f{round(first_seen * 1000)}\x1f{severity.value}"
    return "al-" + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class _Incident:
    first_seen: float
    last_seen: float
    occurrences: int
    severity: Severity  # highest alerted so far


class AlertDeduper:
    """Per-key dedup state (one instance per ``service|model`` key)."""

    __slots__ = ("_open", "window_s")

    def __init__(self, window_s: float = 300.0) -> None:
        self.window_s = window_s
        self._open: dict[str, _Incident] = {}

    def on_anomaly(self, a: AnomalyEvent) -> AlertEvent | None:
        """Return the alert to publish for ``a``, or ``None`` when it only extends an open incident."""
        t = a.timestamp
        typ = a.anomaly_type.value
        inc = self._open.get(typ)
        # window-based anomalies arrive after per-event ones of the same time span, so an
        # incident extends backwards as well as forwards
        if inc is None or t - inc.last_seen > self.window_s or inc.first_seen - t > self.window_s:
            inc = _Incident(first_seen=t, last_seen=t, occurrences=1, severity=a.severity)
            self._open[typ] = inc
            return self._alert(a, inc)
        inc.occurrences += 1
        if t > inc.last_seen:
            inc.last_seen = t
        if t < inc.first_seen:
            inc.first_seen = t
        if a.severity.rank > inc.severity.rank:
            inc.severity = a.severity
            return self._alert(a, inc)
        return None

    @property
    def open_incidents(self) -> int:
        return len(self._open)

    def _alert(self, a: AnomalyEvent, inc: _Incident) -> AlertEvent:
        return AlertEvent(
            anomaly=a,
            alert_id=alert_id(a.service, a.model, a.anomaly_type.value, inc.first_seen, a.severity),
            first_seen=inc.first_seen,
            last_seen=inc.last_seen,
            occurrences=inc.occurrences,
            routing_key=routing_key(a.severity, a.service),
        )

    def __getstate__(self) -> tuple[float, dict[str, _Incident]]:
        return (self.window_s, self._open)

    def __setstate__(self, state: tuple[float, dict[str, _Incident]]) -> None:
        self.window_s, self._open = state
