"""Multivariate outliers: Half-Space Trees (Tan, Ting & Liu 2011), stored compactly.

This is river's ``HalfSpaceTrees`` algorithm, bit for bit (same random trees for
the same ``seed``, same mass updates, same score ``1 − Σ r_mass·2^depth / max``),
with a different *storage*: river keeps every tree as linked Python node objects
per instance (≈40 KB live per key for 5 trees × height 3, the bulk of a bank's
memory). Here

* the tree *structure* (split feature and threshold of each internal node) depends
  only on ``(n_trees, height, seed, feature names)``, so it is built once per
  process and shared, read-only, by every key (:func:`tree_structure`, cached —
  deterministic, so recovery rebuilds the very same trees);
* the per-key *state* is two ``array('i')`` of node masses in heap order (node
  ``i`` has children ``2i+1``, ``2i+2``): ``n_trees·(2^(height+1) − 1)`` ints each
  (75 for 5 × 3) — a few hundred bytes live and pickled.

``tests/unit/detect/test_hst.py`` checks that scores equal river's
``HalfSpaceTrees`` for the same seed and stream.

Features are the per-metric robust z-values of the bank (log latency, log output
tokens, log output tokens/s), mapped into the unit cube as
``clip(0.5 + z / (2·z_range), 0, 1)`` — the learned robust baselines do the
scaling, so the cube is centred on "normal" for every key whatever its units.

Calibration per key: HST scores of shallow forests are coarse and their scale
depends on the data, so a point is *flagged* when its score exceeds both a floor
(``threshold``) and the key's own learned ``score_quantile`` of HST scores
(:class:`~sentinel.detect.quantile.EWQuantiles`). The bank then reports a
multivariate outlier when the *rate* of flagged points is far above the
calibrated ``1 − score_quantile`` (see ``HstSettings``).
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Mapping, Sequence
from functools import lru_cache

from sentinel.detect.base import Detector
from sentinel.detect.quantile import EWQuantiles

__all__ = ["HSTOutlier", "tree_structure"]

_PADDING = 0.15  # river's make_padded_tree padding


@lru_cache(maxsize=32)
def tree_structure(
    n_trees: int, height: int, seed: int, features: tuple[str, ...]
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Split feature index and threshold of every internal node, tree after tree, heap order.

    Reproduces river's ``make_padded_tree`` draws exactly (``random.Random(seed)``,
    one ``choices`` weighted by the limit widths and one ``uniform`` per node, in
    depth-first order, trees built one after the other, limits ``[0, 1]`` per
    sorted feature name).
    """
    rng = random.Random(seed)
    names = sorted(features)
    n_int = (1 << height) - 1
    feat = [0] * (n_trees * n_int)
    thr = [0.0] * (n_trees * n_int)

    def build(limits: dict[str, tuple[float, float]], depth: int, node: int, base: int) -> None:
        if depth == height:
            return
        on = rng.choices(population=list(limits.keys()), weights=[limits[i][1] - limits[i][0] for i in limits])[0]
        a, b = limits[on]
        at = rng.uniform(a + _PADDING * (b - a), b - _PADDING * (b - a))
        feat[base + node] = names.index(on)
        thr[base + node] = at
        limits[on] = (a, at)
        build(limits, depth + 1, 2 * node + 1, base)
        limits[on] = (at, b)
        build(limits, depth + 1, 2 * node + 2, base)
        limits[on] = (a, b)

    for t in range(n_trees):
        build(dict.fromkeys(names, (0.0, 1.0)), 0, 0, t * n_int)
    return tuple(feat), tuple(thr)


