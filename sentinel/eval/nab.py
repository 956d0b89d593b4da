"""The Numenta Anomaly Benchmark scoring method, re-implemented (NAB v1.1 semantics).

Per data file, every row gets a *sweep score* (``nab/sweeper.py``):

* inside a labelled window ``[left, right]`` (width ``w`` rows), row ``i`` scores
  ``tp·σs(−(right − i + 1)/w) / σs(−1)`` — detecting at the window's left edge is
  worth ``tp``, at its right edge ~0 (σs is the scaled sigmoid ``2/(1+e^{5x}) − 1``);
* outside any window, ``fp·σs(|i − r_prev|/(w_prev − 1))`` relative to the
  preceding window (``fp·σs(3) = −fp`` when there is none): a false positive
  just after a window costs little, one far away costs ``fp``.

Rows in the probationary period — the first ``min(⌊0.15·n⌋, 750)`` rows — are not
scored. At a threshold ``θ``, rows with anomaly score ``≥ θ`` are detections; a
window counts its best (earliest) detection, or ``−fn`` when it has none; false
positives add up. The threshold is optimised per profile over the whole corpus
(as NAB's optimiser does), and the total is normalised:

    100 · (raw − null) / (perfect − null)

with ``null = −fn · (windows that have scorable rows)`` (the null detector never
detects) and ``perfect = tp · (all windows)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "NabRow",
    "Profile",
    "corpus_score",
    "load_profiles",
    "load_windows",
    "normalise",
    "optimise_threshold",
    "parse_ts",
    "probation_length",
    "scaled_sigmoid",
    "score_at_threshold",
    "sweep",
]

PROBATION_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB cost matrix."""

    name: str
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True, slots=True)
class NabRow:
    """One scorable row: the detector's score, its sweep score and its window (``None`` outside)."""

    score: float
    sweep: float
    window: str | None


def scaled_sigmoid(x: float) -> float:
    """NAB's scaled sigmoid: ``2·sigmoid(−5x) − 1``, and ``−1`` from ``x ≥ 3``.

    >>> round(scaled_sigmoid(-1.0), 5)
    0.98661
    >>> scaled_sigmoid(0.0)
    0.0
    >>> scaled_sigmoid(3.0)
    -1.0
    """
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> float:
    """Rows at the start of a file that are not scored: ``min(⌊p·n⌋, p·5000)``.

    >>> probation_length(1000), probation_length(10000)
    (150, 750.0)
    """
    return min(math.floor(percent * n), percent * 5000)


def parse_ts(s: str) -> datetime:
    return datetime.fromisoformat(s.strip())


def load_windows(path: str | Path) -> dict[str, list[tuple[datetime, datetime]]]:
    raw: dict[str, list[list[str]]] = json.loads(Path(path).read_text())
    return {k: [(parse_ts(a), parse_ts(b)) for a, b in v] for k, v in raw.items()}


def load_profiles(path: str | Path) -> dict[str, Profile]:
    raw: dict[str, Any] = json.loads(Path(path).read_text())
    return {
        name: Profile(
            name,
            float(p["CostMatrix"]["tpWeight"]),
            float(p["CostMatrix"]["fpWeight"]),
            float(p["CostMatrix"]["fnWeight"]),
        )
        for name, p in raw.items()
    }


