"""NAB v1.1 benchmark of the univariate detectors, scored with :mod:`sentinel.eval.nab`.

Usage: ``.venv/bin/python benchmarks/nab.py [--data ../shared/data/nab]`` —
writes ``benchmarks/results/nab.json``.

Each series is fed value by value (score before learn) to the per-metric part of
the bank: a robust z-score baseline, the point detector with k-of-n persistence
and a two-sided CUSUM on the clipped z, with the bank's hold/re-baseline rules
and a cooldown (in rows). A row where the ensemble alarms gets a score from its
score/threshold ratio (like the bank's severity), other rows 0; NAB's own
corpus-level threshold optimisation then picks which strengths count. The
individual detectors are run the same way on their own for comparison.

**Headline**: the anomaly-likelihood detector
(:class:`~sentinel.detect.likelihood.LikelihoodDetector`) exactly as the bank's
window path configures it — built from the same settings object,
``DetectionSettings().window_likelihood.detector`` (its NAB defaults, tuned
globally on NAB, never per file). NAB series are aggregated metrics (5-minute CPU,
request counts), the counterpart of the bank's per-window series (log latency p50,
request count). A row scores ``score_one(x)`` unless the detector is in its
refractory period after an alarm (then 0; ``None`` during warm-up is 0 too) —
the bank's alarm rule. It is reported both at NAB's corpus-optimised threshold and
at the fixed threshold the bank alarms on (``detector.threshold``), per profile and
per data category, with its cost per update (µs) and pickled size. What NAB does
*not* measure: the bank maps an alarm to a type by direction (latency p50: upward
alarms only → ``latency_spike``; requests: up/down → traffic spike/drop) and
de-duplicates per type with ``cooldown_s``; on latency it also reports only
alarms with p50 ≥ ``window_likelihood.min_ratio`` × the detector's baseline (a
*spike*: an effect-size gate of the mapping, chosen on the labelled data). The rows
"upward alarms only" and "bank's latency_spike mapping" show what those mappings
would score on NAB's (two-sided, mostly non-latency) labels — the ratio gate on raw
values, where it is meaningful only for positive series. The
bank's log transform is the metric adapter's, not the detector's: NAB values are
fed raw (some are ≤ 0).

NAB data are not log-scaled (temperatures, CPU %, counts): the adapter uses the
raw values. Global settings of the adapter (``NAB_SETTINGS``) were tuned on NAB
as a whole — never per file — which is the same freedom every published
detector had (NAB optimises each detector's threshold over the corpus).
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentinel.detect.cusum import Cusum
from sentinel.detect.iqr import IQRFence
from sentinel.detect.likelihood import LikelihoodDetector, LikelihoodSettings
from sentinel.detect.mad import MAD
from sentinel.detect.settings import DetectionSettings
from sentinel.detect.zscore import RobustZScore
from sentinel.eval.nab import corpus_score, load_profiles, load_windows, parse_ts, score_at_threshold, sweep

PUBLISHED = {
    "windowed Gaussian": 39.6,
    "Random Cut Forest": 51.7,
    "KNN CAD": 58.0,
    "CAD OSE": 69.9,
    "Numenta HTM": 70.1,
    "ARTime": 74.9,
}

NAB_SETTINGS: dict[str, Any] = {
    "alpha": 0.005,
    "z_threshold": 5.0,
    "huber_c": 2.5,
    "warmup": 30,
    "spike_k": 1,
    "spike_n": 1,
    "cusum_k": 0.5,
    "cusum_h": 5.0,
    "cooldown_rows": 400,
    "hold_exit": 0.25,
    "rebaseline_after": 150,
}


def _strength(ratio: float) -> float:
    return 0.5 + 0.5 * min(1.0, max(0.0, (ratio - 1.0) / 2.0))


class Ensemble:
    """The bank's per-metric logic on one raw series, returning a NAB score per row."""

    def __init__(self, cfg: dict[str, Any], use: tuple[str, ...] = ("zscore", "cusum")) -> None:
        self.cfg = cfg
        self.use = use
        self.z = RobustZScore(
            alpha=cfg["alpha"],
            threshold=cfg["z_threshold"],
            huber_c=cfg["huber_c"],
            warmup=cfg["warmup"],
            min_sigma=1e-6,
        )
        self.cusum = Cusum(k=cfg["cusum_k"], h=cfg["cusum_h"])
        self.point: IQRFence | MAD | None = None
        if "iqr" in use:
            self.point = IQRFence(warmup=cfg["warmup"])
        elif "mad" in use:
            self.point = MAD(warmup=cfg["warmup"])
        self.bits = 0
        self.hold = 0
        self.hold_dir = 0
        self.hold_sum = 0.0
        self.hold_ez = 0.0
        self.last_alarm = -(10**9)
        self.i = 0

    def step(self, x: float) -> float:
        c = self.cfg
        self.i += 1
        z = self.z.score_one(x)
        if z is None:
            self.z.learn_one(x)
            if self.point is not None:
                self.point.learn_one(x)
            return 0.0
        ratio = 0.0
        if self.point is not None:
            p = self.point.score_one(x)
            thr = float(getattr(self.point, "k", 0.0) or getattr(self.point, "threshold", 1.0))
            flagged = p is not None and abs(p) > thr
            pr = abs(p) / thr if p is not None else 0.0
        else:
            flagged = abs(z) > self.z.threshold
            pr = abs(z) / self.z.threshold
        mask = (1 << c["spike_n"]) - 1
        self.bits = ((self.bits << 1) | int(flagged)) & mask
        if ("zscore" in self.use or self.point is not None) and flagged and self.bits.bit_count() >= c["spike_k"]:
            ratio = max(ratio, pr)
        alarm = 0
        if "cusum" in self.use:
            hi, lo = self.cusum.step(z)
            alarm = 1 if hi > self.cusum.h else (-1 if lo > self.cusum.h else 0)
            if alarm:
                ratio = max(ratio, max(hi, lo) / self.cusum.h)
        # learning (the bank's rules)
        if alarm and (self.hold == 0 or self.hold_dir != alarm):
            self.hold, self.hold_dir, self.hold_sum, self.hold_ez = 1, alarm, x, float(alarm)
        elif self.hold:
            self.hold += 1
            self.hold_sum += x
            self.hold_ez = 0.9 * self.hold_ez + 0.1 * z
            if self.hold_dir * self.hold_ez < c["hold_exit"]:
                self.hold = 0
            elif self.hold >= c["rebaseline_after"]:
                self.z.rebaseline(self.hold_sum / self.hold)
                self.cusum.reset()
                self.hold = 0
        elif not flagged:
            self.z.learn_one(x)
            if self.point is not None:
                self.point.learn_one(x)
        if ratio <= 0.0:
            return 0.0
        if self.i - self.last_alarm < c["cooldown_rows"]:
            return 0.0
        self.last_alarm = self.i
        return _strength(ratio)


