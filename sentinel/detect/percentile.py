"""Rolling-percentile detector: beyond the learned upper/lower q-quantile plus a margin.

Flags ``x > Q_q + margin`` or ``x < Q_{1−q} − margin`` (log units: a margin of
0.5 is a factor ×1.65). The score is the signed excess over the quantile, so
``|score| > margin`` means flagged.
"""

from __future__ import annotations

from sentinel.detect.base import Detector
from sentinel.detect.quantile import EWQuantiles

__all__ = ["Percentile"]


class Percentile(Detector):
    """Excess over a rolling percentile.

    >>> d = Percentile(q=0.99, margin=0.5, alpha=0.05, warmup=10)
    >>> for i in range(500):
    ...     d.learn_one(float(i % 10) / 10)
    >>> d.score_one(3.0) > 0.5
    True
    >>> abs(d.score_one(0.5)) <= 0.5
    True
    """

    STRUCTURE = ("q",)  # their change needs a fresh detector

    def __init__(self, q: float = 0.99, margin: float = 0.5, alpha: float = 0.02, warmup: int = 50) -> None:
        self.q = q
        self.margin = margin
        self.alpha = alpha
        self.warmup = warmup
        self._reset()

    def _reset(self) -> None:
        self.sketch = EWQuantiles((1.0 - self.q, 0.5, self.q), alpha=self.alpha, warmup=self.warmup)

    def _configure(self) -> None:
        self.sketch.alpha, self.sketch.warmup = self.alpha, self.warmup

    @property
    def threshold(self) -> float:
        return self.margin

    def score_one(self, x: float) -> float | None:
        if not self.sketch.ready:
            return None
        lo, _, hi = self.sketch.q
        if x > hi:
            return x - hi
        if x < lo:
            return x - lo
        return 0.0

    def learn_one(self, x: float) -> None:
        self.sketch.update(x)
