"""Realistic, labelled synthetic LLM telemetry (``sentinel generate``).

The data is used to *measure* detection quality, so it is built to be honest:
normal traffic carries every benign pattern a production service shows, and the
labelled incidents have realistic magnitudes — visible to a good detector, not
trivial for a naive one.

Normal traffic, per series (a service/model pair, :data:`SERIES`):

* arrivals: a non-homogeneous Poisson process (per second) whose rate follows a
  smooth business-hours daily cycle (≈0.2–0.3× at night, 1× at the series'
  peak hour), a weekend dip, and minute-level AR(1) noise (≈±12 %);
* tokens: ``(ContextTokens, GeneratedTokens)`` pairs resampled from the real
  Azure LLM inference traces 2023 (``conv`` for chat services, ``code`` for the
  coding assistant) with ±10 % jitter; without the CSVs, log-normals fitted to
  them (:data:`TOKEN_FITS`);
* latency = time to first token (log-normal per model, + prefill time per
  input token, + diurnal load and minute-level noise) + output tokens / decode
  speed (per-model tokens/s, log-normal jitter); 1.5 % of calls also queue for a
  Pareto-distributed delay (heavy tail, single outliers up to minutes);
* errors: 0.5 % (``rate_limit_exceeded`` fast, ``server_error`` fast,
  ``timeout`` at the 30 s client timeout), without usage or cost;
* cost from the DESIGN.md default prices (:data:`PRICES`), priced by the
  *response* model; response models are the providers' dated snapshots
  (``gpt-4o-2024-08-06``), so pricing needs prefix matching. The event's
  ``model`` (the series key) is the *request* model.

Benign patterns, listed under ``benign`` in the labels and *not* incidents: the
diurnal cycle, heavy tails, a slow latency ramp (+20 % over ~5 h, then held)
on one series, and a new service that appears mid-run (its first two hours are
normal for it).

Incidents (one per :class:`~sentinel.models.AnomalyType`, ``incidents_per_kind``
each) start after a clean warm-up, never overlap on a series (≥20 min apart),
and state their magnitude in the labels — see :data:`DURATIONS_MIN` and
:func:`_sample_magnitude`.

Output (:func:`write`): OTLP/JSON lines, one ``ExportTraceServiceRequest`` per
line as the Collector's file exporter writes them (batches of ≤200 spans, cut
on size or a 15 s event-time timeout like the batch processor), gzip when the
name ends in ``.gz``; and ``<output>.labels.json``::

    {"version": 1, "seed": S, "hours": H, "start": RFC3339, "end": RFC3339,
     "series": [{"service", "model", "start", "end", "mean_rate_per_s", …}],
     "incidents": [{"id": "inc-001", "service", "model", "kind", "start", "end",
                    "magnitude": {…}, "description"}],
     "benign": [{"service", "model", "kind", "start", "end", "description"}]}

Everything is deterministic for a seed. Usage::

    python -m sentinel.generate --output out/day.jsonl.gz --hours 24 --seed 7
"""

from __future__ import annotations

import argparse
import gzip
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np
import numpy.typing as npt
import orjson

from sentinel.encode import batch_spans, events_to_otlp_json
from sentinel.models import AnomalyType, TelemetryEvent, format_ts, parse_ts
from sentinel.pricing import DEFAULT_PRICES

__all__ = [
    "DEFAULT_START",
    "DURATIONS_MIN",
    "MODELS",
    "PRICES",
    "SERIES",
    "TOKEN_FITS",
    "ModelProfile",
    "SeriesSpec",
    "generate",
    "labels_path",
    "main",
    "write",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[str], None]

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
LABELS_VERSION = 1

# USD per 1M tokens (input, output) of the generated models: the defaults of sentinel.pricing.
PRICES: dict[str, tuple[float, float]] = {
    m: DEFAULT_PRICES[m]
    for m in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "claude-sonnet-4",
        "claude-3-5-haiku",
        "gemini-2.0-flash",
        "gemini-1.5-pro",
    )
}


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """Serving characteristics of one model (medians; log-normal spread)."""

    provider: str
    response_model: str  # the dated snapshot the API reports
    ttft_ms: float  # median time to first token for a short prompt
    ttft_sigma: float
    prefill_ms_per_1k: float  # extra time to first token per 1k input tokens
    tokens_per_s: float  # median decode speed
    tps_sigma: float


MODELS: dict[str, ModelProfile] = {
    "gpt-4o": ModelProfile("openai", "gpt-4o-2024-08-06", 420, 0.35, 40, 85, 0.25),
    "gpt-4o-mini": ModelProfile("openai", "gpt-4o-mini-2024-07-18", 300, 0.35, 25, 110, 0.25),
    "gpt-4.1": ModelProfile("openai", "gpt-4.1-2025-04-14", 480, 0.35, 40, 75, 0.25),
    "claude-sonnet-4": ModelProfile("anthropic", "claude-sonnet-4-20250514", 800, 0.30, 60, 55, 0.20),
    "claude-3-5-haiku": ModelProfile("anthropic", "claude-3-5-haiku-20241022", 500, 0.30, 35, 95, 0.20),
    "gemini-2.0-flash": ModelProfile("gcp.gemini", "gemini-2.0-flash-001", 280, 0.30, 20, 170, 0.25),
    "gemini-1.5-pro": ModelProfile("gcp.gemini", "gemini-1.5-pro-002", 700, 0.35, 50, 60, 0.25),
}
_MODEL_NAMES = list(MODELS)
_MODEL_INDEX = {m: i for i, m in enumerate(_MODEL_NAMES)}

