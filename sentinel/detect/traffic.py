"""Traffic spike / drop: request counts vs a time-of-day-aware expected rate.

Expected log-rate = a recent level (EWMA of the log request rate per second, rate
``alpha_level`` per window, i.e. ~10 windows of memory) plus a seasonal
correction from a time-of-day profile: ``profile_bins`` bins (48 = half-hourly)
each hold an EWMA of the log rate seen in that bin. The EWMA level lags by
``L = (1 − α)/α`` windows; once both the current bin and the bin ``L`` windows
ago hold data from an earlier day, the profile's change between them is added,
so a diurnal ramp (or a regular daily batch) is expected rather than flagged.
Without a full day of history the recent level alone tracks a smooth diurnal
cycle (the lag error at minute resolution is a few percent).

A window with ``c`` requests where ``λ`` were expected is flagged when all of:

* the Poisson tail ``P(X ≥ c)`` (spike) or ``P(X ≤ c)`` (drop) is below ``p_value``
  (exact for low counts);
* the overdispersed z of the log count, ``(log c − log λ)/sqrt(1/λ + φ)``, exceeds
  ``z_threshold`` — ``φ`` is the learned extra-Poisson variance of the log rate,
  so a bursty service is judged against its own burstiness;
* the ratio ``c/λ`` is at least ``min_ratio_spike`` or at most ``max_ratio_drop``.

Evidence over several windows (a ×3 spike of a night key at 20 requests a
minute is z ≈ 3 per window, never 5): :meth:`TrafficRate.accumulate` runs a
two-sided CUSUM of the window z (clipped at ±6, allowance ``cusum_k``) and a short
EWMA of the log ratio (weight 0.3); the bank reports when a side exceeds
``cusum_h`` and the smoothed ratio passes the same effect-size gate. Windows
beyond ``±hold_z`` or while a side is above ``cusum_h/2`` are not learned, so the
level and the overdispersion do not absorb the incident being accumulated.

Empty windows produce no aggregate; :meth:`TrafficRate.score_gap` scores ``m``
skipped windows with 0 requests (``P = e^{−mλ}``).
"""

from __future__ import annotations

import math

from sentinel.detect._stats import poisson_cdf, poisson_sf
from sentinel.detect.base import Detector
from sentinel.detect.cusum import cusum_sides

__all__ = ["TrafficRate", "TrafficVerdict"]

_DAY = 86_400.0


class TrafficVerdict:
    """The evaluation of one window (or gap): direction +1 spike, −1 drop, 0 normal."""

    __slots__ = ("_p", "direction", "expected", "observed", "ratio", "z")

    def __init__(self, direction: int, observed: float, expected: float, z: float, ratio: float) -> None:
        self.direction = direction
        self.observed = observed
        self.expected = expected
        self.z = z
        self.ratio = ratio
        self._p: float | None = None

    @property
    def p(self) -> float:
        """One-sided Poisson p-value of the count (upper tail above the expectation, else lower).

        Worked out on first use: most windows are judged normal by z and ratio alone.
        """
        if self._p is None:
            k = round(self.observed)
            self._p = poisson_sf(k, self.expected) if k > self.expected else poisson_cdf(k, self.expected)
        return self._p


