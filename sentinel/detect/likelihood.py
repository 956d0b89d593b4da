"""Anomaly likelihood of a surprise score, plus a range-novelty check (NAB-tuned).

A univariate streaming detector in three O(1) stages (per update: a few float
operations, one ``erfc`` and one ``log``; state: ~25 floats and a ring buffer
of ``short_window`` floats — about 1 KB pickled).

1. **Surprise** ``r ∈ [0, 1]`` of a value: the larger of the absolute z of the
   value against an exponentially weighted mean/variance (rate ``alpha``) and
   the absolute z of its first difference against the EW statistics of the
   differences (rate ``diff_alpha``), divided by ``z_cap`` and clipped to 1. σ is floored at
   ``min_sigma_rel`` × the series' scale so a flat series is not 0-σ.
2. **Anomaly likelihood** (Numenta's post-processing, Ahmad et al. 2017,
   ``nupic/algorithms/anomaly_likelihood.py``): the mean ``r̄`` of the last
   ``short_window`` surprises is compared with the long-run distribution of
   ``r̄`` (EW mean ``μ`` and variance ``σ²`` at rate ``long_alpha`` — Numenta
   keeps the last 8,640 raw scores instead, which would not fit in a per-key
   snapshot). The tail probability ``p = Q((r̄ − μ)/σ)`` (μ, σ² floored at
   ``mean_floor``/``var_floor`` as in Numenta's code) is reported as NAB's
   log-likelihood ``log(p + 1e-10)/log(1e-10)`` ∈ [0, 1]: 0.5 ↔ p = 1e-5,
   1.0 ↔ p ≤ 1e-10. Because the likelihood judges the surprise *relative to its
   own history*, a heavy-tailed metric whose surprise is often high is not
   alarmed for that; a change in how often it is surprising is.
3. **Range novelty** (Numenta's "spatial anomaly" in NAB's ``numenta`` detector):
   a value outside the envelope ``[lo − tol, hi + tol]``, ``tol =
   range_tolerance·(hi − lo)``, scores 1.0. The envelope is the running min/max,
   shrinking toward the mean at rate ``range_decay`` per update so that one
   ancient extreme does not blind it forever.

After a score ``≥ threshold`` (an *alarm*), the next ``cooldown`` updates are a
refractory period (:attr:`LikelihoodDetector.suppressed` is true): one incident
gives one alarm, not a burst — NAB credits only the first detection in a window
and charges every false positive. ``score_one`` itself is pure and always returns
the unsuppressed score (``None`` during warm-up); the caller alarms on
``score ≥ threshold and not suppressed``.

The defaults were tuned globally on NAB v1.1 (the same settings for all 58
files, never per file; see ``benchmarks/nab.py``): standard profile ≈ 67 at the
fixed threshold 0.5, on a plateau of ±2 points around them.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from sentinel.detect.base import Detector

__all__ = ["LikelihoodDetector", "LikelihoodSettings", "log_likelihood"]

_LOG_EPS = math.log(1e-10)
_SQRT2 = math.sqrt(2.0)


def log_likelihood(p: float) -> float:
    """NAB's log-likelihood score of a tail probability ``p``: 0 ↔ p = 1, 1 ↔ p ≤ 1e-10.

    >>> log_likelihood(1.0), log_likelihood(1e-5) > 0.49, log_likelihood(0.0)
    (0.0, True, 1.0)
    """
    s = math.log(p + 1e-10) / _LOG_EPS
    return 0.0 if s < 0.0 else (1.0 if s > 1.0 else s)


class LikelihoodSettings(BaseModel):
    """Settings of :class:`LikelihoodDetector` (defaults: tuned globally on NAB v1.1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    alpha: float = Field(
        default=0.003,
        gt=0,
        lt=1,
        description="EW rate of the value's mean/variance (memory ~1/alpha updates)",
    )
    use_diff: bool = Field(default=True, description="Also score the first difference (catches sudden steps early)")
    diff_alpha: float = Field(
        default=0.01, gt=0, lt=1, description="EW rate of the first-difference mean/variance (memory ~1/diff_alpha)"
    )
    z_cap: float = Field(default=6.0, gt=0, description="Surprise r = min(1, |z|/z_cap)")
    min_sigma_rel: float = Field(
        default=1e-3, gt=0, description="σ floor as a fraction of the series' scale (max of |mean| and range)"
    )
    short_window: int = Field(default=20, ge=1, le=256, description="Updates averaged into the short-term surprise")
    long_alpha: float = Field(
        default=0.001, gt=0, lt=1, description="EW rate of the long-run mean/variance of the short-term surprise"
    )
    mean_floor: float = Field(default=0.03, ge=0, description="Floor of the long-run mean (Numenta's value)")
    var_floor: float = Field(default=0.0003, gt=0, description="Floor of the long-run variance (Numenta's value)")
    range_tolerance: float = Field(
        default=0.01,
        ge=0,
        description="A value beyond the min/max envelope by more than this fraction of its width scores 1.0",
    )
    range_decay: float = Field(
        default=1e-5, ge=0, lt=1, description="Per-update shrink of the min/max envelope toward the mean"
    )
    warmup: int = Field(default=100, ge=2, description="Updates before the value statistics are used")
    likelihood_warmup: int = Field(
        default=50, ge=1, description="Further updates before the likelihood is used (None until then)"
    )
    threshold: float = Field(default=0.5, gt=0, le=1, description="Alarm when score ≥ this (0.5 ↔ p = 1e-5)")
    cooldown: int = Field(default=20, ge=0, description="Refractory updates after an alarm (no new alarm)")


class LikelihoodDetector(Detector):
    """Anomaly likelihood of the value/difference surprise, with range novelty.

    >>> import random
    >>> rng = random.Random(7)
    >>> det = LikelihoodDetector()
    >>> det.score_one(10.0) is None
    True
    >>> for _ in range(2000):
    ...     det.learn_one(10.0 + rng.gauss(0.0, 1.0))
    >>> det.score_one(10.5) < det.threshold
    True
    >>> scores = []
    >>> for _ in range(20):  # a level shift of 3σ
    ...     x = 13.0 + rng.gauss(0.0, 1.0)
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> max(scores) >= det.threshold
    True
    """

    STRUCTURE = ("short_window",)  # their change needs a fresh detector

    def __init__(
        self,
        alpha: float = 0.003,
        use_diff: bool = True,
        diff_alpha: float = 0.01,
        z_cap: float = 6.0,
        min_sigma_rel: float = 1e-3,
        short_window: int = 20,
        long_alpha: float = 0.001,
        mean_floor: float = 0.03,
        var_floor: float = 0.0003,
        range_tolerance: float = 0.01,
        range_decay: float = 1e-5,
        warmup: int = 100,
        likelihood_warmup: int = 50,
        threshold: float = 0.5,
        cooldown: int = 20,
    ) -> None:
        self.alpha = alpha
        self.use_diff = use_diff
        self.diff_alpha = diff_alpha
        self.z_cap = z_cap
        self.min_sigma_rel = min_sigma_rel
        self.short_window = short_window
        self.long_alpha = long_alpha
        self.mean_floor = mean_floor
        self.var_floor = var_floor
        self.range_tolerance = range_tolerance
        self.range_decay = range_decay
        self.warmup = warmup
        self.likelihood_warmup = likelihood_warmup
        self.threshold = threshold
        self.cooldown = cooldown
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.prev = 0.0
        self.d_mean = 0.0
        self.d_var = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.buf: list[float] = []  # ring buffer of the last surprises
        self.pos = 0
        self.n_long = 0
        self.long_mean = 0.0
        self.long_var = 0.0
        self.quiet = 0

    @property
    def ready(self) -> bool:
        return self.n_long >= self.likelihood_warmup

    @property
    def suppressed(self) -> bool:
        """True during the refractory period after an alarm (the next ``cooldown`` updates)."""
        return self.quiet > 0

    # -- scoring -------------------------------------------------------------------------

    def _surprise(self, x: float) -> float:
        width = self.hi - self.lo if self.hi > self.lo else 0.0
        floor = self.min_sigma_rel * max(abs(self.mean), width, 1e-9)
        s = math.sqrt(self.var) if self.var > 0.0 else 0.0
        z = abs(x - self.mean) / (s if s > floor else floor)
        if self.use_diff and self.n > 1:
            sd = math.sqrt(self.d_var) if self.d_var > 0.0 else 0.0
            zd = abs(x - self.prev - self.d_mean) / (sd if sd > floor else floor)
            if zd > z:
                z = zd
        r = z / self.z_cap
        return 1.0 if r > 1.0 else r

    def _short_mean(self, r: float) -> float:
        k = len(self.buf)
        if k < self.short_window:
            return (sum(self.buf) + r) / (k + 1)
        return (sum(self.buf) - self.buf[self.pos] + r) / k

    def _score(self, x: float) -> tuple[float | None, float | None, float | None]:
        """(score, surprise, short mean) of ``x`` given the current state; no mutation."""
        if self.n < self.warmup:
            return None, None, None
        r = self._surprise(x)
        sm = self._short_mean(r)
        if self.n_long < self.likelihood_warmup:
            return None, r, sm
        mu = self.long_mean if self.long_mean > self.mean_floor else self.mean_floor
        var = self.long_var if self.long_var > self.var_floor else self.var_floor
        score = log_likelihood(0.5 * math.erfc((sm - mu) / math.sqrt(var) / _SQRT2))
        if self.hi > self.lo:
            tol = self.range_tolerance * (self.hi - self.lo)
            if x > self.hi + tol or x < self.lo - tol:
                score = 1.0
        return score, r, sm

    def score_one(self, x: float) -> float | None:
        """Score in [0, 1] of ``x`` (``None`` during warm-up). Does not learn."""
        return self._score(x)[0]

    # -- learning ------------------------------------------------------------------------

    def learn_one(self, x: float) -> None:
        score, r, sm = self._score(x)
        if r is not None and sm is not None:
            if len(self.buf) < self.short_window:
                self.buf.append(r)
            else:
                self.buf[self.pos] = r
                self.pos = (self.pos + 1) % self.short_window
            self.n_long += 1
            a = max(self.long_alpha, 1.0 / self.n_long)
            d = sm - self.long_mean
            self.long_mean += a * d
            self.long_var = (1.0 - a) * (self.long_var + a * d * d)
        if self.quiet > 0:
            self.quiet -= 1
        elif score is not None and score >= self.threshold:
            self.quiet = self.cooldown
        # value statistics (equal weights until 1/n < alpha, then exponential)
        self.n += 1
        if self.n > 1:
            dx = x - self.prev
            a = max(self.diff_alpha, 1.0 / (self.n - 1))
            d = dx - self.d_mean
            self.d_mean += a * d
            self.d_var = (1.0 - a) * (self.d_var + a * d * d)
        centre = self.mean  # the envelope shrinks toward the mean before this update
        a = max(self.alpha, 1.0 / self.n)
        d = x - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.prev = x
        if x < self.lo:
            self.lo = x
        if x > self.hi:
            self.hi = x
        if self.range_decay > 0.0 and self.n > self.warmup:
            self.lo += self.range_decay * (centre - self.lo)
            self.hi += self.range_decay * (centre - self.hi)
