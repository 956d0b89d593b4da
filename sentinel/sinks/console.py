"""Console output: one readable line per alert, and a run summary when the process ends."""

from __future__ import annotations

import atexit
import sys
from typing import Any, TextIO

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from sentinel import metrics
from sentinel.models import AlertEvent, format_ts

__all__ = ["ConsoleAlertSink", "format_alert", "print_summary_at_exit"]


def format_alert(a: AlertEvent) -> str:
    an = a.anomaly
    return (
        f"[{an.severity.value.upper():8}] {format_ts(an.timestamp)} {an.service}/{an.model} "
        f"{an.anomaly_type.value}: {an.metric}={an.observed:.4g} expected≈{an.expected:.4g} "
        f"({an.detection_method.value}, score {an.score:.3g} > {an.threshold:.3g})"
    )


class _Partition(StatelessSinkPartition[AlertEvent]):
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write_batch(self, items: list[AlertEvent]) -> None:
        self._stream.write("".join(format_alert(a) + "\n" for a in items))
        self._stream.flush()


class ConsoleAlertSink(DynamicSink[AlertEvent]):
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._stream or sys.stdout)


def render_summary(s: dict[str, Any]) -> str:
    dead = sum(s["dead_letters"].values())
    lines = [
        "── LLM-Sentinel run summary ──",
        f"messages {s['messages']:,}  spans {s['spans']:,}  events {s['events_valid']:,} valid"
        f" / {s['events_decoded']:,} decoded  skipped (non-LLM) {s['spans_skipped']:,}",
        f"dead letters {dead:,} {dict(s['dead_letters']) or ''}  unpriced {s['events_unpriced']:,}"
        f"  windows {s['windows']:,}  late events {s['late_events']:,}",
        f"anomalies {s['anomalies_total']:,}: " + ", ".join(f"{k} {v}" for k, v in s["anomalies"].items()),
    ]
    return "\n".join(lines)


_registered = False


def print_summary_at_exit(write_json_to: str | None = None) -> None:
    """Print this process's summary (and write it as JSON) when the interpreter exits."""
    global _registered
    if _registered:
        return
    _registered = True

    def _emit() -> None:
        s = metrics.summary()
        print(render_summary(s), file=sys.stderr)
        if write_json_to:
            try:
                with open(write_json_to, "wb") as f:
                    f.write(orjson.dumps(s, option=orjson.OPT_INDENT_2))
            except OSError as e:
                print(f"sentinel: cannot write {write_json_to}: {e}", file=sys.stderr)

    atexit.register(_emit)