def read_series(path: Path) -> tuple[list[datetime], list[float]]:
    ts: list[datetime] = []
    vals: list[float] = []
    with path.open() as f:
        for row in csv.DictReader(f):
            ts.append(parse_ts(row["timestamp"]))
            vals.append(float(row["value"]))
    return ts, vals


VARIANTS: dict[str, Callable[[dict[str, Any]], Ensemble]] = {
    "ensemble (zscore+cusum, as in the bank)": lambda c: Ensemble(c, ("zscore", "cusum")),
    "robust zscore only": lambda c: Ensemble(c, ("zscore",)),
    "cusum only": lambda c: Ensemble(c, ("cusum",)),
    "iqr only": lambda c: Ensemble(c, ("iqr",)),
    "mad only": lambda c: Ensemble(c, ("mad",)),
}


Files = dict[str, tuple[Sequence[datetime], Sequence[float]]]
HEADLINE = "likelihood, as the bank's window path (headline)"
LIKELIHOOD_UP = "  same, upward alarms only"
LIKELIHOOD_GATED = "  same, bank's latency_spike mapping (up, ratio gate)"
LIKELIHOOD_EVENT = "likelihood, per-event setting (range_tolerance=0.2)"
PER_EVENT: dict[str, Any] = {"range_tolerance": 0.2}


def bank_window_settings() -> LikelihoodSettings:
    """The settings object the bank's window path builds its detectors from (default config)."""
    return DetectionSettings().window_likelihood.detector


def likelihood_scores(job: tuple[list[float], dict[str, Any], bool, float | None]) -> list[float]:
    """NAB scores of one file from a fresh :class:`LikelihoodDetector` (score before learn).

    ``up_only``: alarms at or below the detector's baseline score 0; ``min_ratio``:
    alarms below ``min_ratio`` × a positive baseline score 0 too (the bank's latency
    gate, applied here to raw values).
    """
    vals, kw, up_only, min_ratio = job
    det = LikelihoodDetector(**kw)
    out: list[float] = []
    for v in vals:
        s = det.score_one(v)
        quiet = det.suppressed
        base = det.mean
        det.learn_one(v)
        gated = (up_only and v <= base) or (min_ratio is not None and not (base > 0 and v >= min_ratio * base))
        out.append(0.0 if s is None or quiet or gated else s)
    return out


def likelihood_cost(n: int = 200_000) -> dict[str, float]:
    """µs per score_one + learn_one on a log-normal latency-like stream, and pickled size."""
    rng = random.Random(0)
    xs = [rng.gauss(0.0, 0.6) + (2.0 if rng.random() < 0.001 else 0.0) for _ in range(n)]
    det = LikelihoodDetector.from_params(dict(bank_window_settings()))
    t0 = time.perf_counter()
    for x in xs:
        det.score_one(x)
        det.learn_one(x)
    t1 = time.perf_counter()
    for x in xs[:50_000]:
        det.learn_one(x)
    t2 = time.perf_counter()
    return {
        "us_per_score_and_learn": round(1e6 * (t1 - t0) / n, 2),
        "us_per_learn": round(1e6 * (t2 - t1) / 50_000, 2),
        "pickled_bytes": len(pickle.dumps(det)),
        "updates": n + 50_000,
    }