# the pricier tier a misrouted request lands on (cost_spike)
_PRICIER = {"gpt-4o-mini": "gpt-4o", "gemini-2.0-flash": "gemini-1.5-pro", "claude-3-5-haiku": "claude-sonnet-4"}


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One service/model pair and the shape of its normal traffic."""

    service: str
    model: str
    peak_rate: float  # requests/s at the daily peak
    tokens: Literal["conv", "code"]  # which Azure trace its prompts look like
    input_scale: float = 1.0
    output_scale: float = 1.0
    peak_hour: float = 14.0  # UTC
    night: float = 0.3  # rate multiplier at the daily trough
    sharpness: float = 1.5  # exponent of the raised cosine (higher = narrower business hours)
    weekend: float = 0.7  # rate multiplier on Saturday/Sunday
    max_tokens: int = 4096
    tool_call_p: float = 0.0
    appears_at: float | None = None  # fraction of the run at which a new service starts


SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("chat-api", "gpt-4o", 3.0, "conv"),
    SeriesSpec("chat-api", "gpt-4o-mini", 5.0, "conv"),
    SeriesSpec("code-assistant", "claude-sonnet-4", 2.5, "code", peak_hour=15, night=0.2, sharpness=2.5, weekend=0.4),
    SeriesSpec("code-assistant", "gpt-4.1", 0.8, "code", peak_hour=15, night=0.2, sharpness=2.5, weekend=0.4),
    SeriesSpec("support-bot", "claude-3-5-haiku", 1.5, "conv", peak_hour=16, tool_call_p=0.1),
    SeriesSpec("support-bot", "gemini-2.0-flash", 1.2, "conv", peak_hour=16, tool_call_p=0.1),
    SeriesSpec(
        "doc-summarizer",
        "gemini-2.0-flash",
        0.5,
        "conv",
        input_scale=4.0,
        output_scale=1.5,
        peak_hour=13,
        appears_at=0.4,
    ),
)

# log-normal fits of the Azure 2023 traces (mu = log median, sigma from the 10–90 % range) and their ranges
TOKEN_FITS: dict[str, dict[str, tuple[float, float, int, int]]] = {
    "conv": {"input": (6.9276, 1.0070, 2, 14050), "output": (4.8598, 0.8040, 7, 1000)},
    "code": {"input": (7.2923, 1.3903, 3, 7437), "output": (2.5649, 0.8043, 6, 1899)},
}
_AZURE_FILES = {"conv": "AzureLLMInferenceTrace_conv.csv", "code": "AzureLLMInferenceTrace_code.csv"}

ERROR_TYPES = ("rate_limit_exceeded", "server_error", "timeout")
_ERROR_WEIGHTS = np.array([0.45, 0.40, 0.15])
FINISH_REASONS = ("stop", "length", "tool_calls")
CLIENT_TIMEOUT_MS = 30_000.0

# incident durations in minutes (min, max)
DURATIONS_MIN: dict[AnomalyType, tuple[float, float]] = {
    AnomalyType.LATENCY_SPIKE: (3, 10),
    AnomalyType.LATENCY_DEGRADATION: (30, 90),
    AnomalyType.THROUGHPUT_DEGRADATION: (15, 60),
    AnomalyType.ERROR_RATE_SPIKE: (5, 30),
    AnomalyType.TRAFFIC_SPIKE: (10, 40),
    AnomalyType.TRAFFIC_DROP: (10, 40),
    AnomalyType.TOKEN_USAGE_SPIKE: (10, 45),
    AnomalyType.TOKEN_USAGE_DROP: (10, 45),
    AnomalyType.COST_SPIKE: (15, 60),
    AnomalyType.INPUT_DRIFT: (30, 90),
    AnomalyType.OUTPUT_DRIFT: (30, 90),
    AnomalyType.MULTIVARIATE_OUTLIER: (5, 20),
}
INCIDENT_GAP_S = 20 * 60.0  # minimum quiet time between incidents on one series
END_MARGIN_S = 10 * 60.0  # incidents end at least this long before the run ends
NEW_SERVICE_GRACE_S = 2 * 3600.0  # no incidents in a new service's first hours


# ---------------------------------------------------------------------------- plan


@dataclass(slots=True)
class _Incident:
    kind: AnomalyType
    series: int
    start: float
    end: float
    magnitude: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    ramp_s: float = 0.0  # linear onset

    def envelope(self, t: FloatArray) -> FloatArray:
        """Intensity 0..1 at times ``t``: 0 outside, linear onset over ``ramp_s``, then 1."""
        inside = (t >= self.start) & (t < self.end)
        if self.ramp_s > 0:
            level = np.clip((t - self.start) / self.ramp_s, 0.0, 1.0)
        else:
            level = np.ones_like(t)
        return np.where(inside, level, 0.0)


@dataclass(slots=True)
class _Benign:
    kind: str
    series: int
    start: float
    end: float
    description: str
    magnitude: dict[str, Any] = field(default_factory=dict)


class _Tokens:
    """Samples (input, output) token pairs for a trace kind."""

    def __init__(self, kind: str, pairs: IntArray | None) -> None:
        self.kind = kind
        self.pairs = pairs
        fit = TOKEN_FITS[kind]
        self.fit_in, self.fit_out = fit["input"], fit["output"]

    @property
    def source(self) -> str:
        return "azure_llm_2023" if self.pairs is not None else "lognormal_fit"

    def sample(self, rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray]:
        if self.pairs is not None:
            idx = rng.integers(0, len(self.pairs), size=n)
            inp = self.pairs[idx, 0].astype(np.float64)
            out = self.pairs[idx, 1].astype(np.float64)
        else:
            mu, sd, lo, hi = self.fit_in
            inp = np.clip(rng.lognormal(mu, sd, size=n), lo, hi)
            mu, sd, lo, hi = self.fit_out
            out = np.clip(rng.lognormal(mu, sd, size=n), lo, hi)
        # ±10 % jitter so resampled pairs are not exact copies
        inp = inp * np.exp(rng.normal(0.0, 0.1, size=n))
        out = out * np.exp(rng.normal(0.0, 0.1, size=n))
        return inp, out


def _default_data_dir() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    for cand in (root.parent / "shared" / "data" / "azure_llm_2023", root / "data" / "azure_llm_2023"):
        if all((cand / f).is_file() for f in _AZURE_FILES.values()):
            return cand
    return None


def _load_tokens(data_dir: Path | None, source: Literal["auto", "azure", "fit"]) -> dict[str, _Tokens]:
    if source == "fit":
        return {k: _Tokens(k, None) for k in _AZURE_FILES}
    d = data_dir if data_dir is not None else _default_data_dir()
    if d is None:
        if source == "azure":
            raise FileNotFoundError("Azure LLM traces not found (pass data_dir=…/azure_llm_2023)")
        return {k: _Tokens(k, None) for k in _AZURE_FILES}
    out = {}
    for kind, name in _AZURE_FILES.items():
        path = d / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        pairs = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2), dtype=np.int64, ndmin=2)
        out[kind] = _Tokens(kind, pairs)
    return out


def _series_tokens(
    spec: SeriesSpec, tokens: dict[str, _Tokens], rng: np.random.Generator, n: int
) -> tuple[FloatArray, FloatArray]:
    inp, out = tokens[spec.tokens].sample(rng, n)
    return inp * spec.input_scale, out * spec.output_scale


def _diurnal(spec: SeriesSpec, t: FloatArray) -> FloatArray:
    """Business-hours shape in [0, 1] (1 at the peak hour)."""
    hour = (t % 86400.0) / 3600.0
    return ((1.0 + np.cos(2.0 * np.pi * (hour - spec.peak_hour) / 24.0)) / 2.0) ** spec.sharpness


def _weekend(spec: SeriesSpec, t: FloatArray) -> FloatArray:
    dow = ((t // 86400.0) + 3.0) % 7.0  # 1970-01-01 was a Thursday; 0 = Monday
    return np.where(dow >= 5.0, spec.weekend, 1.0)


def _ar1_minutes(rng: np.random.Generator, n_min: int, sigma: float, phi: float = 0.9) -> FloatArray:
    """Stationary AR(1) in log space, one value per minute, mean-one multiplier."""
    eps = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), size=n_min)
    x = np.empty(n_min)
    prev = rng.normal(0.0, sigma)
    for i in range(n_min):
        prev = phi * prev + eps[i]
        x[i] = prev
    return np.asarray(np.exp(x - sigma * sigma / 2.0), dtype=np.float64)


def _expected_cost_ratio(spec: SeriesSpec, target: str, tokens: dict[str, _Tokens]) -> float:
    mu_i, sd_i, _, _ = tokens[spec.tokens].fit_in
    mu_o, sd_o, _, _ = tokens[spec.tokens].fit_out
    mean_in = math.exp(mu_i + sd_i * sd_i / 2) * spec.input_scale
    mean_out = math.exp(mu_o + sd_o * sd_o / 2) * spec.output_scale
    pi, po = PRICES[spec.model]
    ti, to = PRICES[target]
    return (mean_in * ti + mean_out * to) / (mean_in * pi + mean_out * po)


def _eligible(kind: AnomalyType, spec: SeriesSpec, tokens: dict[str, _Tokens]) -> bool:
    if kind is AnomalyType.COST_SPIKE:
        target = _PRICIER.get(spec.model)
        return target is not None and _expected_cost_ratio(spec, target, tokens) >= 4.5
    return True


def _sample_magnitude(inc: _Incident, spec: SeriesSpec, tokens: dict[str, _Tokens], rng: np.random.Generator) -> None:
    """Choose the incident's magnitude (stated in the labels) and description."""
    k = inc.kind
    dur = inc.end - inc.start
    u = rng.uniform
    if k is AnomalyType.LATENCY_SPIKE:
        f = round(float(u(3.0, 6.0)), 2)
        inc.magnitude = {"latency_p50_factor": f, "mechanism": "queueing before first token"}
        inc.description = f"Latency spike: every call queues before its first token, p50 latency ×{f:g}"
    elif k is AnomalyType.LATENCY_DEGRADATION:
        pct = round(float(u(60.0, 150.0)), 1)
        inc.ramp_s = round(min(300.0, 0.2 * dur))
        inc.magnitude = {"latency_increase_pct": pct, "onset_s": inc.ramp_s}
        inc.description = f"Sustained latency degradation: p50 latency +{pct:g}% (time to first token grows)"
    elif k is AnomalyType.THROUGHPUT_DEGRADATION:
        q = round(float(u(0.3, 0.5)), 2)
        inc.ramp_s = round(min(120.0, 0.1 * dur))
        inc.magnitude = {"tokens_per_s_factor": q, "onset_s": inc.ramp_s}
        inc.description = f"Decode throughput drops to {q:.0%} of normal (output tokens/s), latency grows with it"
    elif k is AnomalyType.ERROR_RATE_SPIKE:
        rate = round(float(u(0.05, 0.30)), 3)
        etype = str(rng.choice(ERROR_TYPES, p=[0.35, 0.5, 0.15]))
        inc.magnitude = {"error_rate": rate, "error_type": etype, "baseline_error_rate": 0.005}
        inc.description = f"Error rate spike: {rate:.1%} of calls fail, mostly {etype}"
    elif k is AnomalyType.TRAFFIC_SPIKE:
        f = round(float(u(3.0, 5.0)), 2)
        inc.magnitude = {"rate_factor": f}
        inc.description = f"Traffic spike: request rate ×{f:g} (same request mix)"
    elif k is AnomalyType.TRAFFIC_DROP:
        f = round(float(u(0.0, 0.2)), 3)
        inc.magnitude = {"rate_factor": f}
        inc.description = f"Traffic drop: request rate ×{f:g}"
    elif k is AnomalyType.TOKEN_USAGE_SPIKE:
        which = str(rng.choice(["output", "input", "both"], p=[0.5, 0.25, 0.25]))
        f = round(float(u(3.0, 5.0)), 2)
        inc.magnitude = {"tokens": which, "factor": f}
        inc.description = f"Token usage spike: {which} tokens ×{f:g} per call"
    elif k is AnomalyType.TOKEN_USAGE_DROP:
        which = str(rng.choice(["output", "both"], p=[0.6, 0.4]))
        f = round(float(u(0.1, 0.3)), 3)
        inc.magnitude = {"tokens": which, "factor": f}
        inc.description = f"Token usage drop: {which} tokens ×{f:g} per call"
    elif k is AnomalyType.COST_SPIKE:
        target = _PRICIER[spec.model]
        ratio = _expected_cost_ratio(spec, target, tokens)
        lo = max(0.5, min(1.0, 3.5 / (ratio - 1.0)))
        frac = round(float(u(lo, 1.0)), 3)
        factor = round(1.0 + frac * (ratio - 1.0), 2)
        inc.magnitude = {
            "served_model": target,
            "fraction": frac,
            "cost_per_request_factor": factor,
            "price_ratio": round(ratio, 2),
        }
        inc.description = (
            f"Cost spike: {frac:.0%} of {spec.model} requests are served by {target} "
            f"(response model; cost per request ×{factor:g})"
        )
    elif k is AnomalyType.INPUT_DRIFT:
        m = round(float(u(2.0, 3.0)), 2)
        s = round(float(u(0.4, 0.6)), 2)
        inc.ramp_s = round(0.1 * dur)
        inc.magnitude = {"input_median_factor": m, "input_log_sigma_factor": s, "variant": "long_context_rag"}
        inc.description = (
            f"Input drift: a prompt-template rollout adds retrieved context — input median ×{m:g}, "
            f"log-spread ×{s:g} (narrower), rolled out over {inc.ramp_s / 60:.0f} min"
        )
    elif k is AnomalyType.OUTPUT_DRIFT:
        inc.ramp_s = round(0.1 * dur)
        if rng.random() < 0.5:
            frac = round(float(u(0.4, 0.7)), 2)
            cap_q = round(float(u(0.15, 0.3)), 2)
            inc.magnitude = {"variant": "truncated", "fraction": frac, "cap_median_factor": cap_q}
            inc.description = (
                f"Output drift: {frac:.0%} of answers truncated at max_tokens ≈{cap_q:g}× the usual median "
                "(finish_reason=length) — bimodal"
            )
        else:
            frac = round(float(u(0.3, 0.5)), 2)
            f = round(float(u(4.0, 8.0)), 2)
            inc.magnitude = {"variant": "verbose_bimodal", "fraction": frac, "factor": f}
            inc.description = f"Output drift: {frac:.0%} of answers become ×{f:g} longer — bimodal output lengths"
    elif k is AnomalyType.MULTIVARIATE_OUTLIER:
        frac = round(float(u(0.15, 0.35)), 2)
        if rng.random() < 0.5:
            inc.magnitude = {
                "variant": "fast_long_answers",
                "fraction": frac,
                "output_tokens_quantile": [0.85, 0.97],
                "latency_quantile": [0.03, 0.15],
            }
            inc.description = (
                f"Multivariate outlier: {frac:.0%} of calls return long answers (series p85–p97 output tokens) "
                "with short latency (p3–p15) — each value usual, the pair is not"
            )
        else:
            inc.magnitude = {
                "variant": "slow_tiny_answers",
                "fraction": frac,
                "output_tokens_quantile": [0.02, 0.12],
                "latency_quantile": [0.85, 0.97],
            }
            inc.description = (
                f"Multivariate outlier: {frac:.0%} of calls return tiny answers (series p2–p12 output tokens) "
                "with long latency (p85–p97) — each value usual, the pair is not"
            )


