"""A real two-process Bytewax cluster on 127.0.0.1, configured exactly as two pods of
k8s/statefulset.yaml: started through docker-entrypoint.sh with the chart's variables
(BYTEWAX_POD_NAME=sentinel-<i>, BYTEWAX_STATEFULSET_NAME, BYTEWAX_HOSTFILE_PATH,
BYTEWAX_WORKERS_PER_PROCESS), one output directory and one recovery directory per process,
reading a 4-partition topic on the real broker. docs/deploy.md records what these show."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from tests.flow.factories import normal_stream
from tests.integration.conftest import BROKERS
from tests.integration.test_kafka import collector_payloads, sdk_spans, workload

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker-entrypoint.sh"
STS = "sentinel"
PARTITIONS = 4
RUN_TIMEOUT_S = 90.0

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ data: one service per partition


@dataclass(frozen=True)
class Produced:
    events_by_service: dict[str, int]
    messages: list[tuple[int, bytes]]  # (partition, payload), in produce order per partition

    @property
    def events(self) -> int:
        return sum(self.events_by_service.values())


def make_workload() -> Produced:
    """workload()'s chat + search (a latency incident) and two more keys: four keys, four partitions."""
    by_service, _ = workload()
    rng = np.random.default_rng(123)
    by_service = {
        **by_service,
        "summarize": normal_stream(rng, "summarize", "claude-3-5-haiku", 7200, rate=1.0),
        "extract": normal_stream(rng, "extract", "gemini-2.0-flash", 7200, rate=1.0),
    }
    messages: list[tuple[int, bytes]] = []
    for partition, (service, events) in enumerate(by_service.items()):
        # each service on its own partition keeps its spans in order and puts data on every partition
        messages += [(partition, p) for p in collector_payloads(sdk_spans(events, service), "otlp_proto")]
    return Produced({s: len(e) for s, e in by_service.items()}, messages)


def produce_partitioned(topic: str, messages: list[tuple[int, bytes]]) -> None:
    p = Producer({"bootstrap.servers": ",".join(BROKERS), "message.max.bytes": 8 * 1024 * 1024})
    for partition, value in messages:
        p.produce(topic, value=value, partition=partition)
    assert p.flush(30) == 0


