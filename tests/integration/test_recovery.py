"""Crash and resume on the real broker: SIGKILL mid-stream, restart from the recovery directory.

Proves that (a) every anomaly and alert of an uninterrupted run appears after the crash
(duplicates only with the same id) and (b) an incident that starts right after the restart
is still detected — the baselines were restored from the snapshot, not relearned (a run
started afresh at that point is still warming up and misses it).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from sentinel.encode import batch_spans, events_to_otlp_proto
from sentinel.models import TelemetryEvent
from tests.flow.factories import T0, normal_stream
from tests.integration.conftest import BROKERS

REPO = Path(__file__).resolve().parents[2]
SPLIT = T0 + 5400.0  # part A (learning) ends, part B (incident first) begins
INCIDENT = (SPLIT, SPLIT + 600.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parts() -> tuple[list[TelemetryEvent], list[TelemetryEvent]]:
    rng = np.random.default_rng(2024)
    events: list[TelemetryEvent] = []
    events += normal_stream(rng, "chat", "gpt-4o", 7200, rate=2.0)
    events += normal_stream(
        rng,
        "search",
        "gpt-4o-mini",
        7200,
        rate=2.0,
        latency_factor=lambda t: 6.0 if INCIDENT[0] <= t < INCIDENT[1] else 1.0,
    )
    a = [e for e in events if e.timestamp < SPLIT]
    b = [e for e in events if e.timestamp >= SPLIT]
    return a, b


def produce(topic: str, events: list[TelemetryEvent]) -> int:
    p = Producer({"bootstrap.servers": ",".join(BROKERS)})
    n = 0
    for service in sorted({e.service for e in events}):
        mine = sorted((e for e in events if e.service == service), key=lambda e: e.timestamp)
        for batch in batch_spans(mine, max_spans=100):
            # broker timestamp = event time, as for a live stream (what --from-time resolves against)
            p.produce(
                topic, key=service.encode(), value=events_to_otlp_proto(batch), timestamp=int(batch[0].timestamp * 1000)
            )
            n += 1
    assert p.flush(30) == 0
    return n


def scrape(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+eE0-9.naNInf]+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def lag_total(metrics: dict[str, float]) -> float | None:
    lags = [v for k, v in metrics.items() if k.startswith("bytewax_kafka_consumer_lag")]
    return sum(lags) if lags else None


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Flow:
    """`python -m bytewax.run dataflows.sentinel:flow` with recovery, as `sentinel run` starts it."""

    def __init__(self, topic: str, out: Path, recovery: Path, log: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "SENTINEL_SOURCE__TYPE": "kafka",
            "SENTINEL_KAFKA__TOPICS": topic,
            "SENTINEL_KAFKA__BROKERS": ",".join(BROKERS),
            "SENTINEL_KAFKA__TAIL": "true",
            "SENTINEL_OUTPUT__DIR": str(out),
            "SENTINEL_OUTPUT__CONSOLE": "false",
            "SENTINEL_METRICS__ENABLED": "true",
            "SENTINEL_METRICS__PORT": str(self.port),
        }
        self.recovery = recovery
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "bytewax.run",
            "dataflows.sentinel:flow",
            "-w",
            "1",
            "-r",
            str(self.recovery),
            "-s",
            "1",
            "-b",
            "0",
        ]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: bool(scrape(self.port)) or self.proc.poll() is not None, 60, "the flow's metrics endpoint")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def valid(self) -> float:
        return scrape(self.port).get("sentinel_events_valid_total", 0.0)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)  # graceful: sources end, windows flush, sinks close
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.returncode == 0, self.log.read_text()[-3000:]

    def drained(self) -> bool:
        m = scrape(self.port)
        lag = lag_total(m)
        return lag is not None and lag == 0


def jsonl(p: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in p.read_bytes().splitlines() if x.strip()] if p.exists() else []


def backtest(topic: str, out: Path, *extra: str) -> None:
    from sentinel.cli import main

    os.environ["SENTINEL_KAFKA__BROKERS"] = ",".join(BROKERS)
    assert main(["backtest", "--input", f"kafka://{topic}", "--output", str(out), "-q", *extra]) == 0


@pytest.mark.timeout(400)
def test_sigkill_mid_stream_then_resume(kafka_topic: Any, tmp_path: Path) -> None:
    topic = kafka_topic(partitions=2)
    a, b = parts()
    produce(topic, a)
    (tmp_path / "rec").mkdir()
    subprocess.run(
        [str(REPO / "recovery" / "init.sh"), str(tmp_path / "rec"), "1"],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    out = tmp_path / "live"
    flow = Flow(topic, out, tmp_path / "rec", tmp_path / "flow.log")
    try:
        flow.start()
        # SIGKILL mid-stream: once a good part of A has been processed, but before all of it
        wait_for(lambda: flow.valid() >= 0.4 * len(a), 120, "40% of part A to be processed")
        flow.kill()
        killed_at = flow.valid()
        assert killed_at == 0.0  # the process is gone

        flow.start()  # resumes from the last snapshot: offsets, detector, window and dedup state
        produce(topic, b)  # the incident starts right after the restart
        wait_for(lambda: flow.drained() and flow.valid() > 0, 180, "the restarted flow to catch up")
        time.sleep(2)
        flow.stop()
    finally:
        if flow.proc and flow.proc.poll() is None:
            flow.proc.kill()

    # the uninterrupted reference: the same topic, replayed in one go
    backtest(topic, tmp_path / "ref")
    live, ref = jsonl(out / "anomalies.jsonl"), jsonl(tmp_path / "ref" / "anomalies.jsonl")
    live_ids, ref_ids = {x["id"] for x in live}, {x["id"] for x in ref}
    assert ref_ids, "the reference run found no anomaly at all"
    assert ref_ids <= live_ids, f"lost after crash: {sorted(ref_ids - live_ids)}"
    assert live_ids == ref_ids, f"extra after crash: {sorted(live_ids - ref_ids)}"
    live_alerts = jsonl(out / "alerts.jsonl")
    assert {x["alert_id"] for x in jsonl(tmp_path / "ref" / "alerts.jsonl")} == {x["alert_id"] for x in live_alerts}
    # duplicates (at-least-once replay) are allowed only as exact repeats of the same id
    by_id: dict[str, dict[str, Any]] = {}
    for x in live:
        if x["id"] in by_id:
            assert {k: v for k, v in x.items() if k != "detected_at"} == {
                k: v for k, v in by_id[x["id"]].items() if k != "detected_at"
            }
        by_id[x["id"]] = x

    def incident_hits(xs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            x
            for x in xs
            if x["service"] == "search"
            and x["anomaly_type"].startswith("latency")
            and INCIDENT[0] <= orjson_ts(x["timestamp"]) <= INCIDENT[1]
        ]

    assert incident_hits(live), "the incident right after the restart was missed"

    # a run started afresh at the restart point (no learned baselines) does not catch it:
    # the detectors are still warming up on the incident itself
    fresh = tmp_path / "fresh"
    start = f"{int(SPLIT)}"
    backtest(topic, fresh, "--from-time", start)
    assert not incident_hits(jsonl(fresh / "anomalies.jsonl")), "fresh state should still be warming up"


def orjson_ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
