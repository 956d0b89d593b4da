"""The compact HST (:class:`~sentinel.detect.hst.HSTOutlier`) equals river's ``HalfSpaceTrees``."""

from __future__ import annotations

import pickle
import random

import pytest

from sentinel.detect.hst import HSTOutlier

anomaly = pytest.importorskip("river.anomaly")

FEATURES = ("latency", "output_tokens", "output_tokens_per_s")


def _stream(seed: int, n: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {f: min(max(rng.gauss(0.5, 0.12), 0.0), 1.0) for f in FEATURES}
        if i % 97 == 0:  # an occasional far point, so scores spread
            x["latency"] = rng.random()
        out.append(x)
    return out


@pytest.mark.parametrize(
    ("n_trees", "height", "window_size", "seed"), [(5, 5, 250, 42), (3, 3, 50, 7), (10, 8, 100, 1)]
)
def test_scores_equal_river_for_the_same_seed(n_trees: int, height: int, window_size: int, seed: int) -> None:
    river_hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    ours = HSTOutlier(n_trees=n_trees, height=height, window_size=window_size, seed=seed, warmup=0)
    ours.features = tuple(sorted(FEATURES))
    for x in _stream(seed, 4 * window_size + 37):
        u = [x[f] for f in ours.features]
        assert ours.raw_score(u) == river_hst.score_one(x)  # exact: same trees, same masses, same arithmetic
        river_hst.learn_one(x)
        ours.raw_learn(u)


def test_compact_state_is_small_and_round_trips() -> None:
    ours = HSTOutlier(n_trees=5, height=5, window_size=250, warmup=0)
    ours.features = tuple(sorted(FEATURES))
    stream = _stream(3, 600)
    for x in stream:
        ours.raw_learn([x[f] for f in ours.features])
    twin = pickle.loads(pickle.dumps(ours))
    u = [stream[0][f] for f in ours.features]
    assert twin.raw_score(u) == ours.raw_score(u)
    assert len(pickle.dumps(ours)) < 4_000
