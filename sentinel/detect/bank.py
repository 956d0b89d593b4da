"""The per-key detector bank: every detector of one service/model pair.

Per event (``on_event``), on log-scaled metrics — latency, output tokens/s, input
tokens, output tokens, cost (successful calls only):

* a :class:`~sentinel.detect.zscore.RobustZScore` baseline per metric; the point
  detector of ``spike.method`` (z-score, IQR, MAD, percentile or likelihood) flags single
  points, and a latency spike is reported only when ``spike.k`` of the last
  ``spike.n`` events are flagged (single outliers of heavy-tailed traffic are
  not incidents);
* a two-sided CUSUM (or EWMA chart) on the clipped z-values for sustained shifts:
  latency up → ``latency_degradation``, tokens/s down → ``throughput_degradation``,
  input/output tokens up/down → ``token_usage_spike``/``token_usage_drop``, cost
  per request up → ``cost_spike``;
* PSI/KL drift of input and output token histograms → ``input_drift``/``output_drift``;
* latency given output tokens (:class:`~sentinel.detect.joint.LatencyGivenTokens`):
  a long answer returned far too fast or a tiny answer far too slow, ``k`` of the
  last ``n`` calls → ``multivariate_outlier``; optionally (``hst.enabled``)
  HalfSpaceTrees over the z-values of latency, output tokens and tokens/s as well.

Per window (``on_window``): error rate (binomial tail vs beta baseline, plus a
Bernoulli CUSUM accumulating evidence over windows), traffic spike/drop (Poisson
+ overdispersion vs a time-of-day-aware rate, plus a CUSUM of the window z over
several windows) and throughput per window; and the anomaly likelihood
(:class:`~sentinel.detect.likelihood.LikelihoodDetector`, NAB defaults — NAB's series
are aggregated metrics like these) of log window latency p50 → ``latency_spike``
(upward alarms with p50 ≥ ``window_likelihood.min_ratio`` × its baseline) and,
optionally, of the window request count → traffic spike/drop. Empty windows have no aggregate: a window arriving after
a gap means the skipped windows had 0 requests and the gap is scored as such.
A key that goes completely silent therefore reports its drop only when traffic
resumes (or never, if it is expired first after ``idle_expiry_s``).

Learning rules: scores are computed before learning; points flagged by the
point detector are not learned; after a CUSUM/EWMA alarm the metric *holds* its
baseline (learns nothing) until the smoothed z returns to normal, or — after
``rebaseline_after`` events spanning at least ``rebaseline_min_s`` — accepts
the new level (re-baseline). Windows flagged by a window detector are not
learned either, with the same re-baseline escape.

Output: at most one anomaly per type per ``cooldown_s`` unless its severity
rises; severity comes from ``score/threshold`` (:meth:`Severity.from_score`)
raised one level once the condition has lasted ``escalate_after_s``.
"""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any, NoReturn

from sentinel.detect.base import reconfigured
from sentinel.detect.cusum import Cusum
from sentinel.detect.drift import TokenDrift
from sentinel.detect.error_rate import ErrorRate
from sentinel.detect.ewma import EwmaChart
from sentinel.detect.hst import HSTOutlier
from sentinel.detect.iqr import IQRFence
from sentinel.detect.joint import LatencyGivenTokens
from sentinel.detect.likelihood import LikelihoodDetector
from sentinel.detect.mad import MAD
from sentinel.detect.percentile import Percentile
from sentinel.detect.settings import DetectionSettings, WindowShiftSettings
from sentinel.detect.traffic import TrafficRate
from sentinel.detect.window_shift import WindowShift
from sentinel.detect.zscore import RobustZScore
from sentinel.models import AnomalyEvent, AnomalyType, DetectionMethod, Severity, TelemetryEvent, WindowStats

__all__ = ["METRICS", "DetectorBank"]

METRICS = ("latency", "output_tokens_per_s", "input_tokens", "output_tokens", "cost")

T = AnomalyType
# metric -> (type for an upward shift, type for a downward shift)
_SHIFT_TYPES: dict[str, tuple[AnomalyType | None, AnomalyType | None]] = {
    "latency": (T.LATENCY_DEGRADATION, None),
    "output_tokens_per_s": (None, T.THROUGHPUT_DEGRADATION),
    "input_tokens": (T.TOKEN_USAGE_SPIKE, T.TOKEN_USAGE_DROP),
    "output_tokens": (T.TOKEN_USAGE_SPIKE, T.TOKEN_USAGE_DROP),
    "cost": (T.COST_SPIKE, None),
}
_UNITS = {
    "latency": "latency_ms",
    "output_tokens_per_s": "output_tokens_per_s",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cost": "cost_usd",
}
_HST_FEATURES = ("latency", "output_tokens", "output_tokens_per_s")  # sorted: HST feature order

