"""Plausibility checks on decoded events (``ValidationSettings``).

An event that fails becomes a dead letter (stage ``validate``) with the reason
returned by :meth:`Validator.check`; nothing here raises.

>>> from sentinel.config import ValidationSettings
>>> from sentinel.models import TelemetryEvent
>>> v = Validator(ValidationSettings())
>>> v.check(TelemetryEvent(timestamp=1.7e9, service="s", model="m", latency_ms=700_000.0), now=1.7e9)
'latency_ms 700000.0 outside [0, 600000]'
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from sentinel.models import TelemetryEvent

__all__ = ["Validator"]


class _ValidationLike(Protocol):
    @property
    def max_latency_ms(self) -> float: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def max_cost_usd(self) -> float: ...

    @property
    def min_timestamp(self) -> float: ...

    @property
    def max_future_s(self) -> float: ...


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


class Validator:
    """Rejects events with missing keys, non-finite or out-of-range values."""

    __slots__ = ("max_cost_usd", "max_future_s", "max_latency_ms", "max_tokens", "min_timestamp")

    def __init__(self, settings: _ValidationLike) -> None:
        self.max_latency_ms = float(settings.max_latency_ms)
        self.max_tokens = int(settings.max_tokens)
        self.max_cost_usd = float(settings.max_cost_usd)
        self.min_timestamp = float(settings.min_timestamp)
        self.max_future_s = float(settings.max_future_s)

    def check(self, ev: TelemetryEvent, now: float | None = None) -> str | None:
        """``None`` when ``ev`` is plausible, else the first reason it is not."""
        if not ev.service:
            return "missing service"
        if not ev.model:
            return "missing model"
        lat = ev.latency_ms
        if not 0.0 <= lat <= self.max_latency_ms:  # also false for NaN
            return f"latency_ms {lat!r} outside [0, {_num(self.max_latency_ms)}]"
        for name, n in (("input_tokens", ev.input_tokens), ("output_tokens", ev.output_tokens)):
            if not 0 <= n <= self.max_tokens:
                return f"{name} {n!r} outside [0, {self.max_tokens}]"
        cost = ev.cost_usd
        if not 0.0 <= cost <= self.max_cost_usd:
            return f"cost_usd {cost!r} outside [0, {_num(self.max_cost_usd)}]"
        ttft = ev.ttft_ms
        if ttft is not None and not 0.0 <= ttft <= self.max_latency_ms:
            return f"ttft_ms {ttft!r} outside [0, {_num(self.max_latency_ms)}]"
        ts = ev.timestamp
        if not math.isfinite(ts) or ts == 0:
            return f"timestamp {ts!r} is not a valid time"
        if ts < self.min_timestamp:
            return f"timestamp {ts!r} before min_timestamp {_num(self.min_timestamp)}"
        limit = (time.time() if now is None else now) + self.max_future_s
        if ts > limit:
            return f"timestamp {ts!r} more than {_num(self.max_future_s)}s in the future"
        return None