def sweep(
    timestamps: Sequence[datetime],
    scores: Sequence[float],
    windows: Iterable[tuple[datetime, datetime]],
    profile: Profile,
    name: str = "",
) -> list[NabRow]:
    """Sweep scores of every scorable row of one file (probationary rows are dropped)."""
    if len(timestamps) != len(scores):
        raise ValueError("timestamps and scores differ in length")
    index = {t: i for i, t in enumerate(timestamps)}
    spans = sorted((index[a], index[b]) for a, b in windows)
    inside: dict[int, tuple[int, int]] = {}
    for left, right in spans:
        for i in range(left, right + 1):
            inside[i] = (left, right)
    max_tp = scaled_sigmoid(-1.0)
    probation = probation_length(len(timestamps))
    prev_right: int | None = None
    prev_width = 0.0
    rows: list[NabRow] = []
    for i, s in enumerate(scores):
        span = inside.get(i)
        if span is not None:
            left, right = span
            width = float(right - left + 1)
            w_sweep = scaled_sigmoid(-(right - i + 1) / width) * profile.tp / max_tp
            window: str | None = f"{name}|{left}"
        else:
            pos = 3.0 if prev_right is None else abs(prev_right - i) / (prev_width - 1.0)
            w_sweep = scaled_sigmoid(pos) * profile.fp
            window = None
        if i >= probation:
            rows.append(NabRow(float(s), w_sweep, window))
        if span is not None and i == span[1]:
            prev_right = i
            prev_width = float(span[1] - span[0] + 1)
    return rows


def _curve(rows: list[NabRow], profile: Profile) -> list[tuple[float, float]]:
    """``(threshold, raw score)`` for every distinct threshold (detections = score ≥ threshold)."""
    ordered = sorted(rows, key=lambda r: r.score, reverse=True)
    parts: dict[str, float] = {r.window: -profile.fn for r in ordered if r.window is not None}
    fp = 0.0
    total_windows = sum(parts.values())
    best_in: dict[str, float] = {}
    out: list[tuple[float, float]] = [(math.inf, total_windows)]
    cur = math.inf
    win_sum = total_windows
    for r in ordered:
        if r.score != cur and cur != math.inf:
            out.append((cur, fp + win_sum))
        cur = r.score
        if r.window is None:
            fp += r.sweep
        else:
            old = best_in.get(r.window, -profile.fn)
            new = max(old, r.sweep)
            best_in[r.window] = new
            win_sum += new - old
    if ordered:
        out.append((cur, fp + win_sum))
    return out


def optimise_threshold(rows: list[NabRow], profile: Profile) -> tuple[float, float]:
    """The threshold maximising the corpus raw score, and that score."""
    best = max(_curve(rows, profile), key=lambda ts: (ts[1], ts[0]))
    return best


def score_at_threshold(rows: list[NabRow], threshold: float, profile: Profile) -> float:
    """Raw NAB score of one file's (or a corpus') rows at a threshold."""
    parts: dict[str, float] = {}
    fp = 0.0
    for r in rows:
        if r.window is not None:
            parts.setdefault(r.window, -profile.fn)
            if r.score >= threshold:
                parts[r.window] = max(parts[r.window], r.sweep)
        elif r.score >= threshold:
            fp += r.sweep
    return fp + sum(parts.values())


def normalise(raw: float, null: float, perfect: float) -> float:
    """``100·(raw − null)/(perfect − null)``.

    >>> normalise(-3.0, -3.0, 3.0), normalise(3.0, -3.0, 3.0)
    (0.0, 100.0)
    """
    return 100.0 * (raw - null) / (perfect - null)


def corpus_score(
    files: dict[str, tuple[Sequence[datetime], Sequence[float]]],
    windows: dict[str, list[tuple[datetime, datetime]]],
    profile: Profile,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Score a whole corpus under one profile (threshold optimised unless given)."""
    all_rows: list[NabRow] = []
    per_file: dict[str, list[NabRow]] = {}
    for name, (ts, sc) in files.items():
        rows = sweep(ts, sc, windows.get(name, []), profile, name)
        per_file[name] = rows
        all_rows.extend(rows)
    if threshold is None:
        threshold, _ = optimise_threshold(all_rows, profile)
    raw = sum(score_at_threshold(rows, threshold, profile) for rows in per_file.values())
    scorable = len({r.window for r in all_rows if r.window is not None})
    n_windows = sum(len(windows.get(name, [])) for name in files)
    null = -profile.fn * scorable
    perfect = profile.tp * n_windows
    return {
        "profile": profile.name,
        "threshold": threshold,
        "raw": raw,
        "null": null,
        "perfect": perfect,
        "score": normalise(raw, null, perfect),
        "windows": n_windows,
    }