def _overlaps(blocks: list[tuple[float, float]], s: float, e: float, gap: float) -> bool:
    return any(s < be + gap and bs < e + gap for bs, be in blocks)


def _place(
    rng: np.random.Generator,
    specs: Sequence[SeriesSpec],
    series_start: Sequence[float],
    t0: float,
    t1: float,
    warmup_s: float,
    kinds: Sequence[AnomalyType],
    per_kind: int,
    blocked: dict[int, list[tuple[float, float]]],
    tokens: dict[str, _Tokens],
) -> list[_Incident]:
    jobs = [k for k in kinds for _ in range(per_kind)]
    jobs.sort(key=lambda k: -DURATIONS_MIN[k][1])  # longest first packs best; sort is stable
    placed: list[_Incident] = []
    counts: dict[int, int] = {}
    for kind in jobs:
        eligible = [i for i, s in enumerate(specs) if _eligible(kind, s, tokens)]
        lo_min, hi_min = DURATIONS_MIN[kind]
        ok = False
        for _ in range(400) if eligible else ():
            # spread incidents over the series: fewer so far → more likely
            weights = np.array([1.0 / (1.0 + counts.get(i, 0)) ** 2 for i in eligible])
            si = eligible[int(rng.choice(len(eligible), p=weights / weights.sum()))]
            dur = round(float(rng.uniform(lo_min, hi_min)) * 60.0)
            earliest = max(t0 + warmup_s, series_start[si] + (NEW_SERVICE_GRACE_S if series_start[si] > t0 else 0.0))
            latest = t1 - END_MARGIN_S - dur
            if latest <= earliest:
                continue
            s = float(round(rng.uniform(earliest, latest)))
            if _overlaps(blocked.setdefault(si, []), s, s + dur, INCIDENT_GAP_S):
                continue
            blocked[si].append((s, s + dur))
            inc = _Incident(kind, si, s, s + dur)
            _sample_magnitude(inc, specs[si], tokens, rng)
            placed.append(inc)
            counts[si] = counts.get(si, 0) + 1
            ok = True
            break
        if not ok:
            warnings.warn(f"no room for a {kind.value} incident; skipped", stacklevel=3)
    placed.sort(key=lambda inc: (inc.start, inc.series))
    return placed


