"""Backtest reports: ``report.json`` (counts per type and key, throughput, per-key window summaries,
optional label scores) and the self-contained ``report.html`` with plots (:mod:`sentinel.report_html`)."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

__all__ = ["read_jsonl", "window_summary", "write_report"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def window_summary(windows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per ``service|model`` key: windows, totals, error rate, medians and maxima of the window metrics."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for w in windows:
        by_key.setdefault(f"{w['service']}|{w['model']}", []).append(w)
    out: dict[str, dict[str, Any]] = {}
    for k, ws in sorted(by_key.items()):
        req = sum(int(w.get("requests", 0)) for w in ws)
        err = sum(int(w.get("errors", 0)) for w in ws)
        s: dict[str, Any] = {
            "windows": len(ws),
            "first_window": min(w["window_start"] for w in ws),
            "last_window": max(w["window_end"] for w in ws),
            "requests": req,
            "errors": err,
            "error_rate": err / req if req else 0.0,
            "input_tokens": sum(int(w.get("input_tokens", 0)) for w in ws),
            "output_tokens": sum(int(w.get("output_tokens", 0)) for w in ws),
            "cost_usd": sum(float(w.get("cost_usd", 0.0)) for w in ws),
        }
        for m in ("requests", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "output_tokens_per_s"):
            vals = [float(w[m]) for w in ws if isinstance(w.get(m), int | float)]
            s[f"{m}_median"] = _median(vals)
            s[f"{m}_max"] = max(vals) if vals else None
        out[k] = s
    return out


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
        "alerts_by_key": dict(sorted(Counter(f"{a['service']}|{a['model']}" for a in alerts).items())),
        "windows_by_key": window_summary(windows),
        "counters": counts,
        "html": "report.html",
    }
    label_data: dict[str, Any] | None = None
    if labels:
        from sentinel.eval.labels import score_alerts

        label_data = orjson.loads(Path(labels).read_bytes())
        report["labels"] = score_alerts(alerts, label_data)
        report["labels"]["file"] = str(labels)
        undetected = set(report["labels"].get("undetected", []))
        report["labels"]["incident_list"] = [
            {k: inc.get(k) for k in ("id", "service", "model", "kind", "start", "end")}
            | {"detected": inc.get("id") not in undetected}
            for inc in label_data.get("incidents", [])
        ]
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    from sentinel.report_html import write_html

    write_html(out, report, windows, anomalies, alerts, label_data)
    return report
