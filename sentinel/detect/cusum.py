"""Two-sided tabular CUSUM for sustained shifts.

Page's CUSUM on standardised values ``z``::

    S⁺ ← max(0, S⁺ + z − k)      S⁻ ← max(0, S⁻ − z − k)

alarms when ``S⁺ > h`` (upward shift) or ``S⁻ > h`` (downward), then resets the
alarming side to 0. Choice of ``k`` and ``h`` (in σ units): ``k = δ/2`` is the
optimal allowance for a shift of size δ; we target δ = 1σ (k = 0.5). With
Siegmund's approximation ``ARL(μ) ≈ (e^{−2μb} + 2μb − 1)/(2μ²)``,
``b = h + 1.166``, ``μ = δ − k``:

* ``h = 5``  → in-control ARL ≈ 940 events per side — far too many false alarms
  for a service doing one request a second;
* ``h = 10`` → in-control ARL ≈ 1.4·10⁵ events per side (≈ 39 h at 1 req/s), and
  the out-of-control ARL for a 1σ shift is ≈ 20 events, for 2σ ≈ 7.5 events;
* ``h = 15`` (default) → in-control ARL ≈ 2·10⁷ per side for Gaussian z, ≈ 30
  events for a 1σ shift, ≈ 11 for 2σ. Real LLM token counts are far from
  Gaussian even on the log scale (multimodal prompt mixes): on the generator's
  Azure-trace tokens ``h = 10`` raised ~1 false alert per series-hour, ``h = 15``
  with ``clip = 3`` ~0.3 (measured, ``benchmarks/labelled.py``), at equal recall.

Inputs are clipped to ``±clip`` (default 3) so the heavy tails of LLM latency do
not turn a few outliers into an alarm (the z-score detector handles those).

Used standalone (raw values) it standardises with its own
:class:`~sentinel.detect.zscore.RobustZScore`; the bank instead feeds z-values
from the metric's shared baseline through :meth:`Cusum.step`.
"""

from __future__ import annotations

from sentinel.detect.base import Detector
from sentinel.detect.zscore import RobustZScore

__all__ = ["Cusum", "cusum_sides"]


def cusum_sides(hi: float, lo: float, z: float, k: float, clip: float) -> tuple[float, float]:
    """One step of a two-sided tabular CUSUM on a standardised value clipped at ±``clip``.

    >>> cusum_sides(0.0, 0.0, 3.0, 0.5, 6.0)
    (2.5, 0.0)
    """
    z = clip if z > clip else (-clip if z < -clip else z)
    hi = hi + z - k
    lo = lo - z - k
    return (hi if hi > 0.0 else 0.0), (lo if lo > 0.0 else 0.0)


class Cusum(Detector):
    """Two-sided CUSUM; ``score_one`` returns the signed larger side (``+S⁺`` or ``−S⁻``).

    >>> c = Cusum(k=0.5, h=5.0, warmup=20)
    >>> for i in range(200):
    ...     c.learn_one(10.0 + (0.1 if i % 2 else -0.1))
    >>> c.score_one(10.0) == 0.0
    True
    >>> alarms = 0
    >>> for i in range(50):
    ...     s = c.score_one(10.3)
    ...     alarms += s is not None and s > c.h
    ...     c.learn_one(10.3)
    >>> alarms > 0
    True
    """

    def __init__(
        self,
        k: float = 0.5,
        h: float = 15.0,
        clip: float = 3.0,
        alpha: float = 0.01,
        warmup: int = 30,
    ) -> None:
        self.k = k
        self.h = h
        self.clip = clip
        self.alpha = alpha
        self.warmup = warmup
        self._reset()

    def _reset(self) -> None:
        self.hi = 0.0
        self.lo = 0.0
        self.baseline = RobustZScore(alpha=self.alpha, warmup=self.warmup)

    def _next(self, z: float) -> tuple[float, float]:
        return cusum_sides(self.hi, self.lo, z, self.k, self.clip)

    def step(self, z: float) -> tuple[float, float]:
        """Advance with a standardised value; returns (S⁺, S⁻) before any reset.

        A side above ``h`` is reset to 0 after being returned (restart after an alarm).
        """
        hi, lo = self._next(z)
        self.hi = 0.0 if hi > self.h else hi
        self.lo = 0.0 if lo > self.h else lo
        return hi, lo

    def reset(self) -> None:
        self.hi = 0.0
        self.lo = 0.0

    @staticmethod
    def signed(hi: float, lo: float) -> float:
        return hi if hi >= lo else -lo

    def score_one(self, x: float) -> float | None:
        z = self.baseline.score_one(x)
        if z is None:
            return None
        return self.signed(*self._next(z))

    def learn_one(self, x: float) -> None:
        z = self.baseline.score_one(x)
        if z is not None:
            hi, lo = self.step(z)
            if hi > self.h or lo > self.h:
                return  # an alarming point is not learned into the baseline
        self.baseline.learn_one(x)
