"""Factories for flow tests: telemetry streams with a known incident, encoded as OTLP JSON messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows.sentinel import SourceOverride, build_flow
from sentinel.config import Settings, load_settings
from sentinel.encode import batch_spans, events_to_otlp_json
from sentinel.models import TelemetryEvent
from sentinel.sources.file import RawMessage

T0 = 1_767_600_000.0  # 2026-01-05T08:00:00Z


def normal_stream(
    rng: np.random.Generator,
    service: str,
    model: str,
    seconds: float,
    rate: float = 2.0,
    t0: float = T0,
    latency_factor: Callable[[float], float] = lambda t: 1.0,
) -> list[TelemetryEvent]:
    """Poisson arrivals with heavy-tailed (log-normal) latency and tokens."""
    n = rng.poisson(rate * seconds)
    ts = np.sort(rng.uniform(t0, t0 + seconds, n))
    out_tok = np.maximum(1, rng.lognormal(5.0, 0.6, n)).astype(int)
    in_tok = np.maximum(1, rng.lognormal(6.5, 0.8, n)).astype(int)
    ttft = rng.lognormal(np.log(300), 0.3, n)
    tps = rng.lognormal(np.log(60), 0.15, n)
    events = []
    for t, o, i, f, s in zip(ts, out_tok, in_tok, ttft, tps, strict=True):
        lat = (f + o / s * 1000.0) * latency_factor(float(t))
        events.append(
            TelemetryEvent(
                timestamp=float(t),
                service=service,
                model=model,
                latency_ms=float(lat),
                input_tokens=int(i),
                output_tokens=int(o),
                cost_usd=0.0,
                ttft_ms=float(f),
                provider="openai",
            )
        )
    return events


def to_messages(events: list[TelemetryEvent], max_spans: int = 50) -> list[RawMessage]:
    events = sorted(events, key=lambda e: e.timestamp)
    msgs = []
    for i, batch in enumerate(batch_spans(events, max_spans=max_spans)):
        msgs.append(RawMessage(orjson.dumps(events_to_otlp_json(batch, index_offset=i * max_spans)), f"test:{i}"))
    return msgs


NON_LLM_SPAN = orjson.dumps(
    {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "GET /",
                                "kind": 2,
                                "startTimeUnixNano": str(int(T0 * 1e9)),
                                "endTimeUnixNano": str(int((T0 + 0.1) * 1e9)),
                                "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
)

POISON = [
    b"",
    b"\xff\xfe\x00garbage",
    b'{"resourceSpans": "not a list"}',
    b'{"service": "s", "model": "m", "latency_ms": "fast", "timestamp": 1767600000}',
    b"[1, 2, 3",
]


@dataclass
class FlowRun:
    out: Path
    taps: dict[str, list[Any]] = field(default_factory=dict)

    def jsonl(self, name: str) -> list[dict[str, Any]]:
        p = self.out / f"{name}.jsonl"
        return [orjson.loads(x) for x in p.read_bytes().splitlines() if x.strip()] if p.exists() else []


def run_flow(
    messages: list[Any],
    out: Path,
    workers: int = 1,
    settings: Settings | None = None,
    recovery: Path | None = None,
    **overrides: Any,
) -> FlowRun:
    s = settings or load_settings(output={"dir": out, "console": False}, **overrides)
    taps: dict[str, list[Any]] = {k: [] for k in ("events", "dead", "windows", "anomalies", "alerts")}
    flow = build_flow(
        s,
        source=SourceOverride(source=TestingSource(messages, batch_size=20)),
        taps={k: TestingSink(v) for k, v in taps.items()},
    )
    rc = RecoveryConfig(str(recovery)) if recovery is not None else None
    if workers == 1:
        run_main(flow, epoch_interval=timedelta(seconds=0 if rc is None else 1), recovery_config=rc)
    else:
        cli_main(
            flow,
            workers_per_process=workers,
            epoch_interval=timedelta(seconds=0 if rc is None else 1),
            recovery_config=rc,
        )
    return FlowRun(out, taps)
