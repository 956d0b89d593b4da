"""DetectorBank: contract, state size, and every anomaly type end to end."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable

import pytest

from sentinel.detect import DetectionSettings, DetectorBank
from sentinel.models import AnomalyEvent, AnomalyType, TelemetryEvent, WindowStats

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
Mod = Callable[[float, dict[str, float]], None]


def _event(rng: random.Random, t: float, mod: dict[str, float]) -> TelemetryEvent:
    lat = math.exp(rng.gauss(math.log(900.0 * mod.get("lat", 1.0)), 0.35))
    inp = int(math.exp(rng.gauss(math.log(600.0 * mod.get("inp", 1.0)), 0.5)))
    out = int(math.exp(rng.gauss(math.log(250.0 * mod.get("out", 1.0)), 0.4)))
    gen = lat * 0.7 * mod.get("slow", 1.0)  # decode time: a slower decoder takes longer for the same tokens
    lat = lat * 0.3 + gen
    price = mod.get("price", 1.0)
    err = rng.random() < mod.get("err", 0.01)
    return TelemetryEvent(
        timestamp=t,
        service="svc",
        model="m",
        latency_ms=lat,
        input_tokens=inp,
        output_tokens=0 if err else out,
        cost_usd=price * (inp * 2.5e-6 + out * 1e-5),
        is_error=err,
        ttft_ms=lat - gen,
    )


def _llm_event(rng: random.Random, t: float, mod: dict[str, float]) -> TelemetryEvent:
    """A call whose latency follows its answer length: ttft + output tokens / decode speed.

    ``mod["mv"]`` is the fraction of calls replaced by an incongruent pair (the generator's
    ``slow_tiny_answers``): a tiny answer (~p5 of output tokens) with a long latency (~p90) —
    each value usual on its own.
    """
    ttft = math.exp(rng.gauss(math.log(400.0), 0.3))
    tps = math.exp(rng.gauss(math.log(60.0), 0.15))
    out = max(1, int(math.exp(rng.gauss(math.log(250.0), 0.7))))
    lat = ttft + out / tps * 1000.0
    if rng.random() < mod.get("mv", 0.0):
        out = max(1, int(250.0 * math.exp(-1.65 * 0.7 + rng.gauss(0.0, 0.1))))
        lat = math.exp(math.log(4_600.0) + 1.3 * 0.6 + rng.gauss(0.0, 0.1))
        ttft = lat * 0.4
    inp = int(math.exp(rng.gauss(math.log(600.0), 0.5)))
    return TelemetryEvent(
        timestamp=t,
        service="svc",
        model="m",
        latency_ms=lat,
        input_tokens=inp,
        output_tokens=out,
        cost_usd=inp * 2.5e-6 + out * 1e-5,
        ttft_ms=ttft,
    )


def run(
    minutes: int,
    rate: float = 2.0,
    incident: Callable[[float], dict[str, float]] | None = None,
    seed: int = 0,
    settings: DetectionSettings | None = None,
    make_event: Callable[[random.Random, float, dict[str, float]], TelemetryEvent] = _event,
) -> list[AnomalyEvent]:
    """Simulate one key: Poisson arrivals, per-minute windows folded here; return all anomalies."""
    rng = random.Random(seed)
    bank = DetectorBank(settings or DetectionSettings(), "svc", "m")
    out: list[AnomalyEvent] = []
    for w in range(minutes):
        start = T0 + 60.0 * w
        mod = incident(start) if incident else {}
        n = _poisson(rng, rate * 60.0 * mod.get("traffic", 1.0))
        times = sorted(start + rng.random() * 60.0 for _ in range(n))
        evs = [make_event(rng, t, mod) for t in times]
        for ev in evs:
            out += bank.on_event(ev)
        if evs:
            ok = [e for e in evs if not e.is_error]
            gen_ms = sum(e.latency_ms - (e.ttft_ms or 0.0) for e in ok)
            lats = sorted(e.latency_ms for e in evs)
            ws = WindowStats(
                service="svc",
                model="m",
                start=start,
                end=start + 60.0,
                requests=len(evs),
                errors=len(evs) - len(ok),
                latency_p50_ms=lats[len(lats) // 2],
                latency_p95_ms=lats[int(len(lats) * 0.95)],
                latency_p99_ms=lats[int(len(lats) * 0.99)],
                input_tokens=sum(e.input_tokens for e in evs),
                output_tokens=sum(e.output_tokens for e in evs),
                cost_usd=sum(e.cost_usd for e in evs),
                output_tokens_per_s=sum(e.output_tokens for e in ok) * 1000.0 / gen_ms if gen_ms > 0 else 0.0,
            )
            out += bank.on_window(ws)
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _between(a: float, b: float, mod: dict[str, float]) -> Callable[[float], dict[str, float]]:
    return lambda t: mod if T0 + a * 60 <= t < T0 + b * 60 else {}


def test_stationary_traffic_is_quiet() -> None:
    anomalies = []
    for seed in range(3):
        anomalies += run(240, rate=2.0, seed=seed)  # 3 × 4 h, ~86k events
    assert len(anomalies) <= 1, [(a.anomaly_type.value, a.detection_method.value, a.score) for a in anomalies]


def test_diurnal_cycle_is_not_an_incident() -> None:
    def diurnal(t: float) -> dict[str, float]:
        return {"traffic": 1.0 + 0.6 * math.sin(2 * math.pi * (t - T0) / 86_400.0)}

    anomalies = run(24 * 60, rate=1.0, incident=diurnal, seed=7)
    kinds = {a.anomaly_type for a in anomalies}
    assert AnomalyType.TRAFFIC_SPIKE not in kinds
    assert AnomalyType.TRAFFIC_DROP not in kinds


CASES = [
    (AnomalyType.LATENCY_SPIKE, {"lat": 12.0}, 3),
    (AnomalyType.LATENCY_DEGRADATION, {"lat": 1.6}, 20),
    (AnomalyType.THROUGHPUT_DEGRADATION, {"slow": 2.5}, 20),
    (AnomalyType.ERROR_RATE_SPIKE, {"err": 0.2}, 20),
    (AnomalyType.TRAFFIC_SPIKE, {"traffic": 4.0}, 20),
    (AnomalyType.TRAFFIC_DROP, {"traffic": 0.1}, 20),
    (AnomalyType.TOKEN_USAGE_SPIKE, {"out": 2.5, "inp": 2.5}, 20),
    (AnomalyType.TOKEN_USAGE_DROP, {"out": 0.3}, 20),
    (AnomalyType.COST_SPIKE, {"price": 3.0}, 20),
    (AnomalyType.INPUT_DRIFT, {"inp": 4.0}, 20),
    (AnomalyType.OUTPUT_DRIFT, {"out": 0.25}, 20),
    (AnomalyType.MULTIVARIATE_OUTLIER, {"mv": 0.25}, 20),
]


@pytest.mark.parametrize(("kind", "mod", "minutes"), CASES, ids=[c[0].value for c in CASES])
def test_every_type_is_detected_promptly(kind: AnomalyType, mod: dict[str, float], minutes: int) -> None:
    start = 120
    make = _llm_event if "mv" in mod else _event  # multivariate: latency must depend on answer length
    anomalies = run(
        start + minutes + 20, rate=2.0, incident=_between(start, start + minutes, mod), seed=11, make_event=make
    )
    hits = [a for a in anomalies if a.anomaly_type is kind]
    assert hits, sorted({a.anomaly_type.value for a in anomalies})
    first = min(a.timestamp for a in hits)
    assert T0 + start * 60 <= first <= T0 + (start + minutes) * 60 + 60
    a = hits[0]
    assert a.threshold > 0
    assert a.score != 0
    assert a.detected_at == 0.0
    assert a.details


def test_traffic_drop_to_zero_is_inferred_from_a_gap() -> None:
    anomalies = run(200, rate=2.0, incident=_between(120, 150, {"traffic": 0.0}), seed=3)
    drops = [a for a in anomalies if a.anomaly_type is AnomalyType.TRAFFIC_DROP]
    assert drops
    assert drops[0].observed == 0.0
    assert drops[0].details["empty_windows"] >= 29
    assert drops[0].window_start == pytest.approx(T0 + 120 * 60)


def test_cooldown_keeps_output_sane() -> None:
    # the event path and the window path keep separate cooldowns (each path's output is a function
    # of its own input only): per path at most one spike per 5-min cooldown, plus the three
    # severity escalations (low → medium → high → critical)
    anomalies = run(180, rate=5.0, incident=_between(60, 160, {"lat": 12.0}), seed=4)
    spikes = [a for a in anomalies if a.anomaly_type is AnomalyType.LATENCY_SPIKE]
    per_event = [a for a in spikes if a.window_start is None]
    per_window = [a for a in spikes if a.window_start is not None]
    assert per_event and per_window
    for path in (per_event, per_window):
        assert len(path) <= 100 * 60 / 300 + 3


def test_multivariate_outlier_is_quiet_on_congruent_calls() -> None:
    anomalies = run(240, rate=2.0, seed=21, make_event=_llm_event)
    assert not [a for a in anomalies if a.anomaly_type is AnomalyType.MULTIVARIATE_OUTLIER]


def test_hst_remains_available_for_multivariate_outliers() -> None:
    s = DetectionSettings.model_validate({"hst": {"enabled": True, "warmup": 500}, "joint": {"enabled": False}})
    bank = DetectorBank(s, "svc", "m")
    assert bank.hst is not None and bank.joint is None
    rng = random.Random(2)
    for i in range(1_000):
        bank.on_event(_llm_event(rng, T0 + i, {}))
    assert bank.hst.n > 0


def test_pickled_bank_is_small_after_10k_events() -> None:
    rng = random.Random(5)
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    for i in range(10_000):
        bank.on_event(_event(rng, T0 + i * 0.3, {}))
    size = len(pickle.dumps(bank))
    assert size <= 16 * 1024, size
    twin = pickle.loads(pickle.dumps(bank))
    twin.apply_settings(bank.settings)
    ev = _event(rng, T0 + 3001.0, {"lat": 20.0})
    assert [a.to_dict() for a in bank.on_event(ev)] == [a.to_dict() for a in twin.on_event(ev)]


def test_apply_settings_keeps_learned_state() -> None:
    rng = random.Random(6)
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    for i in range(2_000):
        bank.on_event(_event(rng, T0 + i, {}))
    before = bank.baselines()["metrics"]["latency"]["log_mean"]
    s = DetectionSettings.model_validate({"zscore": {"threshold": 6.0}, "spike": {"method": "mad"}})
    bank.apply_settings(s)
    assert bank.tracks["latency"].z.threshold == 6.0
    assert bank.baselines()["metrics"]["latency"]["log_mean"] == before
    bank.on_event(_event(rng, T0 + 2_001, {}))


def test_baselines_are_json_able_and_expiry_time_tracks_events() -> None:
    import json

    rng = random.Random(8)
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    assert bank.last_event_time == -math.inf
    json.dumps(bank.baselines())
    for i in range(300):
        bank.on_event(_event(rng, T0 + i, {}))
    assert bank.last_event_time == T0 + 299
    b = bank.baselines()
    json.dumps(b)
    assert 500 < b["metrics"]["latency"]["expected"] < 1500


def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        DetectionSettings.model_validate({"zscore": {"treshold": 3}})
    with pytest.raises(ValueError, match=r"spike\.k"):
        DetectionSettings.model_validate({"spike": {"k": 5, "n": 3}})


@pytest.mark.parametrize("method", ["iqr", "mad", "percentile", "likelihood"])
def test_alternative_spike_methods_detect_spikes(method: str) -> None:
    s = DetectionSettings.model_validate({"spike": {"method": method}})
    anomalies = run(150, rate=2.0, incident=_between(120, 123, {"lat": 12.0}), seed=12, settings=s)
    assert any(a.anomaly_type is AnomalyType.LATENCY_SPIKE for a in anomalies)


def test_ewma_shift_method() -> None:
    s = DetectionSettings.model_validate({"shift_method": "ewma"})
    anomalies = run(160, rate=2.0, incident=_between(120, 150, {"lat": 1.6}), seed=13, settings=s)
    assert any(a.anomaly_type is AnomalyType.LATENCY_DEGRADATION for a in anomalies)


def test_snapshot_holds_learned_state_not_settings() -> None:
    bank = DetectorBank(DetectionSettings.model_validate({"zscore": {"threshold": 6.0}}), "svc", "m")
    data = pickle.dumps(bank)
    assert b"pydantic" not in data and b"DetectionSettings" not in data
    twin = pickle.loads(data)
    with pytest.raises(RuntimeError, match="apply_settings"):
        twin.on_event(_event(random.Random(1), T0, {}))
    twin.apply_settings(DetectionSettings())
    assert twin.tracks["latency"].z.threshold == DetectionSettings().zscore.threshold


def test_throughput_window_shift_settings_are_derived_once_and_follow_changes() -> None:
    t = DetectionSettings().throughput
    ws = t.window_shift
    assert ws is t.window_shift  # built once, not per window
    assert (ws.up_ratio, ws.down_ratio, ws.h) == (1.0, 1.0 - t.min_drop, t.h)
    t.min_drop = 0.5
    assert t.window_shift.down_ratio == 0.5


def test_a_lasting_latency_level_becomes_the_baseline() -> None:
    """Every call flagged for hours is a new normal, not hours of spikes (per-event shifts off, the default)."""
    rng = random.Random(8)
    s = DetectionSettings()
    assert not s.event_shift
    bank = DetectorBank(s, "svc", "m")
    for i in range(3_600):
        bank.on_event(_event(rng, T0 + i, {}))
    before = bank.tracks["latency"].z.mean
    late: list[AnomalyEvent] = []
    for i in range(3_600, 4 * 3_600):
        out = bank.on_event(_event(rng, T0 + i, {"lat": 20.0}))
        if i >= 2 * 3_600:
            late += [a for a in out if a.anomaly_type is AnomalyType.LATENCY_SPIKE]
    assert late == []
    assert bank.tracks["latency"].z.mean - before == pytest.approx(math.log(20.0), abs=0.15)
