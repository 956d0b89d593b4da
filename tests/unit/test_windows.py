from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.models import TelemetryEvent
from sentinel.windows import LATENCY_RELATIVE_ACCURACY, WindowAccumulator


def ev(latency: float, err: bool = False, out: int = 100, inp: int = 50, ttft: float | None = None) -> TelemetryEvent:
    return TelemetryEvent(
        timestamp=1.7e9,
        service="s",
        model="m",
        latency_ms=latency,
        input_tokens=inp,
        output_tokens=out,
        cost_usd=0.001,
        is_error=err,
        ttft_ms=ttft,
    )


def test_aggregates_are_exact_sums() -> None:
    acc = WindowAccumulator()
    for e in (ev(100), ev(200, err=True, out=0), ev(300, inp=10)):
        acc.add(e)
    ws = acc.stats("s", "m", 60.0, 120.0)
    assert (ws.requests, ws.errors) == (3, 1)
    assert ws.error_rate == 1 / 3
    assert (ws.input_tokens, ws.output_tokens) == (110, 200)
    assert abs(ws.cost_usd - 0.003) < 1e-12
    # tokens/s = output tokens of successful calls over their generation time: 200 tokens / 0.4 s
    assert abs(ws.output_tokens_per_s - 500.0) < 1e-9


def test_tokens_per_second_excludes_time_to_first_token() -> None:
    acc = WindowAccumulator().add(ev(1100, out=100, ttft=100))
    assert abs(acc.stats("s", "m", 0, 60).output_tokens_per_s - 100.0) < 1e-9


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=500_000.0), min_size=1, max_size=400))
def test_percentiles_within_documented_relative_error(latencies: list[float]) -> None:
    acc = WindowAccumulator()
    for x in latencies:
        acc.add(ev(x))
    ws = acc.stats("s", "m", 0, 60)
    arr = np.array(latencies)
    for q, got in ((0.50, ws.latency_p50_ms), (0.95, ws.latency_p95_ms), (0.99, ws.latency_p99_ms)):
        # DDSketch returns a value within α relative error of the rank-⌊q(n-1)⌋ order statistic
        exact = np.quantile(arr, q, method="lower")
        assert abs(got - exact) <= LATENCY_RELATIVE_ACCURACY * exact * 1.0001, (q, got, exact)


def test_merge_equals_single_pass_and_pickles() -> None:
    rng = np.random.default_rng(3)
    xs = rng.lognormal(7, 1, 2000).tolist()
    whole, a, b = WindowAccumulator(), WindowAccumulator(), WindowAccumulator()
    for i, x in enumerate(xs):
        whole.add(ev(x))
        (a if i % 2 else b).add(ev(x))
    merged = pickle.loads(pickle.dumps(a)).merge(b)
    # exactly equal: sums are integers, so grouping and order cannot change a single bit
    assert merged.stats("s", "m", 0, 60) == whole.stats("s", "m", 0, 60)
    assert len(pickle.dumps(whole)) < 8_000
