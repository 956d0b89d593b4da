"""`sentinel backtest` over a time range of a real topic, and Kafka vs file equivalence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Producer

from sentinel.cli import main
from sentinel.encode import batch_spans, events_to_otlp_json, events_to_otlp_proto
from sentinel.models import format_ts
from tests.flow.factories import T0, normal_stream
from tests.integration.conftest import BROKERS


def test_time_range_returns_exactly_the_anomalies_of_that_range(kafka_topic: Any, tmp_path: Path) -> None:
    topic = kafka_topic(partitions=3)
    rng = np.random.default_rng(77)
    bursts = [(T0 + 3000, T0 + 3300), (T0 + 6600, T0 + 6900)]  # one incident inside the range, one after
    events = normal_stream(
        rng,
        "rag",
        "claude-sonnet-4",
        9000,
        rate=2.0,
        latency_factor=lambda t: 6.0 if any(a <= t < b for a, b in bursts) else 1.0,
    )
    events += normal_stream(rng, "chat", "gpt-4o", 9000, rate=1.0)
    frm, to = T0 + 600, T0 + 5400

    p = Producer({"bootstrap.servers": ",".join(BROKERS)})
    in_range: list[bytes] = []
    for service in ("rag", "chat"):
        mine = [e for e in events if e.service == service]
        for batch in batch_spans(mine, max_spans=50):
            ts = batch[0].timestamp
            p.produce(topic, key=service.encode(), value=events_to_otlp_proto(batch), timestamp=int(ts * 1000))
            if frm <= ts < to:
                in_range.append(orjson.dumps(events_to_otlp_json(batch)))
    assert p.flush(30) == 0

    os.environ["SENTINEL_KAFKA__BROKERS"] = ",".join(BROKERS)
    out = tmp_path / "range"
    assert (
        main(
            [
                "backtest",
                "--input",
                f"kafka://{topic}",
                "--from-time",
                format_ts(frm),
                "--to-time",
                format_ts(to),
                "--output",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    f = tmp_path / "range.jsonl"
    f.write_bytes(b"\n".join(in_range) + b"\n")
    assert main(["backtest", "--input", str(f), "--output", str(tmp_path / "file"), "-q"]) == 0

    def load(d: Path) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in (d / "anomalies.jsonl").read_bytes().splitlines()]

    got, want = load(out), load(tmp_path / "file")
    assert sorted(a["id"] for a in got) == sorted(a["id"] for a in want)
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["counters"]["messages"] == len(in_range)
    # the first burst lies in the range and is found; nothing is reported past the range's end
    assert any(a["service"] == "rag" and a["anomaly_type"].startswith("latency") for a in got)
    # (window anomalies are stamped with their window's end, at most one window past the last event)
    last_event = max(e.timestamp for e in events if frm <= e.timestamp < to + 60)
    from datetime import datetime

    stamps = [datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00")).timestamp() for a in got]
    assert all(frm <= t <= last_event + 60 for t in stamps), (format_ts(min(stamps)), format_ts(max(stamps)))
