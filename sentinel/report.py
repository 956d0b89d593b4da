"""Backtest reports: ``report.json`` (counts per type and key, throughput, optional label scores)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

__all__ = ["read_jsonl", "write_report"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def write_report(
    out: Path,
    *,
    counts: dict[str, Any],
    elapsed_s: float,
    labels: str | None = None,
    input_name: str | None = None,
) -> dict[str, Any]:
    anomalies = read_jsonl(out / "anomalies.jsonl")
    alerts = read_jsonl(out / "alerts.jsonl")
    windows = read_jsonl(out / "windows.jsonl")
    dead = read_jsonl(out / "dlq.jsonl")
    events = int(counts.get("events_valid", 0))
    per_key: dict[str, dict[str, int]] = {}
    for a in anomalies:
        k = f"{a['service']}|{a['model']}"
        per_key.setdefault(k, {})
        per_key[k][a["anomaly_type"]] = per_key[k].get(a["anomaly_type"], 0) + 1
    report: dict[str, Any] = {
        "input": input_name,
        "elapsed_s": round(elapsed_s, 3),
        "events": events,
        "events_per_s": events / elapsed_s if elapsed_s > 0 else 0.0,
        "anomalies": len(anomalies),
        "alerts": len(alerts),
        "windows": len(windows),
        "dead_letters": len(dead),
        "anomalies_by_type": dict(sorted(Counter(a["anomaly_type"] for a in anomalies).items())),
        "alerts_by_type": dict(sorted(Counter(a["anomaly_type"] for a in alerts).items())),
        "alerts_by_severity": dict(sorted(Counter(a["severity"] for a in alerts).items())),
        "anomalies_by_key": dict(sorted(per_key.items())),
        "counters": counts,
    }
    if labels:
        from sentinel.eval.labels import score_alerts

        label_data = orjson.loads(Path(labels).read_bytes())
        report["labels"] = score_alerts(alerts, label_data)
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report