# ---------------------------------------------------------------------------- simulation


@dataclass(slots=True)
class _Arrays:
    ts: FloatArray
    latency: FloatArray
    ttft: FloatArray  # nan = none
    inp: IntArray
    out: IntArray
    cost: FloatArray
    error: IntArray  # -1 = ok, else index into ERROR_TYPES
    finish: IntArray  # -1 = none, else index into FINISH_REASONS
    served: IntArray  # index into _MODEL_NAMES


def _windows_mask(ts: FloatArray, windows: Iterable[tuple[float, float]]) -> BoolArray:
    mask = np.zeros(ts.shape, dtype=bool)
    for s, e in windows:
        i, j = np.searchsorted(ts, [s, e])
        mask[i:j] = True
    return mask


def _simulate_series(
    spec: SeriesSpec,
    active_from: float,
    t1: float,
    incidents: list[_Incident],
    ramp: _Benign | None,
    tokens: dict[str, _Tokens],
    rng: np.random.Generator,
    rate_scale: float,
    error_rate: float,
) -> _Arrays:
    # --- arrivals: per-second Poisson counts of a smooth, noisy rate
    t_start = math.floor(active_from)
    bins = np.arange(t_start, math.ceil(t1), 1.0, dtype=np.float64)
    mids = bins + 0.5
    minute = ((bins - t_start) // 60).astype(np.int64)
    n_min = int(minute[-1]) + 1 if len(minute) else 1
    rate_noise = _ar1_minutes(rng, n_min, 0.12)
    rate = (
        spec.peak_rate
        * rate_scale
        * (spec.night + (1.0 - spec.night) * _diurnal(spec, mids))
        * _weekend(spec, mids)
        * rate_noise[minute]
    )
    for inc in incidents:
        if inc.kind in (AnomalyType.TRAFFIC_SPIKE, AnomalyType.TRAFFIC_DROP):
            rate = rate * (1.0 + (float(inc.magnitude["rate_factor"]) - 1.0) * inc.envelope(mids))
    counts = rng.poisson(rate)
    ts = np.repeat(bins, counts) + rng.random(int(counts.sum()))
    ts = ts[(ts >= active_from) & (ts < t1)]
    ts.sort()
    n = len(ts)

    # --- tokens
    inp, out = _series_tokens(spec, tokens, rng, n)
    base_inp_log = np.log(inp)
    med_in, sd_in = float(np.median(base_inp_log)) if n else 0.0, float(np.std(base_inp_log)) if n else 1.0
    served = np.full(n, _MODEL_INDEX[spec.model], dtype=np.int64)
    finish = np.where(rng.random(n) < spec.tool_call_p, 2, 0).astype(np.int64)
    cap = np.full(n, float(spec.max_tokens))
    for inc in incidents:
        env = inc.envelope(ts)
        sel = env > 0
        if not sel.any():
            continue
        m = inc.magnitude
        if inc.kind in (AnomalyType.TOKEN_USAGE_SPIKE, AnomalyType.TOKEN_USAGE_DROP):
            f = 1.0 + (float(m["factor"]) - 1.0) * env
            if m["tokens"] in ("output", "both"):
                out = out * f
            if m["tokens"] in ("input", "both"):
                inp = inp * f
        elif inc.kind is AnomalyType.INPUT_DRIFT:
            hit = rng.random(n) < env
            drifted = np.exp(
                rng.normal(
                    med_in + math.log(float(m["input_median_factor"])), sd_in * float(m["input_log_sigma_factor"]), n
                )
            )
            inp = np.where(hit, drifted, inp)
        elif inc.kind is AnomalyType.OUTPUT_DRIFT:
            hit = rng.random(n) < env * float(m["fraction"])
            if m["variant"] == "truncated":
                med_out = float(np.median(out[~_windows_mask(ts, [(inc.start, inc.end)])])) if n else 1.0
                c = max(2.0, round(med_out * float(m["cap_median_factor"])))
                cap = np.where(hit, c, cap)
                m.setdefault("cap_tokens", int(c))
            else:
                out = np.where(hit, out * float(m["factor"]), out)
        elif inc.kind is AnomalyType.COST_SPIKE:
            hit = rng.random(n) < env * float(m["fraction"])
            served = np.where(hit, _MODEL_INDEX[str(m["served_model"])], served)
    inp_i = np.maximum(1, np.rint(inp)).astype(np.int64)
    out_f = np.maximum(1.0, np.rint(out))
    truncated = out_f >= cap
    out_i = np.minimum(out_f, cap).astype(np.int64)
    finish = np.where(truncated, 1, finish)

    # --- latency = time to first token + decode time (per served model)
    ttft_med = np.array([MODELS[m].ttft_ms for m in _MODEL_NAMES])[served]
    ttft_sig = np.array([MODELS[m].ttft_sigma for m in _MODEL_NAMES])[served]
    prefill = np.array([MODELS[m].prefill_ms_per_1k for m in _MODEL_NAMES])[served]
    tps_med = np.array([MODELS[m].tokens_per_s for m in _MODEL_NAMES])[served]
    tps_sig = np.array([MODELS[m].tps_sigma for m in _MODEL_NAMES])[served]
    load = _diurnal(spec, ts)  # providers are a little slower at peak
    lat_noise = _ar1_minutes(rng, n_min, 0.06)[((ts - t_start) // 60).astype(np.int64)] if n else np.ones(0)
    ttft = (ttft_med * np.exp(rng.normal(0.0, 1.0, n) * ttft_sig) + prefill * inp_i / 1000.0) * (1.0 + 0.10 * load)
    ttft = ttft * lat_noise
    tps = tps_med * np.exp(rng.normal(0.0, 1.0, n) * tps_sig) / (1.0 + 0.08 * load)
    for inc in incidents:
        if inc.kind is AnomalyType.THROUGHPUT_DEGRADATION:
            tps = tps * (1.0 - (1.0 - float(inc.magnitude["tokens_per_s_factor"])) * inc.envelope(ts))
    decode = out_i / tps * 1000.0
    if ramp is not None:
        r = 1.0 + float(ramp.magnitude["latency_increase_pct"]) / 100.0 * np.clip(
            (ts - ramp.start) / (ramp.end - ramp.start), 0.0, 1.0
        )
        ttft, decode = ttft * r, decode * r
    tail = rng.random(n) < 0.015  # occasional queueing: heavy tail, single outliers
    ttft = ttft + np.where(tail, np.minimum(800.0 * rng.pareto(1.5, n), 120_000.0), 0.0)

    quiet = ~_windows_mask(ts, [(i.start, i.end) for i in incidents])
    base_latency = ttft + decode
    lat_ref = base_latency[quiet] if quiet.any() else base_latency
    median_latency = float(np.median(lat_ref)) if n else 1000.0
    for inc in incidents:
        if inc.kind in (AnomalyType.LATENCY_SPIKE, AnomalyType.LATENCY_DEGRADATION):
            env = inc.envelope(ts)
            if inc.kind is AnomalyType.LATENCY_SPIKE:
                extra = float(inc.magnitude["latency_p50_factor"]) - 1.0
            else:
                extra = float(inc.magnitude["latency_increase_pct"]) / 100.0
            delay = extra * median_latency * np.exp(rng.normal(0.0, 0.25, n))
            ttft = ttft + env * delay
            inc.magnitude.setdefault("added_delay_ms_median", round(extra * median_latency, 1))
    latency = ttft + decode

    # --- multivariate outliers: usual values, unusual combinations
    for inc in incidents:
        if inc.kind is not AnomalyType.MULTIVARIATE_OUTLIER:
            continue
        m = inc.magnitude
        hit = (inc.envelope(ts) > 0) & (rng.random(n) < float(m["fraction"]))
        k = int(hit.sum())
        if k == 0 or not quiet.any():
            continue
        qo_lo, qo_hi = (float(x) for x in m["output_tokens_quantile"])
        ql_lo, ql_hi = (float(x) for x in m["latency_quantile"])
        qo = rng.uniform(qo_lo, qo_hi, size=k)
        ql = rng.uniform(ql_lo, ql_hi, size=k)
        out_i[hit] = np.maximum(1, np.rint(np.quantile(out_i[quiet], qo))).astype(np.int64)
        new_lat = np.quantile(latency[quiet], ql)
        latency[hit] = new_lat
        ttft[hit] = new_lat * rng.uniform(0.2, 0.5, size=k)
        finish[hit] = 0

    # --- errors
    p_err = np.full(n, error_rate)
    dominant = np.full(n, -1, dtype=np.int64)
    for inc in incidents:
        if inc.kind is AnomalyType.ERROR_RATE_SPIKE:
            env = inc.envelope(ts)
            p_err = np.maximum(p_err, env * float(inc.magnitude["error_rate"]))
            dominant = np.where(env > 0, ERROR_TYPES.index(str(inc.magnitude["error_type"])), dominant)
    is_err = rng.random(n) < p_err
    etype = rng.choice(len(ERROR_TYPES), size=n, p=_ERROR_WEIGHTS).astype(np.int64)
    etype = np.where((dominant >= 0) & (rng.random(n) < 0.85), dominant, etype)
    err_lat = np.select(
        [etype == 0, etype == 1],
        [60.0 * np.exp(rng.normal(0.0, 0.6, n)), 350.0 * np.exp(rng.normal(0.0, 0.9, n))],
        CLIENT_TIMEOUT_MS * np.exp(rng.normal(0.0, 0.005, n)),
    )
    latency = np.where(is_err, err_lat, latency)
    ttft = np.where(is_err, np.nan, ttft)
    inp_i = np.where(is_err, 0, inp_i)
    out_i = np.where(is_err, 0, out_i)
    finish = np.where(is_err, -1, finish)
    error = np.where(is_err, etype, -1)

    p_in = np.array([PRICES[m][0] for m in _MODEL_NAMES])[served]
    p_out = np.array([PRICES[m][1] for m in _MODEL_NAMES])[served]
    cost = (inp_i * p_in + out_i * p_out) / 1e6
    return _Arrays(
        ts=np.round(ts, 6),
        latency=np.asarray(np.round(latency, 3), dtype=np.float64),
        ttft=np.asarray(np.round(ttft, 3), dtype=np.float64),
        inp=inp_i.astype(np.int64),
        out=out_i.astype(np.int64),
        cost=cost,
        error=error.astype(np.int64),
        finish=finish.astype(np.int64),
        served=served,
    )


# ---------------------------------------------------------------------------- public API


def _parse_kinds(kinds: Iterable[AnomalyType | str] | None) -> list[AnomalyType]:
    if kinds is None:
        return list(AnomalyType)
    out: list[AnomalyType] = []
    for k in kinds:
        kind = AnomalyType(k)
        if kind not in out:
            out.append(kind)
    return out


def generate(
    hours: float = 24.0,
    seed: int = 0,
    start: float | None = None,
    *,
    kinds: Iterable[AnomalyType | str] | None = None,
    incidents_per_kind: int | None = None,
    series: Sequence[SeriesSpec] = SERIES,
    benign: bool = True,
    warmup_hours: float = 2.0,
    error_rate: float = 0.005,
    rate_scale: float = 1.0,
    data_dir: Path | None = None,
    token_source: Literal["auto", "azure", "fit"] = "auto",
    progress: Progress | None = None,
) -> tuple[list[TelemetryEvent], dict[str, Any]]:
    """Simulate ``hours`` of traffic; return the events (sorted by time) and the labels.

    ``kinds`` chooses which incident kinds to inject (default: all twelve, ``[]``
    for none); ``incidents_per_kind`` defaults to ``max(1, round(hours / 12))``
    (2 for a day). ``rate_scale`` multiplies every series' request rate.
    ``data_dir`` points at ``azure_llm_2023/`` (default: ``../shared/data`` next
    to the repository); ``token_source="fit"`` uses the fitted log-normals.
    The first ``warmup_hours`` (at most a quarter of the run) are incident-free.
    """
    if hours <= 0:
        raise ValueError("hours must be > 0")
    t0 = DEFAULT_START if start is None else float(start)
    t1 = t0 + hours * 3600.0
    kind_list = _parse_kinds(kinds)
    per_kind = max(1, round(hours / 12.0)) if incidents_per_kind is None else incidents_per_kind
    tokens = _load_tokens(data_dir, token_source)
    ss = np.random.SeedSequence(seed)
    plan_seq, ids_seq, *series_seqs = ss.spawn(2 + len(series))
    plan_rng = np.random.default_rng(plan_seq)
    warmup_s = min(warmup_hours * 3600.0, hours * 3600.0 / 4.0)

    # --- benign patterns and series start times
    series_start = [t0] * len(series)
    benign_list: list[_Benign] = []
    blocked: dict[int, list[tuple[float, float]]] = {}
    for i, spec in enumerate(series):
        if spec.appears_at is not None and benign:
            series_start[i] = t0 + round(spec.appears_at * hours * 3600.0 / 60.0) * 60.0
            grace_end = min(t1, series_start[i] + NEW_SERVICE_GRACE_S)
            benign_list.append(
                _Benign(
                    "new_service",
                    i,
                    series_start[i],
                    grace_end,
                    f"{spec.service} starts sending traffic mid-run; its first hours are its normal, not an incident",
                )
            )
    ramp: _Benign | None = None
    steady = [i for i, s in enumerate(series) if s.appears_at is None]
    if benign and hours >= 6 and steady:
        si = steady[int(plan_rng.integers(len(steady)))]
        dur = min(5.0 * 3600.0, 0.3 * hours * 3600.0)
        rs = float(round(plan_rng.uniform(t0 + warmup_s, t1 - dur - 3600.0)))
        ramp = _Benign(
            "slow_latency_ramp",
            si,
            rs,
            rs + dur,
            f"latency rises slowly by 20% over {dur / 3600:.1f} h and stays there (gradual provider load)",
            {"latency_increase_pct": 20.0},
        )
        benign_list.append(ramp)
        blocked[si] = [(ramp.start, ramp.end)]
    incidents = _place(plan_rng, series, series_start, t0, t1, warmup_s, kind_list, per_kind, blocked, tokens)

    # --- simulate every series
    parts: list[_Arrays] = []
    for i, spec in enumerate(series):
        if progress:
            progress(f"simulating {spec.service}/{spec.model} ({i + 1}/{len(series)})")
        rng = np.random.default_rng(series_seqs[i])
        mine = [inc for inc in incidents if inc.series == i]
        parts.append(
            _simulate_series(
                spec,
                series_start[i],
                t1,
                mine,
                ramp if ramp is not None and ramp.series == i else None,
                tokens,
                rng,
                rate_scale,
                error_rate,
            )
        )

    events = _to_events(series, parts, np.random.default_rng(ids_seq), progress)
    labels = _labels(seed, hours, t0, t1, series, series_start, parts, incidents, benign_list, tokens, error_rate)
    return events, labels


def _to_events(
    specs: Sequence[SeriesSpec], parts: list[_Arrays], rng: np.random.Generator, progress: Progress | None
) -> list[TelemetryEvent]:
    if progress:
        progress("building events")
    sid = np.concatenate([np.full(len(p.ts), i, dtype=np.int64) for i, p in enumerate(parts)])
    ts = np.concatenate([p.ts for p in parts])
    order = np.argsort(ts, kind="stable")

    def cat(name: str) -> list[Any]:
        return np.concatenate([getattr(p, name) for p in parts])[order].tolist()  # type: ignore[no-any-return]

    n = len(order)
    hexids = rng.bytes(24 * n).hex()
    services = [s.service for s in specs]
    models = [s.model for s in specs]
    response = [MODELS[m].response_model for m in _MODEL_NAMES]
    providers = [MODELS[s.model].provider for s in specs]
    events: list[TelemetryEvent] = []
    append = events.append
    for k, (t, si, lat, ttft, inp, out, cost, err, fin, srv) in enumerate(
        zip(
            ts[order].tolist(),
            sid[order].tolist(),
            cat("latency"),
            cat("ttft"),
            cat("inp"),
            cat("out"),
            cat("cost"),
            cat("error"),
            cat("finish"),
            cat("served"),
            strict=True,
        )
    ):
        ok = err < 0
        append(
            TelemetryEvent(
                timestamp=t,
                service=services[si],
                model=models[si],
                latency_ms=lat,
                input_tokens=inp,
                output_tokens=out,
                cost_usd=cost,
                is_error=not ok,
                error_type=None if ok else ERROR_TYPES[err],
                provider=providers[si],
                operation="chat",
                ttft_ms=ttft if ok else None,
                finish_reason=FINISH_REASONS[fin] if fin >= 0 else None,
                trace_id=hexids[48 * k : 48 * k + 32],
                span_id=hexids[48 * k + 32 : 48 * k + 48],
                attributes={"gen_ai.response.model": response[srv]} if ok else {},
            )
        )
    return events


def _labels(
    seed: int,
    hours: float,
    t0: float,
    t1: float,
    specs: Sequence[SeriesSpec],
    series_start: Sequence[float],
    parts: list[_Arrays],
    incidents: list[_Incident],
    benign: list[_Benign],
    tokens: dict[str, _Tokens],
    error_rate: float,
) -> dict[str, Any]:
    series_out = []
    for i, spec in enumerate(specs):
        n = len(parts[i].ts)
        series_out.append(
            {
                "service": spec.service,
                "model": spec.model,
                "start": format_ts(series_start[i]),
                "end": format_ts(t1),
                "mean_rate_per_s": round(n / max(1.0, t1 - series_start[i]), 4),
                "peak_rate_per_s": spec.peak_rate,
                "events": n,
                "provider": MODELS[spec.model].provider,
                "response_model": MODELS[spec.model].response_model,
                "token_profile": spec.tokens,
            }
        )
    return {
        "version": LABELS_VERSION,
        "seed": seed,
        "hours": hours,
        "start": format_ts(t0),
        "end": format_ts(t1),
        "events": sum(len(p.ts) for p in parts),
        "token_source": next(iter(tokens.values())).source,
        "baseline_error_rate": error_rate,
        "series": series_out,
        "incidents": [
            {
                "id": f"inc-{k + 1:03d}",
                "service": specs[inc.series].service,
                "model": specs[inc.series].model,
                "kind": inc.kind.value,
                "start": format_ts(inc.start),
                "end": format_ts(inc.end),
                "magnitude": inc.magnitude,
                "description": inc.description,
            }
            for k, inc in enumerate(incidents)
        ],
        "benign": [
            {
                "service": specs[b.series].service,
                "model": specs[b.series].model,
                "kind": b.kind,
                "start": format_ts(b.start),
                "end": format_ts(b.end),
                "description": b.description,
                **({"magnitude": b.magnitude} if b.magnitude else {}),
            }
            for b in benign
        ],
    }


def labels_path(output: Path) -> Path:
    """Where :func:`write` puts the labels: ``<output>.labels.json``."""
    return output.with_name(output.name + ".labels.json")


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "wb", compresslevel=5))
    return path.open("wb")


def write(
    output: Path | str,
    hours: float = 24.0,
    seed: int = 0,
    start: float | None = None,
    *,
    kinds: Iterable[AnomalyType | str] | None = None,
    incidents_per_kind: int | None = None,
    benign: bool = True,
    rate_scale: float = 1.0,
    data_dir: Path | None = None,
    token_source: Literal["auto", "azure", "fit"] = "auto",
    fmt: Literal["otlp_json", "native"] = "otlp_json",
    max_spans: int = 200,
    batch_timeout_s: float = 15.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate and write ``output`` (JSON lines, gzip if ``.gz``) and ``<output>.labels.json``.

    ``fmt="otlp_json"`` writes one ``ExportTraceServiceRequest`` per line, each a
    Collector-style batch (≤ ``max_spans`` spans, cut after ``batch_timeout_s``
    of event time); ``fmt="native"`` one native event per line. Returns the labels.
    """
    output = Path(output)
    events, labels = generate(
        hours,
        seed,
        start,
        kinds=kinds,
        incidents_per_kind=incidents_per_kind,
        benign=benign,
        rate_scale=rate_scale,
        data_dir=data_dir,
        token_source=token_source,
        progress=progress,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    total = len(events)
    done = 0
    next_report = 0.0
    lines = 0
    with _open(output) as fh:
        if fmt == "native":
            chunks = (events[i : i + 5000] for i in range(0, total, 5000))
            for chunk in chunks:
                fh.write(b"".join(orjson.dumps(ev.to_dict()) + b"\n" for ev in chunk))
                done += len(chunk)
                lines += len(chunk)
                if progress and done / max(total, 1) >= next_report:
                    progress(f"writing {done:,}/{total:,} events ({done / max(total, 1):.0%})")
                    next_report += 0.1
        else:
            buf: list[bytes] = []
            for batch in batch_spans(events, max_spans=max_spans, timeout_s=batch_timeout_s):
                buf.append(orjson.dumps(events_to_otlp_json(batch)))
                done += len(batch)
                if len(buf) >= 200:
                    fh.write(b"\n".join(buf) + b"\n")
                    lines += len(buf)
                    buf = []
                if progress and done / max(total, 1) >= next_report:
                    progress(f"writing {done:,}/{total:,} spans ({done / max(total, 1):.0%})")
                    next_report += 0.1
            if buf:
                fh.write(b"\n".join(buf) + b"\n")
                lines += len(buf)
    labels_path(output).write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2) + b"\n")
    if progress:
        progress(f"wrote {total:,} events in {lines:,} lines to {output} and {labels_path(output).name}")
    return labels


def _stderr_progress() -> Progress:
    t_start = time.perf_counter()

    def report(msg: str) -> None:
        print(f"[generate {time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sentinel.generate --output FILE [--hours H] [--seed S] …``"""
    p = argparse.ArgumentParser(
        prog="sentinel generate", description="Labelled synthetic LLM telemetry (OTLP JSON lines + labels)."
    )
    p.add_argument("--output", "-o", required=True, type=Path, help="output file (.jsonl or .jsonl.gz)")
    p.add_argument("--hours", type=float, default=24.0, help="duration (default 24)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start", type=parse_ts, default=None, help="RFC 3339 or epoch seconds (default 2026-01-05Z)")
    p.add_argument("--kinds", default="all", help="comma-separated anomaly types to inject, 'all' or 'none'")
    p.add_argument("--incidents-per-kind", type=int, default=None, help="default: max(1, round(hours/12))")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply every series' request rate")
    p.add_argument("--no-benign", action="store_true", help="no slow ramp / new service")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the Azure LLM 2023 CSVs")
    p.add_argument("--format", dest="fmt", choices=["otlp_json", "native"], default="otlp_json")
    p.add_argument("--max-spans", type=int, default=200, help="spans per OTLP request (default 200)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    kinds: list[str] | None
    if args.kinds == "all":
        kinds = None
    elif args.kinds == "none":
        kinds = []
    else:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in {a.value for a in AnomalyType}]
        if bad:
            p.error(f"unknown anomaly type(s): {', '.join(bad)}")
    labels = write(
        args.output,
        args.hours,
        args.seed,
        args.start,
        kinds=kinds,
        incidents_per_kind=args.incidents_per_kind,
        benign=not args.no_benign,
        rate_scale=args.rate_scale,
        data_dir=args.data_dir,
        fmt=args.fmt,
        max_spans=args.max_spans,
        progress=None if args.quiet else _stderr_progress(),
    )
    if not args.quiet:
        print(
            f"{labels['events']:,} events, {len(labels['incidents'])} incidents, labels: {labels_path(args.output)}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