class TrafficRate(Detector):
    """Poisson + overdispersion test of window request counts against a learned rate.

    >>> d = TrafficRate(warmup_windows=5)
    >>> for i in range(30):
    ...     d.learn_one(i * 60.0, 600, 60.0)
    >>> d.evaluate(1800.0, 610, 60.0).direction
    0
    >>> d.evaluate(1800.0, 3000, 60.0).direction
    1
    >>> d.evaluate(1800.0, 50, 60.0).direction
    -1
    """

    def __init__(
        self,
        alpha_level: float = 0.1,
        profile_bins: int = 48,
        alpha_profile: float = 0.05,
        alpha_dispersion: float = 0.05,
        p_value: float = 1e-6,
        z_threshold: float = 5.0,
        min_ratio_spike: float = 1.8,
        max_ratio_drop: float = 0.5,
        min_expected: float = 3.0,
        warmup_windows: int = 10,
        cusum_k: float = 1.0,
        cusum_h: float = 8.0,
        hold_z: float = 2.5,
    ) -> None:
        self.alpha_level = alpha_level
        self.profile_bins = profile_bins
        self.alpha_profile = alpha_profile
        self.alpha_dispersion = alpha_dispersion
        self.p_value = p_value
        self.z_threshold = z_threshold
        self.min_ratio_spike = min_ratio_spike
        self.max_ratio_drop = max_ratio_drop
        self.min_expected = min_expected
        self.warmup_windows = warmup_windows
        self.cusum_k = cusum_k
        self.cusum_h = cusum_h
        self.hold_z = hold_z
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.level = 0.0  # log requests per second
        self.disp = 0.01  # extra variance of the log rate
        self.profile: list[float | None] = [None] * self.profile_bins
        self.first_day: list[int] = [-1] * self.profile_bins
        self.hi = 0.0  # CUSUM sides (z units)
        self.lo = 0.0
        self.fast = 0.0  # short EWMA of the log ratio observed/expected
        self.held = 0  # windows in a row not learned

    @property
    def threshold(self) -> float:
        return self.z_threshold

    def _configure(self) -> None:
        if len(self.profile) != self.profile_bins:  # a new time-of-day grid: its profile is learned afresh
            self.profile = [None] * self.profile_bins
            self.first_day = [-1] * self.profile_bins

    def _bin(self, t: float) -> int:
        return int((t % _DAY) / (_DAY / self.profile_bins)) % self.profile_bins

    def _seasonal(self, t: float, length: float) -> float:
        day = int(t // _DAY)
        lag = length * (1.0 - self.alpha_level) / self.alpha_level
        b_now, b_lag = self._bin(t), self._bin(t - lag)
        p_now, p_lag = self.profile[b_now], self.profile[b_lag]
        if p_now is None or p_lag is None or self.first_day[b_now] >= day or self.first_day[b_lag] >= day:
            return 0.0
        return p_now - p_lag

    def expected_rate(self, t: float, length: float) -> float | None:
        """Expected requests per second for the window ending at ``t`` (``None`` in warm-up)."""
        if self.n < self.warmup_windows:
            return None
        return math.exp(self.level + self._seasonal(t, length))

    def score_one(self, t: float, count: int, length: float) -> float | None:
        """Signed overdispersed z of the window's count (``None`` during warm-up)."""
        v = self.evaluate(t, count, length)
        return None if v is None else v.z

    def evaluate(self, t: float, count: int, length: float, windows: int = 1) -> TrafficVerdict | None:
        """Full verdict for ``windows`` consecutive windows totalling ``count`` requests."""
        rate = self.expected_rate(t, length)
        if rate is None:
            return None
        lam = max(rate * length * windows, 1e-9)
        z = (math.log(count + 0.5) - math.log(lam + 0.5)) / math.sqrt(1.0 / (lam + 0.5) + self.disp / windows)
        ratio = count / lam
        v = TrafficVerdict(0, float(count), lam, z, ratio)
        # the exact tail (v.p) is dear: it is consulted only when z and the ratio point out
        if count > lam:
            if z > self.z_threshold and ratio >= self.min_ratio_spike and v.p < self.p_value:
                v.direction = 1
        elif -z > self.z_threshold and ratio <= self.max_ratio_drop and lam >= self.min_expected and v.p < self.p_value:
            v.direction = -1
        return v

    def score_gap(self, t: float, windows: int, length: float) -> TrafficVerdict | None:
        """Verdict for ``windows`` skipped (empty) windows ending at ``t``."""
        return self.evaluate(t, 0, length, windows)

    def accumulate(self, v: TrafficVerdict) -> int:
        """Advance the CUSUM and the smoothed ratio with one window's verdict; +1/−1 when it alarms, else 0."""
        self.hi, self.lo = cusum_sides(self.hi, self.lo, v.z, self.cusum_k, 6.0)
        self.fast = 0.7 * self.fast + 0.3 * math.log((v.observed + 0.5) / (v.expected + 0.5))
        ratio = math.exp(self.fast)
        if self.hi > self.cusum_h and ratio >= self.min_ratio_spike:
            return 1
        if self.lo > self.cusum_h and ratio <= self.max_ratio_drop:
            return -1
        return 0

    def should_learn(self, v: TrafficVerdict | None) -> bool:
        """Learn a window unless it is far out or a CUSUM side is building up."""
        if v is None:
            return True
        return abs(v.z) <= self.hold_z and self.hi <= 0.5 * self.cusum_h and self.lo <= 0.5 * self.cusum_h

    def learn_one(self, t: float, count: int, length: float) -> None:
        x = math.log((count + 0.5) / length)
        self.n += 1
        if self.n <= self.warmup_windows:
            d = x - self.level
            self.level += d / self.n
            if self.n > 1:
                self.disp += (d * d - self.disp) / self.n
        else:
            expected = self.level + self._seasonal(t, length)
            lam = math.exp(expected) * length
            r = x - expected
            extra = max(r * r - 1.0 / (lam + 0.5), 0.0)
            extra = min(extra, 25.0 * max(self.disp, 1e-4))  # robust: one odd window barely moves φ
            self.disp = max((1 - self.alpha_dispersion) * self.disp + self.alpha_dispersion * extra, 1e-4)
            d = x - self.level
            d = 3.0 if d > 3.0 else (-3.0 if d < -3.0 else d)
            self.level += self.alpha_level * d
        b = self._bin(t)
        day = int(t // _DAY)
        cur = self.profile[b]
        if cur is None:
            self.profile[b] = x
            self.first_day[b] = day
        else:
            self.profile[b] = cur + self.alpha_profile * (x - cur)

    def rebaseline(self, t: float, count: int, length: float) -> None:
        """Accept the current rate as the new normal (after a sustained genuine change)."""
        self.level = math.log((count + 0.5) / length) - self._seasonal(t, length)
        self.hi = self.lo = self.fast = 0.0
        self.held = 0
