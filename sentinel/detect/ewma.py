"""EWMA control chart on standardised values.

``E ← (1 − λ)·E + λ·z``; in control ``Var(E) → λ/(2 − λ)``, so the chart alarms
when ``|E| > L·sqrt(λ/(2 − λ))``. With λ = 0.05 and L = 4 the in-control ARL is
well above 10⁵ for Gaussian z while a 1σ shift is caught in ~20 events — similar
to CUSUM(k=0.5, h=10) and selectable with ``detection.shift_method: ewma``.
After an alarm ``E`` is reset to 0. Inputs are clipped to ``±clip``.
"""

from __future__ import annotations

import math

from sentinel.detect.base import Detector
from sentinel.detect.zscore import RobustZScore

__all__ = ["EwmaChart"]


class EwmaChart(Detector):
    """EWMA chart; ``score_one`` is the next smoothed value in units of its σ (signed).

    >>> e = EwmaChart(lam=0.1, L=3.0, warmup=20)
    >>> for i in range(200):
    ...     e.learn_one(5.0 + (0.1 if i % 2 else -0.1))
    >>> abs(e.score_one(5.0)) < 1
    True
    >>> flagged = False
    >>> for _ in range(40):
    ...     s = e.score_one(5.3)
    ...     flagged = flagged or s > e.L
    ...     e.learn_one(5.3)
    >>> flagged
    True
    """

    def __init__(
        self,
        lam: float = 0.05,
        L: float = 4.0,  # noqa: N803 - the chart's conventional name
        clip: float = 4.0,
        alpha: float = 0.01,
        warmup: int = 30,
    ) -> None:
        self.lam = lam
        self.L = L
        self.clip = clip
        self.alpha = alpha
        self.warmup = warmup
        self._reset()

    def _reset(self) -> None:
        self.e = 0.0
        self.baseline = RobustZScore(alpha=self.alpha, warmup=self.warmup)

    @property
    def sd(self) -> float:
        return math.sqrt(self.lam / (2.0 - self.lam))

    def _next(self, z: float) -> float:
        c = self.clip
        z = c if z > c else (-c if z < -c else z)
        return (1.0 - self.lam) * self.e + self.lam * z

    def step(self, z: float) -> float:
        """Advance with a standardised value; returns the smoothed value in σ_E units (reset after alarm)."""
        e = self._next(z)
        s = e / self.sd
        self.e = 0.0 if abs(s) > self.L else e
        return s

    def reset(self) -> None:
        self.e = 0.0

    def score_one(self, x: float) -> float | None:
        z = self.baseline.score_one(x)
        if z is None:
            return None
        return self._next(z) / self.sd

    def learn_one(self, x: float) -> None:
        z = self.baseline.score_one(x)
        if z is not None and abs(self.step(z)) > self.L:
            return
        self.baseline.learn_one(x)
