"""Median absolute deviation detector.

``score = (x − median) / (1.4826 · MAD)``: the MAD scaled by 1.4826 estimates σ
for Gaussian data with a 50 % breakdown point, so heavy-tailed outliers barely
move it. Both the median and the MAD are exponentially weighted quantile
sketches (the MAD is the median of ``|x − median|``), bounded in memory.
"""

from __future__ import annotations

from sentinel.detect.base import Detector
from sentinel.detect.quantile import EWQuantiles

__all__ = ["MAD"]


class MAD(Detector):
    """Robust z via the median and the MAD.

    >>> d = MAD(threshold=5.0, alpha=0.05, warmup=10)
    >>> d.score_one(0.0) is None
    True
    >>> for i in range(300):
    ...     d.learn_one(float(i % 5))
    >>> d.score_one(30.0) > 5.0
    True
    """

    def __init__(self, threshold: float = 5.0, alpha: float = 0.02, warmup: int = 30) -> None:
        self.threshold = threshold
        self.alpha = alpha
        self.warmup = warmup
        self._reset()

    def _reset(self) -> None:
        self.median = EWQuantiles((0.5,), alpha=self.alpha, warmup=self.warmup)
        self.dev = EWQuantiles((0.5,), alpha=self.alpha, warmup=self.warmup)

    def _configure(self) -> None:
        for sketch in (self.median, self.dev):
            sketch.alpha, sketch.warmup = self.alpha, self.warmup

    def score_one(self, x: float) -> float | None:
        if not self.dev.ready:
            return None
        med = self.median.q[0]
        mad = max(self.dev.q[0], 1e-9) * 1.4826
        return (x - med) / mad

    def learn_one(self, x: float) -> None:
        med = self.median.get(0.5)
        self.median.update(x)
        if med is not None:
            self.dev.update(abs(x - med))