# window aggregate -> (type for an upward shift, type for a downward shift): the same as per event
_WINDOW_UNITS = {
    "latency": "latency_p50_ms",
    "output_tokens_per_s": "output_tokens_per_s",
    "input_tokens": "input_tokens_per_request",
    "output_tokens": "output_tokens_per_request",
    "cost": "cost_usd_per_request",
}

PointDetector = IQRFence | MAD | Percentile | LikelihoodDetector
_POINT_DETECTORS: dict[str, type[PointDetector]] = {
    "iqr": IQRFence,
    "mad": MAD,
    "percentile": Percentile,
    "likelihood": LikelihoodDetector,
}


def _natural(metric: str, v: float) -> float:
    """Back from the log scale to the metric's unit."""
    if metric in ("latency", "output_tokens_per_s"):
        return math.exp(v)
    if metric == "cost":
        return math.expm1(v) / 1e6
    return math.expm1(v)


def _values(ev: TelemetryEvent, tracked: Container[str]) -> dict[str, float]:
    """The log-scaled metrics of a successful call (logs computed once per event).

    Latency and output tokens always (the joint detector reads them), the other
    metrics only when a track watches them.
    """
    out: dict[str, float] = {}
    if ev.latency_ms > 0:
        out["latency"] = math.log(ev.latency_ms)
    if "output_tokens_per_s" in tracked:
        tps = ev.output_tokens_per_s
        if tps is not None and tps > 0:
            out["output_tokens_per_s"] = math.log(tps)
    if "input_tokens" in tracked:
        out["input_tokens"] = math.log1p(max(ev.input_tokens, 0))
    out["output_tokens"] = math.log1p(max(ev.output_tokens, 0))
    if ev.cost_usd > 0 and "cost" in tracked:
        out["cost"] = math.log1p(ev.cost_usd * 1e6)
    return out


def _k_of_n(bits: int, flag: bool, n: int) -> tuple[int, int]:
    """The last ``n`` flags as bits, with ``flag`` pushed in, and how many of them are set."""
    bits = ((bits << 1) | flag) & ((1 << n) - 1)
    return bits, bits.bit_count()


class _Track:
    """Per-metric state: baseline, point detector, shift chart, persistence and hold."""

    def __init__(self, s: DetectionSettings, spike: bool) -> None:
        self.z = RobustZScore()
        self.alt: PointDetector | None = None
        self.shift: Cusum | EwmaChart = Cusum()
        self.spike = spike
        self.bits = 0
        self.run = 0  # consecutive point-flagged events
        self.run_sum = 0.0
        self.run_t0 = 0.0
        self.hold = 0  # events held since a shift alarm (0 = not holding)
        self.hold_dir = 0
        self.hold_sum = 0.0
        self.hold_ez = 0.0
        self.hold_t0 = 0.0
        self.configure(s)

    def configure(self, s: DetectionSettings) -> None:
        self.z.set_params(dict(s.zscore))
        point = _POINT_DETECTORS.get(s.spike.method) if self.spike else None
        # the settings section of a point method has the method's name (iqr, mad, percentile, likelihood)
        self.alt = None if point is None else reconfigured(self.alt, point, dict(getattr(s, s.spike.method)))
        if s.shift_method == "cusum":
            self.shift = reconfigured(self.shift, Cusum, dict(s.cusum))
        else:
            self.shift = reconfigured(self.shift, EwmaChart, dict(s.ewma))


class _WTrack:
    """Per-window shift state of one aggregate: detector, signed run of flagged windows."""

    __slots__ = ("det", "run")

    def __init__(self) -> None:
        self.det = WindowShift()
        self.run = 0

    def configure(self, c: WindowShiftSettings) -> None:
        self.det.set_params(dict(c))

    def __getstate__(self) -> tuple[WindowShift, int]:
        return (self.det, self.run)

    def __setstate__(self, st: tuple[WindowShift, int]) -> None:
        self.det, self.run = st


class _Burst:
    """Cooldown / duration bookkeeping of one anomaly type."""

    __slots__ = ("last_active", "last_emit", "rank", "since")

    def __init__(self, t: float) -> None:
        self.last_emit = -math.inf
        self.rank = -1
        self.since = t
        self.last_active = t

    def __getstate__(self) -> tuple[float, int, float, float]:
        return (self.last_emit, self.rank, self.since, self.last_active)

    def __setstate__(self, st: tuple[float, int, float, float]) -> None:
        self.last_emit, self.rank, self.since, self.last_active = st


class _Unconfigured:
    """The settings of a bank restored from a snapshot, until ``apply_settings`` gives it some."""

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):  # introspection (copy, pickle, doctest) asks for dunders
            raise AttributeError(name)
        raise RuntimeError("this DetectorBank was restored from a snapshot: call apply_settings(settings) first")


_UNCONFIGURED: Any = _Unconfigured()


