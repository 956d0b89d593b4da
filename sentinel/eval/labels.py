"""Scoring alerts against the generator's labels (``sentinel generate`` ``*.labels.json``).

An incident is *detected* when an alert on the same service/model has a time
inside ``[start − tolerance, end + grace]`` — counted twice: with an alert of any
anomaly type, and with an alert of the incident's own kind (``matching``). An
alert's time is its ``first_seen`` (else ``timestamp``); an alert *overlaps* an
incident when ``[first_seen, last_seen]`` intersects that interval. Returned
(JSON-able):

* ``recall`` (any type) and ``recall_matching``, overall and per incident kind;
* ``precision``: fraction of alerts overlapping some incident of their series;
* ``false_alerts`` and ``false_alerts_per_series_hour`` (series-hours summed over
  each series' active span);
* ``delay_s``: median / p90 of (first detecting alert time − incident start),
  negative delays clipped to 0 (an alert within the tolerance before the start).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from sentinel.models import parse_ts

__all__ = ["score_alerts"]


def _quantile(xs: list[float], q: float) -> float | None:
    return float(np.quantile(xs, q)) if xs else None  # linear interpolation between order statistics


def score_alerts(
    alerts: Iterable[Mapping[str, Any]],
    labels: Mapping[str, Any],
    *,
    grace_s: float = 300.0,
    tolerance_s: float = 60.0,
) -> dict[str, Any]:
    """Recall per kind, precision, false alerts per series-hour and detection delay.

    >>> labels = {"series": [{"service": "a", "model": "m", "start": 0, "end": 3600}],
    ...           "incidents": [{"id": "i1", "service": "a", "model": "m", "kind": "latency_spike",
    ...                          "start": 1000, "end": 1200}]}
    >>> r = score_alerts([{"service": "a", "model": "m", "anomaly_type": "latency_spike",
    ...                    "first_seen": 1030, "last_seen": 1100}], labels)
    >>> r["recall"], r["precision"], r["delay_s"]["median"]
    (1.0, 1.0, 30.0)
    """
    incidents = [
        {**inc, "_s": parse_ts(inc["start"]), "_e": parse_ts(inc["end"])} for inc in labels.get("incidents", [])
    ]
    by_series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for inc in incidents:
        by_series[(inc["service"], inc["model"])].append(inc)
    prepared = []
    for a in alerts:
        t0 = parse_ts(a.get("first_seen", a.get("timestamp")))
        t1 = parse_ts(a.get("last_seen", a.get("first_seen", a.get("timestamp"))))
        prepared.append((str(a["service"]), str(a["model"]), str(a.get("anomaly_type", "")), t0, max(t0, t1)))

    detected_any: dict[str, float] = {}
    detected_match: dict[str, float] = {}
    true_alerts = 0
    false_by_series: dict[str, int] = defaultdict(int)
    for svc, mdl, kind, t0, t1 in prepared:
        hit = False
        for inc in by_series.get((svc, mdl), []):
            lo, hi = inc["_s"] - tolerance_s, inc["_e"] + grace_s
            if t0 <= hi and t1 >= lo:
                hit = True
                when = max(t0, lo)
                if when <= hi:
                    detected_any[inc["id"]] = min(detected_any.get(inc["id"], math.inf), when)
                    if kind == inc["kind"]:
                        detected_match[inc["id"]] = min(detected_match.get(inc["id"], math.inf), when)
        if hit:
            true_alerts += 1
        else:
            false_by_series[f"{svc}|{mdl}"] += 1

    kinds: dict[str, dict[str, Any]] = {}
    for inc in incidents:
        k = kinds.setdefault(inc["kind"], {"incidents": 0, "detected": 0, "detected_matching": 0})
        k["incidents"] += 1
        k["detected"] += inc["id"] in detected_any
        k["detected_matching"] += inc["id"] in detected_match
    for k in kinds.values():
        k["recall"] = k["detected"] / k["incidents"]
        k["recall_matching"] = k["detected_matching"] / k["incidents"]

    series_hours = 0.0
    for s in labels.get("series", []):
        series_hours += max(0.0, parse_ts(s["end"]) - parse_ts(s["start"])) / 3600.0
    delays = [max(0.0, detected_any[i["id"]] - i["_s"]) for i in incidents if i["id"] in detected_any]
    delays_m = [max(0.0, detected_match[i["id"]] - i["_s"]) for i in incidents if i["id"] in detected_match]
    n_alerts = len(prepared)
    n_false = n_alerts - true_alerts
    n_inc = len(incidents)
    return {
        "incidents": n_inc,
        "alerts": n_alerts,
        "recall": len(detected_any) / n_inc if n_inc else None,
        "recall_matching": len(detected_match) / n_inc if n_inc else None,
        "per_kind": dict(sorted(kinds.items())),
        "precision": true_alerts / n_alerts if n_alerts else None,
        "false_alerts": n_false,
        "false_alerts_by_series": dict(sorted(false_by_series.items())),
        "series_hours": series_hours,
        "false_alerts_per_series_hour": n_false / series_hours if series_hours else None,
        "delay_s": {"median": _quantile(delays, 0.5), "p90": _quantile(delays, 0.9)},
        "delay_matching_s": {"median": _quantile(delays_m, 0.5), "p90": _quantile(delays_m, 0.9)},
        "grace_s": grace_s,
        "tolerance_s": tolerance_s,
        "undetected": [i["id"] for i in incidents if i["id"] not in detected_any],
    }