def halves(messages: list[tuple[int, bytes]]) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """The first and second half of every partition's messages."""
    first: list[tuple[int, bytes]] = []
    second: list[tuple[int, bytes]] = []
    for part in sorted({p for p, _ in messages}):
        msgs = [m for m in messages if m[0] == part]
        first += msgs[: len(msgs) // 2]
        second += msgs[len(msgs) // 2 :]
    return first, second


# ------------------------------------------------------------------ processes


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINEL_", "BYTEWAX_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sentinel_env(topic: str, out: Path, tail: bool, metrics_port: int) -> dict[str, str]:
    return {
        "SENTINEL_SOURCE__TYPE": "kafka",
        "SENTINEL_KAFKA__TOPICS": topic,
        "SENTINEL_KAFKA__TAIL": str(tail).lower(),
        "SENTINEL_KAFKA__BROKERS": ",".join(BROKERS),
        "SENTINEL_OUTPUT__DIR": str(out),
        # console on: each process prints the alerts of the keys it owns and writes its own
        # summary.json at exit (per-process evidence); dead letters to a file, not the shared broker
        "SENTINEL_OUTPUT__CONSOLE": "true",
        "SENTINEL_OUTPUT__DLQ": "file",
        "SENTINEL_METRICS__ENABLED": "true",
        "SENTINEL_METRICS__HOST": "127.0.0.1",
        "SENTINEL_METRICS__PORT": str(metrics_port),  # pods all use 9100 on their own IP
    }


@dataclass
class Proc:
    name: str
    out: Path
    log: Path
    metrics_port: int
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    history: list[int | None] = field(default_factory=list)

    def start(self, *args: str) -> None:
        with open(self.log, "ab") as log:
            log.write(f"\n===== start {' '.join(args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                ["sh", str(ENTRYPOINT), *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            pytest.fail(f"{self.name} did not exit within {timeout:.0f}s:\n{self.tail_log()}")
        self.history.append(rc)
        return rc

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def kill_if_alive(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(10)

    def tail_log(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads((self.out / "summary.json").read_bytes())
        return data


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    made: list[Proc] = []
    yield made
    for p in made:  # never leave a process behind, whatever happened
        p.kill_if_alive()


def make_cluster(
    made: list[Proc], tmp: Path, topic: str, *, workers: int, tail: bool, recovery: bool = False
) -> list[Proc]:
    """Two processes configured as pods sentinel-0 and sentinel-1 of the StatefulSet."""
    hostfile = tmp / "hostfile.txt"  # what the init-hostfile container writes, with local addresses
    hostfile.write_text("".join(f"127.0.0.1:{p}\n" for p in free_ports(2)))
    metrics = free_ports(2)
    cluster = []
    for i in range(2):
        out = tmp / f"out-{i}"
        env = {
            **base_env(),
            **sentinel_env(topic, out, tail, metrics[i]),
            "BYTEWAX_POD_NAME": f"{STS}-{i}",
            "BYTEWAX_STATEFULSET_NAME": STS,
            "BYTEWAX_HOSTFILE_PATH": str(hostfile),
            "BYTEWAX_WORKERS_PER_PROCESS": str(workers),
        }
        if recovery:  # one recovery volume per pod, as the volumeClaimTemplate gives
            env |= {
                "SENTINEL_RECOVERY__DIR": str(tmp / f"recovery-{i}"),
                "SENTINEL_RECOVERY__SNAPSHOT_S": "1",
                "SENTINEL_RECOVERY__BACKUP_S": "0",
                "BYTEWAX_RECOVERY_PARTS": str(PARTITIONS),
            }
        p = Proc(f"{STS}-{i}", out, tmp / f"{STS}-{i}.log", metrics[i], env)
        made.append(p)
        cluster.append(p)
    return cluster


def single_process_run(made: list[Proc], tmp: Path, topic: str) -> Path:
    """The reference: one process (one pod, no cluster variables), bounded run over the whole topic."""
    out = tmp / "single"
    env = {**base_env(), **sentinel_env(topic, out, False, free_ports(1)[0]), "BYTEWAX_WORKERS_PER_PROCESS": "1"}
    p = Proc("single", out, tmp / "single.log", 0, env)
    made.append(p)
    p.start()
    assert p.wait(RUN_TIMEOUT_S) == 0, p.tail_log()
    return out


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


# ------------------------------------------------------------------ outputs


def records(dirs: list[Path], name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in dirs:
        f = d / name
        if f.exists():
            out += [orjson.loads(line) for line in f.read_bytes().splitlines() if line.strip()]
    return out


def window_key(w: dict[str, Any]) -> tuple[str, str, float]:
    return w["service"], w["model"], w["window_start"]


def alert_services(log: Path) -> set[str]:
    """service of every console alert line: `[SEVERITY] <ts> <service>/<model> <type>: …`."""
    out = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("[") and "] " in line:
            parts = line.split("] ", 1)[1].split()
            if len(parts) >= 2 and "/" in parts[1]:
                out.add(parts[1].split("/", 1)[0])
    return out


# ------------------------------------------------------------------ tests


def test_two_process_cluster_consumes_all_partitions_and_matches_one_process(
    kafka_topic: Any, tmp_path: Path, procs: list[Proc]
) -> None:
    topic = kafka_topic(partitions=PARTITIONS, prefix="cluster")
    data = make_workload()
    produce_partitioned(topic, data.messages)
    assert {p for p, _ in data.messages} == set(range(PARTITIONS))

    t0 = time.monotonic()
    cluster = make_cluster(procs, tmp_path, topic, workers=2, tail=False)
    for p in cluster:
        p.start()
    rcs = [p.wait(RUN_TIMEOUT_S) for p in cluster]
    cluster_s = time.monotonic() - t0
    assert rcs == [0, 0], "\n".join(p.tail_log() for p in cluster)
    single = single_process_run(procs, tmp_path, topic)
    print(f"\ncluster run {cluster_s:.1f}s for {data.events} events on {PARTITIONS} partitions")

    dirs = [p.out for p in cluster]
    # --- every partition consumed: per process counters add up to what was produced
    sums = [p.summary() for p in cluster]
    assert sum(s["messages"] for s in sums) == len(data.messages)
    assert sum(s["events_valid"] for s in sums) == data.events
    assert all(s["messages"] > 0 for s in sums), f"a process read no partition: {sums}"
    windows = records(dirs, "windows.jsonl")
    per_service = Counter[str]()
    for w in windows:
        per_service[w["service"]] += w["requests"]
    late = Counter(e["service"] for e in records(dirs, "late.jsonl"))
    # one service per partition: each partition's events are all in the windows (or late)
    assert {s: per_service[s] + late[s] for s in data.events_by_service} == data.events_by_service

    # --- each key processed by exactly one worker: a key split over two workers would emit two
    # partial windows for the same (key, window); each process's window count is whole keys
    keys = Counter(window_key(w) for w in windows)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]
    windows_per_key = Counter((w["service"], w["model"]) for w in windows)
    assert len(windows_per_key) == 4
    proc_windows = [s["windows"] for s in sums]
    counts = list(windows_per_key.values())
    subsets = {sum(c) for r in range(len(counts) + 1) for c in combinations(counts, r)}
    assert all(n in subsets for n in proc_windows), (proc_windows, dict(windows_per_key))
    owners = [alert_services(p.log) for p in cluster]
    assert not owners[0] & owners[1], f"a key alerted from both processes: {owners}"
    # JSONL files are Bytewax FixedPartitionedSink partitions: each is written by exactly one worker
    # (every process creates its files up front, so the other copy stays empty)
    for name in ("anomalies.jsonl", "windows.jsonl", "alerts.jsonl"):
        assert sum((d / name).stat().st_size > 0 for d in dirs) == 1, name
    print(
        f"windows per key {dict(windows_per_key)}; windows per process {proc_windows}; "
        f"alerting keys per process {owners}; messages per process {[s['messages'] for s in sums]}"
    )

    # --- the same anomalies (and windows) as one process
    want = records([single], "anomalies.jsonl")
    got = records(dirs, "anomalies.jsonl")
    assert want, "the incident must be detected"
    assert any(a["service"] == "search" and a["anomaly_type"].startswith("latency") for a in got)
    assert sorted(a["id"] for a in got) == sorted(a["id"] for a in want)
    strip = lambda a: {k: v for k, v in a.items() if k != "detected_at"}  # noqa: E731
    assert sorted(map(strip, got), key=lambda a: a["id"]) == sorted(map(strip, want), key=lambda a: a["id"])
    assert sorted(windows, key=window_key) == sorted(records([single], "windows.jsonl"), key=window_key)


def test_killed_process_stops_the_cluster_and_a_restart_resumes_from_recovery(
    kafka_topic: Any, tmp_path: Path, procs: list[Proc]
) -> None:
    topic = kafka_topic(partitions=PARTITIONS, prefix="cluster-kill")
    data = make_workload()
    first, second = halves(data.messages)
    cluster = make_cluster(procs, tmp_path, topic, workers=1, tail=True, recovery=True)
    for p in cluster:  # what the init-recovery container runs on each pod's volume
        r = subprocess.run(
            ["sh", str(ENTRYPOINT), "init-recovery"], env=p.env, cwd=ROOT, capture_output=True, check=False
        )
        assert r.returncode == 0, r.stderr
    parts = sorted(x.name for x in Path(cluster[0].env["SENTINEL_RECOVERY__DIR"]).glob("part-*.sqlite3"))
    assert parts == [f"part-{i}.sqlite3" for i in range(PARTITIONS)]

    t0 = time.monotonic()
    produce_partitioned(topic, first)
    for p in cluster:
        p.start()

    def consumed() -> float:
        vals = [p.metric("sentinel_messages_total") for p in cluster]
        return sum(v or 0 for v in vals)

    wait_until(lambda: consumed() >= len(first), 60, "the first half to be consumed")
    time.sleep(3)  # a few snapshot intervals (-s 1) past the first half

    # --- SIGKILL one process mid-stream: the survivor cannot go on without it
    cluster[1].signal(signal.SIGKILL)
    assert cluster[1].wait(10) == -signal.SIGKILL
    killed_at = time.monotonic()
    survivor_rc = cluster[0].wait(30)
    survivor_s = time.monotonic() - killed_at
    survivor_log = cluster[0].tail_log(40)
    print(f"\nsurvivor exited rc={survivor_rc} {survivor_s:.1f}s after the kill; log tail:\n{survivor_log}")
    assert survivor_rc != 0, "the surviving process should fail when its peer dies"

    # --- restart both pods (same names, same recovery volumes), then the rest of the data
    for p in cluster:
        p.start()
    produce_partitioned(topic, second)
    single = single_process_run(procs, tmp_path, topic)  # reference over the whole topic
    want_windows = len(records([single], "windows.jsonl"))
    dirs = [p.out for p in cluster]
    # every window but each key's last (open until the drain), and no message read for a while
    wait_until(
        lambda: len(records(dirs, "windows.jsonl")) >= want_windows - len(data.events_by_service),
        60,
        "the restarted cluster to process the second half",
    )
    seen: list[float] = []

    def quiet() -> bool:
        seen.append(consumed())
        return len(seen) > 6 and seen[-1] == seen[-7]

    wait_until(quiet, 30, "the restarted cluster to go idle")
    for p in cluster:  # graceful stop, as Kubernetes does (SIGTERM): the flow drains, sinks flush
        p.signal(signal.SIGTERM)
    rcs = [p.wait(60) for p in cluster]
    elapsed = time.monotonic() - t0
    assert rcs == [0, 0], "\n".join(p.tail_log() for p in cluster)
    print(f"kill/restart scenario {elapsed:.1f}s")

    # --- complete outputs: every expected anomaly, duplicates only as the same id
    want = records([single], "anomalies.jsonl")
    got = records(dirs, "anomalies.jsonl")
    assert {a["id"] for a in got} == {a["id"] for a in want}
    dup = Counter(a["id"] for a in got)
    print(f"anomalies {len(got)} lines, {len(dup)} ids, duplicated ids {sum(n > 1 for n in dup.values())}")
    windows = records(dirs, "windows.jsonl")
    got_w = {window_key(w): w["requests"] for w in windows}
    want_w = {window_key(w): w["requests"] for w in records([single], "windows.jsonl")}
    assert got_w == want_w, "windows differ after the restart from recovery"
