"""Labelled synthetic telemetry (sentinel.generate)."""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sentinel import generate as gen
from sentinel.models import AnomalyType, TelemetryEvent, key_of
from sentinel.produce import hex_ids_to_base64

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
AZURE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azure_llm_2023"
needs_azure = pytest.mark.skipif(not (AZURE / "AzureLLMInferenceTrace_conv.csv").is_file(), reason="no Azure traces")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class _Series:
    ts: np.ndarray
    lat: np.ndarray
    err: np.ndarray
    inp: np.ndarray
    out: np.ndarray
    cost: np.ndarray
    tps: np.ndarray

    @classmethod
    def of(cls, events: list[TelemetryEvent]) -> _Series:
        return cls(
            ts=np.array([e.timestamp for e in events]),
            lat=np.array([e.latency_ms for e in events]),
            err=np.array([e.is_error for e in events]),
            inp=np.array([e.input_tokens for e in events], dtype=float),
            out=np.array([e.output_tokens for e in events], dtype=float),
            cost=np.array([e.cost_usd for e in events]),
            tps=np.array([e.output_tokens_per_s or np.nan for e in events]),
        )


def _by_key(events: list[TelemetryEvent]) -> dict[str, _Series]:
    groups: dict[str, list[TelemetryEvent]] = {}
    for e in events:
        groups.setdefault(e.key, []).append(e)
    return {k: _Series.of(v) for k, v in groups.items()}


def _incident_mask(s: _Series, labels: dict[str, Any], key: str) -> np.ndarray:
    mask = np.zeros(len(s.ts), dtype=bool)
    for inc in labels["incidents"]:
        if key_of(inc["service"], inc["model"]) == key:
            mask |= (s.ts >= _ts(inc["start"])) & (s.ts < _ts(inc["end"]))
    return mask


@pytest.fixture(scope="module")
def run12() -> tuple[list[TelemetryEvent], dict[str, Any]]:
    """12 h, every kind once, full traffic (≈300k events)."""
    return gen.generate(12, seed=3, incidents_per_kind=1)


@pytest.fixture(scope="module")
def series12(run12: tuple[list[TelemetryEvent], dict[str, Any]]) -> dict[str, _Series]:
    return _by_key(run12[0])


@pytest.fixture(scope="module")
def labels24() -> dict[str, Any]:
    """The plan of a default 24 h run (placement does not depend on traffic volume)."""
    return gen.generate(24, seed=11, rate_scale=0.02)[1]


# ---------------------------------------------------------------------------- determinism and schema


def test_deterministic_for_a_seed() -> None:
    kw: dict[str, Any] = {"kinds": ["latency_spike", "traffic_drop"], "rate_scale": 0.2}
    ev_a, lab_a = gen.generate(3, 5, **kw)
    ev_b, lab_b = gen.generate(3, 5, **kw)
    assert lab_a == lab_b
    assert [e.to_dict() for e in ev_a] == [e.to_dict() for e in ev_b]
    ev_c, lab_c = gen.generate(3, 6, **kw)
    assert lab_c["incidents"] != lab_a["incidents"] or len(ev_c) != len(ev_a)


def test_events_sorted_and_inside_the_run(run12: tuple[list[TelemetryEvent], dict[str, Any]]) -> None:
    events, labels = run12
    ts = np.array([e.timestamp for e in events])
    assert np.all(np.diff(ts) >= 0)
    assert ts[0] >= _ts(labels["start"])
    assert ts[-1] < _ts(labels["end"])
    assert labels["start"] == "2026-01-05T00:00:00.000Z"
    assert len({e.span_id for e in events}) == len(events)


def test_every_kind_in_a_24h_run(labels24: dict[str, Any]) -> None:
    kinds = [inc["kind"] for inc in labels24["incidents"]]
    assert set(kinds) == {k.value for k in AnomalyType}
    assert all(kinds.count(k.value) == 2 for k in AnomalyType)  # 2 per kind for a day


