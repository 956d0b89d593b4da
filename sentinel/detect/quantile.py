"""A fixed-size, exponentially weighted streaming quantile sketch.

Each tracked quantile ``q_p`` follows the stochastic-approximation update

    q_p ← q_p + alpha · s · (p − 1[x < q_p])

whose fixed point is ``P(X < q_p) = p``; the step scale ``s`` is an EWMA of the
absolute deviation from the median, so the sketch adapts to the metric's spread
and to level changes with memory ~``1/alpha`` updates. The first ``warmup``
values are kept (bounded list) and sorted to initialise the quantiles exactly;
after that the state is ``len(probs) + 2`` floats. Pickled size of a 3-quantile
sketch: ~250 bytes (river's ``RollingQuantile(window_size=200)`` ~2 KB, its P²
``Quantile`` does not forget).
"""

from __future__ import annotations

from sentinel.detect.base import Detector

__all__ = ["EWQuantiles"]


class EWQuantiles(Detector):
    """Exponentially weighted quantiles of a stream.

    >>> q = EWQuantiles(probs=(0.25, 0.5, 0.75), alpha=0.05, warmup=5)
    >>> q.get(0.5) is None
    True
    >>> for x in range(1, 101):
    ...     q.update(float(x % 10))
    >>> 3.0 <= q.get(0.5) <= 6.0
    True
    """

    def __init__(self, probs: tuple[float, ...] = (0.25, 0.5, 0.75), alpha: float = 0.02, warmup: int = 30) -> None:
        self.probs = tuple(probs)
        self.alpha = alpha
        self.warmup = warmup
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.q: list[float] = [0.0] * len(self.probs)
        self.scale = 0.0
        self._buf: list[float] | None = []

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    def get(self, p: float) -> float | None:
        """The current estimate of quantile ``p`` (one of ``probs``), ``None`` during warm-up."""
        if self.n < self.warmup:
            return None
        return self.q[self.probs.index(p)]

    def update(self, x: float) -> None:
        self.n += 1
        buf = self._buf
        if buf is not None:
            buf.append(x)
            if len(buf) >= self.warmup:
                srt = sorted(buf)
                m = len(srt) - 1
                self.q = [srt[min(m, max(0, round(p * m)))] for p in self.probs]
                med = srt[m // 2]
                self.scale = max(sum(abs(v - med) for v in srt) / len(srt), 1e-6)
                self._buf = None
            return
        a = self.alpha
        step = self.scale
        q = self.q
        for i, p in enumerate(self.probs):
            q[i] += a * step * (p - (1.0 if x < q[i] else 0.0)) * 2.0
        # keep the estimates ordered (crossing quantiles are meaningless)
        for i in range(1, len(q)):
            if q[i] < q[i - 1]:
                q[i] = q[i - 1]
        mid = q[len(q) // 2]
        self.scale = (1.0 - a) * step + a * max(abs(x - mid), 1e-6)
