"""The NAB scorer against hand-computed cases, the null detector (0) and a perfect detector (100)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from sentinel.eval.nab import (
    Profile,
    corpus_score,
    normalise,
    optimise_threshold,
    probation_length,
    scaled_sigmoid,
    score_at_threshold,
    sweep,
)

STD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
T0 = datetime(2020, 1, 1)


def _ts(n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=5 * i) for i in range(n)]


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(5.0) == -1.0


def test_probation_length() -> None:
    assert probation_length(100) == 15
    assert probation_length(6000) == 750.0


def test_hand_computed_file() -> None:
    # 100 rows, probation 15, one window over rows 50..59 (width 10)
    ts = _ts(100)
    win = [(ts[50], ts[59])]
    scores = [0.0] * 100
    scores[52] = 1.0  # TP: position −(59−52+1)/10 = −0.8
    scores[70] = 1.0  # FP after the window: |59−70|/(10−1) = 1.222…
    scores[10] = 1.0  # in probation: ignored
    rows = sweep(ts, scores, win, STD, "f")
    assert len(rows) == 85
    tp = scaled_sigmoid(-0.8) / scaled_sigmoid(-1.0)
    fp = 0.11 * scaled_sigmoid(11 / 9)
    assert score_at_threshold(rows, 0.5, STD) == pytest.approx(tp + fp)
    # only the earliest detection in a window counts
    scores[55] = 1.0
    assert score_at_threshold(sweep(ts, scores, win, STD, "f"), 0.5, STD) == pytest.approx(tp + fp)


def test_fp_before_any_window_costs_full_weight_and_missed_window_costs_fn() -> None:
    ts = _ts(100)
    win = [(ts[80], ts[89])]
    scores = [0.0] * 100
    scores[30] = 1.0
    rows = sweep(ts, scores, win, STD, "f")
    assert score_at_threshold(rows, 0.5, STD) == pytest.approx(-0.11 - 1.0)


def test_threshold_optimisation_is_exact() -> None:
    ts = _ts(100)
    win = [(ts[50], ts[59])]
    scores = [0.0] * 100
    scores[50] = 0.9  # TP at the left edge
    scores[20] = 0.8  # FP
    rows = sweep(ts, scores, win, STD, "f")
    thr, raw = optimise_threshold(rows, STD)
    assert thr == 0.9
    assert raw == pytest.approx(1.0)


def test_null_scores_zero_and_perfect_scores_hundred() -> None:
    files, windows = {}, {}
    for k in range(3):
        ts = _ts(400)
        name = f"f{k}"
        windows[name] = [(ts[100 + 50 * k], ts[140 + 50 * k])]
        files[name] = (ts, [0.0] * 400)
    null = corpus_score(files, windows, STD)
    assert null["score"] == pytest.approx(0.0)
    perfect_files = {}
    for name, (ts, _) in files.items():
        s = [0.0] * 400
        s[ts.index(windows[name][0][0])] = 1.0
        perfect_files[name] = (ts, s)
    for prof in (STD, Profile("low_fp", 1.0, 0.22, 1.0), Profile("low_fn", 1.0, 0.11, 2.0)):
        assert corpus_score(perfect_files, windows, prof)["score"] == pytest.approx(100.0)


def test_normalise() -> None:
    assert normalise(0.0, -2.0, 2.0) == 50.0
