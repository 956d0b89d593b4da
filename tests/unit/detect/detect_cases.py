"""Factories shared by the detection tests."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from sentinel.detect import (
    MAD,
    Cusum,
    ErrorRate,
    EwmaChart,
    HSTOutlier,
    IQRFence,
    LatencyGivenTokens,
    Percentile,
    RobustZScore,
    TokenDrift,
    TrafficRate,
)
from sentinel.detect.quantile import EWQuantiles
from sentinel.detect.window_shift import WindowShift

Stream = Callable[[random.Random], Iterator[tuple[Any, ...]]]


def _scalar(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    while True:
        yield (rng.gauss(5.0, 0.5) if rng.random() > 0.01 else rng.gauss(9.0, 1.0),)


def _tokens(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    while True:
        yield (int(math.exp(rng.gauss(6.0, 0.8))),)


def _errors(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    while True:
        n = rng.randint(50, 150)
        yield (sum(rng.random() < 0.02 for _ in range(n)), n)


def _traffic(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    t = 1_700_000_000.0
    while True:
        t += 60.0
        yield (t, max(0, int(rng.gauss(300, 20))), 60.0)


def _window_means(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """(log mean of a window, its request count)."""
    while True:
        n = rng.randint(5, 200)
        yield (rng.gauss(4.0, 0.5 / math.sqrt(n)), n)


def _pairs(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    while True:
        x = rng.gauss(5.0, 0.8)
        yield (x, 6.0 + 0.8 * x + rng.gauss(0.0, 0.2) + (3.0 if rng.random() < 0.01 else 0.0))


def _vector(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    while True:
        yield ({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.gauss(0, 1)},)


# (factory, stream, warm-up length after which a score must exist, pickled-size bound after 100k updates)
DETECTORS: dict[str, tuple[Callable[[], Any], Stream, int, int]] = {
    "RobustZScore": (lambda: RobustZScore(warmup=30), _scalar, 30, 600),
    "IQRFence": (lambda: IQRFence(warmup=30), _scalar, 30, 900),
    "MAD": (lambda: MAD(warmup=30), _scalar, 61, 1200),
    "Percentile": (lambda: Percentile(warmup=50), _scalar, 50, 900),
    "Cusum": (lambda: Cusum(warmup=30), _scalar, 30, 900),
    "EwmaChart": (lambda: EwmaChart(warmup=30), _scalar, 30, 900),
    "ErrorRate": (lambda: ErrorRate(warmup_windows=5), _errors, 5, 700),
    "TrafficRate": (lambda: TrafficRate(warmup_windows=10), _traffic, 10, 2500),
    "TokenDrift": (lambda: TokenDrift(block_events=100), _tokens, 299, 1800),
    "LatencyGivenTokens": (lambda: LatencyGivenTokens(warmup=50), _pairs, 50, 600),
    "WindowShift": (lambda: WindowShift(warmup_windows=10), _window_means, 10, 600),
    "HSTOutlier": (lambda: HSTOutlier(warmup=200), _vector, 200, 8000),
}

QUANTILES = (lambda: EWQuantiles((0.1, 0.5, 0.9), alpha=0.02, warmup=20), _scalar)
