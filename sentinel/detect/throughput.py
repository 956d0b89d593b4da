"""Throughput degradation: window output tokens/s vs a robust EWMA baseline.

The log of the window's output tokens per second is standardised by a
:class:`~sentinel.detect.zscore.RobustZScore` (per-window updates); a window is
flagged when ``z < −threshold`` *and* the observed throughput is at most
``(1 − min_drop)`` of the baseline (geometric mean). The bank additionally asks
for ``consecutive`` flagged windows. Windows with fewer than ``min_requests``
successful requests are skipped: their tokens/s is too noisy to judge.
"""

from __future__ import annotations

import math

from sentinel.detect.base import Detector
from sentinel.detect.zscore import RobustZScore

__all__ = ["ThroughputDrop"]


class ThroughputDrop(Detector):
    """One-sided (low) robust z of log throughput per window.

    >>> d = ThroughputDrop(warmup_windows=5)
    >>> for i in range(30):
    ...     d.learn_one(50.0 + (i % 3))
    >>> d.is_anomaly(51.0)
    False
    >>> d.is_anomaly(20.0)
    True
    """

    def __init__(
        self,
        alpha: float = 0.05,
        threshold: float = 4.0,
        min_drop: float = 0.25,
        warmup_windows: int = 10,
    ) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.min_drop = min_drop
        self.warmup_windows = warmup_windows
        self._reset()

    def _reset(self) -> None:
        self.z = RobustZScore(alpha=self.alpha, threshold=self.threshold, warmup=self.warmup_windows, min_sigma=0.03)

    def expected(self) -> float | None:
        return math.exp(self.z.mean) if self.z.ready else None

    def score_one(self, tps: float) -> float | None:
        """Robust z of ``log(tps)`` (negative = slower), ``None`` during warm-up."""
        if tps <= 0:
            return None
        return self.z.score_one(math.log(tps))

    def is_anomaly(self, tps: float) -> bool:
        s = self.score_one(tps)
        if s is None or s >= -self.threshold:
            return False
        exp = self.expected()
        return exp is not None and tps <= (1.0 - self.min_drop) * exp

    def learn_one(self, tps: float) -> None:
        if tps > 0:
            self.z.alpha = self.alpha
            self.z.learn_one(math.log(tps))

    def rebaseline(self, tps: float) -> None:
        if tps > 0:
            self.z.rebaseline(math.log(tps))