def run_likelihood(
    series: dict[str, tuple[list[datetime], list[float]]],
    windows: dict[str, list[tuple[datetime, datetime]]],
    profiles: dict[str, Any],
    workers: int,
    kw: dict[str, Any],
    up_only: bool = False,
    min_ratio: float | None = None,
) -> dict[str, Any]:
    names = sorted(series)
    with Pool(workers) as pool:
        scores = pool.map(likelihood_scores, [(series[n][1], kw, up_only, min_ratio) for n in names])
    files: Files = {n: (series[n][0], sc) for n, sc in zip(names, scores, strict=True)}
    threshold = LikelihoodDetector(**kw).threshold
    res: dict[str, Any] = {}
    for pname, prof in profiles.items():
        r = corpus_score(files, windows, prof)
        fixed = corpus_score(files, windows, prof, threshold=threshold)
        r["score_at_fixed_threshold"] = fixed["score"]
        r["fixed_threshold"] = threshold
        res[pname] = r
    cats: dict[str, Any] = {}
    for cat in sorted({n.split("/")[0] for n in names}):
        sub: Files = {n: f for n, f in files.items() if n.startswith(cat + "/")}
        if not any(windows.get(n) for n in sub):  # no windows: report the raw (FP) cost instead
            cats[cat] = {
                pname + "_raw": round(
                    sum(score_at_threshold(sweep(ts, sc, [], prof, n), threshold, prof) for n, (ts, sc) in sub.items()),
                    2,
                )
                for pname, prof in profiles.items()
            }
            continue
        cats[cat] = {
            pname: round(corpus_score(sub, windows, prof, threshold=threshold)["score"], 1)
            for pname, prof in profiles.items()
        }
    res["per_category_at_fixed_threshold"] = cats
    return res


def run(data: Path, cfg: dict[str, Any], workers: int = 2) -> dict[str, Any]:
    windows = load_windows(data / "labels" / "combined_windows.json")
    profiles = load_profiles(data / "config" / "profiles.json")
    series = {name: read_series(data / "data" / name) for name in sorted(windows)}
    results: dict[str, Any] = {}
    for variant, make in VARIANTS.items():
        files: Files = {}
        for name, (ts, vals) in series.items():
            det = make(cfg)
            files[name] = (ts, [det.step(v) for v in vals])
        results[variant] = {}
        for pname, prof in profiles.items():
            r = corpus_score(files, windows, prof)
            if r["threshold"] == float("inf"):
                r["threshold"] = None
            results[variant][pname] = r
    bank = bank_window_settings().model_dump()
    headline = {HEADLINE: run_likelihood(series, windows, profiles, workers, bank)}
    headline[LIKELIHOOD_UP] = run_likelihood(series, windows, profiles, workers, bank, up_only=True)
    gate = DetectionSettings().window_likelihood.min_ratio
    headline[LIKELIHOOD_GATED] = run_likelihood(series, windows, profiles, workers, bank, True, gate)
    per_event = {**LikelihoodSettings().model_dump(), **PER_EVENT}
    results[LIKELIHOOD_EVENT] = run_likelihood(series, windows, profiles, workers, per_event)
    return {**headline, **results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "nab")
    ap.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "nab.json")
    ap.add_argument("--workers", type=int, default=2, help="processes for the likelihood detector")
    ap.add_argument("--set", action="append", default=[], help="override a setting, e.g. --set cusum_h=8")
    args = ap.parse_args(argv)
    cfg = dict(NAB_SETTINGS)
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = type(NAB_SETTINGS[k])(v)
    t0 = time.perf_counter()
    results = run(args.data, cfg, args.workers)
    elapsed = time.perf_counter() - t0
    published = json.loads((args.data / "results_final_results.json").read_text())
    profs = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    print(f"{'detector':52s} {'standard':>9s} {'low_FP':>9s} {'low_FN':>9s}")
    for variant, res in results.items():
        print(f"{variant:52s} " + " ".join(f"{res[p]['score']:9.1f}" for p in profs))
        if "score_at_fixed_threshold" in res["standard"]:
            fixed = " ".join(f"{res[p]['score_at_fixed_threshold']:9.1f}" for p in profs)
            print(f"{'    at the fixed threshold ' + str(res['standard']['fixed_threshold']):52s} {fixed}")
    lk = results[HEADLINE]
    for name, std in PUBLISHED.items():
        print(f"{'(published) ' + name:52s} {std:9.1f}")
    print("headline per category (fixed threshold):")
    for cat, sc in lk["per_category_at_fixed_threshold"].items():
        print(f"  {cat:50s} " + " ".join(f"{v:9.1f}" for v in sc.values()))
    cost = likelihood_cost()
    print(f"likelihood cost: {cost}")
    print(f"elapsed {elapsed:.1f}s")
    out = {
        "settings": cfg,
        "elapsed_s": round(elapsed, 2),
        "headline": HEADLINE,
        "headline_settings_source": "DetectionSettings().window_likelihood.detector",
        "likelihood_settings": bank_window_settings().model_dump(),
        "likelihood_cost": cost,
        "results": results,
        "published_standard": PUBLISHED,
        "published_all": published,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
