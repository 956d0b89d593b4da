"""Event-to-anomaly latency of the live LLM-Sentinel flow at a fixed input rate (issue 10).

Usage (services up: ``make services-up``)::

    .venv/bin/python benchmarks/latency.py                      # 10k events/s, 10 s warm-up + 30 s measured
    .venv/bin/python benchmarks/latency.py --rate 20000 --duration 60

How it works:

* a fresh topic ``bench-lat-<uuid>`` (4 partitions) and its ``.anomalies`` mirror;
* the **full flow** (``build_flow``: every detector, windows, dedup, JSONL, InfluxDB,
  RabbitMQ, the Kafka DLQ and the anomaly mirror ``kafka.anomalies_topic``) runs live
  (``kafka.tail=true``) in a subprocess with one worker — the same child as
  ``throughput.py``;
* a producer thread sends OTLP protobuf messages (``--spans`` spans each, keyed by
  service, ``--keys`` service/model pairs) at ``--rate`` events/s. Every span's end
  time — the event time — is the wall-clock **send time**, so for an anomaly found
  on an event, ``detected_at − timestamp`` is the event-to-anomaly latency;
* incidents are injected all the time (every ``--incident-every`` s the next key gets
  ``--burst`` consecutive calls with ``--factor``× latency) so per-event latency
  spikes keep firing; ``detection.cooldown_s`` is set to ``--cooldown-s`` (default 0)
  so every flagged event of a burst past the persistence rule (6 of 12) reports —
  more samples, same code path;
* a consumer on the anomaly mirror notes when each anomaly arrives (``e2e`` = arrival
  − event time: detection + the Kafka sink + the broker), and ``windows.jsonl`` is
  tailed to see how long after its end each event-time window is emitted;
* after the measured period the flow is stopped with SIGTERM (graceful drain).

Only anomalies whose event time falls in the measured period count. Per-event
detectors are the headline (``p50_ms``/``p99_ms``); window detectors (anomalies with a
``window``) can only fire after the window closes (``windows.length_s`` +
``windows.late_s``) and after their own warm-up of 5–15 windows, so they are reported
separately, also relative to the window end, and are usually absent from a short run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (
    BROKERS,
    ROOT,
    clean_env,
    create_topics,
    delete_exchange,
    delete_topics,
    flow_overrides,
    machine_info,
    unique,
)

from sentinel.models import parse_ts
from sentinel.sinks.kafka import produce_blocking

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash")
PROVIDERS = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic", "gemini-2.0-flash": "gcp"}
BASE_LATENCY_MS = {"gpt-4o": 1800.0, "gpt-4o-mini": 1100.0, "claude-sonnet-4": 2600.0, "gemini-2.0-flash": 900.0}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q, method="nearest"))


def dist(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(sum(values) / len(values), 2),
    }


class Producer(threading.Thread):
    """Sends ``rate`` events/s as OTLP protobuf messages stamped with the send time."""

    def __init__(self, topic: str, args: argparse.Namespace, measure_from: float, stop_at: float) -> None:
        super().__init__(daemon=True, name="bench-producer")
        import numpy as np

        self.topic = topic
        self.args = args
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.rng = np.random.default_rng(args.seed)
        n_services = max(1, args.keys // len(MODELS))
        self.keys = [(f"lat-svc-{i % n_services:02d}", MODELS[i % len(MODELS)]) for i in range(args.keys)]
        self.sent = 0
        self.sent_measured = 0
        self.incidents = 0
        self.behind_max_s = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the main thread
            self.error = e

    def _run(self) -> None:
        from confluent_kafka import Producer as KProducer

        from sentinel.encode import events_to_otlp_proto
        from sentinel.models import TelemetryEvent

        a = self.args
        p = KProducer({"bootstrap.servers": ",".join(BROKERS), "linger.ms": 1, "acks": "1"})
        by_service: dict[str, list[tuple[str, str]]] = {}
        for svc, model in self.keys:
            by_service.setdefault(svc, []).append((svc, model))
        services = list(by_service)
        burst_left: dict[tuple[str, str], int] = {}
        next_incident = self.measure_from
        inc_i = 0
        interval = a.spans / a.rate
        next_send = time.time()
        msg_i = 0
        rng = self.rng
        while True:
            now = time.time()
            if now >= self.stop_at:
                break
            if next_send > now:
                time.sleep(next_send - now)
            self.behind_max_s = max(self.behind_max_s, time.time() - next_send)
            next_send += interval
            svc = services[msg_i % len(services)]
            msg_i += 1
            pairs = by_service[svc]
            sent_at = time.time()
            if sent_at >= next_incident and sent_at < self.stop_at:
                burst_left[self.keys[inc_i % len(self.keys)]] = a.burst
                inc_i += 1
                self.incidents += 1
                next_incident += a.incident_every
            n = a.spans
            lat = rng.lognormal(0.0, 0.25, n)
            inp = rng.lognormal(6.2, 0.3, n).astype(int) + 1
            out = rng.lognormal(5.0, 0.3, n).astype(int) + 1
            ttft = rng.lognormal(-1.2, 0.2, n)
            events = []
            for i in range(n):
                key = pairs[i % len(pairs)]
                factor = 1.0
                left = burst_left.get(key, 0)
                if left:
                    factor = a.factor
                    burst_left[key] = left - 1
                model = key[1]
                events.append(
                    TelemetryEvent(
                        timestamp=sent_at - (n - 1 - i) * 1e-6,
                        service=svc,
                        model=model,
                        latency_ms=float(BASE_LATENCY_MS[model] * lat[i] * factor),
                        input_tokens=int(inp[i]),
                        output_tokens=int(out[i]),
                        provider=PROVIDERS[model],
                        operation="chat",
                        ttft_ms=float(ttft[i] * 1000.0 * factor),
                        finish_reason="stop",
                    )
                )
            payload = events_to_otlp_proto(events, id_seed=msg_i)
            produce_blocking(p, self.topic, payload, svc.encode())
            p.poll(0)
            self.sent += n
            if sent_at >= self.measure_from:
                self.sent_measured += n
        p.flush(30)


class AnomalyConsumer(threading.Thread):
    """Notes the arrival time of every record on the anomaly mirror topic."""

    def __init__(self, topic: str) -> None:
        super().__init__(daemon=True, name="bench-anomaly-consumer")
        self.topic = topic
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(
            {
                "bootstrap.servers": ",".join(BROKERS),
                "group.id": unique("bench-lat"),
                "enable.auto.commit": "false",
                "fetch.wait.max.ms": 5,
            }
        )
        c.assign([TopicPartition(self.topic, 0, 0)])
        try:
            while not self.stop.is_set():
                m = c.poll(0.05)
                if m is None or m.error():
                    continue
                self.records.append((time.time(), json.loads(m.value())))
        finally:
            c.close()


class FileTail(threading.Thread):
    """Notes when each line of a JSONL file appears (windows.jsonl: when windows are emitted)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="bench-tail")
        self.path = path
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        pos = 0
        buf = b""
        while not self.stop.is_set():
            if self.path.is_file():
                with self.path.open("rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos += len(chunk)
                now = time.time()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.records.append((now, json.loads(line)))
            time.sleep(0.02)


TARGET_P99_MS = 100.0  # issue 10 (MVP): p99 event-to-anomaly latency at 10k events/s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=10_000.0, help="events/s sent (default 10k)")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of traffic before measuring (default 10)")
    ap.add_argument("--spans", type=int, default=100, help="spans per message (default 100)")
    ap.add_argument("--keys", type=int, default=20, help="service/model keys (default 20)")
    ap.add_argument("--incident-every", type=float, default=0.25, help="seconds between injected latency bursts")
    ap.add_argument("--burst", type=int, default=12, help="slow calls per burst (default 12)")
    ap.add_argument("--factor", type=float, default=8.0, help="latency multiplier of a burst (default 8)")
    ap.add_argument("--cooldown-s", type=float, default=0.0, help="detection.cooldown_s for the run (default 0)")
    ap.add_argument("--window-s", type=float, default=None, help="windows.length_s (default: the config's 60 s)")
    ap.add_argument("--late-s", type=float, default=None, help="windows.late_s (default: the config's 10 s)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "latency.json")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.duration > 600 or args.warmup > 300:
        ap.error("need 0 < rate, 0 < duration ≤ 600 s, warmup ≤ 300 s")

    info = machine_info()
    topic = unique("bench-lat")
    exchange = unique("bench-lat")
    topics = [topic, f"{topic}.anomalies", f"{topic}.dlq"]
    extra: dict[str, dict[str, Any]] = {"detection": {"cooldown_s": args.cooldown_s}}
    win: dict[str, Any] = {}
    if args.window_s is not None:
        win["length_s"] = args.window_s
    if args.late_s is not None:
        win["late_s"] = args.late_s
    if win:
        extra["windows"] = win
    child: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="sentinel-lat-") as tmp:
        work = Path(tmp)
        out = work / "out"
        settings = flow_overrides(topic, out, exchange, tail=True, extra=extra)
        spec = {"mode": "full", "settings": settings, "result": str(work / "result.json")}
        (work / "spec.json").write_text(json.dumps(spec))
        log_path = work / "flow.log"
        try:
            create_topics({topic: 4, f"{topic}.anomalies": 1})
            consumer = AnomalyConsumer(f"{topic}.anomalies")
            consumer.start()
            tail = FileTail(out / "windows.jsonl")
            tail.start()
            with log_path.open("wb") as log:
                child = subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).resolve().parent / "throughput.py"),
                        "--child",
                        str(work / "spec.json"),
                    ],
                    cwd=ROOT,
                    env=clean_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            t_start = time.time()
            measure_from = t_start + args.warmup
            stop_at = measure_from + args.duration
            prod = Producer(topic, args, measure_from, stop_at)
            print(
                f"flow started (pid {child.pid}); sending {args.rate:,.0f} events/s to {topic}: "
                f"{args.warmup:g} s warm-up + {args.duration:g} s measured…",
                flush=True,
            )
            prod.start()
            while prod.is_alive():
                prod.join(1.0)
                if child.poll() is not None:
                    raise RuntimeError(f"the flow exited early ({child.returncode}): {log_path.read_text()[-3000:]}")
            if prod.error is not None:
                raise prod.error
            time.sleep(3.0)  # let the last anomalies through
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise RuntimeError("the flow did not stop within 120 s of SIGTERM") from None
            stopped = time.time()
            consumer.stop.set()
            tail.stop.set()
            consumer.join(5)
            tail.join(5)
            flow_res: dict[str, Any] = {}
            if (work / "result.json").is_file():
                flow_res = json.loads((work / "result.json").read_text())
            else:
                print(f"warning: the flow wrote no result; log:\n{log_path.read_text()[-2000:]}", file=sys.stderr)
        finally:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
            delete_topics(topics)
            delete_exchange(exchange)

    per_event: list[float] = []
    per_event_e2e: list[float] = []
    by_type: dict[str, list[float]] = {}
    win_ts: list[float] = []
    win_end: list[float] = []
    for arrived, rec in consumer.records:
        ts = parse_ts(rec["timestamp"])
        det = parse_ts(rec["detected_at"])
        if ts < measure_from or ts >= stop_at:
            continue
        lat = (det - ts) * 1000.0
        if rec.get("window"):
            win_ts.append(lat)
            win_end.append((det - parse_ts(rec["window"]["end"])) * 1000.0)
        else:
            per_event.append(lat)
            per_event_e2e.append((arrived - ts) * 1000.0)
            by_type.setdefault(rec["anomaly_type"], []).append(lat)
    close_delay = [
        (seen - parse_ts(w["window_end"])) * 1000.0
        for seen, w in tail.records
        if "window_end" in w and measure_from <= parse_ts(w["window_end"]) < stop_at
    ]
    d = dist(per_event)
    res: dict[str, Any] = {
        "rate_eps": args.rate,
        "achieved_rate_eps": round(prod.sent_measured / args.duration, 1),
        "p50_ms": d.get("p50_ms"),
        "p99_ms": d.get("p99_ms"),
        "n": d["n"],
        "per_event_detectors": d,
        "per_event_by_type": {k: dist(v) for k, v in sorted(by_type.items())},
        "per_event_e2e_at_consumer": dist(per_event_e2e),
        "window_detectors": {"vs_event_time": dist(win_ts), "vs_window_end": dist(win_end)},
        "window_emit_delay_after_window_end": dist(close_delay),
        "setup": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "spans_per_message": args.spans,
            "keys": args.keys,
            "incidents": prod.incidents,
            "incident_every_s": args.incident_every,
            "burst": args.burst,
            "factor": args.factor,
            "cooldown_s": args.cooldown_s,
            "windows": win or "config defaults (60 s + 10 s late)",
            "events_sent": prod.sent,
            "producer_max_behind_s": round(prod.behind_max_s, 3),
            "shutdown_s": round(stopped - stop_at - 3.0, 2),
        },
        "flow": {k: flow_res.get(k) for k in ("events", "peak_rss_mb", "summary")},
        "machine": info,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
    }
    print("\n== event-to-anomaly latency (full flow, one worker, live) ==")
    print(
        f"rate {args.rate:,.0f} ev/s (achieved {res['achieved_rate_eps']:,.0f}), {args.duration:g} s: "
        f"per-event detectors p50 {d.get('p50_ms')} ms, p99 {d.get('p99_ms')} ms (n={d['n']}); "
        f"at the consumer of the Kafka mirror p50 {res['per_event_e2e_at_consumer'].get('p50_ms')} ms, "
        f"p99 {res['per_event_e2e_at_consumer'].get('p99_ms')} ms"
    )
    w = res["window_detectors"]["vs_window_end"]
    wd = res["window_emit_delay_after_window_end"]
    print(
        f"window detectors: n={w['n']}"
        + (f", p50 {w['p50_ms']} ms / p99 {w['p99_ms']} ms after the window end" if w["n"] else "")
        + f"; windows emitted {wd.get('p50_ms')} ms (p50) after their end (n={wd['n']})"
    )
    print(f"flow: {flow_res.get('events')} events, peak RSS {flow_res.get('peak_rss_mb')} MB")
    p99 = d.get("p99_ms")
    res["targets"] = [
        {
            "target": f"p99 event-to-anomaly < {TARGET_P99_MS:g} ms at {args.rate:,.0f} events/s",
            "measured": p99,
            "met": p99 is not None and p99 < TARGET_P99_MS,
        }
    ]
    for c in res["targets"]:
        print(f"  {'✓' if c['met'] else '✗'} {c['target']}: measured {c['measured']} ms")
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0 if d["n"] else 1


if __name__ == "__main__":
    sys.exit(main())
