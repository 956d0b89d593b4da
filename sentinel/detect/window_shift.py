"""Sustained level shifts of a per-window aggregate (log scale), judged by its own sampling noise.

Used by the bank for window latency p50 (degradation / spike), decode throughput,
mean input and output tokens per request (token usage) and cost per request.

A window aggregate ``y = log(statistic)`` over ``n`` requests has variance
``c/n + τ²``: sampling noise shrinking with the window's size (``c`` is learned,
the per-request variance times the estimator's efficiency) plus a floor ``τ =
min_sigma`` for between-window wander (provider load, minute-level noise). So a
3-request night window is judged far more leniently than a 300-request peak
window — which a per-window z with one pooled σ cannot do. The baseline is an
EWMA of ``y`` (rate ``alpha`` per window, Huberised at ±2.5 SD), slow enough that a
+60 % degradation ramping in over 5 minutes is not absorbed, fast enough that a
slow benign ramp (+20 % over hours) or a diurnal load cycle is followed.

The window z-values feed a two-sided CUSUM (allowance ``k``, z clipped at ±6), so
a moderate shift that no single small window proves (+60 % latency at 2.5σ per
window) accumulates to the decision interval in a few windows. A window is
flagged when the CUSUM side exceeds ``h`` *and* a short EWMA of the ratio to the
baseline (:attr:`WindowShift.fast`, weight 0.3) passes an effect-size gate: the
gate is what keeps heavy-tailed but harmless wobbles of large windows — tiny SE,
so large z — from alerting. The variance proxy ``c`` learns at half the rate of the
mean with deviations clipped at ±2.5 SD, so a ramp cannot inflate it. Flagged windows are not learned (an incident
does not become the new normal); after ``rebaseline_after`` flagged windows in a
row the level is accepted (:meth:`rebaseline`).
"""

from __future__ import annotations

import math

from sentinel.detect.base import Detector
from sentinel.detect.cusum import cusum_sides

__all__ = ["WindowShift"]


class WindowShift(Detector):
    """Signed z of a window's log statistic against a size-aware EWMA baseline.

    >>> import random
    >>> rng = random.Random(1)
    >>> d = WindowShift(warmup_windows=10)
    >>> for _ in range(60):
    ...     n = rng.randint(20, 200)
    ...     d.learn_one(rng.gauss(5.0, 0.8 / n**0.5), n)
    >>> abs(d.score_one(5.0, 100)) < 2
    True
    >>> d.score_one(5.0 + math.log(1.6), 100) > 4
    True
    """

    def __init__(self, alpha: float = 0.03, warmup_windows: int = 15, min_sigma: float = 0.05, k: float = 1.0) -> None:
        self.alpha = alpha
        self.warmup_windows = warmup_windows
        self.min_sigma = min_sigma
        self.k = k
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.c = 0.0  # per-request variance proxy: E[n·(y − mean)²] (minus the floor)
        self.hi = 0.0  # CUSUM sides (z units)
        self.lo = 0.0
        self.fast = 0.0  # short EWMA of the log ratio to the baseline

    def step(self, y: float, n: int) -> float | None:
        """Score ``y`` and advance the CUSUM and the fast ratio (does not learn the baseline)."""
        z = self.score_one(y, n)
        if z is None:
            return None
        self.hi, self.lo = cusum_sides(self.hi, self.lo, z, self.k, 6.0)
        self.fast = 0.7 * self.fast + 0.3 * (y - self.mean)
        return z

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup_windows

    def sd(self, n: int) -> float:
        """Standard deviation of a window aggregate over ``n`` requests."""
        return math.sqrt(self.c / max(n, 1) + self.min_sigma * self.min_sigma)

    def score_one(self, y: float, n: int) -> float | None:
        """Signed z of ``y`` (``None`` during warm-up)."""
        if self.n < self.warmup_windows:
            return None
        return (y - self.mean) / self.sd(n)

    def learn_one(self, y: float, n: int) -> None:
        self.n += 1
        f2 = self.min_sigma * self.min_sigma
        if self.n <= self.warmup_windows:
            d = y - self.mean
            self.mean += d / self.n
            if self.n > 1:
                self.c += (max(n * (d * d * (self.n - 1) / self.n - f2), 0.0) - self.c) / (self.n - 1)
            return
        d = y - self.mean
        lim = 2.5 * self.sd(n)
        d = lim if d > lim else (-lim if d < -lim else d)
        a = self.alpha
        self.mean += a * d
        self.c += 0.5 * a * (max(n * (d * d - f2), 0.0) - self.c)

    def rebaseline(self, y: float) -> None:
        """Accept ``y`` as the new level (after a sustained genuine change)."""
        self.mean = y
        self.hi = self.lo = self.fast = 0.0
