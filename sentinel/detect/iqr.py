"""IQR fences (Tukey) from an exponentially weighted quartile sketch.

A point is flagged when it lies outside ``[Q1 − k·IQR, Q3 + k·IQR]``; ``k = 3``
is Tukey's "far out" fence (for a Gaussian, a two-sided rate of ~2·10⁻⁶).
The score is the signed distance beyond the nearest quartile in IQR units,
so ``|score| > k`` means outside a fence.
"""

from __future__ import annotations

from sentinel.detect.base import Detector
from sentinel.detect.quantile import EWQuantiles

__all__ = ["IQRFence"]


class IQRFence(Detector):
    """Tukey fences over a stream.

    >>> d = IQRFence(k=3.0, alpha=0.05, warmup=10)
    >>> d.score_one(1.0) is None
    True
    >>> for i in range(300):
    ...     d.learn_one(float(i % 7))
    >>> abs(d.score_one(3.0)) < 3.0
    True
    >>> d.score_one(40.0) > 3.0
    True
    """

    def __init__(self, k: float = 3.0, alpha: float = 0.02, warmup: int = 30) -> None:
        self.k = k
        self.alpha = alpha
        self.warmup = warmup
        self._reset()

    def _reset(self) -> None:
        self.sketch = EWQuantiles((0.25, 0.5, 0.75), alpha=self.alpha, warmup=self.warmup)

    def _configure(self) -> None:
        self.sketch.alpha, self.sketch.warmup = self.alpha, self.warmup

    @property
    def threshold(self) -> float:
        return self.k

    def score_one(self, x: float) -> float | None:
        if not self.sketch.ready:
            return None
        q1, _, q3 = self.sketch.q
        iqr = max(q3 - q1, 1e-9)
        if x > q3:
            return (x - q3) / iqr
        if x < q1:
            return (x - q1) / iqr
        return 0.0

    def learn_one(self, x: float) -> None:
        self.sketch.update(x)