class DetectorBank:
    """All detectors of one service/model key. Picklable, ≤ 16 KB: the learned state only,
    so a bank restored from a snapshot needs :meth:`apply_settings` before use.

    >>> from sentinel.models import TelemetryEvent
    >>> bank = DetectorBank(DetectionSettings(), "svc", "gpt-4o")
    >>> out = []
    >>> for i in range(400):
    ...     ms = 800.0 * (1.1 if i % 2 else 0.9) * (6.0 if i >= 300 else 1.0)
    ...     ev = TelemetryEvent(timestamp=1_700_000_000 + i, service="svc", model="gpt-4o", latency_ms=ms,
    ...                         input_tokens=500, output_tokens=200, cost_usd=0.003)
    ...     out += bank.on_event(ev)
    >>> sorted({a.anomaly_type.value for a in out})  # per event; degradations are judged per window
    ['latency_spike']
    >>> min(a.timestamp for a in out) - 1_700_000_000 < 310
    True
    """

    def __init__(self, settings: DetectionSettings, service: str, model: str) -> None:
        self.service = service
        self.model = model
        self.settings = settings
        self._last_t = -math.inf
        self.tracks: dict[str, _Track] = {}
        self.drift_in = TokenDrift()
        self.drift_out = TokenDrift()
        self.hst: HSTOutlier | None = None
        self.hst_bits = 0
        self.joint: LatencyGivenTokens | None = None
        self.joint_bits = 0
        self.error = ErrorRate()
        self.error_run = 0
        self.error_held = 0
        self.traffic = TrafficRate()
        self.traffic_run = 0  # signed: +n spikes / −n drops in a row
        self.wtracks: dict[str, _WTrack] = {m: _WTrack() for m in _SHIFT_TYPES}
        self.wlik: dict[str, LikelihoodDetector] = {}  # anomaly likelihood of window series
        self.last_window_end: float | None = None
        # cooldown/duration state, one dict per path: the event path and the window path
        # share nothing, so each path's output is a function of its own input sequence only
        # (their interleaving in the flow depends on wall-clock timing)
        self.bursts: dict[str, _Burst] = {}
        self.wbursts: dict[str, _Burst] = {}
        self.apply_settings(settings)

    # ------------------------------------------------------------------ snapshots

    def __getstate__(self) -> dict[str, Any]:
        # Learned state only: the settings come from the configuration. A resumed bank gets
        # apply_settings(current) (operators.detect), so a snapshot need not carry its own
        # copy of them (~3 KB of every key's ~7 KB).
        state = self.__dict__.copy()
        state.pop("settings", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.settings = _UNCONFIGURED

    # ------------------------------------------------------------------ settings

    def apply_settings(self, settings: DetectionSettings) -> None:
        """Change thresholds at runtime, keeping learned state where the structure allows."""
        s = settings
        self.settings = s
        on = s.metrics
        needed = set(METRICS) if s.event_shift else ({"latency"} | (set(_HST_FEATURES) if s.hst.enabled else set()))
        for m in METRICS:
            if getattr(on, m) and m in needed:
                if m in self.tracks:
                    self.tracks[m].configure(s)
                else:
                    self.tracks[m] = _Track(s, spike=(m == "latency"))
            else:
                self.tracks.pop(m, None)
        drift = dict(s.drift)
        self.drift_in = reconfigured(self.drift_in, TokenDrift, drift)
        self.drift_out = reconfigured(self.drift_out, TokenDrift, drift)
        j = s.joint
        if not j.enabled:
            self.joint = None
        else:
            self.joint = reconfigured(self.joint, LatencyGivenTokens, dict(j))
        h = s.hst
        if not h.enabled:
            self.hst = None
        else:
            self.hst = reconfigured(self.hst, HSTOutlier, dict(h))
        self.error.set_params(dict(s.error_rate))
        self.traffic.set_params(dict(s.traffic))
        for m, wt in self.wtracks.items():
            wt.configure(self._wshift_settings(m))
        wl = s.window_likelihood
        for m in ("latency", "requests"):
            if not (wl.enabled and getattr(wl, m)):
                self.wlik.pop(m, None)
                continue
            self.wlik[m] = reconfigured(self.wlik.get(m), LikelihoodDetector, dict(wl.detector))
        if self.hst is not None:
            self.hst.features = _HST_FEATURES

    # ------------------------------------------------------------------ helpers

    @property
    def last_event_time(self) -> float:
        """Event time of the latest event or window seen (``-inf`` before any)."""
        return self._last_t

    def _emit(
        self,
        out: list[AnomalyEvent],
        kind: AnomalyType,
        t: float,
        method: DetectionMethod,
        metric: str,
        observed: float,
        expected: float,
        threshold: float,
        score: float,
        details: dict[str, Any],
        window: tuple[float, float] | None = None,
    ) -> None:
        """Append the anomaly to ``out`` unless its cooldown holds it back (a higher severity passes)."""
        s = self.settings
        # the window path has its own cooldown state: no state is shared between the two paths
        bursts = self.wbursts if window is not None else self.bursts
        b = bursts.get(kind.value)
        if b is None or t - b.last_active > s.cooldown_s:
            b = _Burst(t)
            bursts[kind.value] = b
        b.last_active = max(b.last_active, t)
        ratio = abs(score) / threshold if threshold else 1.0
        sev = Severity.from_score(ratio)
        duration = max(0.0, t - b.since)
        if duration >= s.escalate_after_s:
            sev = sev.bump()
        if t - b.last_emit < s.cooldown_s and sev.rank <= b.rank:
            return
        b.last_emit = t
        b.rank = sev.rank
        details = {**details, "duration_s": round(duration, 3)}
        out.append(
            AnomalyEvent(
                timestamp=t,
                service=self.service,
                model=self.model,
                anomaly_type=kind,
                severity=sev,
                detection_method=method,
                metric=metric,
                observed=float(observed),
                expected=float(expected),
                threshold=float(threshold),
                score=float(score),
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                details=details,
            )
        )

    # ------------------------------------------------------------------ per event

    def on_event(self, ev: TelemetryEvent) -> list[AnomalyEvent]:
        """Score the event against every per-event detector, then learn from it."""
        s = self.settings
        if not s.enabled:
            return []
        t = ev.timestamp
        if t > self._last_t:
            self._last_t = t
        out: list[AnomalyEvent] = []
        if ev.is_error:  # per-event detectors watch successful calls only (errors: window error rate)
            return out
        tracks = self.tracks
        vals = _values(ev, tracks)
        zs: dict[str, float] = {}
        for m, x in vals.items():
            tr = tracks.get(m)
            if tr is not None:
                z = self._track_step(m, tr, x, t, out)
                if z is not None:
                    zs[m] = z
        if s.drift.enabled:
            self._drift_step(self.drift_in, T.INPUT_DRIFT, "input_tokens", ev.input_tokens, t, out)
            self._drift_step(self.drift_out, T.OUTPUT_DRIFT, "output_tokens", ev.output_tokens, t, out)
        if self.joint is not None and "latency" in vals:
            self._joint_step(vals["output_tokens"], vals["latency"], zs.get("latency"), t, out)
        if self.hst is not None:
            zl, zo, zt = zs.get("latency"), zs.get("output_tokens"), zs.get("output_tokens_per_s")
            if zl is not None and zo is not None and zt is not None:
                self._hst_step(zl, zo, zt, t, out)
        return out

    def _track_step(self, m: str, tr: _Track, x: float, t: float, out: list[AnomalyEvent]) -> float | None:
        s = self.settings
        z = tr.z.score_one(x)
        if z is None:
            tr.z.learn_one(x)
            if tr.alt is not None:
                tr.alt.learn_one(x)
            return None
        zthr = tr.z.threshold
        # point flag (gates learning; persistence makes it a spike)
        alt = tr.alt
        if isinstance(alt, LikelihoodDetector):
            # the likelihood score is undirected; a spike is a flagged point above the baseline
            a = alt.score_one(x)
            athr = alt.threshold
            flagged = a is not None and a >= athr and not alt.suppressed
            up = flagged and x > tr.z.mean
            alt.learn_one(x)  # always learns (its refractory period and range are part of its state)
            alt = None
            pscore, pthr, pmethod = (a if a is not None else 0.0), athr, DetectionMethod.LIKELIHOOD
        elif alt is not None:
            a = alt.score_one(x)
            athr = alt.threshold
            flagged = a is not None and abs(a) > athr
            up = a is not None and a > athr
            pscore, pthr, pmethod = (a if a is not None else 0.0), athr, DetectionMethod(s.spike.method)
        else:
            flagged = abs(z) > zthr
            up = z > zthr
            pscore, pthr, pmethod = z, zthr, DetectionMethod.ZSCORE
        if tr.spike and s.spike.enabled:
            tr.bits, hits = _k_of_n(tr.bits, up, s.spike.n)
            if up and hits >= s.spike.k:
                self._emit(
                    out,
                    T.LATENCY_SPIKE,
                    t,
                    pmethod,
                    _UNITS[m],
                    _natural(m, x),
                    _natural(m, tr.z.mean),
                    pthr,
                    pscore,
                    {
                        "consecutive": hits,
                        "window_n": s.spike.n,
                        "z": round(z, 3),
                        "bound": _natural(m, tr.z.mean + zthr * tr.z.sigma),
                        "point_method": s.spike.method,
                    },
                )
        # sustained shift (per event: only when configured; by default judged per window)
        if s.event_shift and self._shift_step(m, tr, x, z, t, out):
            return z  # held inside a sustained shift: not learned
        # a point outlier is not learned, but a long enough run of them is a new level
        if flagged:
            if tr.run == 0:
                tr.run_t0 = t
            tr.run += 1
            tr.run_sum += x
            if tr.run >= s.rebaseline_after and t - tr.run_t0 >= s.rebaseline_min_s:
                tr.z.rebaseline(tr.run_sum / tr.run)
                tr.run, tr.run_sum = 0, 0.0
            return z
        tr.run, tr.run_sum = 0, 0.0
        tr.z.learn_one(x)
        if alt is not None:
            alt.learn_one(x)
        return z

    def _shift_step(self, m: str, tr: _Track, x: float, z: float, t: float, out: list[AnomalyEvent]) -> bool:
        """Per-event shift chart and hold; True while the track holds (the event is not learned)."""
        s = self.settings
        up_t, dn_t = _SHIFT_TYPES[m]
        if isinstance(tr.shift, Cusum):
            hi, lo = tr.shift.step(z)
            alarm = 1 if hi > tr.shift.h else (-1 if lo > tr.shift.h else 0)
            sscore, sthr, smethod = (hi if alarm >= 0 else lo), tr.shift.h, DetectionMethod.CUSUM
        else:
            e = tr.shift.step(z)
            alarm = 1 if e > tr.shift.L else (-1 if e < -tr.shift.L else 0)
            sscore, sthr, smethod = abs(e), tr.shift.L, DetectionMethod.EWMA
        if alarm:
            kind = up_t if alarm > 0 else dn_t
            if kind is not None:
                self._emit(
                    out,
                    kind,
                    t,
                    smethod,
                    _UNITS[m],
                    _natural(m, x),
                    _natural(m, tr.z.mean),
                    sthr,
                    sscore,
                    {
                        "direction": "up" if alarm > 0 else "down",
                        "z": round(z, 3),
                        "held_events": tr.hold,
                        "shift_sigma": round(tr.hold_ez, 3) if tr.hold else None,
                    },
                )
            if tr.hold == 0 or tr.hold_dir != alarm:
                tr.hold, tr.hold_dir, tr.hold_sum, tr.hold_ez, tr.hold_t0 = 1, alarm, x, float(alarm), t
                return True
        if tr.hold:
            tr.hold += 1
            tr.hold_sum += x
            tr.hold_ez = 0.9 * tr.hold_ez + 0.1 * z
            if tr.hold_dir * tr.hold_ez < 0.25:
                tr.hold = 0  # back to normal: resume learning
                tr.hold_dir = 0
            elif tr.hold >= s.rebaseline_after and t - tr.hold_t0 >= s.rebaseline_min_s:
                tr.z.rebaseline(tr.hold_sum / tr.hold)
                tr.shift.reset()
                tr.hold = 0
                tr.hold_dir = 0
                return True
            else:
                return True
        return False

    def _drift_step(
        self, d: TokenDrift, kind: AnomalyType, metric: str, x: int, t: float, out: list[AnomalyEvent]
    ) -> None:
        ref = d.reference
        score = d.update(x)
        if score is None:
            return
        ds = self.settings.drift
        if score <= d.threshold:
            return
        if d.drifted_run < ds.consecutive and score < ds.strong * d.threshold:
            return  # one moderately drifted block is not yet a drift (a strong one is)
        exp_bin = max(range(len(ref)), key=ref.__getitem__)
        self._emit(
            out,
            kind,
            t,
            DetectionMethod.PSI if d.method == "psi" else DetectionMethod.KL,
            metric,
            float(x),
            float(2 ** max(exp_bin - 1, 0)),
            d.threshold,
            score,
            {
                "psi": round(d.last_psi or 0.0, 4),
                "kl": round(d.last_kl or 0.0, 4),
                "block_events": d.block_events,
                "consecutive": d.drifted_run,
                "reference_mode_bin": exp_bin,
            },
        )

    def _joint_step(self, x: float, y: float, zl: float | None, t: float, out: list[AnomalyEvent]) -> None:
        """Latency given output tokens: incongruent pairs, k of the last n → multivariate outlier."""
        j = self.joint
        assert j is not None
        js = self.settings.joint
        sc = j.score_one(x, y)
        flagged = False
        if sc is not None:
            zr, zx = sc
            flagged = (zl is None or abs(zl) < js.latency_z_max) and (
                (zr < -js.threshold and zx > js.x_min) or (zr > js.threshold and zx < -js.x_min)
            )
        self.joint_bits, hits = _k_of_n(self.joint_bits, flagged, js.n)
        if not flagged:
            j.learn_one(x, y)
            return
        if hits < js.k or sc is None:
            return
        zr, zx = sc
        self._emit(
            out,
            T.MULTIVARIATE_OUTLIER,
            t,
            DetectionMethod.REGRESSION,
            "latency_ms|output_tokens",
            math.exp(y),
            math.exp(j.predict(x)),
            js.threshold,
            zr,
            {
                "model": "log latency ~ log output tokens (EW regression)",
                "output_tokens": round(math.expm1(x)),
                "residual_z": round(zr, 3),
                "output_tokens_z": round(zx, 3),
                "latency_z": round(zl, 3) if zl is not None else None,
                "slope": round(j.slope, 3),
                "consecutive": hits,
                "window_n": js.n,
            },
        )

    def _hst_step(self, zl: float, zo: float, zt: float, t: float, out: list[AnomalyEvent]) -> None:
        h = self.hst
        assert h is not None
        u = h.scale((zl, zo, zt))
        score = h.score_u(u)
        hs = self.settings.hst
        flagged = False
        if score is not None:
            flagged = score > h.limit()
            h.calibrate(score)
        self.hst_bits, hits = _k_of_n(self.hst_bits, flagged, hs.n)
        if flagged and score is not None:
            if hits >= hs.k:
                limit = h.limit()
                self._emit(
                    out,
                    T.MULTIVARIATE_OUTLIER,
                    t,
                    DetectionMethod.HST,
                    "latency,output_tokens,output_tokens_per_s",
                    score,
                    limit,
                    limit,
                    score,
                    {
                        "consecutive": hits,
                        "window_n": hs.n,
                        "z": {
                            "latency": round(zl, 2),
                            "output_tokens": round(zo, 2),
                            "output_tokens_per_s": round(zt, 2),
                        },
                    },
                )
            return  # flagged points are not learned
        h.learn_u(u, calibrate=False)

    # ------------------------------------------------------------------ per window

    def on_window(self, ws: WindowStats) -> list[AnomalyEvent]:
        """Window-level detectors: error rate, traffic spike/drop (incl. empty gaps), throughput."""
        s = self.settings
        if not s.enabled:
            return []
        out: list[AnomalyEvent] = []
        length = ws.end - ws.start
        if length <= 0:
            length = s.window_s
        if ws.end > self._last_t:
            self._last_t = ws.end
        in_order = self.last_window_end is None or ws.start >= self.last_window_end - 1e-6
        if s.traffic.enabled and in_order:
            self._traffic_step(ws, length, out)
        if "requests" in self.wlik and in_order:
            self._likelihood_requests(ws, length, out)
        if in_order:
            self.last_window_end = ws.end
        if s.error_rate.enabled:
            self._error_step(ws, out)
        self._shifts_step(ws, out)
        if "latency" in self.wlik and ws.requests >= s.window_likelihood.min_requests and ws.latency_p50_ms > 0:
            self._likelihood_window(
                "latency", math.log(ws.latency_p50_ms), ws.end, (ws.start, ws.end), ws.requests, out
            )
        return out

    def _likelihood_requests(self, ws: WindowStats, length: float, out: list[AnomalyEvent]) -> None:
        """Window request counts (skipped windows after a gap count as 0) → traffic spike/drop."""
        if self.last_window_end is not None:
            gap = round((ws.start - self.last_window_end) / length)
            for i in range(min(max(gap, 0), 60)):
                t = self.last_window_end + (i + 1) * length
                self._likelihood_window("requests", 0.0, t, (t - length, t), 0, out)
        self._likelihood_window("requests", float(ws.requests), ws.end, (ws.start, ws.end), ws.requests, out)

    def _likelihood_window(
        self, m: str, y: float, t: float, win: tuple[float, float], requests: int, out: list[AnomalyEvent]
    ) -> None:
        """One window value through its :class:`LikelihoodDetector` (score before learn; always learns)."""
        det = self.wlik[m]
        score = det.score_one(y)
        quiet = det.suppressed
        base = det.mean
        det.learn_one(y)
        if score is None or quiet or score < det.threshold or y == base:
            return
        up = y > base
        if m == "latency":
            if not up or y - base < math.log(self.settings.window_likelihood.min_ratio):
                return  # a spike is upward and large (the effect-size gate of the latency mapping)
            kind, unit = T.LATENCY_SPIKE, "latency_p50_ms"
            observed, expected = math.exp(y), math.exp(base)
        else:
            kind, unit = (T.TRAFFIC_SPIKE if up else T.TRAFFIC_DROP), "requests"
            observed, expected = y, base
        self._emit(
            out,
            kind,
            t,
            DetectionMethod.LIKELIHOOD,
            unit,
            observed,
            expected,
            det.threshold,
            score,
            {
                "likelihood": round(score, 4),
                "ratio": round(observed / expected, 4) if expected > 0 else None,
                "requests": requests,
                "series": "log_latency_p50" if m == "latency" else "requests_per_window",
                "cooldown_windows": det.cooldown,
            },
            win,
        )

    def _traffic_step(self, ws: WindowStats, length: float, out: list[AnomalyEvent]) -> None:
        ts = self.settings.traffic
        tr = self.traffic
        if self.last_window_end is not None:
            gap = round((ws.start - self.last_window_end) / length)
            if gap >= 1:
                start = self.last_window_end
                v = tr.score_gap(ws.start, gap, length)
                if v is not None and v.direction < 0:
                    self.traffic_run = min(self.traffic_run, 0) - gap
                    if -self.traffic_run >= ts.consecutive or -v.z > 2 * tr.z_threshold:
                        self._traffic_emit(v, ws.start, (start, ws.start), gap, out)
                for i in range(min(gap, 60)):  # multi-window evidence, one empty window at a time
                    self._traffic_window(start + (i + 1) * length, 0, length, (start, ws.start), out)
        v = tr.evaluate(ws.end, ws.requests, length)
        if v is None or v.direction == 0:
            self.traffic_run = 0
        else:
            if v.direction > 0:
                self.traffic_run = max(self.traffic_run, 0) + 1
            else:
                self.traffic_run = min(self.traffic_run, 0) - 1
            run = abs(self.traffic_run)
            if run >= ts.consecutive or abs(v.z) > 2 * tr.z_threshold:
                self._traffic_emit(v, ws.end, (ws.start, ws.end), 1, out)
            if run >= ts.rebaseline_after:
                tr.rebaseline(ws.end, ws.requests, length)
                self.traffic_run = 0
                return
        self._traffic_window(ws.end, ws.requests, length, (ws.start, ws.end), out, v)

    def _traffic_window(
        self,
        t: float,
        count: int,
        length: float,
        window: tuple[float, float],
        out: list[AnomalyEvent],
        v: Any = None,
    ) -> None:
        """CUSUM evidence of one window (``count`` may be 0 for a skipped window), then learn or hold."""
        tr = self.traffic
        if v is None:
            v = tr.evaluate(t, count, length)
        if v is None:
            tr.learn_one(t, count, length)
            return
        alarm = tr.accumulate(v)
        if alarm:
            self._emit(
                out,
                T.TRAFFIC_SPIKE if alarm > 0 else T.TRAFFIC_DROP,
                t,
                DetectionMethod.CUSUM,
                "requests",
                v.observed,
                v.expected,
                tr.cusum_h,
                tr.hi if alarm > 0 else -tr.lo,
                {
                    "p_value": v.p,
                    "ratio": round(v.ratio, 4),
                    "smoothed_ratio": round(math.exp(tr.fast), 4),
                    "z": round(v.z, 3),
                    "test": "poisson_cusum",
                    "held_windows": tr.held,
                },
                window,
            )
        if tr.should_learn(v):
            tr.held = 0
            tr.learn_one(t, count, length)
        else:
            tr.held += 1
            if tr.held >= self.settings.traffic.rebaseline_after:
                tr.rebaseline(t, count, length)  # a sustained genuine change becomes the new normal

    def _traffic_emit(
        self, v: Any, t: float, window: tuple[float, float], windows: int, out: list[AnomalyEvent]
    ) -> None:
        self._emit(
            out,
            T.TRAFFIC_SPIKE if v.direction > 0 else T.TRAFFIC_DROP,
            t,
            DetectionMethod.POISSON,
            "requests",
            v.observed,
            v.expected,
            self.traffic.z_threshold,
            v.z,
            {
                "p_value": v.p,
                "ratio": round(v.ratio, 4),
                "consecutive": abs(self.traffic_run),
                "window_n": windows,
                "empty_windows": windows if v.observed == 0 and windows > 1 else 0,
            },
            window,
        )

    def _error_step(self, ws: WindowStats, out: list[AnomalyEvent]) -> None:
        er = self.error
        es = self.settings.error_rate
        score = er.score_one(ws.errors, ws.requests)
        single = score is not None and er.is_anomaly(ws.errors, ws.requests, score)
        cusum = er.step(ws.errors, ws.requests)
        multi = cusum is not None and er.cusum_alarm()
        if single or multi:
            self.error_run += 1
            if single and score is not None:
                observed, sc, thr = ws.error_rate, score, er.threshold
                details: dict[str, Any] = {
                    "errors": ws.errors,
                    "requests": ws.requests,
                    "p_value": 10.0**-score,
                    "test": "binomial_tail",
                }
            else:
                observed, sc, thr = er.run_errors / max(er.run_requests, 1), er.cusum, er.cusum_h
                details = {
                    "errors": er.run_errors,
                    "requests": er.run_requests,
                    "alternative_rate": round(er.alternative_rate(), 5),
                    "test": "bernoulli_cusum",
                }
            details["consecutive"] = self.error_run
            self._emit(
                out,
                T.ERROR_RATE_SPIKE,
                ws.end,
                DetectionMethod.BINOMIAL,
                "error_rate",
                observed,
                er.baseline_rate(),
                thr,
                sc,
                details,
                (ws.start, ws.end),
            )
            if self.error_run < es.rebaseline_after:
                return
            er.cusum = 0.0  # a sustained genuine change becomes the new normal
        else:
            self.error_run = 0
            if cusum is not None and cusum > er.cusum_h / 3.0:
                self.error_held += 1
                if self.error_held < es.rebaseline_after:
                    return  # evidence is building up: do not learn it as normal
                er.cusum = 0.0
        self.error_held = 0
        er.learn_one(ws.errors, ws.requests)

    def _wshift_settings(self, m: str) -> WindowShiftSettings:
        s = self.settings
        if m == "latency":
            return s.latency_shift
        if m == "cost":
            return s.cost_shift
        if m == "output_tokens_per_s":
            return s.throughput.window_shift
        return s.token_shift

    def _shifts_step(self, ws: WindowStats, out: list[AnomalyEvent]) -> None:
        """Latency p50, throughput, tokens and cost per request of the window vs their baselines."""
        ok = ws.requests - ws.errors
        win = (ws.start, ws.end)
        for m, (up_t, dn_t) in _SHIFT_TYPES.items():
            c = self._wshift_settings(m)
            if not c.enabled:
                continue
            if m == "latency":
                n, v = ws.requests, ws.latency_p50_ms
            elif m == "output_tokens_per_s":
                n, v = ok, ws.output_tokens_per_s
            elif m == "input_tokens":
                n, v = ok, ws.input_tokens / ok if ok > 0 else 0.0
            elif m == "output_tokens":
                n, v = ok, ws.output_tokens / ok if ok > 0 else 0.0
            else:
                n, v = ok, ws.cost_usd / ok if ok > 0 else 0.0
            if n < c.min_requests or v <= 0:
                continue
            self._shift_window(m, c, math.log(v), n, v, up_t, dn_t, ws.end, win, ws.requests, out)

    def _shift_window(
        self,
        m: str,
        c: WindowShiftSettings,
        y: float,
        n: int,
        v: float,
        up_t: AnomalyType | None,
        dn_t: AnomalyType | None,
        t: float,
        win: tuple[float, float],
        requests: int,
        out: list[AnomalyEvent],
    ) -> None:
        wt = self.wtracks[m]
        d = wt.det
        z = d.step(y, n)
        if z is None:
            d.learn_one(y, n)
            return
        ratio = math.exp(y - d.mean)
        fast = math.exp(d.fast)
        direction = 0
        if d.hi > c.h and fast >= c.up_ratio and up_t is not None:
            direction = 1
        elif d.lo > c.h and fast <= c.down_ratio and dn_t is not None:
            direction = -1
        if direction == 0:
            wt.run = 0
            if abs(z) < 3.0 and d.hi <= c.h and d.lo <= c.h:
                d.learn_one(y, n)  # windows far out, or inside a CUSUM alarm, are not learned
            return
        wt.run = (max(wt.run, 0) + 1) if direction > 0 else (min(wt.run, 0) - 1)
        run = abs(wt.run)
        expected = math.exp(d.mean)
        kinds: list[AnomalyType] = []
        if run >= c.consecutive:
            kind = up_t if direction > 0 else dn_t
            assert kind is not None
            kinds.append(kind)
        if m == "latency" and direction > 0 and fast >= c.spike_ratio:
            kinds.append(T.LATENCY_SPIKE)  # a large abrupt jump is a spike from its first window
        for kind in kinds:
            self._emit(
                out,
                kind,
                t,
                DetectionMethod.CUSUM,
                _WINDOW_UNITS[m],
                v,
                expected,
                c.h,
                d.hi if direction > 0 else -d.lo,
                {
                    "ratio": round(ratio, 4),
                    "smoothed_ratio": round(fast, 4),
                    "z": round(z, 3),
                    "consecutive": run,
                    "window_n": c.consecutive,
                    "requests": requests,
                    "sd_log": round(d.sd(n), 4),
                },
                win,
            )
        if run >= c.rebaseline_after:
            d.rebaseline(y)
            wt.run = 0

    # ------------------------------------------------------------------ introspection

    def baselines(self) -> dict[str, Any]:
        """A JSON-able snapshot of the learned baselines (natural units where meaningful)."""
        metrics: dict[str, Any] = {}
        for m, tr in self.tracks.items():
            z = tr.z
            metrics[m] = {
                "n": z.n,
                "ready": z.ready,
                "expected": _natural(m, z.mean) if z.n else None,
                "log_mean": z.mean,
                "log_sigma": z.sigma if z.n > 1 else None,
                "upper_bound": _natural(m, z.mean + z.threshold * z.sigma) if z.ready else None,
                "holding": tr.hold_dir if tr.hold else 0,
            }
        tr_rate = self.traffic.expected_rate(self._last_t, self.settings.window_s) if self._last_t > 0 else None
        return {
            "service": self.service,
            "model": self.model,
            "last_event_time": self._last_t if math.isfinite(self._last_t) else None,
            "metrics": metrics,
            "error_rate": {"baseline": self.error.baseline_rate(), "windows": self.error.n},
            "traffic": {
                "expected_rate_per_s": tr_rate,
                "log_dispersion": self.traffic.disp,
                "windows": self.traffic.n,
                "profile_bins_filled": sum(p is not None for p in self.traffic.profile),
            },
            "window_shifts": {
                m: {"expected": math.exp(wt.det.mean) if wt.det.ready else None, "windows": wt.det.n}
                for m, wt in self.wtracks.items()
            },
            "drift": {
                "input": {"ready": self.drift_in.ready, "last_psi": self.drift_in.last_psi},
                "output": {"ready": self.drift_out.ready, "last_psi": self.drift_out.last_psi},
            },
            "hst": {"n": self.hst.n if self.hst is not None else 0},
        }
