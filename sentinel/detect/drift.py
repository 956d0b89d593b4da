"""Distribution drift of token counts: PSI and KL of log2-binned histograms.

Token counts are binned on a fixed log2 grid — bin 0 holds 0, bin ``i ≥ 1``
holds ``[2^(i−1), 2^i)``, the last bin everything above — so the histogram is a
fixed ``bins``-length count vector whatever the model. Events are accumulated
in blocks of ``block_events`` (the "recent window"); each completed block is
compared with a reference distribution:

* PSI = Σ (pᵢ − qᵢ)·ln(pᵢ/qᵢ) (symmetric); > 0.25 is the customary "major shift";
* KL(p‖q) = Σ pᵢ·ln(pᵢ/qᵢ).

Both use additive smoothing (``smoothing`` counts per bin). Under no drift,
PSI ≈ χ²_{B−1}/N: with N = 300 and ~8 occupied bins its mean is ≈ 0.03, so
0.25 is far in the tail. The reference is the first ``reference_blocks``
blocks, then an exponentially weighted mixture updated with weight
``reference_alpha`` by every non-drifted block (slow benign change is absorbed);
drifted blocks are not learned, but after ``rebaseline_after`` drifted blocks in a
row the latest block becomes the reference (a genuine, lasting change).
"""

from __future__ import annotations

import math

from sentinel.detect.base import Detector

__all__ = ["TokenDrift", "kl_divergence", "log2_bin", "psi"]


def log2_bin(x: int, bins: int) -> int:
    """Bin index of a token count on the fixed log2 grid."""
    if x <= 0:
        return 0
    b = int(x).bit_length()
    return b if b < bins else bins - 1


def _norm(counts: list[float], smoothing: float) -> list[float]:
    tot = sum(counts) + smoothing * len(counts)
    return [(c + smoothing) / tot for c in counts]


def psi(p: list[float], q: list[float]) -> float:
    """Population stability index of two (smoothed, normalised) distributions.

    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.9, 0.1], [0.5, 0.5]), 4)
    0.8789
    """
    return sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True))


def kl_divergence(p: list[float], q: list[float]) -> float:
    """KL(p‖q) in nats.

    >>> round(kl_divergence([0.9, 0.1], [0.5, 0.5]), 4)
    0.3681
    """
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


class TokenDrift(Detector):
    """PSI/KL drift of a token-count stream, block against reference.

    ``score_one(x)`` is the divergence of the block that ``x`` would complete
    (``None`` when ``x`` does not complete a block, or before the reference exists).

    >>> d = TokenDrift(block_events=100)
    >>> scores = []
    >>> for i in range(400):
    ...     x = 100 + (i % 50)
    ...     s = d.score_one(x)
    ...     d.learn_one(x)
    ...     scores.append(s)
    >>> [round(s, 3) for s in scores if s is not None]
    [0.0, 0.0]
    >>> for i in range(100):
    ...     x = 2000 + i
    ...     s = d.score_one(x)
    ...     d.learn_one(x)
    >>> s > 0.25
    True
    """

    STRUCTURE = ("bins",)  # their change needs a fresh detector

    def __init__(
        self,
        bins: int = 20,
        block_events: int = 300,
        psi_threshold: float = 0.25,
        kl_threshold: float = 0.25,
        method: str = "psi",
        reference_alpha: float = 0.2,
        reference_blocks: int = 2,
        rebaseline_after: int = 6,
        smoothing: float = 0.5,
    ) -> None:
        self.bins = bins
        self.block_events = block_events
        self.psi_threshold = psi_threshold
        self.kl_threshold = kl_threshold
        self.method = method
        self.reference_alpha = reference_alpha
        self.reference_blocks = reference_blocks
        self.rebaseline_after = rebaseline_after
        self.smoothing = smoothing
        self._reset()

    def _reset(self) -> None:
        self.block: list[int] = [0] * self.bins
        self.filled = 0
        self.reference: list[float] = [0.0] * self.bins
        self.ref_blocks = 0
        self.drifted_run = 0
        self.last_psi: float | None = None
        self.last_kl: float | None = None

    @property
    def threshold(self) -> float:
        return self.psi_threshold if self.method == "psi" else self.kl_threshold

    @property
    def ready(self) -> bool:
        return self.ref_blocks >= self.reference_blocks

    def _divergences(self, block: list[int]) -> tuple[float, float]:
        n = float(sum(block)) or 1.0
        # smooth the reference with the same pseudo-count mass as the block, so both sides are comparable
        ref = [r * n for r in self.reference]
        p = _norm([float(c) for c in block], self.smoothing)
        q = _norm(ref, self.smoothing)
        return psi(p, q), kl_divergence(p, q)

    def _configure(self) -> None:
        if len(self.block) != self.bins:  # another grid: nothing learned on the old one applies
            self._reset()

    def _complete(self, x: int) -> list[int] | None:
        if self.filled + 1 < self.block_events:
            return None
        block = list(self.block)
        block[log2_bin(x, self.bins)] += 1
        return block

    def score_one(self, x: int) -> float | None:
        if not self.ready:
            return None
        block = self._complete(x)
        if block is None:
            return None
        p, k = self._divergences(block)
        return p if self.method == "psi" else k

    def update(self, x: int) -> float | None:
        """:meth:`score_one` then :meth:`learn_one` in one call (the bank's per-event path).

        Most events only count into the open block; they take a short path.
        """
        filled = self.filled
        if filled + 1 < self.block_events:
            self.block[log2_bin(x, self.bins)] += 1
            self.filled = filled + 1
            return None
        score = self.score_one(x)
        self.learn_one(x)
        return score

    def learn_one(self, x: int) -> None:
        block = self._complete(x)
        if block is None:
            self.block[log2_bin(x, self.bins)] += 1
            self.filled += 1
            return
        n = float(sum(block))
        dist = [c / n for c in block]
        if not self.ready:
            k = self.ref_blocks
            self.reference = [(r * k + d) / (k + 1) for r, d in zip(self.reference, dist, strict=True)]
            self.ref_blocks += 1
        else:
            p, kl = self._divergences(block)
            self.last_psi, self.last_kl = p, kl
            if (p if self.method == "psi" else kl) > self.threshold:
                self.drifted_run += 1
                if self.drifted_run >= self.rebaseline_after:
                    self.reference = dist
                    self.drifted_run = 0
            else:
                self.drifted_run = 0
                a = self.reference_alpha
                self.reference = [(1 - a) * r + a * d for r, d in zip(self.reference, dist, strict=True)]
        self.block = [0] * self.bins
        self.filled = 0
