"""The river-style check suite, applied to every detector class."""

from __future__ import annotations

import copy
import itertools
import pickle
import random
from typing import Any

import pytest

from tests.unit.detect.detect_cases import DETECTORS, QUANTILES

NAMES = sorted(DETECTORS)


def _score(det: Any, x: tuple[Any, ...]) -> Any:
    return det.score_one(*x)


def _feed(det: Any, stream: Any, n: int) -> None:
    for x in itertools.islice(stream, n):
        det.learn_one(*x)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip_gives_identical_outputs(name: str) -> None:
    factory, gen, warm, _ = DETECTORS[name]
    rng = random.Random(1)
    stream = gen(rng)
    det = factory()
    _feed(det, stream, warm + 500)
    twin = pickle.loads(pickle.dumps(det))
    for x in itertools.islice(stream, 500):
        assert _score(det, x) == _score(twin, x)
        det.learn_one(*x)
        twin.learn_one(*x)


@pytest.mark.parametrize("name", [n for n in NAMES if hasattr(DETECTORS[n][0](), "update")])
def test_update_is_score_then_learn(name: str) -> None:
    """The fused per-event path gives the same scores and the same state as the two calls."""
    factory, gen, warm, _ = DETECTORS[name]
    stream = gen(random.Random(4))
    fused, pair = factory(), factory()
    scored = 0
    for x in itertools.islice(stream, warm + 3_000):
        expected = pair.score_one(*x)
        pair.learn_one(*x)
        assert fused.update(*x) == expected
        scored += expected is not None
    assert pickle.dumps(fused) == pickle.dumps(pair)
    assert scored > 0


@pytest.mark.parametrize("name", NAMES)
def test_clone_has_equal_params_and_no_state(name: str) -> None:
    factory, gen, warm, _ = DETECTORS[name]
    det = factory()
    _feed(det, gen(random.Random(2)), warm + 50)
    fresh = det.clone()
    assert type(fresh) is type(det)
    assert fresh.params() == det.params()
    assert pickle.dumps(fresh) == pickle.dumps(factory())


@pytest.mark.parametrize("name", NAMES)
def test_bounded_memory_after_100k_updates(name: str) -> None:
    factory, gen, _, bound = DETECTORS[name]
    det = factory()
    n = 100_000 if name != "HSTOutlier" else 20_000  # HST: fixed-size trees; 20k keeps the suite fast
    stream = gen(random.Random(3))
    _feed(det, stream, 2_000)
    size_early = len(pickle.dumps(det))
    _feed(det, stream, n - 2_000)
    size = len(pickle.dumps(det))
    assert size <= bound, f"{name} pickles to {size} B"
    assert size <= size_early * 1.2 + 64  # does not grow


@pytest.mark.parametrize("name", NAMES)
def test_score_does_not_mutate_state(name: str) -> None:
    factory, gen, warm, _ = DETECTORS[name]
    stream = gen(random.Random(4))
    det = factory()
    for x in itertools.islice(stream, warm + 300):
        before = pickle.dumps(det)
        s1 = _score(det, x)
        s2 = _score(det, x)
        assert s1 == s2
        assert pickle.dumps(det) == before
        det.learn_one(*x)


@pytest.mark.parametrize("name", NAMES)
def test_none_during_warmup_never_zero(name: str) -> None:
    factory, gen, warm, _ = DETECTORS[name]
    det = factory()
    stream = gen(random.Random(5))
    seen_value = False
    for i, x in enumerate(itertools.islice(stream, warm + 400)):
        s = _score(det, x)
        if i < warm - 1 and name != "TokenDrift":
            assert s is None, f"score {s!r} at update {i} during warm-up"
        if s is not None:
            seen_value = True
        det.learn_one(*x)
    if name == "TokenDrift":
        # only the updates completing a block score; before the reference exists all are None
        fresh = factory()
        for x in itertools.islice(gen(random.Random(6)), 199):
            assert _score(fresh, x) is None
            fresh.learn_one(*x)
    assert seen_value


def test_deepcopy_equals_pickle_for_bank_components() -> None:
    factory, gen = QUANTILES
    q = factory()
    for (x,) in itertools.islice(gen(random.Random(7)), 1000):
        q.update(x)
    assert copy.deepcopy(q).q == q.q
    assert len(pickle.dumps(q)) < 400


def test_reconfigured_keeps_state_unless_the_structure_changes() -> None:
    from sentinel.detect.base import reconfigured
    from sentinel.detect.drift import TokenDrift
    from sentinel.detect.percentile import Percentile

    det = Percentile(q=0.99, warmup=10)
    for i in range(200):
        det.learn_one(float(i % 17))
    same = reconfigured(det, Percentile, {"q": 0.99, "margin": 2.0, "enabled": True})  # unknown keys ignored
    assert same is det and same.margin == 2.0
    assert pickle.dumps(same.clone()) != pickle.dumps(same)  # learned state kept
    fresh = reconfigured(det, Percentile, {"q": 0.5})
    assert fresh is not det and fresh.q == 0.5 and pickle.dumps(fresh) == pickle.dumps(fresh.clone())
    assert isinstance(reconfigured(det, TokenDrift, {"bins": 12}), TokenDrift)  # another type: new detector
    assert reconfigured(None, TokenDrift, {"bins": 12}).bins == 12


def test_new_parameters_reach_the_state_built_from_them() -> None:
    from sentinel.detect.base import reconfigured
    from sentinel.detect.hst import HSTOutlier
    from sentinel.detect.iqr import IQRFence
    from sentinel.detect.mad import MAD
    from sentinel.detect.traffic import TrafficRate

    iqr = reconfigured(IQRFence(), IQRFence, {"alpha": 0.2, "warmup": 7})
    assert (iqr.sketch.alpha, iqr.sketch.warmup) == (0.2, 7)
    mad = reconfigured(MAD(), MAD, {"alpha": 0.1})
    assert mad.median.alpha == mad.dev.alpha == 0.1
    hst = HSTOutlier()
    same = reconfigured(hst, HSTOutlier, {"score_quantile": 0.9})
    assert same is hst and hst.scores.probs == (0.9,)
    traffic = reconfigured(TrafficRate(), TrafficRate, {"profile_bins": 24})
    assert len(traffic.profile) == len(traffic.first_day) == 24