def test_labels_schema(labels24: dict[str, Any]) -> None:
    lab = labels24
    assert lab["version"] == 1
    assert lab["seed"] == 11
    assert lab["hours"] == 24
    assert RFC3339_Z.match(lab["start"])
    assert RFC3339_Z.match(lab["end"])
    assert 5 <= len(lab["series"]) <= 8
    assert len({s["service"] for s in lab["series"]}) in (3, 4)
    for s in lab["series"]:
        assert {"service", "model", "start", "end", "mean_rate_per_s"} <= s.keys()
        assert RFC3339_Z.match(s["start"])
        assert RFC3339_Z.match(s["end"])
        assert s["model"] in gen.PRICES
    for i, inc in enumerate(lab["incidents"], start=1):
        assert inc["id"] == f"inc-{i:03d}"
        assert {"service", "model", "kind", "start", "end", "magnitude", "description"} <= inc.keys()
        assert AnomalyType(inc["kind"])
        assert RFC3339_Z.match(inc["start"])
        assert RFC3339_Z.match(inc["end"])
        assert inc["magnitude"]
        assert inc["description"]
    for b in lab["benign"]:
        assert {"service", "model", "kind", "start", "end", "description"} <= b.keys()
    assert {b["kind"] for b in lab["benign"]} == {"slow_latency_ramp", "new_service"}
    orjson.dumps(lab)


def test_incident_placement(labels24: dict[str, Any]) -> None:
    lab = labels24
    t0 = _ts(lab["start"])
    series_start = {key_of(s["service"], s["model"]): _ts(s["start"]) for s in lab["series"]}
    per_series: dict[str, list[tuple[float, float]]] = {}
    for inc in lab["incidents"]:
        key = key_of(inc["service"], inc["model"])
        s, e = _ts(inc["start"]), _ts(inc["end"])
        assert s >= t0 + 2 * 3600  # clean warm-up
        assert s >= series_start[key]
        lo, hi = gen.DURATIONS_MIN[AnomalyType(inc["kind"])]
        assert lo * 60 <= e - s <= hi * 60
        per_series.setdefault(key, []).append((s, e))
    for windows in per_series.values():
        windows.sort()
        for (_, e1), (s2, _) in itertools.pairwise(windows):
            assert s2 >= e1  # non-overlapping per series
    for b in lab["benign"]:  # benign patterns are never inside an incident of their series
        key = key_of(b["service"], b["model"])
        for s, e in per_series.get(key, []):
            assert e <= _ts(b["start"]) or s >= _ts(b["end"])
    assert len(per_series) >= 5  # spread over the series


def test_new_service_appears_mid_run(run12: tuple[list[TelemetryEvent], dict[str, Any]]) -> None:
    events, labels = run12
    new = [b for b in labels["benign"] if b["kind"] == "new_service"]
    assert len(new) == 1
    key = key_of(new[0]["service"], new[0]["model"])
    first = min(e.timestamp for e in events if e.key == key)
    assert first >= _ts(new[0]["start"]) > _ts(labels["start"])
    assert first - _ts(new[0]["start"]) < 120


def test_kinds_subset_and_none() -> None:
    _, lab = gen.generate(4, 1, kinds=[AnomalyType.TRAFFIC_SPIKE, "error_rate_spike"], rate_scale=0.05)
    assert sorted(i["kind"] for i in lab["incidents"]) == ["error_rate_spike", "traffic_spike"]
    _, lab = gen.generate(4, 1, kinds=[], rate_scale=0.05)
    assert lab["incidents"] == []
    with pytest.raises(ValueError, match="not_a_kind"):
        gen.generate(1, 1, kinds=["not_a_kind"], rate_scale=0.05)


# ---------------------------------------------------------------------------- realism of normal traffic


