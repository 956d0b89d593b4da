"""Validator: every bound, at the limit and just beyond."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from sentinel.config import ValidationSettings
from sentinel.models import TelemetryEvent
from sentinel.validate import Validator

NOW = 1_767_225_600.0
S = ValidationSettings()
V = Validator(S)


def ev(**kw: Any) -> TelemetryEvent:
    base = TelemetryEvent(
        timestamp=NOW - 5,
        service="chat",
        model="gpt-4o",
        latency_ms=100.0,
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.01,
    )
    return replace(base, **kw)


def test_valid() -> None:
    assert V.check(ev(), now=NOW) is None


@pytest.mark.parametrize(
    ("field", "ok", "bad", "reason"),
    [
        ("latency_ms", 600_000.0, 600_000.001, "latency_ms 600000.001 outside [0, 600000]"),
        ("latency_ms", 0.0, -0.001, "latency_ms -0.001 outside [0, 600000]"),
        ("input_tokens", 1_048_576, 1_048_577, "input_tokens 1048577 outside [0, 1048576]"),
        ("input_tokens", 0, -1, "input_tokens -1 outside [0, 1048576]"),
        ("output_tokens", 1_048_576, 1_048_577, "output_tokens 1048577 outside [0, 1048576]"),
        ("output_tokens", 0, -1, "output_tokens -1 outside [0, 1048576]"),
        ("cost_usd", 100.0, 100.01, "cost_usd 100.01 outside [0, 100]"),
        ("cost_usd", 0.0, -0.01, "cost_usd -0.01 outside [0, 100]"),
        ("ttft_ms", 600_000.0, 600_001.0, "ttft_ms 600001.0 outside [0, 600000]"),
        ("timestamp", 946_684_800.0, 946_684_799.9, "timestamp 946684799.9 before min_timestamp 946684800"),
        ("timestamp", NOW + 86_400, NOW + 86_400.5, "more than 86400s in the future"),
    ],
)
def test_bounds(field: str, ok: Any, bad: Any, reason: str) -> None:
    assert V.check(ev(**{field: ok}), now=NOW) is None
    got = V.check(ev(**{field: bad}), now=NOW)
    assert got is not None
    assert reason in got


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"latency_ms": math.nan}, "latency_ms nan"),
        ({"latency_ms": math.inf}, "latency_ms inf"),
        ({"cost_usd": math.nan}, "cost_usd nan"),
        ({"ttft_ms": -math.inf}, "ttft_ms -inf"),
        ({"timestamp": math.nan}, "timestamp nan is not a valid time"),
        ({"timestamp": math.inf}, "timestamp inf is not a valid time"),
        ({"timestamp": 0.0}, "timestamp 0.0 is not a valid time"),
        ({"model": ""}, "missing model"),
        ({"service": ""}, "missing service"),
    ],
)
def test_rejections(kw: dict[str, Any], reason: str) -> None:
    got = V.check(ev(**kw), now=NOW)
    assert got is not None
    assert got.startswith(reason)


def test_wall_clock_default() -> None:
    import time

    assert V.check(ev(timestamp=time.time())) is None
    assert V.check(ev(timestamp=time.time() + 2 * 86_400)) is not None


def test_custom_settings() -> None:
    v = Validator(ValidationSettings(max_latency_ms=1000, max_tokens=10, max_cost_usd=1, max_future_s=0))
    assert v.check(ev(latency_ms=1000.5), now=NOW) == "latency_ms 1000.5 outside [0, 1000]"
    assert v.check(ev(input_tokens=11), now=NOW) == "input_tokens 11 outside [0, 10]"
    assert v.check(ev(timestamp=NOW + 1), now=NOW) is not None
    assert v.check(ev(timestamp=NOW), now=NOW) is None
