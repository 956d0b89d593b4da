"""Profile the full LLM-Sentinel flow in-process with cProfile (issue 10).

Usage (services up)::

    .venv/bin/python benchmarks/profile.py                  # → benchmarks/results/profile_before.txt
    .venv/bin/python benchmarks/profile.py --label after    # → profile_after.txt

Fills a fresh Kafka topic exactly like ``throughput.py`` (same cached Collector-style
OTLP protobuf messages, 7 realistic keys by default), then runs ``build_flow``
(``kafka.tail=false``, every detector, windows, dedup and sink on) with ``run_main``
in this process under :mod:`cProfile` — ``run_main`` drives the worker on the calling
thread, so every Python callback the Rust runtime makes is seen. Writes the top
functions by cumulative and by own time, with µs per event (profiler overhead
included: cProfile roughly doubles the cost of call-heavy Python code, so compare
the shares and the before/after lists, not the absolute µs with ``throughput.py``).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

# this file is named profile.py: take its directory off the path before cProfile imports the stdlib `profile`
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
import cProfile  # noqa: E402
import pstats  # noqa: E402

sys.path.append(str(_HERE))
from throughput import (  # noqa: E402
    ROOT,
    cached_messages,
    create_topics,
    delete_exchange,
    delete_topics,
    flow_overrides,
    produce,
    unique,
)


def _table(stats: pstats.Stats, sort: str, top: int, events: int) -> str:
    """The ``top`` rows by ``sort`` as a table with µs/event columns."""
    rows = []
    st = stats.stats  # type: ignore[attr-defined]
    for (file, line, name), (cc, nc, tt, ct, _callers) in st.items():
        rows.append((file, line, name, cc, nc, tt, ct))
    key = 6 if sort == "cumulative" else 5
    rows.sort(key=lambda r: -r[key])
    out = [
        f"{'ncalls':>12} {'tottime_s':>10} {'own_us/ev':>10} {'cumtime_s':>10} {'cum_us/ev':>10}  function",
    ]
    root = str(ROOT) + "/"
    for file, line, name, cc, nc, tt, ct in rows[:top]:
        where = file.replace(root, "").replace(sys.prefix + "/", "")
        calls = f"{nc}/{cc}" if nc != cc else str(nc)
        out.append(
            f"{calls:>12} {tt:>10.3f} {tt / events * 1e6:>10.2f} {ct:>10.3f} {ct / events * 1e6:>10.2f}  "
            f"{where}:{line}({name})"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--label", default="before", help="file name: results/profile_<label>.txt")
    args = ap.parse_args(argv)

    hours = round(max(0.25, min(12.0, args.events / (150_000.0 if args.keys <= 7 else 300_000.0))), 2)
    msgs, info = cached_messages(args.events, args.keys, args.seed, hours)
    topic = unique("bench-prof")
    exchange = unique("bench-prof")
    topics = [topic, f"{topic}.anomalies", f"{topic}.dlq"]
    try:
        create_topics({topic: 4, f"{topic}.anomalies": 1})
        produce(topic, msgs)
        with tempfile.TemporaryDirectory(prefix="sentinel-prof-") as tmp:
            from bytewax.testing import run_main

            from dataflows.sentinel import build_flow
            from sentinel import metrics
            from sentinel.config import load_settings

            settings = load_settings(None, **flow_overrides(topic, Path(tmp), exchange, tail=False))
            flow = build_flow(settings)
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            run_main(flow, epoch_interval=timedelta(seconds=settings.recovery.snapshot_s))
            prof.disable()
            wall = time.perf_counter() - t0
            events = metrics.summary()["events_valid"]
    finally:
        delete_topics(topics)
        delete_exchange(exchange)

    stats = pstats.Stats(prof, stream=io.StringIO())
    total_tt = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    head = [
        f"# cProfile of the full flow (build_flow, one worker, run_main in-process), label '{args.label}'",
        f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; command: benchmarks/profile.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        f"# input: {events:,} events in {info['messages']:,} OTLP protobuf messages "
        f"(~{info['mean_spans_per_message']} spans each), {info['keys']} keys, Kafka 127.0.0.1:9092, 4 partitions",
        f"# wall under the profiler: {wall:.2f} s = {wall / max(events, 1) * 1e6:.1f} µs/event "
        f"(Python time seen by cProfile: {total_tt:.2f} s); profiler overhead inflates call-heavy code ~2x",
        "# own_us/ev = tottime / events, cum_us/ev = cumtime / events",
        "",
    ]
    body = [
        f"## top {args.top} by cumulative time",
        _table(stats, "cumulative", args.top, max(events, 1)),
        "",
        f"## top {args.top} by own time (tottime)",
        _table(stats, "tottime", args.top, max(events, 1)),
        "",
    ]
    path = ROOT / "benchmarks" / "results" / f"profile_{args.label}.txt"
    path.write_text("\n".join(head + body))
    print("\n".join(head + body))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
