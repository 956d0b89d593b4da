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

Evidence over several windows: a low-volume key with a moderate error spike
(6 % of 25 calls a minute = 1–2 errors per window) never makes one window
significant. :meth:`ErrorRate.step` accumulates a Bernoulli CUSUM of the
per-window log-likelihood ratio of ``p1 = max(min_ratio·p0, p0 + min_abs_increase)``,
``p0`` an upper bound of the baseline (:meth:`ErrorRate.upper_rate`),
against ``p0``, ``S ← max(0, S + e·log(p1/p0) + (n − e)·log((1 − p1)/(1 − p0)))``
(Page 1954): its drift is negative under ``p0`` and positive at ≥ ``p1``, and
``S > cusum_h`` has an in-control run length of roughly ``e^cusum_h`` windows.
The bank also stops learning while ``S`` is above ``cusum_h/3``, so the baseline is
not contaminated by the errors it is still accumulating evidence about.
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
        cusum_h: float = 10.0,
    ) -> None:
        self.alpha = alpha
        self.prior_rate = prior_rate
        self.prior_strength = prior_strength
        self.p_value = p_value
        self.min_errors = min_errors
        self.min_ratio = min_ratio
        self.min_abs_increase = min_abs_increase
        self.warmup_windows = warmup_windows
        self.cusum_h = cusum_h
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.errors = 0.0
        self.requests = 0.0
        self.cusum = 0.0  # Bernoulli CUSUM (log-likelihood ratio units)
        self.run_errors = 0  # errors / requests since the CUSUM last left 0
        self.run_requests = 0

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

    def is_anomaly(self, errors: int, requests: int, score: float | None = None) -> bool:
        """The window flagged: tail score past the threshold and the effect-size gates passed.

        ``score``: :meth:`score_one` of the same window, when the caller has it already.
        """
        s = self.score_one(errors, requests) if score is None else score
        if s is None or s <= self.threshold or errors < self.min_errors:
            return False
        base = self.baseline_rate()
        rate = errors / requests
        return rate >= base * self.min_ratio and rate >= base + self.min_abs_increase

    def upper_rate(self) -> float:
        """A conservative (≈ upper 2σ) baseline rate: what the CUSUM takes as "normal".

        A young key (few hundred requests, no errors yet) has a baseline far below its
        true rate; against the upper bound ``(a + 1 + 2·sqrt(a + 1))/N`` of its
        ``a`` pseudo-errors in ``N`` pseudo-requests its first ordinary errors are not
        evidence of an incident.
        """
        a = self.prior_rate * self.prior_strength + self.errors
        n = self.prior_strength + self.requests
        return min((a + 1.0 + 2.0 * math.sqrt(a + 1.0)) / n, 0.5)

    def alternative_rate(self, p0: float | None = None) -> float:
        """The error rate the CUSUM tests for: ``max(min_ratio·p0, p0 + min_abs_increase)``, p0 = upper rate."""
        base = self.upper_rate() if p0 is None else p0
        return min(max(base * self.min_ratio, base + self.min_abs_increase), 0.999)

    def step(self, errors: int, requests: int) -> float | None:
        """Advance the CUSUM with one window (does not learn the baseline); ``None`` in warm-up."""
        if self.n < self.warmup_windows or requests <= 0:
            return None
        p0 = self.upper_rate()
        p1 = self.alternative_rate(p0)
        llr = errors * math.log(p1 / p0) + (requests - errors) * math.log((1.0 - p1) / (1.0 - p0))
        if self.cusum <= 0.0:
            self.run_errors = self.run_requests = 0
        # capped at 2h: after a long incident the statistic returns to normal within tens of windows
        self.cusum = min(max(0.0, self.cusum + llr), 2.0 * self.cusum_h)
        if self.cusum > 0.0:
            self.run_errors += errors
            self.run_requests += requests
        return self.cusum

    def cusum_alarm(self) -> bool:
        """The CUSUM is above ``cusum_h`` on at least ``min_errors`` errors."""
        return self.cusum > self.cusum_h and self.run_errors >= self.min_errors

    def learn_one(self, errors: int, requests: int) -> None:
        self.n += 1
        d = 1.0 - self.alpha
        self.errors = self.errors * d + errors
        self.requests = self.requests * d + requests
