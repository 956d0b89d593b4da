"""Latency given output tokens: a robust streaming regression and its residual.

An LLM call's latency is roughly ``ttft + output_tokens / tokens_per_s``: long
answers take long, short answers are quick. :class:`LatencyGivenTokens` learns,
per key, an exponentially weighted least-squares line of ``y = log latency`` on
``x = log(1 + output tokens)`` (EW means, variance of ``x`` and covariance, rate
``alpha``) and a Huberised EW variance of the residual ``r = y − ŷ(x)``. A call
is *incongruent* when the pair contradicts the line while each value alone may be
usual:

* a long answer (``x`` above its mean by ``x_min`` σ) that came back far too
  fast (residual z below ``−threshold``), or
* a tiny answer (``x`` below its mean by ``x_min`` σ) that took far too long
  (residual z above ``threshold``).

The bank reports a ``multivariate_outlier`` when ``k`` of the last ``n`` calls
are incongruent. Queueing outliers (slow calls of any length) rarely satisfy the
second rule, because they must also coincide with a short answer.

State: eight floats — about 300 bytes pickled.
"""

from __future__ import annotations

import math

from sentinel.detect.base import Detector

__all__ = ["LatencyGivenTokens"]


class LatencyGivenTokens(Detector):
    """EW regression of log latency on log output tokens; residual and token z-values.

    >>> import random
    >>> rng = random.Random(3)
    >>> d = LatencyGivenTokens(warmup=100)
    >>> for _ in range(2000):
    ...     x = rng.gauss(5.0, 0.8)
    ...     d.learn_one(x, 6.0 + 0.8 * x + rng.gauss(0.0, 0.2))
    >>> round(d.slope, 1)
    0.8
    >>> zr, zx = d.score_one(6.2, 6.0 + 0.8 * 6.2)
    >>> abs(zr) < 2, zx > 1
    (True, True)
    >>> zr, zx = d.score_one(6.2, 6.0 + 0.8 * 4.0)  # a long answer, as fast as a short one
    >>> zr < -4
    True
    """

    def __init__(
        self,
        alpha: float = 0.005,
        warmup: int = 300,
        huber_c: float = 3.0,
        min_sigma: float = 0.05,
    ) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.huber_c = huber_c
        self.min_sigma = min_sigma
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mx = 0.0
        self.my = 0.0
        self.vxx = 0.0
        self.cxy = 0.0
        self.vyy = 0.0
        self.rv = 0.0  # residual variance (Huberised EW once warm)

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    @property
    def slope(self) -> float:
        return self.cxy / self.vxx if self.vxx > 1e-12 else 0.0

    @property
    def sigma(self) -> float:
        if self.n <= self.warmup:
            b = self.slope
            v = self.vyy - b * self.cxy  # residual variance of the least-squares fit so far
        else:
            v = self.rv
        return max(math.sqrt(v) if v > 0 else 0.0, self.min_sigma)

    def predict(self, x: float) -> float:
        """Expected log latency for log(1 + output tokens) ``x``."""
        return self.my + self.slope * (x - self.mx)

    def score_one(self, x: float, y: float) -> tuple[float, float] | None:
        """(residual z, token z) of the pair (``None`` during warm-up). Does not learn."""
        if self.n < self.warmup:
            return None
        sx = math.sqrt(self.vxx) if self.vxx > 0 else 0.0
        return (y - self.predict(x)) / self.sigma, (x - self.mx) / max(sx, self.min_sigma)

    def learn_one(self, x: float, y: float) -> None:
        self.n += 1
        if self.n > self.warmup:
            pred = self.predict(x)
            r = y - pred
            lim = self.huber_c * self.sigma
            rc = lim if r > lim else (-lim if r < -lim else r)
            self.rv += self.alpha * (rc * rc - self.rv)
            a = self.alpha
            # the regression learns a clipped y, so one slow outlier barely tilts the line
            y = pred + rc
        else:
            a = 1.0 / self.n
        dx = x - self.mx
        dy = y - self.my
        self.mx += a * dx
        self.my += a * dy
        self.vxx = (1.0 - a) * (self.vxx + a * dx * dx)
        self.cxy = (1.0 - a) * (self.cxy + a * dx * dy)
        self.vyy = (1.0 - a) * (self.vyy + a * dy * dy)
        if self.n == self.warmup:
            self.rv = max(self.vyy - self.slope * self.cxy, 0.0)
