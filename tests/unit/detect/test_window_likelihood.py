"""The window path's anomaly-likelihood detector (NAB defaults) on per-window series."""

from __future__ import annotations

import math
import pickle
import random

from sentinel.detect import DetectionSettings, DetectorBank
from sentinel.detect.likelihood import LikelihoodDetector
from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, WindowStats

T0 = 1_767_225_600.0


def _window(rng: random.Random, w: int, lat_mult: float = 1.0, traffic: float = 1.0) -> WindowStats:
    n = max(1, round(rng.gauss(120.0 * traffic, 11.0)))
    p50 = math.exp(rng.gauss(math.log(900.0 * lat_mult), 0.06))
    start = T0 + 60.0 * w
    return WindowStats(
        service="svc",
        model="m",
        start=start,
        end=start + 60.0,
        requests=n,
        errors=0,
        latency_p50_ms=p50,
        latency_p95_ms=p50 * 3,
        latency_p99_ms=p50 * 5,
        input_tokens=600 * n,
        output_tokens=250 * n,
        cost_usd=0.004 * n,
        output_tokens_per_s=60.0,
    )


def _play(
    bank: DetectorBank, minutes: int, seed: int, spike: tuple[int, int, float] | None = None
) -> list[AnomalyEvent]:
    rng = random.Random(seed)
    out: list[AnomalyEvent] = []
    for w in range(minutes):
        mult = spike[2] if spike and spike[0] <= w < spike[1] else 1.0
        out += bank.on_window(_window(rng, w, mult))
    return out


def _lik(out: list[AnomalyEvent]) -> list[AnomalyEvent]:
    return [a for a in out if a.detection_method is DetectionMethod.LIKELIHOOD]


def test_defaults_are_the_nab_defaults() -> None:
    s = DetectionSettings()
    assert s.window_likelihood.enabled and s.window_likelihood.latency
    bank = DetectorBank(s, "svc", "m")
    assert bank.wlik["latency"].params() == LikelihoodDetector().params()


def test_latency_spike_is_reported_on_its_first_window() -> None:
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    out = _lik(_play(bank, 300, seed=1, spike=(240, 250, 4.0)))
    assert out, "no likelihood alarm"
    first = out[0]
    assert first.anomaly_type is AnomalyType.LATENCY_SPIKE
    assert first.window_start == T0 + 240 * 60.0
    assert first.observed > 2.75 * first.expected and first.score >= first.threshold
    assert first.details["series"] == "log_latency_p50"


def test_quiet_on_stationary_windows_and_small_state() -> None:
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    assert _lik(_play(bank, 600, seed=2)) == []
    assert len(pickle.dumps(bank)) <= 16 * 1024
    twin = pickle.loads(pickle.dumps(bank))
    twin.apply_settings(bank.settings)
    rng = random.Random(9)
    ws = _window(rng, 600, 5.0)
    assert [a.to_dict() for a in bank.on_window(ws)] == [a.to_dict() for a in twin.on_window(ws)]


def test_below_the_ratio_gate_is_not_a_spike() -> None:
    # a +60 % step: the likelihood alarms but it is no spike (the degradation detector's job)
    s = DetectionSettings()
    gated = _lik(_play(DetectorBank(s, "svc", "m"), 300, seed=3, spike=(240, 300, 1.6)))
    assert gated == []
    s2 = DetectionSettings.model_validate({"window_likelihood": {"min_ratio": 1.0}})
    ungated = _lik(_play(DetectorBank(s2, "svc", "m"), 300, seed=3, spike=(240, 300, 1.6)))
    assert ungated and ungated[0].anomaly_type is AnomalyType.LATENCY_SPIKE


def test_request_series_maps_direction_to_traffic_types() -> None:
    s = DetectionSettings.model_validate({"window_likelihood": {"requests": True, "latency": False}})
    bank = DetectorBank(s, "svc", "m")
    rng = random.Random(4)
    out: list[AnomalyEvent] = []
    for w in range(400):
        traffic = 3.0 if 250 <= w < 260 else (0.2 if 330 <= w < 340 else 1.0)
        out += bank.on_window(_window(rng, w, traffic=traffic))
    kinds = {a.anomaly_type for a in _lik(out)}
    assert AnomalyType.TRAFFIC_SPIKE in kinds and AnomalyType.TRAFFIC_DROP in kinds
    assert "latency" not in bank.wlik


def test_disabled_drops_the_detectors() -> None:
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    bank.apply_settings(DetectionSettings.model_validate({"window_likelihood": {"enabled": False}}))
    assert bank.wlik == {}
