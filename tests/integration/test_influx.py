"""The InfluxDB sink against the harness's VictoriaMetrics (InfluxDB v2 write API on 127.0.0.1:8428).

The real flow runs on known OTLP JSON input; the points are read back through
VictoriaMetrics' ``/api/v1/export`` and compared with values computed here,
independently, from the generated events (numpy percentiles for latency).

How VictoriaMetrics stores what the sink writes (see tests/integration/test_services.py):
each field becomes a series ``<measurement>_<field>`` with the tags as labels,
timestamps in ms, values kept to 12 significant digits (so floats are compared to
1e-11 relative; counts exactly). The harness starts VictoriaMetrics with
``-dedup.minScrapeInterval=1ms`` so that, as in InfluxDB, a point written twice at the
same timestamp is stored once: a replay overwrites instead of duplicating.

Every test uses its own service names (uuid), so runs never collide. The fault test
stops VictoriaMetrics with ``scripts/services.sh down vm`` and always starts it again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import requests
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from dataflows.sentinel import SourceOverride, build_flow
from sentinel.config import Settings, load_settings
from sentinel.encode import batch_spans, events_to_otlp_json
from sentinel.models import TelemetryEvent
from sentinel.sinks.influx import ANOMALY_FIELDS, WINDOW_FIELDS
from sentinel.sources.file import RawMessage
from sentinel.windows import LATENCY_RELATIVE_ACCURACY

pytestmark = pytest.mark.integration

VM_URL = os.environ.get("SENTINEL_TEST_VM_URL", "http://127.0.0.1:8428")
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"
T0 = 1_767_600_000.0  # 2026-01-05T08:00:00Z, a window boundary
WINDOW_S = 60.0
PRICES = {"gpt-4o": (2.50, 10.00), "claude-sonnet-4": (3.00, 15.00)}  # DESIGN.md ⚑ Input defaults
FLOAT_REL = 1e-11  # VictoriaMetrics keeps 12 significant digits


# ----------------------------------------------------------------------------- VictoriaMetrics


def require_vm() -> None:
    try:
        r = requests.get(f"{VM_URL}/health", timeout=5)
    except requests.RequestException as e:
        pytest.fail(
            f"VictoriaMetrics is not reachable at {VM_URL} ({e}); start it with: bash scripts/services.sh up vm",
            pytrace=False,
        )
    assert r.text.strip() == "OK", f"VictoriaMetrics /health answered {r.status_code} {r.text!r}"


Series = dict[tuple[str, str, str], list[tuple[int, float]]]  # (name, service, model) -> [(ts ms, value)]


def export(selector: str) -> tuple[Series, dict[tuple[str, ...], list[tuple[int, float]]]]:
    """Raw samples matching ``selector``: by (name, service, model) and by the full label set."""
    requests.get(f"{VM_URL}/internal/force_flush", timeout=10).raise_for_status()
    resp = requests.get(f"{VM_URL}/api/v1/export", params={"match[]": selector}, timeout=30)
    resp.raise_for_status()
    by_key: Series = defaultdict(list)
    by_labels: dict[tuple[str, ...], list[tuple[int, float]]] = defaultdict(list)
    for line in resp.text.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        m = row["metric"]
        samples = list(zip(row["timestamps"], row["values"], strict=True))
        by_key[(m["__name__"], m.get("service", ""), m.get("model", ""))].extend(samples)
        by_labels[tuple(sorted(m.items()))].extend(samples)
    for v in (*by_key.values(), *by_labels.values()):
        v.sort()
    return by_key, by_labels


def wait_export(selector: str, n_series: int, timeout: float = 20.0) -> tuple[Series, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = export(selector)
        if len(got[1]) >= n_series or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def services(action: str, attempts: int = 3) -> None:
    """``scripts/services.sh <action> vm``, retried (the harness is shared by concurrent test runs)."""
    for attempt in range(attempts):
        r = subprocess.run(["bash", str(SERVICES), action, "vm"], timeout=120, capture_output=True, text=True)
        if r.returncode == 0:
            return
        if attempt == attempts - 1:
            raise RuntimeError(f"services.sh {action} vm failed ({r.returncode}): {r.stderr[-2000:]}")
        time.sleep(1.0)


# ----------------------------------------------------------------------------- input


def generate(prefix: str, minutes: int, rate: float, seed: int) -> list[TelemetryEvent]:
    """Poisson traffic for three keys; ``<prefix>-chat|gpt-4o`` has a latency + error incident at minutes 20-24.

    Timestamps are whole milliseconds and latencies whole microseconds, so they survive
    the OTLP encoding (int64 nanoseconds) exactly.
    """
    rng = np.random.default_rng(seed)
    keys = [(f"{prefix}-chat", "gpt-4o"), (f"{prefix}-chat", "claude-sonnet-4"), (f"{prefix}-rag", "gpt-4o")]
    seconds = minutes * 60
    events: list[TelemetryEvent] = []
    for k, (service, model) in enumerate(keys):
        n = int(rng.poisson(rate * seconds))
        ts_ms = np.sort(rng.choice(seconds * 1000, size=n, replace=False)) + round(T0 * 1000)
        lat = np.round(rng.lognormal(np.log(700 + 300 * k), 0.35, n), 3)
        err = rng.random(n) < 0.02
        in_tok = rng.integers(50, 4000, n)
        out_tok = rng.integers(1, 800, n)
        if k == 0:
            incident = (ts_ms >= round((T0 + 20 * 60) * 1000)) & (ts_ms < round((T0 + 25 * 60) * 1000))
            lat = np.where(incident, np.round(lat * 6.0, 3), lat)
            err = err | (incident & (rng.random(n) < 0.4))
        for t, la, e, i, o in zip(ts_ms, lat, err, in_tok, out_tok, strict=True):
            events.append(
                TelemetryEvent(
                    timestamp=int(t) / 1000.0,
                    service=service,
                    model=model,
                    latency_ms=float(la),
                    input_tokens=int(i),
                    output_tokens=int(o),
                    is_error=bool(e),
                    error_type="rate_limit" if e else None,
                    provider="anthropic" if model.startswith("claude") else "openai",
                    operation="chat",
                    finish_reason="stop",
                )
            )
    events.sort(key=lambda ev: ev.timestamp)
    return events


def messages(events: list[TelemetryEvent], max_spans: int = 200) -> list[bytes]:
    out = []
    offset = 0
    for batch in batch_spans(events, max_spans=max_spans):
        out.append(orjson.dumps(events_to_otlp_json(batch, index_offset=offset)))
        offset += len(batch)
    return out


def write_jsonl(path: Path, msgs: list[bytes]) -> Path:
    path.write_bytes(b"".join(m + b"\n" for m in msgs))
    return path


@dataclass
class Expected:
    fields: dict[str, float]
    latencies: np.ndarray


def expected_windows(events: list[TelemetryEvent]) -> dict[tuple[str, str, int], Expected]:
    """Window aggregates computed directly from the events: (service, model, start ms) -> values.

    Mirrors what the decoder sees in OTLP: a failed call carries no usage, so its
    tokens and cost are 0; cost comes from the default price table.
    """
    groups: dict[tuple[str, str, int], list[TelemetryEvent]] = defaultdict(list)
    for ev in events:
        start = math.floor(ev.timestamp / WINDOW_S) * WINDOW_S
        groups[(ev.service, ev.model, round(start * 1000))].append(ev)
    out = {}
    for key, evs in groups.items():
        ok = [e for e in evs if not e.is_error]
        p_in, p_out = PRICES[key[1]]
        requests_ = len(evs)
        errors = requests_ - len(ok)
        gen_tokens = sum(e.output_tokens for e in ok if e.output_tokens > 0)
        gen_ms = sum(e.latency_ms for e in ok if e.output_tokens > 0)
        out[key] = Expected(
            fields={
                "requests": requests_,
                "errors": errors,
                "error_rate": errors / requests_,
                "input_tokens": sum(e.input_tokens for e in ok),
                "output_tokens": sum(e.output_tokens for e in ok),
                "cost_usd": math.fsum((e.input_tokens * p_in + e.output_tokens * p_out) / 1e6 for e in ok),
                "output_tokens_per_s": gen_tokens * 1000.0 / gen_ms if gen_ms else 0.0,
            },
            latencies=np.array([e.latency_ms for e in evs]),
        )
    return out


def settings_for(tmp_path: Path, source_path: Path | None = None, **influx: Any) -> Settings:
    return load_settings(
        output={"dir": tmp_path / "out", "console": False},
        influxdb={"url": VM_URL, "org": "o", "bucket": "b", "token": "t", **influx},
        source={"type": "file", "path": source_path or tmp_path / "unused.jsonl"},
    )


def sink_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("sentinel_sink_records_total", {"sink": "influxdb", "outcome": outcome}) or 0.0


def check_windows(prefix: str, events: list[TelemetryEvent], copies: int = 1) -> int:
    """Every window field of every expected window is in VictoriaMetrics, ``copies`` times, with the right value."""
    expected = expected_windows(events)
    keys = {(s, m) for s, m, _ in expected}
    by_key, _ = wait_export(f'{{__name__=~"llm_window_.*",service=~"{prefix}-.*"}}', len(keys) * len(WINDOW_FIELDS))
    assert {(s, m) for _, s, m in by_key} == keys
    for field in WINDOW_FIELDS:
        for service, model in keys:
            samples = by_key[(f"llm_window_{field}", service, model)]
            want_ts = sorted(ts for s, m, ts in expected if (s, m) == (service, model))
            got_ts = [ts for ts, _ in samples]
            assert got_ts == sorted(want_ts * copies), (
                f"{field} {service}/{model}: {len(got_ts)} samples for {len(want_ts)} windows × {copies}"
            )
            for ts, value in samples:
                exp = expected[(service, model, ts)]
                if field.startswith("latency_p"):
                    q = int(field[len("latency_p") : -len("_ms")]) / 100
                    exact = float(np.percentile(exp.latencies, q * 100, method="lower"))
                    assert value == pytest.approx(exact, rel=LATENCY_RELATIVE_ACCURACY + 1e-9), (field, ts)
                elif field in ("requests", "errors", "input_tokens", "output_tokens"):
                    assert value == exp.fields[field], (field, service, model, ts)
                else:
                    assert value == pytest.approx(exp.fields[field], rel=FLOAT_REL, abs=1e-15), (field, ts)
    return len(expected)


@pytest.fixture
def prefix() -> str:
    return f"it-influx-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _cleanup(prefix: str) -> Iterator[None]:
    yield
    for m in ("llm_window", "llm_anomaly"):
        with contextlib.suppress(requests.RequestException):
            requests.post(
                f"{VM_URL}/api/v1/admin/tsdb/delete_series",
                params={"match[]": f'{{__name__=~"{m}_.*",service=~"{prefix}-.*"}}'},
                timeout=10,
            )


# ----------------------------------------------------------------------------- the flow, end to end


def test_flow_writes_exact_windows_and_anomalies_and_replay_overwrites(tmp_path: Path, prefix: str) -> None:
    require_vm()
    events = generate(prefix, minutes=30, rate=2.0, seed=11)
    src = write_jsonl(tmp_path / "in.jsonl", messages(events))
    settings = settings_for(tmp_path, src)
    written0, dropped0, rejected0 = sink_count("written"), sink_count("dropped"), sink_count("rejected")

    run_main(build_flow(settings))

    n_windows = check_windows(prefix, events)
    assert n_windows == 3 * 30

    # anomalies: every record of anomalies.jsonl is a point, with its tags, event time and fields
    anomalies = [orjson.loads(x) for x in (tmp_path / "out" / "anomalies.jsonl").read_bytes().splitlines()]
    assert any(
        a["service"] == f"{prefix}-chat" and a["model"] == "gpt-4o" and "20" <= a["timestamp"][14:16] <= "25"
        for a in anomalies
    ), "the incident raised no anomaly"
    want: dict[tuple[str, ...], list[tuple[int, float]]] = defaultdict(list)
    for a in anomalies:
        ts = round(datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
        tags = {k: a[k] for k in ("service", "model", "anomaly_type", "severity", "detection_method")}
        for f in ANOMALY_FIELDS:
            if a[f] is not None and math.isfinite(a[f]):
                want[tuple(sorted({"__name__": f"llm_anomaly_{f}", **tags}.items()))].append((ts, a[f]))
    _, got = wait_export(f'{{__name__=~"llm_anomaly_.*",service=~"{prefix}-.*"}}', len(want))
    assert set(got) == set(want)
    for labels, samples in want.items():
        got_samples = got[labels]
        assert [t for t, _ in got_samples] == sorted(t for t, _ in samples), labels
        for (t, v), (t2, v2) in zip(sorted(samples), got_samples, strict=True):
            assert t == t2 and v2 == pytest.approx(v, rel=FLOAT_REL), labels

    n_points = n_windows + len(anomalies)
    assert sink_count("written") - written0 == n_points
    assert sink_count("dropped") == dropped0 and sink_count("rejected") == rejected0

    # replay: the same input writes the same values at the same timestamps, no new points
    run_main(build_flow(settings_for(tmp_path, src)))
    assert sink_count("written") - written0 == 2 * n_points
    by_key, _ = export(f'{{__name__=~"llm_window_.*",service=~"{prefix}-.*"}}')
    copies = set()
    for name_key, samples in by_key.items():
        distinct = {ts for ts, _ in samples}
        for ts in distinct:
            values = {v for t, v in samples if t == ts}
            assert len(values) == 1, f"{name_key} at {ts}: a replay wrote different values {values}"
        copies.add(len(samples) / len(distinct))
    # the harness runs VictoriaMetrics with -dedup.minScrapeInterval=1ms: like InfluxDB, a point
    # written again at the same timestamp replaces the first — a replay adds nothing
    assert copies == {1.0}, copies
    assert check_windows(prefix, events, copies=int(copies.pop())) == n_windows


# ----------------------------------------------------------------------------- server down mid-run


class PacedSource(DynamicSource[RawMessage]):
    """Hands out ``per_tick`` messages every ``tick_s`` seconds of wall-clock time (worker 0 only)."""

    def __init__(self, msgs: list[bytes], per_tick: int, tick_s: float) -> None:
        self.msgs = msgs
        self.per_tick = per_tick
        self.tick_s = tick_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PacedPartition:
        return _PacedPartition(self.msgs if worker_index == 0 else [], self.per_tick, self.tick_s)


class _PacedPartition(StatelessSourcePartition[RawMessage]):
    def __init__(self, msgs: list[bytes], per_tick: int, tick_s: float) -> None:
        self.msgs = msgs
        self.per_tick = per_tick
        self.tick_s = tick_s
        self.i = 0
        self.awake = datetime.now(UTC)

    def next_batch(self) -> list[RawMessage]:
        if self.i >= len(self.msgs):
            raise StopIteration
        batch = [RawMessage(m, f"paced:{self.i + j}") for j, m in enumerate(self.msgs[self.i : self.i + self.per_tick])]
        self.i += self.per_tick
        self.awake = datetime.now(UTC) + timedelta(seconds=self.tick_s)
        return batch

    def next_awake(self) -> datetime:
        return self.awake


@pytest.mark.slow
def test_server_down_mid_run_loses_and_duplicates_nothing(tmp_path: Path, prefix: str) -> None:
    require_vm()
    events = generate(prefix, minutes=30, rate=1.0, seed=12)
    msgs = messages(events, max_spans=20)
    tick_s = 12.0 / len(msgs)  # ~12 s of input, one message per tick
    settings = settings_for(tmp_path, batch_size=10, flush_interval_ms=100)
    flow = build_flow(settings, source=SourceOverride(source=PacedSource(msgs, 1, tick_s)))
    written0, retried0, dropped0 = sink_count("written"), sink_count("retried"), sink_count("dropped")
    timeline: dict[str, float] = {}
    errors: list[BaseException] = []
    t0 = time.monotonic()

    def outage() -> None:
        try:
            deadline = time.monotonic() + 20
            while sink_count("written") - written0 < 10 and time.monotonic() < deadline:
                time.sleep(0.05)  # some points are in before the server goes
            services("down")
            timeline["down"] = time.monotonic() - t0
            time.sleep(4.0)
        except BaseException as e:  # reported by the test thread
            errors.append(e)
        finally:
            try:
                services("up")
                timeline["up"] = time.monotonic() - t0
            except BaseException as e:  # the test thread tries again
                errors.append(e)

    chaos = threading.Thread(target=outage, name="vm-outage")
    chaos.start()
    try:
        run_main(flow)
        timeline["flow_done"] = time.monotonic() - t0
    finally:
        chaos.join(60)
        if "up" not in timeline:  # never leave the harness without its server
            services("up")
    print(f"outage timeline (s): {timeline}")
    assert not errors, errors
    assert timeline["down"] < timeline["up"] < timeline["flow_done"], f"the outage was not mid-run: {timeline}"
    assert sink_count("retried") > retried0, f"no write failed while the server was down: {timeline}"
    assert sink_count("dropped") == dropped0
    n_windows = check_windows(prefix, events, copies=1)
    assert sink_count("written") - written0 >= n_windows
    assert time.monotonic() - t0 < 60, timeline
