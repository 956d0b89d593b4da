"""The bank's two paths are independent: outputs depend on each path's own input sequence only.

In the flow, a key's events and window aggregates arrive merged in one stream whose
interleaving depends on wall-clock timing (EventClock), so a 1-worker and a
2-worker run interleave differently. Anomalies must not.
"""

from __future__ import annotations

import random

from sentinel.detect import DetectionSettings, DetectorBank
from sentinel.models import AnomalyEvent, TelemetryEvent, WindowStats


def _streams(seed: int) -> tuple[list[TelemetryEvent], list[WindowStats]]:
    """Events and their minute windows of a key with a throughput and a latency incident."""
    import tests.unit.detect.test_bank as tb

    captured_e: list[TelemetryEvent] = []
    captured_w: list[WindowStats] = []

    class Recorder(DetectorBank):
        def on_event(self, ev: TelemetryEvent) -> list[AnomalyEvent]:
            captured_e.append(ev)
            return []

        def on_window(self, ws: WindowStats) -> list[AnomalyEvent]:
            captured_w.append(ws)
            return []

    orig = tb.DetectorBank
    tb.DetectorBank = Recorder  # type: ignore[misc]
    try:

        def incident(t: float) -> dict[str, float]:
            m = (t - tb.T0) / 60
            if 60 <= m < 90:
                return {"slow": 2.5, "lat": 1.4}
            if 110 <= m < 130:
                return {"lat": 4.0, "out": 0.2}
            return {}

        tb.run(150, rate=2.0, incident=incident, seed=seed)
    finally:
        tb.DetectorBank = orig  # type: ignore[misc]
    return captured_e, captured_w


def _play(events: list[TelemetryEvent], windows: list[WindowStats], order: list[bool]) -> tuple[list[str], list[str]]:
    bank = DetectorBank(DetectionSettings(), "svc", "m")
    ev_out: list[str] = []
    win_out: list[str] = []
    ie = iw = 0
    for is_event in order:
        if is_event:
            ev_out += [a.id for a in bank.on_event(events[ie])]
            ie += 1
        else:
            win_out += [a.id for a in bank.on_window(windows[iw])]
            iw += 1
    return ev_out, win_out


def test_interleaving_does_not_change_anomalies() -> None:
    events, windows = _streams(3)
    n_e, n_w = len(events), len(windows)
    # interleaving 1: all events first, then all windows
    first = _play(events, windows, [True] * n_e + [False] * n_w)
    # interleaving 2: each window right after its last event (as a timely clock would)
    order: list[bool] = []
    ie = 0
    for ws in windows:
        while ie < n_e and events[ie].timestamp < ws.end:
            order.append(True)
            ie += 1
        order.append(False)
    order += [True] * (n_e - ie)
    second = _play(events, windows, order)
    # interleaving 3: random
    rng = random.Random(0)
    shuffled = [True] * n_e + [False] * n_w
    rng.shuffle(shuffled)
    third = _play(events, windows, shuffled)
    assert first == second == third
    assert first[0] and first[1], "both paths should report something in this scenario"
