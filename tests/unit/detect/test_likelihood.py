"""LikelihoodDetector: the river-style checks, its settings, and behaviour on shifts, spikes and noise."""

from __future__ import annotations

import math
import pickle
import random

import pytest
from pydantic import ValidationError

from sentinel.detect.likelihood import LikelihoodDetector, LikelihoodSettings, log_likelihood

WARM = 150  # warmup (100) + likelihood_warmup (50)


def _noise(rng: random.Random, n: int, mu: float = 5.0, sd: float = 0.5) -> list[float]:
    return [rng.gauss(mu, sd) for _ in range(n)]


def _trained(n: int = 3000, seed: int = 0) -> tuple[LikelihoodDetector, random.Random]:
    rng = random.Random(seed)
    det = LikelihoodDetector()
    for x in _noise(rng, n):
        det.learn_one(x)
    return det, rng


def _alarms(det: LikelihoodDetector, xs: list[float]) -> list[int]:
    """Indices where the caller would alarm (score ≥ threshold outside the refractory period)."""
    out = []
    for i, x in enumerate(xs):
        s = det.score_one(x)
        if s is not None and s >= det.threshold and not det.suppressed:
            out.append(i)
        det.learn_one(x)
    return out


def test_none_during_warmup_then_a_score() -> None:
    det = LikelihoodDetector()
    rng = random.Random(1)
    for i in range(WARM):
        assert det.score_one(rng.gauss(0, 1)) is None, i
        det.learn_one(rng.gauss(0, 1))
    s = det.score_one(0.0)
    assert s is not None and 0.0 <= s <= 1.0


def test_pickle_round_trip_gives_identical_scores() -> None:
    det, rng = _trained(1000)
    twin = pickle.loads(pickle.dumps(det))
    for x in [*_noise(rng, 500), 9.0, 9.5, 1.0]:
        assert det.score_one(x) == twin.score_one(x)
        det.learn_one(x)
        twin.learn_one(x)
    assert det.suppressed == twin.suppressed


def test_clone_has_equal_params_and_no_state() -> None:
    det = LikelihoodDetector(alpha=0.01, short_window=10, cooldown=5)
    for x in _noise(random.Random(2), 500):
        det.learn_one(x)
    fresh = det.clone()
    assert type(fresh) is LikelihoodDetector
    assert fresh.params() == det.params()
    assert pickle.dumps(fresh) == pickle.dumps(LikelihoodDetector(alpha=0.01, short_window=10, cooldown=5))


def test_bounded_pickled_size_after_100k_updates() -> None:
    det = LikelihoodDetector()
    rng = random.Random(3)
    for _ in range(2000):
        det.learn_one(rng.gauss(0, 1))
    early = len(pickle.dumps(det))
    for _ in range(98_000):
        det.learn_one(rng.gauss(0, 1) + (4.0 if rng.random() < 0.01 else 0.0))
    size = len(pickle.dumps(det))
    assert size <= 1500, size
    assert size <= early * 1.2 + 64


def test_score_before_learn_score_does_not_mutate() -> None:
    det = LikelihoodDetector()
    rng = random.Random(4)
    for x in [*_noise(rng, WARM + 300), 20.0]:
        before = pickle.dumps(det)
        s1 = det.score_one(x)
        assert det.score_one(x) == s1
        assert pickle.dumps(det) == before
        det.learn_one(x)


def test_settings_round_trip_and_validation() -> None:
    s = LikelihoodSettings()
    det = LikelihoodDetector.from_params(dict(s))
    assert det.params() == s.model_dump()
    assert det.params() == LikelihoodDetector().params()  # defaults agree
    for name, field in LikelihoodSettings.model_fields.items():
        assert field.description, name
    with pytest.raises(ValidationError):
        LikelihoodSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        s.threshold = 0.0


def test_log_likelihood_scale() -> None:
    assert log_likelihood(1.0) == 0.0
    assert log_likelihood(1e-5) == pytest.approx(0.5, abs=1e-4)
    assert log_likelihood(0.0) == 1.0


def test_level_shift_is_flagged_quickly() -> None:
    det, rng = _trained()
    alarms = _alarms(det, _noise(rng, 100, mu=5.0 + 3 * 0.5))  # +3σ
    assert alarms and alarms[0] < 20


def test_downward_shift_is_flagged() -> None:
    det, rng = _trained()
    alarms = _alarms(det, _noise(rng, 100, mu=5.0 - 3 * 0.5))
    assert alarms and alarms[0] < 20


def test_single_spike_scores_high_at_once() -> None:
    det, _ = _trained()
    s = det.score_one(5.0 + 12 * 0.5)  # far outside the seen range
    assert s == 1.0


def test_one_alarm_per_incident_thanks_to_the_refractory_period() -> None:
    det, rng = _trained()
    alarms = _alarms(det, _noise(rng, det.cooldown, mu=8.0))
    assert len(alarms) == 1


@pytest.mark.parametrize(("tolerance", "max_alarms"), [(0.01, 60), (0.2, 10)])
def test_stationary_noise_rarely_alarms(tolerance: float, max_alarms: int) -> None:
    rng = random.Random(5)
    det = LikelihoodDetector(range_tolerance=tolerance)
    # heavy-ish tails on the log scale: log of a log-normal latency plus rare mild outliers
    xs = [math.log(math.exp(rng.gauss(0.0, 0.8))) for _ in range(100_000)]
    alarms = _alarms(det, xs)
    assert len(alarms) <= max_alarms


def test_likelihood_part_is_quiet_on_stationary_noise() -> None:
    rng = random.Random(6)
    det = LikelihoodDetector(range_tolerance=10.0)  # range novelty off
    xs = [rng.gauss(0.0, 1.0) for _ in range(50_000)]
    assert len(_alarms(det, xs)) <= 5  # ~2e-5 per event measured