class HSTOutlier(Detector):
    """Half-space-trees anomaly score over z-valued features (``None`` during warm-up).

    >>> import random
    >>> rng = random.Random(0)
    >>> d = HSTOutlier(warmup=100, window_size=50)
    >>> d.score_one({"a": 0.0, "b": 0.0}) is None
    True
    >>> for _ in range(600):
    ...     d.learn_one({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)})
    >>> d.score_one({"a": 0.1, "b": -0.1}) < d.score_one({"a": 5.9, "b": -5.9})
    True
    """

    STRUCTURE = ("n_trees", "height", "window_size", "seed")  # their change needs a fresh detector

    def __init__(
        self,
        n_trees: int = 5,
        height: int = 3,
        window_size: int = 250,
        threshold: float = 0.45,
        z_range: float = 6.0,
        warmup: int = 200,
        seed: int = 42,
        score_quantile: float = 0.995,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.threshold = threshold
        self.z_range = z_range
        self.warmup = warmup
        self.seed = seed
        self.score_quantile = score_quantile
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.counter = 0
        self.features: tuple[str, ...] = ()
        n_nodes = self.n_trees * ((2 << self.height) - 1)
        self.l_mass = array("i", bytes(4 * n_nodes))
        self.r_mass: array[int] | None = None  # None during the first window (river's _first_window)
        self.scores = EWQuantiles((self.score_quantile,), alpha=0.01, warmup=50)

    def _configure(self) -> None:
        if self.scores.probs != (self.score_quantile,):  # the score sketch tracks one quantile
            self.scores = EWQuantiles((self.score_quantile,), alpha=0.01, warmup=50)

    def limit(self) -> float:
        """The flagging limit: the larger of ``threshold`` and the learned ``score_quantile`` of scores."""
        q = self.scores.get(self.score_quantile)
        return self.threshold if q is None else max(self.threshold, q)

    def scale(self, zs: Sequence[float]) -> list[float]:
        """Robust z-values → unit-cube coordinates."""
        s = 0.5 / self.z_range
        out = []
        for v in zs:
            u = 0.5 + v * s
            out.append(0.0 if u < 0.0 else (1.0 if u > 1.0 else u))
        return out

    def _vec(self, x: Mapping[str, float]) -> list[float]:
        if not self.features:
            self.features = tuple(sorted(x))
        return self.scale([x[f] for f in self.features])

    # ---------------------------------------------------------------- raw (unit-cube) API

    def raw_score(self, u: Sequence[float]) -> float:
        """river's ``score_one`` on unit-cube coordinates ``u`` (feature order = sorted names)."""
        r = self.r_mass
        if r is None:
            return 0.0
        feat, thr = tree_structure(self.n_trees, self.height, self.seed, self.features)
        h = self.height
        n_int = (1 << h) - 1
        n_nodes = 2 * n_int + 1
        size_limit = 0.1 * self.window_size
        score = 0.0
        for t in range(self.n_trees):
            base = t * n_nodes
            ib = t * n_int
            node = 0
            pw = 1
            for _ in range(h):
                m = r[base + node]
                score += m * pw
                if m < size_limit:
                    break
                node = 2 * node + 1 if u[feat[ib + node]] < thr[ib + node] else 2 * node + 2
                pw <<= 1
            else:
                score += r[base + node] * pw
        return 1.0 - score / (self.n_trees * self.window_size * ((2 << h) - 1))

    def raw_learn(self, u: Sequence[float]) -> None:
        """river's ``learn_one`` on unit-cube coordinates ``u``."""
        feat, thr = tree_structure(self.n_trees, self.height, self.seed, self.features)
        lm = self.l_mass
        h = self.height
        n_int = (1 << h) - 1
        n_nodes = 2 * n_int + 1
        for t in range(self.n_trees):
            base = t * n_nodes
            ib = t * n_int
            node = 0
            for _ in range(h):
                lm[base + node] += 1
                node = 2 * node + 1 if u[feat[ib + node]] < thr[ib + node] else 2 * node + 2
            lm[base + node] += 1
        self.counter += 1
        if self.counter == self.window_size:
            self.r_mass = lm
            self.l_mass = array("i", bytes(4 * len(lm)))
            self.counter = 0

    # ---------------------------------------------------------------- detector API

    def score_u(self, u: Sequence[float]) -> float | None:
        """Score of unit-cube coordinates (``None`` during warm-up)."""
        if self.n < self.warmup:
            return None
        return self.raw_score(u)

    def calibrate(self, score: float) -> None:
        """Feed the per-key score-quantile calibration (every scored point, flagged or not)."""
        self.scores.update(score)

    def learn_u(self, u: Sequence[float], calibrate: bool = True) -> None:
        """Learn unit-cube coordinates (and, with ``calibrate``, feed the score quantile).

        Calibration must see flagged points too (a caller that does not learn flagged
        points calls :meth:`calibrate` itself and passes ``calibrate=False``), or a
        too-low limit could never rise again.
        """
        self.n += 1
        if calibrate and self.n > self.window_size:
            self.scores.update(self.raw_score(u))
        self.raw_learn(u)

    def score_one(self, x: Mapping[str, float]) -> float | None:
        if self.n < self.warmup:
            return None
        return self.raw_score(self._vec(x))

    def learn_one(self, x: Mapping[str, float]) -> None:
        self.learn_u(self._vec(x))
