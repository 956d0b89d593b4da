"""Records that flow through LLM-Sentinel.

Hot-path objects (:class:`TelemetryEvent`, :class:`WindowStats`,
:class:`AnomalyEvent`) are plain slotted dataclasses: constructing one costs a
few hundred nanoseconds, they pickle compactly for Bytewax's exchange and
recovery, and they are validated where they enter the system (decode and
validate), not on every hop.

The JSON shapes written by :func:`AnomalyEvent.to_dict` and
:func:`AlertEvent.to_dict` are the ⚑ Output records of DESIGN.md; other tools
depend on them, so fields are only ever added, never renamed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "AlertEvent",
    "AnomalyEvent",
    "AnomalyType",
    "DeadLetter",
    "DetectionMethod",
    "Severity",
    "TelemetryEvent",
    "WindowStats",
    "anomaly_id",
    "format_ts",
    "key_of",
    "split_key",
]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def from_score(cls, ratio: float) -> Severity:
        """Severity from how far a score exceeds its threshold (``score / threshold``)."""
        if ratio >= 3.0:
            return cls.CRITICAL
        if ratio >= 2.0:
            return cls.HIGH
        if ratio >= 1.4:
            return cls.MEDIUM
        return cls.LOW

    def bump(self, steps: int = 1) -> Severity:
        return _SEVERITIES[min(len(_SEVERITIES) - 1, max(0, self.rank + steps))]


_SEVERITIES = tuple(Severity)  # in rank order
_SEVERITY_RANK = {s: i for i, s in enumerate(_SEVERITIES)}


class AnomalyType(StrEnum):
    LATENCY_SPIKE = "latency_spike"
    LATENCY_DEGRADATION = "latency_degradation"
    THROUGHPUT_DEGRADATION = "throughput_degradation"
    ERROR_RATE_SPIKE = "error_rate_spike"
    TRAFFIC_SPIKE = "traffic_spike"
    TRAFFIC_DROP = "traffic_drop"
    TOKEN_USAGE_SPIKE = "token_usage_spike"
    TOKEN_USAGE_DROP = "token_usage_drop"
    COST_SPIKE = "cost_spike"
    INPUT_DRIFT = "input_drift"
    OUTPUT_DRIFT = "output_drift"
    MULTIVARIATE_OUTLIER = "multivariate_outlier"


class DetectionMethod(StrEnum):
    ZSCORE = "zscore"
    IQR = "iqr"
    MAD = "mad"
    CUSUM = "cusum"
    EWMA = "ewma"
    PERCENTILE = "percentile"
    HST = "hst"
    PSI = "psi"
    KL = "kl"
    BINOMIAL = "binomial"
    POISSON = "poisson"
    LIKELIHOOD = "likelihood"  # anomaly likelihood of a surprise score (sentinel.detect.likelihood)
    REGRESSION = "regression"  # residual of a per-key regression (sentinel.detect.joint)
    ENSEMBLE = "ensemble"


KEY_SEP = "|"


def key_of(service: str, model: str) -> str:
    """The Bytewax key of a service/model pair (the one place keys are made)."""
    return f"{service}{KEY_SEP}{model}"


def split_key(key: str) -> tuple[str, str]:
    service, _, model = key.partition(KEY_SEP)
    return service, model


def parse_ts(v: str | float) -> float:
    """Epoch seconds from a number, numeric text, or RFC 3339 / ISO 8601 text (no zone: UTC).

    >>> parse_ts("2026-01-01T00:00:00Z") == parse_ts("2026-01-01T00:00:00") == parse_ts("1767225600")
    True
    """
    if isinstance(v, int | float):
        return float(v)
    s = str(v).strip()
    try:
        return float(s)
    except ValueError:
        pass
    dt = datetime.fromisoformat(s)
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


def format_ts(ts: float) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z`` suffix."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class TelemetryEvent:
    """One LLM call, decoded from a span or a native event.

    ``timestamp`` is the event time in epoch seconds (span end: when the answer
    was complete). Token counts and cost are totals for the call.
    """

    timestamp: float
    service: str
    model: str
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    is_error: bool = False
    error_type: str | None = None
    provider: str | None = None
    operation: str | None = None
    ttft_ms: float | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # the event's position in its source, for dead letters and reconciliation
    source: str | None = None

    @property
    def key(self) -> str:
        return key_of(self.service, self.model)

    @property
    def generation_ms(self) -> float | None:
        """Time spent generating the answer (after TTFT if known); None for errors and empty answers."""
        if self.output_tokens <= 0 or self.is_error:
            return None
        gen_ms = self.latency_ms - (self.ttft_ms or 0.0)
        if gen_ms <= 0:
            gen_ms = self.latency_ms
        return gen_ms if gen_ms > 0 else None

    @property
    def output_tokens_per_s(self) -> float | None:
        """Decode throughput: output tokens over the generation time."""
        gen_ms = self.generation_ms
        return None if gen_ms is None else self.output_tokens * 1000.0 / gen_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": format_ts(self.timestamp),
            "service": self.service,
            "model": self.model,
            "latency_ms": self.latency_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "is_error": self.is_error,
            "error_type": self.error_type,
            "provider": self.provider,
            "operation": self.operation,
            "ttft_ms": self.ttft_ms,
            "finish_reason": self.finish_reason,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "attributes": self.attributes,
        }


@dataclass(slots=True)
class WindowStats:
    """Aggregates of one key over one tumbling event-time window."""

    service: str
    model: str
    start: float
    end: float
    requests: int
    errors: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    output_tokens_per_s: float
    late_events: int = 0

    @property
    def key(self) -> str:
        return key_of(self.service, self.model)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "model": self.model,
            "window_start": format_ts(self.start),
            "window_end": format_ts(self.end),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "output_tokens_per_s": self.output_tokens_per_s,
            "late_events": self.late_events,
        }


def anomaly_id(service: str, model: str, anomaly_type: str, ts: float) -> str:
    """Deterministic anomaly id: the same input always yields the same id (idempotent sinks)."""
    raw = f"{service}\x1f{model}\x1f{anomaly_type}\x1f{round(ts * 1000)}"
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class AnomalyEvent:
    """A detector's verdict, with enough context for a human to see why."""

    timestamp: float  # event time the anomaly refers to
    service: str
    model: str
    anomaly_type: AnomalyType
    severity: Severity
    detection_method: DetectionMethod
    metric: str
    observed: float
    expected: float
    threshold: float
    score: float
    window_start: float | None = None
    window_end: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    detected_at: float = 0.0  # wall clock, set when emitted

    @property
    def key(self) -> str:
        return key_of(self.service, self.model)

    @property
    def id(self) -> str:
        return anomaly_id(self.service, self.model, self.anomaly_type.value, self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        window = (
            {"start": format_ts(self.window_start), "end": format_ts(self.window_end)}
            if self.window_start is not None and self.window_end is not None
            else None
        )
        return {
            "id": self.id,
            "timestamp": format_ts(self.timestamp),
            "detected_at": format_ts(self.detected_at),
            "service": self.service,
            "model": self.model,
            "anomaly_type": self.anomaly_type.value,
            "severity": self.severity.value,
            "detection_method": self.detection_method.value,
            "metric": self.metric,
            "observed": self.observed,
            "expected": self.expected,
            "threshold": self.threshold,
            "score": self.score,
            "window": window,
            "details": self.details,
        }


@dataclass(slots=True)
class AlertEvent:
    """An anomaly after deduplication: one per service/model/type burst (re-sent on escalation)."""

    anomaly: AnomalyEvent
    alert_id: str
    first_seen: float
    last_seen: float
    occurrences: int
    routing_key: str

    @property
    def severity(self) -> Severity:
        return self.anomaly.severity

    def to_dict(self) -> dict[str, Any]:
        d = self.anomaly.to_dict()
        d.update(
            alert_id=self.alert_id,
            first_seen=format_ts(self.first_seen),
            last_seen=format_ts(self.last_seen),
            occurrences=self.occurrences,
            routing_key=self.routing_key,
        )
        return d


@dataclass(slots=True)
class DeadLetter:
    """Input that could not become an event, kept whole with the reason it was refused."""

    stage: str  # "source", "decode", "validate"
    error: str
    payload: bytes
    source: str | None = None  # e.g. "topic/partition/offset" or "file:line"
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        try:
            text: str | None = self.payload.decode("utf-8")
            b64 = None
        except UnicodeDecodeError:
            import base64

            text, b64 = None, base64.b64encode(self.payload).decode("ascii")
        return {
            "stage": self.stage,
            "error": self.error,
            "source": self.source,
            "payload": text,
            "payload_b64": b64,
            "headers": self.headers,
        }
