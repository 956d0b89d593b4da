"""The HTTP API of a running flow (a real ``bytewax.run`` process on 127.0.0.1).

The flow (``tests/integration/api_flow.py``) reads phase 1 — two keys, one with a
6× latency incident — then waits at a gate while the test queries the API,
lowers a threshold through ``POST /api/v1/config``, and opens the gate; phase 2
(normal traffic only) then yields latency spikes that carry the *new*
threshold and score below the old one: anomalies only the change produces.
``/metrics`` is scraped at both pauses and reconciled with the output files.
Finally the API is fuzzed from its own OpenAPI spec (schemathesis): no 5xx.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.models import format_ts
from tests.flow.factories import T0, normal_stream, to_messages

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "integration-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
P1_S = 5400.0  # phase 1: 90 min of event time
INCIDENT = (T0 + 3600, T0 + 4200)
P2_T0 = T0 + P1_S + 600  # a gap, so waiting at the gate never makes phase 2 late
P2_S = 1800.0
POLL_S = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_phase(path: Path, events: list[Any]) -> int:
    path.write_bytes(b"".join(m.payload + b"\n" for m in to_messages(events)))
    return len(events)


@dataclass
class Run:
    root: Path
    out: Path
    api: str
    metrics: str
    proc: subprocess.Popen[bytes]
    n1: int
    n2: int

    def jsonl(self, name: str) -> list[dict[str, Any]]:
        p = self.out / f"{name}.jsonl"
        return [orjson.loads(x) for x in p.read_bytes().splitlines() if x.strip()] if p.exists() else []

    def get(self, path: str, auth: bool = True, **params: Any) -> httpx.Response:
        return httpx.get(self.api + path, params=params, headers=AUTH if auth else {}, timeout=10)

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.api + path, json=body, headers=AUTH, timeout=10)

    def scrape(self) -> dict[str, float]:
        text = httpx.get(self.metrics + "/metrics", timeout=10).text
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[s.name] = out.get(s.name, 0.0) + s.value
        return out

    def log_tail(self) -> str:
        return (self.root / "flow.log").read_text(errors="replace")[-4000:]


def wait_for(cond: Callable[[], bool], what: str, run: Run, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            pytest.fail(f"the flow exited ({run.proc.returncode}) while waiting for {what}:\n{run.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if cond():
                return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{run.log_tail()}")


def reconciled(run: Run) -> bool:
    """Counters = files: valid events = window requests + late events; anomalies = anomalies.jsonl lines."""
    m = run.scrape()
    windows = run.jsonl("windows")
    late = len(run.jsonl("late"))
    return (
        m.get("sentinel_events_valid_total", -1) == sum(w["requests"] for w in windows) + late
        and m.get("sentinel_late_events_total", -1) == late
        and m.get("sentinel_anomalies_total", -1) == len(run.jsonl("anomalies"))
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(11)
    n1 = write_phase(
        root / "phase1.jsonl",
        normal_stream(rng, "chat", "gpt-4o", P1_S)
        + normal_stream(
            rng,
            "search",
            "gpt-4o-mini",
            P1_S,
            latency_factor=lambda t: 6.0 if INCIDENT[0] <= t < INCIDENT[1] else 1.0,
        ),
    )
    n2 = write_phase(
        root / "phase2.jsonl",
        normal_stream(rng, "chat", "gpt-4o", P2_S, t0=P2_T0)
        + normal_stream(rng, "search", "gpt-4o-mini", P2_S, t0=P2_T0),
    )
    api_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "API_TEST_DIR": str(root),
        "SENTINEL_OUTPUT__DIR": str(root / "out"),
        "SENTINEL_OUTPUT__CONSOLE": "false",
        "SENTINEL_WINDOWS__LATE_S": "1",
        "SENTINEL_API__ENABLED": "true",
        "SENTINEL_API__PORT": str(api_port),
        "SENTINEL_API__TOKEN": TOKEN,
        "SENTINEL_API__CONTROL_POLL_S": str(POLL_S),
        "SENTINEL_API__BASELINES_INTERVAL_S": "0.5",
        "SENTINEL_API__RATE_LIMIT_PER_S": "10000",
        "SENTINEL_API__RATE_LIMIT_BURST": "10000",
        "SENTINEL_METRICS__ENABLED": "true",
        "SENTINEL_METRICS__PORT": str(metrics_port),
    }
    env.pop("SENTINEL_CONFIG", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(root / "flow.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "tests.integration.api_flow:flow"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    r = Run(root, root / "out", f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}", proc, n1, n2)
    try:
        wait_for(lambda: r.get("/health", auth=False).status_code == 200, "the API", r)
        yield r
    finally:
        (root / "finish").touch()
        (root / "go2").touch()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def test_api_of_a_running_flow(run: Run) -> None:
    # ---------------------------------------------------------- phase 1 processed, flow waiting at the gate
    wait_for(lambda: run.scrape().get("sentinel_events_valid_total") == run.n1, "phase 1", run)
    wait_for(lambda: reconciled(run), "phase-1 counters to reconcile with the files", run)
    m1 = run.scrape()
    assert m1["sentinel_messages_total"] > 0 and m1["sentinel_windows_total"] > 0
    assert run.get("/ready").status_code == 200, run.get("/ready").text

    # anomalies appear, exactly once each (the store is keyed by id), and the filters work
    lines = run.jsonl("anomalies")
    assert lines, "phase 1 has an incident: expected anomalies"
    body = run.get("/api/v1/anomalies", limit=1000).json()
    assert body["count"] == len({a["id"] for a in lines}) == len(lines)
    assert {a["id"] for a in body["anomalies"]} == {a["id"] for a in lines}
    search = run.get("/api/v1/anomalies", service="search", limit=1000).json()["anomalies"]
    assert search and {a["service"] for a in search} == {"search"}
    assert len(search) == sum(a["service"] == "search" for a in lines)
    spikes = run.get("/api/v1/anomalies", service="search", model="gpt-4o-mini", type="latency_spike").json()
    assert spikes["count"] > 0
    assert {(a["anomaly_type"], a["model"]) for a in spikes["anomalies"]} == {("latency_spike", "gpt-4o-mini")}
    sev = spikes["anomalies"][0]["severity"]
    by_sev = run.get("/api/v1/anomalies", severity=sev, limit=1000).json()["anomalies"]
    assert by_sev and all(a["severity"] == sev for a in by_sev)
    assert len(by_sev) == sum(a["severity"] == sev for a in lines)
    since, until = "2026-01-05T09:00:00.000Z", "2026-01-05T09:15:00.000Z"  # the incident: T0+3600 … T0+4200 (+5 min)
    window = run.get("/api/v1/anomalies", since=since, until=until, limit=1000).json()["anomalies"]
    assert window and all(since <= a["timestamp"] < until for a in window)
    assert len(window) == sum(since <= a["timestamp"] < until for a in lines)
    assert run.get("/api/v1/anomalies", limit=2).json()["count"] == min(2, len(lines))

    # unauthorised → 401; the token is never echoed
    assert run.get("/api/v1/anomalies", auth=False).status_code == 401
    bad = httpx.get(run.api + "/api/v1/config", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"

    # learned baselines of a key this process owns; unknown keys are a clear 404
    wait_for(lambda: run.get("/api/v1/baselines/chat/gpt-4o").status_code == 200, "baselines", run)
    b = run.get("/api/v1/baselines/chat/gpt-4o").json()
    assert b["baselines"]["metrics"]["latency"]["n"] > 100 and b["baselines"]["metrics"]["latency"]["expected"] > 0
    nf = run.get("/api/v1/baselines/nobody/none")
    assert nf.status_code == 404 and "nobody/none" in nf.json()["message"]

    # a bad config body → 422 naming the field; nothing changes
    r = run.post("/api/v1/config", {"zscore": {"threshold": -1}})
    assert r.status_code == 422
    assert [f["field"] for f in r.json()["fields"]] == ["zscore.threshold"]
    assert run.get("/api/v1/config").json()["version"] == 0

    # ---------------------------------------------------------- lower the spike threshold at runtime
    r = run.post("/api/v1/config", {"zscore": {"threshold": 0.5}, "spike": {"method": "zscore", "k": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    assert r.json()["changes"]["zscore.threshold"] == {"old": 4.0, "new": 0.5}
    audit = run.get("/api/v1/config/audit").json()["entries"]
    assert audit[0]["version"] == 1 and audit[0]["who"].startswith("bearer#")
    assert audit[0]["changes"]["zscore.threshold"] == {"old": 4.0, "new": 0.5}
    assert run.get("/api/v1/config").json()["settings"]["zscore"]["threshold"] == 0.5
    time.sleep(POLL_S * 3)  # every batch from here on sees version 1
    (run.root / "go2").touch()

    # ---------------------------------------------------------- phase 2 under the new threshold
    wait_for(lambda: run.scrape().get("sentinel_events_valid_total") == run.n1 + run.n2, "phase 2", run)
    wait_for(lambda: reconciled(run), "phase-2 counters to reconcile with the files", run)
    m2 = run.scrape()
    assert m2["sentinel_events_valid_total"] > m1["sentinel_events_valid_total"]
    assert m2["sentinel_windows_total"] > m1["sentinel_windows_total"]
    assert m2["sentinel_config_version"] == 1 and m2["sentinel_config_reloads_total"] >= 1
    assert m2["sentinel_api_requests_total"] > 0

    lines = run.jsonl("anomalies")
    p2 = format_ts(P2_T0)
    per_event = [a for a in lines if a["anomaly_type"] == "latency_spike" and a["detection_method"] == "zscore"]
    before = [a for a in per_event if a["timestamp"] < p2]
    after = [a for a in per_event if a["timestamp"] >= p2]
    assert all(a["threshold"] == 4.0 for a in before), before
    assert after, "the lowered threshold produced no latency spikes on normal phase-2 traffic"
    assert all(a["threshold"] == 0.5 for a in after)
    assert any(a["score"] < 4.0 for a in after), "every new spike would also have passed the old threshold"
    assert {a["service"] for a in after} == {"chat", "search"}
    stored = run.get("/api/v1/anomalies", type="latency_spike", since=p2, limit=1000).json()["anomalies"]
    assert {a["id"] for a in stored} >= {a["id"] for a in after}

    # API latency on the live flow (printed with -s; asserted loosely)
    lat = []
    for _ in range(50):
        t0 = time.perf_counter()
        assert run.get("/api/v1/anomalies", limit=100).status_code == 200
        lat.append(time.perf_counter() - t0)
    p50, p95 = statistics.median(lat) * 1000, sorted(lat)[int(0.95 * len(lat)) - 1] * 1000
    print(f"\nAPI GET /api/v1/anomalies?limit=100 latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert p95 < 1000


def test_fuzz_api_from_its_openapi_spec(run: Run) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(run.api + "/openapi.json")
    failures: list[str] = []
    skipped: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                nonlocal calls
                calls += 1
                resp = case.call(base_url=run.api, headers=AUTH, timeout=10)
                ct = resp.headers.get("content-type") or ""
                ct = ct[0] if isinstance(ct, list) else ct
                if resp.status_code >= 500 or "json" not in ct:
                    failures.append(f"{case.method} {case.formatted_path} → {resp.status_code}: {resp.text[:200]}")

            try:
                check()
            except Exception as e:  # e.g. no negative data can be generated for a parameterless GET
                skipped.append(f"{operation.label} {mode.value}: {type(e).__name__}: {str(e)[:120]}")
    print(f"\nschemathesis: {calls} calls; skipped: {skipped}")
    assert calls > 100
    assert not failures, "\n".join(failures[:20])
    assert run.proc.poll() is None, "the flow died under fuzzing"
    assert run.get("/health", auth=False).status_code == 200
