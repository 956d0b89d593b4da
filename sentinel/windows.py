"""Per-key event-time window aggregates (pure; the Bytewax windowing glue lives in the dataflow).

A :class:`WindowAccumulator` folds the events of one key and one tumbling window
into the aggregates of :class:`~sentinel.models.WindowStats`. Latency percentiles
are exact for windows of up to ``EXACT_LATENCIES`` requests (the raw values are
kept: most sparse keys and per-batch partials are that small), and beyond that come
from a DDSketch (Datadog's ``ddsketch``): every reported quantile is within
``LATENCY_RELATIVE_ACCURACY`` (1 %) *relative* error of the exact value over the
same events, memory is bounded by the dynamic range of latencies (a few KB), and
two sketches merge exactly — which Bytewax needs when windows merge.

>>> from sentinel.models import TelemetryEvent
>>> acc = WindowAccumulator()
>>> for ms in (100.0, 200.0, 300.0):
...     _ = acc.add(TelemetryEvent(timestamp=1.0, service="s", model="m", latency_ms=ms, output_tokens=10))
>>> ws = acc.stats("s", "m", 0.0, 60.0)
>>> ws.requests, round(ws.latency_p50_ms)
(3, 200)
"""

from __future__ import annotations

from ddsketch import DDSketch

from sentinel.models import TelemetryEvent, WindowStats

__all__ = ["LATENCY_RELATIVE_ACCURACY", "WindowAccumulator"]

LATENCY_RELATIVE_ACCURACY = 0.01
# below this many latencies a window keeps the raw values (exact percentiles, a few hundred
# bytes); above, a DDSketch. Most per-batch partials and sparse keys' windows stay small.
EXACT_LATENCIES = 64
# latencies below this (ms) are clamped: DDSketch needs positive values, and
# sub-microsecond latencies only occur in broken or synthetic spans
_MIN_LATENCY_MS = 1e-3


class WindowAccumulator:
    """Running aggregates of one key over one window; merges exactly.

    Sums of real numbers are kept as integers (cost in pico-dollars, generation time
    in microseconds) so that a window's aggregates do not depend on how its events
    were grouped or ordered — one process or a cluster, file or Kafka batches, the
    same window always gives the same numbers.
    """

    __slots__ = (
        "cost_pusd",
        "errors",
        "exact",
        "gen_tokens",
        "gen_us",
        "input_tokens",
        "latency",
        "output_tokens",
        "requests",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_pusd = 0  # pico-dollars
        # decode throughput is a ratio of sums (tokens over generation time), not a mean of
        # per-request ratios, so that one tiny request cannot dominate the window
        self.gen_tokens = 0
        self.gen_us = 0
        self.latency: DDSketch | None = None
        self.exact: list[float] = []

    def add(self, ev: TelemetryEvent) -> WindowAccumulator:
        self.requests += 1
        if ev.is_error:
            self.errors += 1
        self.input_tokens += ev.input_tokens
        self.output_tokens += ev.output_tokens
        self.cost_pusd += round(ev.cost_usd * 1e12)
        self._add_latency(ev.latency_ms if ev.latency_ms > _MIN_LATENCY_MS else _MIN_LATENCY_MS)
        gen = ev.generation_ms
        if gen is not None:
            self.gen_tokens += ev.output_tokens
            self.gen_us += round(gen * 1000.0)
        return self

    def _add_latency(self, x: float) -> None:
        sketch = self.latency
        if sketch is not None:
            sketch.add(x)
            return
        self.exact.append(x)
        if len(self.exact) > EXACT_LATENCIES:
            self._to_sketch()

    def _to_sketch(self) -> DDSketch:
        """Move the exact latencies into a sketch (past ``EXACT_LATENCIES``, or to merge with one)."""
        sketch = self.latency = DDSketch(relative_accuracy=LATENCY_RELATIVE_ACCURACY)
        for v in self.exact:
            sketch.add(v)
        self.exact = []
        return sketch

    def merge(self, other: WindowAccumulator) -> WindowAccumulator:
        self.requests += other.requests
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_pusd += other.cost_pusd
        self.gen_tokens += other.gen_tokens
        self.gen_us += other.gen_us
        if other.latency is not None:
            (self.latency or self._to_sketch()).merge(other.latency)
        for v in other.exact:
            self._add_latency(v)
        return self

    def _q(self, q: float) -> float:
        if self.latency is None:
            ordered = self.exact  # sorted by stats()
            if not ordered:
                return 0.0
            return ordered[int(q * (len(ordered) - 1))]  # the "lower" order statistic, as DDSketch ranks
        v = self.latency.get_quantile_value(q)
        return float(v) if v is not None else 0.0

    def stats(self, service: str, model: str, start: float, end: float, late_events: int = 0) -> WindowStats:
        self.exact.sort()  # once, for the three percentiles (order is not state: any order sums the same)
        return WindowStats(
            service=service,
            model=model,
            start=start,
            end=end,
            requests=self.requests,
            errors=self.errors,
            latency_p50_ms=self._q(0.50),
            latency_p95_ms=self._q(0.95),
            latency_p99_ms=self._q(0.99),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_pusd / 1e12,
            output_tokens_per_s=(self.gen_tokens * 1e6 / self.gen_us) if self.gen_us > 0 else 0.0,
            late_events=late_events,
        )

    # pickling with __slots__ needs explicit state (Bytewax snapshots and exchanges these)
    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            object.__setattr__(self, name, value)
