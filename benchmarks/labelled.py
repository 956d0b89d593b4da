"""Detection quality on labelled synthetic telemetry (``sentinel.generate``) at default settings.

Usage: ``.venv/bin/python benchmarks/labelled.py [--hours 24] [--seed 7]`` — writes
``benchmarks/results/labelled.json``.

Pure Python, no Bytewax: events (sorted by event time) go to one
:class:`~sentinel.detect.DetectorBank` per service/model; per-key 60 s tumbling
windows are folded with :class:`sentinel.windows.WindowAccumulator` and closed
when the key's first event of a later window arrives (a key's empty windows
produce nothing, as in the dataflow). Anomalies are deduplicated simply (same
service/model/type within 300 s of the previous one → one alert, ``last_seen``
extended) and scored with :func:`sentinel.eval.labels.score_alerts`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentinel.detect import DetectionSettings, DetectorBank
from sentinel.eval.labels import score_alerts
from sentinel.generate import generate
from sentinel.models import AnomalyEvent
from sentinel.windows import WindowAccumulator


def detect(events: list[Any], settings: DetectionSettings, window_s: float = 60.0) -> list[AnomalyEvent]:
    banks: dict[str, DetectorBank] = {}
    open_w: dict[str, tuple[float, WindowAccumulator]] = {}
    out: list[AnomalyEvent] = []
    for ev in events:
        key = ev.key
        bank = banks.get(key)
        if bank is None:
            bank = banks[key] = DetectorBank(settings, ev.service, ev.model)
        out += bank.on_event(ev)
        ws = math.floor(ev.timestamp / window_s) * window_s
        cur = open_w.get(key)
        if cur is not None and ws > cur[0]:
            out += bank.on_window(cur[1].stats(ev.service, ev.model, cur[0], cur[0] + window_s))
            cur = None
        if cur is None:
            cur = (ws, WindowAccumulator())
            open_w[key] = cur
        if ws >= cur[0]:
            cur[1].add(ev)
    for key, (start, acc) in open_w.items():
        svc, mdl = banks[key].service, banks[key].model
        out += banks[key].on_window(acc.stats(svc, mdl, start, start + window_s))
    return out


def dedup(anomalies: list[AnomalyEvent], window_s: float = 300.0) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    open_a: dict[tuple[str, str, str], dict[str, Any]] = {}
    for a in sorted(anomalies, key=lambda a: a.timestamp):
        k = (a.service, a.model, a.anomaly_type.value)
        cur = open_a.get(k)
        if cur is not None and a.timestamp - cur["last_seen"] <= window_s:
            cur["last_seen"] = a.timestamp
            cur["occurrences"] += 1
            continue
        cur = {**a.to_dict(), "first_seen": a.timestamp, "last_seen": a.timestamp, "occurrences": 1}
        open_a[k] = cur
        alerts.append(cur)
    return alerts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "labelled.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    events, labels = generate(hours=args.hours, seed=args.seed)
    t1 = time.perf_counter()
    anomalies = detect(events, DetectionSettings())
    t2 = time.perf_counter()
    alerts = dedup(anomalies)
    report = score_alerts(alerts, labels)
    print(
        f"events {len(events)}  anomalies {len(anomalies)}  alerts {len(alerts)}  "
        f"detect {t2 - t1:.1f}s ({(t2 - t1) / max(1, len(events)) * 1e6:.1f} µs/event)"
    )
    for kind, k in report["per_kind"].items():
        print(f"  {kind:24s} recall {k['recall']:.2f}  matching {k['recall_matching']:.2f}  (n={k['incidents']})")
    print(
        f"recall {report['recall']:.3f}  matching {report['recall_matching']:.3f}  precision "
        f"{report['precision']:.3f}  false alerts/series-hour {report['false_alerts_per_series_hour']:.3f}  "
        f"delay median {report['delay_s']['median']}s p90 {report['delay_s']['p90']}s"
    )
    false_alerts = [a for a in alerts if not _overlaps(a, labels)]
    report["false_alert_examples"] = [
        {k: a[k] for k in ("service", "model", "anomaly_type", "detection_method", "timestamp", "score")}
        for a in false_alerts[:30]
    ]
    report["events"] = len(events)
    report["generate_s"] = round(t1 - t0, 2)
    report["detect_s"] = round(t2 - t1, 2)
    report["seed"] = args.seed
    report["hours"] = args.hours
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    return 0


def _overlaps(alert: dict[str, Any], labels: dict[str, Any]) -> bool:
    r = score_alerts([alert], labels)
    return r["false_alerts"] == 0


if __name__ == "__main__":
    raise SystemExit(main())
