"""Robust z-score: an EWMA mean and variance with Huberised updates.

The baseline of a (log-scaled) metric is an exponentially weighted mean and
variance. Each update's deviation is clipped at ``±huber_c·σ`` (Huber's ψ), so
one extreme request moves the baseline by at most ``alpha·huber_c·σ``; the
variance is divided by the Gaussian consistency factor of the clipped square,
``E[min(Z², c²)]``, so σ stays unbiased for Gaussian noise. During warm-up the
exact Welford mean/variance of the first ``warmup`` points is used and
:meth:`RobustZScore.score_one` returns ``None``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from sentinel.detect.base import Detector

__all__ = ["RobustZScore", "huber_consistency"]


@lru_cache(maxsize=64)
def huber_consistency(c: float) -> float:
    """E[min(Z², c²)] for a standard normal Z (≈0.978 for c = 2.5)."""
    phi = math.exp(-0.5 * c * c) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(c / math.sqrt(2))
    return (1.0 - 2.0 * tail) - 2.0 * c * phi + 2.0 * c * c * tail


class RobustZScore(Detector):
    """Robust EWMA z-score of a stream.

    >>> z = RobustZScore(alpha=0.05, warmup=5)
    >>> z.score_one(1.0) is None
    True
    >>> for x in [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]:
    ...     z.learn_one(x)
    >>> round(z.mean, 2)
    1.0
    >>> z.score_one(2.0) > 4
    True
    """

    def __init__(
        self,
        alpha: float = 0.01,
        threshold: float = 4.0,
        huber_c: float = 2.5,
        warmup: int = 30,
        min_sigma: float = 0.02,
    ) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.huber_c = huber_c
        self.warmup = warmup
        self.min_sigma = min_sigma
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.var = 0.0  # M2 during warm-up, then the EW variance

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    @property
    def sigma(self) -> float:
        if self.n < self.warmup:
            v = self.var / (self.n - 1) if self.n > 1 else 0.0
        else:
            v = self.var
        return max(math.sqrt(v), self.min_sigma)

    def score_one(self, x: float) -> float | None:
        """Signed z of ``x`` against the baseline (``None`` during warm-up). Does not learn."""
        if self.n < self.warmup:
            return None
        return (x - self.mean) / self.sigma

    def learn_one(self, x: float) -> None:
        self.n += 1
        if self.n <= self.warmup:
            d = x - self.mean
            self.mean += d / self.n
            self.var += d * (x - self.mean)
            if self.n == self.warmup:
                self.var = self.var / (self.n - 1) if self.n > 1 else 0.0
            return
        c = self.huber_c * self.sigma
        d = x - self.mean
        d = c if d > c else (-c if d < -c else d)
        a = self.alpha
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d / huber_consistency(self.huber_c))

    def rebaseline(self, mean: float) -> None:
        """Move the mean to a new level (after a genuine level change), keeping σ."""
        self.mean = mean
