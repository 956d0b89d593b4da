"""Window error rate vs a beta-posterior baseline, tested with the binomial tail.

The baseline error rate is the mean of a Beta posterior whose pseudo-counts are
the prior (``prior_rate``·``prior_strength`` errors in ``prior_strength``
requests) plus exponentially discounted past windows (discount ``1 − alpha``
per window, memory ~``1/alpha`` windows). A window with ``e`` errors out of
``n`` requests scores ``−log10 P(X ≥ e)``, ``X ~ Binomial(n, p̂)``. Low counts are
handled by the exact tail (3 errors in 5 requests is not significant against a
5 % baseline) and by two effect-size guards — at least ``min_errors`` errors and a
rate above both ``min_ratio``·p̂ and p̂ + ``min_abs_increase`` — so a very busy
key does not alarm on a statistically significant but irrelevant change.
"""

from __future__ import annotations

import math

from sentinel.detect._stats import binom_sf
from sentinel.detect.base import Detector

__all__ = ["ErrorRate"]


class ErrorRate(Detector):
    """Binomial-tail error-rate detector over windows.

    >>> d = ErrorRate(warmup_windows=3)
    >>> for _ in range(20):
    ...     d.learn_one(1, 200)
    >>> d.is_anomaly(2, 200)
    False
    >>> d.is_anomaly(40, 200)
    True
    >>> round(d.baseline_rate(), 3) < 0.01
    True
    """

    def __init__(
        self,
        alpha: float = 0.02,
        prior_rate: float = 0.01,
        prior_strength: float = 50.0,
        p_value: float = 1e-6,
        min_errors: int = 5,
        min_ratio: float = 2.0,
        min_abs_increase: float = 0.02,
        warmup_windows: int = 5,
    ) -> None:
        self.alpha = alpha
        self.prior_rate = prior_rate
        self.prior_strength = prior_strength
        self.p_value = p_value
        self.min_errors = min_errors
        self.min_ratio = min_ratio
        self.min_abs_increase = min_abs_increase
        self.warmup_windows = warmup_windows
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.errors = 0.0
        self.requests = 0.0

    @property
    def threshold(self) -> float:
        return -math.log10(self.p_value)

    def baseline_rate(self) -> float:
        a = self.prior_rate * self.prior_strength + self.errors
        return a / (self.prior_strength + self.requests)

    def score_one(self, errors: int, requests: int) -> float | None:
        """``−log10`` of the binomial upper-tail p-value (``None`` during warm-up)."""
        if self.n < self.warmup_windows or requests <= 0:
            return None
        p = binom_sf(errors, requests, self.baseline_rate())
        return -math.log10(max(p, 1e-300))

    def is_anomaly(self, errors: int, requests: int) -> bool:
        s = self.score_one(errors, requests)
        if s is None or s <= self.threshold or errors < self.min_errors:
            return False
        base = self.baseline_rate()
        rate = errors / requests
        return rate >= base * self.min_ratio and rate >= base + self.min_abs_increase

    def learn_one(self, errors: int, requests: int) -> None:
        self.n += 1
        d = 1.0 - self.alpha
        self.errors = self.errors * d + errors
        self.requests = self.requests * d + requests