def test_diurnal_cycle_visible() -> None:
    events, _ = gen.generate(24, 2, kinds=[], benign=False, rate_scale=0.2)
    hours = np.array([(e.timestamp % 86400) // 3600 for e in events if e.service == "chat-api"])
    counts = np.bincount(hours.astype(int), minlength=24)
    peak = counts[13:16].mean()
    night = counts[1:4].mean()
    assert peak > 2.5 * night
    assert night > 0


def test_error_fraction_outside_incidents(
    run12: tuple[list[TelemetryEvent], dict[str, Any]], series12: dict[str, _Series]
) -> None:
    events, labels = run12
    errs = total = 0
    for key, s in series12.items():
        quiet = ~_incident_mask(s, labels, key)
        errs += int(s.err[quiet].sum())
        total += int(quiet.sum())
    assert 0.004 <= errs / total <= 0.006
    types = {e.error_type for e in events if e.is_error}
    assert types <= {"rate_limit_exceeded", "server_error", "timeout"}


@needs_azure
def test_token_marginals_match_the_azure_traces(
    run12: tuple[list[TelemetryEvent], dict[str, Any]], series12: dict[str, _Series]
) -> None:
    labels = run12[1]
    traces = {
        name: np.loadtxt(AZURE / f"AzureLLMInferenceTrace_{name}.csv", delimiter=",", skiprows=1, usecols=(1, 2))
        for name in ("conv", "code")
    }
    series = series12
    checks = {
        "chat-api|gpt-4o-mini": "conv",
        "support-bot|claude-3-5-haiku": "conv",
        "code-assistant|claude-sonnet-4": "code",
    }
    for key, trace in checks.items():
        s = series[key]
        quiet = ~_incident_mask(s, labels, key) & ~s.err
        for col, values in ((0, s.inp[quiet]), (1, s.out[quiet])):
            ref = float(np.median(traces[trace][:, col]))
            assert abs(float(np.median(values)) / ref - 1.0) < 0.2, (key, col)
    assert labels["token_source"] == "azure_llm_2023"


def test_fitted_token_fallback() -> None:
    events, labels = gen.generate(2, 4, kinds=[], rate_scale=0.3, token_source="fit")
    assert labels["token_source"] == "lognormal_fit"
    chat = np.array([e.output_tokens for e in events if e.service == "chat-api" and not e.is_error])
    assert abs(float(np.median(chat)) / 129.0 - 1.0) < 0.2


def test_latency_heavy_tailed_and_ttft_below_latency(run12: tuple[list[TelemetryEvent], dict[str, Any]]) -> None:
    events, _ = run12
    ok = [e for e in events if not e.is_error and e.key == "chat-api|gpt-4o-mini"]
    lat = np.array([e.latency_ms for e in ok])
    assert np.percentile(lat, 99.9) > 2.5 * np.percentile(lat, 50)
    assert all(e.ttft_ms is not None and 0 < e.ttft_ms <= e.latency_ms for e in ok)
    assert all(e.input_tokens > 0 and e.output_tokens > 0 and e.cost_usd > 0 for e in ok)
    errors = [e for e in events if e.is_error]
    assert errors
    assert all(e.output_tokens == 0 and e.cost_usd == 0 and e.ttft_ms is None for e in errors)


def test_cost_uses_design_default_prices(run12: tuple[list[TelemetryEvent], dict[str, Any]]) -> None:
    events, _ = run12
    ev = next(e for e in events if e.model == "gpt-4o" and not e.is_error)
    assert ev.cost_usd == pytest.approx((ev.input_tokens * 2.5 + ev.output_tokens * 10.0) / 1e6)
    assert ev.attributes["gen_ai.response.model"].startswith("gpt-4o")


# ---------------------------------------------------------------------------- incidents are visible


def _window_and_reference(
    series: dict[str, _Series], labels: dict[str, Any], kind: str
) -> list[tuple[dict[str, Any], _Series, np.ndarray, np.ndarray]]:
    out = []
    for inc in labels["incidents"]:
        if inc["kind"] != kind:
            continue
        key = key_of(inc["service"], inc["model"])
        s = series[key]
        start, end = _ts(inc["start"]), _ts(inc["end"])
        inside = (s.ts >= start) & (s.ts < end)
        near = (s.ts >= start - 3 * 3600) & (s.ts < end + 3 * 3600)
        ref = near & ~_incident_mask(s, labels, key)
        out.append((inc, s, inside, ref))
    assert out, f"no {kind} incident"
    return out


def _median_ratio(x: np.ndarray, inside: np.ndarray, ref: np.ndarray) -> float:
    return float(np.nanmedian(x[inside]) / np.nanmedian(x[ref]))


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def _check_latency_spike(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    assert _median_ratio(s.lat, inside & ~s.err, ref & ~s.err) >= 2.5


def _check_latency_degradation(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    assert _median_ratio(s.lat, inside & ~s.err, ref & ~s.err) >= 1.4
    assert _median_ratio(s.tps, inside, ref) > 0.85  # decode speed unchanged


def _check_throughput_degradation(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    assert _median_ratio(s.tps, inside, ref) <= 0.6


def _check_error_rate_spike(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    assert s.err[inside].mean() >= 0.04
    assert s.err[ref].mean() < 0.015


def _rate(s: _Series, mask: np.ndarray) -> float:
    t = s.ts[mask]
    return float(mask.sum() / max(1.0, t.max() - t.min())) if mask.sum() > 1 else 0.0


def _check_traffic_spike(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    start = _ts(inc["start"])
    before = ref & (s.ts >= start - 1800) & (s.ts < start)
    assert inside.sum() / (_ts(inc["end"]) - start) >= 2.0 * before.sum() / 1800


def _check_traffic_drop(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    start = _ts(inc["start"])
    before = ref & (s.ts >= start - 1800) & (s.ts < start)
    assert inside.sum() / (_ts(inc["end"]) - start) <= 0.35 * before.sum() / 1800


def _check_token_usage_spike(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    which = inc["magnitude"]["tokens"]
    tokens = {"input": s.inp, "output": s.out, "both": s.inp + s.out}[which]
    ok = ~s.err
    assert tokens[inside & ok].mean() >= 2.0 * tokens[ref & ok].mean()


def _check_token_usage_drop(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    ok = ~s.err
    assert _median_ratio(s.out, inside & ok, ref & ok) <= 0.5


def _check_cost_spike(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    ok = ~s.err
    assert s.cost[inside & ok].mean() >= 3.0 * s.cost[ref & ok].mean()


def _check_input_drift(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    ok = ~s.err
    assert _median_ratio(s.inp, inside & ok, ref & ok) >= 1.7
    # the shape changes too: log-spread narrower
    assert np.std(np.log(s.inp[inside & ok])) < 0.85 * np.std(np.log(s.inp[ref & ok]))


def _check_output_drift(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    ok = ~s.err
    assert _ks(s.out[inside & ok], s.out[ref & ok]) >= 0.15


def _check_multivariate_outlier(inc: dict[str, Any], s: _Series, inside: np.ndarray, ref: np.ndarray) -> None:
    ok = ~s.err
    if inc["magnitude"]["variant"] == "fast_long_answers":
        odd_ref = (s.out >= np.quantile(s.out[ref & ok], 0.8)) & (s.lat <= np.quantile(s.lat[ref & ok], 0.2))
    else:
        odd_ref = (s.out <= np.quantile(s.out[ref & ok], 0.15)) & (s.lat >= np.quantile(s.lat[ref & ok], 0.8))
    assert odd_ref[ref & ok].mean() < 0.02  # the combination is rare in normal traffic
    assert odd_ref[inside & ok].mean() >= 0.08
    # while each metric alone stays within its usual range
    for x in (s.out, s.lat):
        lo, hi = np.quantile(x[ref & ok], [0.001, 0.999])
        assert np.mean((x[inside & ok] >= lo) & (x[inside & ok] <= hi)) > 0.97


CHECKS: dict[AnomalyType, Callable[[dict[str, Any], _Series, np.ndarray, np.ndarray], None]] = {
    AnomalyType.LATENCY_SPIKE: _check_latency_spike,
    AnomalyType.LATENCY_DEGRADATION: _check_latency_degradation,
    AnomalyType.THROUGHPUT_DEGRADATION: _check_throughput_degradation,
    AnomalyType.ERROR_RATE_SPIKE: _check_error_rate_spike,
    AnomalyType.TRAFFIC_SPIKE: _check_traffic_spike,
    AnomalyType.TRAFFIC_DROP: _check_traffic_drop,
    AnomalyType.TOKEN_USAGE_SPIKE: _check_token_usage_spike,
    AnomalyType.TOKEN_USAGE_DROP: _check_token_usage_drop,
    AnomalyType.COST_SPIKE: _check_cost_spike,
    AnomalyType.INPUT_DRIFT: _check_input_drift,
    AnomalyType.OUTPUT_DRIFT: _check_output_drift,
    AnomalyType.MULTIVARIATE_OUTLIER: _check_multivariate_outlier,
}


@pytest.mark.parametrize("kind", list(AnomalyType), ids=lambda k: k.value)
def test_incident_effect_visible(
    kind: AnomalyType, run12: tuple[list[TelemetryEvent], dict[str, Any]], series12: dict[str, _Series]
) -> None:
    for inc, s, inside, ref in _window_and_reference(series12, run12[1], kind.value):
        CHECKS[kind](inc, s, inside, ref)


def test_benign_ramp_is_slow_and_small() -> None:
    events, labels = gen.generate(24, 8, kinds=[], rate_scale=0.5)
    (ramp,) = [b for b in labels["benign"] if b["kind"] == "slow_latency_ramp"]
    s = _by_key(events)[key_of(ramp["service"], ramp["model"])]
    start, end = _ts(ramp["start"]), _ts(ramp["end"])
    ok = ~s.err
    before = ok & (s.ts >= start - 3600) & (s.ts < start)
    after = ok & (s.ts >= end) & (s.ts < end + 3600)
    ratio = np.median(s.lat[after]) / np.median(s.lat[before])
    assert 1.05 < ratio < 1.45  # +20 % (plus the diurnal load drift)
    assert end - start >= 3 * 3600


# ---------------------------------------------------------------------------- files and CLI


def _read_lines(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def test_write_otlp_json_lines_gz(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "x.jsonl.gz"
    labels = gen.write(out, 2, 9, kinds=["traffic_spike"], rate_scale=0.5)
    lab_file = tmp_path / "sub" / "x.jsonl.gz.labels.json"
    assert gen.labels_path(out) == lab_file
    assert orjson.loads(lab_file.read_bytes()) == orjson.loads(orjson.dumps(labels))
    docs = _read_lines(out)
    sizes = []
    for doc in docs:
        assert doc["resourceSpans"]
        n = 0
        for rs in doc["resourceSpans"]:
            assert rs["resource"]["attributes"][0]["key"] == "service.name"
            for ss in rs["scopeSpans"]:
                assert ss["scope"]["name"] == "sentinel.generator"
                n += len(ss["spans"])
        sizes.append(n)
    assert sum(sizes) == labels["events"]
    assert max(sizes) <= 200
    assert np.median(sizes) >= 30
    # each line is an OTLP ExportTraceServiceRequest (protobuf JSON mapping once ids are base64)
    msg = ExportTraceServiceRequest()
    json_format.Parse(orjson.dumps(hex_ids_to_base64(docs[0])), msg)
    assert sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans) == sizes[0]


def test_write_plain_and_native(tmp_path: Path) -> None:
    out = tmp_path / "y.jsonl"
    labels = gen.write(out, 1, 9, kinds=[], rate_scale=0.2, fmt="native")
    rows = _read_lines(out)
    assert len(rows) == labels["events"]
    assert {"timestamp", "service", "model", "latency_ms"} <= rows[0].keys()
    assert (tmp_path / "y.jsonl.labels.json").is_file()


def test_main_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "z.jsonl.gz"
    rc = gen.main(
        ["--output", str(out), "--hours", "1", "--seed", "3", "--rate-scale", "0.1", "--kinds", "traffic_drop"]
    )
    assert rc == 0
    assert out.is_file()
    assert "events" in capsys.readouterr().err  # progress / summary on stderr
    lab = orjson.loads((tmp_path / "z.jsonl.gz.labels.json").read_bytes())
    assert lab["seed"] == 3
    assert [i["kind"] for i in lab["incidents"]] == ["traffic_drop"]
    with pytest.raises(SystemExit):
        gen.main(["--output", str(out), "--kinds", "bogus"])
