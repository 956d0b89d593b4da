"""The ``sentinel`` command (DESIGN.md ⚑ CLI)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sentinel.models import parse_ts

__all__ = ["main"]


def _die(msg: str, code: int = 2) -> int:
    print(f"sentinel: {msg}", file=sys.stderr)
    return code


# ------------------------------------------------------------------ check-config


def cmd_check_config(args: argparse.Namespace) -> int:
    import orjson

    from sentinel.config import load_settings

    settings = load_settings(args.file)
    if args.show:
        sys.stdout.write(orjson.dumps(settings.dump(), option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"{args.file}: OK", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ run


def cmd_run(args: argparse.Namespace) -> int:
    """Exec ``python -m bytewax.run dataflows.sentinel:flow`` with our settings in the environment."""
    from sentinel.config import CONFIG_ENV, load_settings

    env = dict(os.environ)
    if args.config:
        env[CONFIG_ENV] = str(Path(args.config).resolve())
    settings = load_settings(env.get(CONFIG_ENV))  # fail fast, before starting workers
    argv = [sys.executable, "-m", "bytewax.run", "dataflows.sentinel:flow", "-w", str(args.workers)]
    recovery_dir = args.recovery_dir or settings.recovery.dir
    if recovery_dir:
        rd = Path(recovery_dir)
        if not rd.is_dir() or not any(rd.glob("part-*.sqlite3")):
            return _die(
                f"recovery directory {rd} is not initialised: run `python -m bytewax.recovery {rd} N`"
                " (see recovery/README.md)"
            )
        argv += [
            "-r",
            str(rd),
            "-s",
            str(int(settings.recovery.snapshot_s)),
            "-b",
            str(int(settings.recovery.backup_s)),
        ]
    if args.process_id is not None:
        argv += ["-i", str(args.process_id)]
    if args.addresses:
        argv += ["-a", args.addresses]
    return os.execve(sys.executable, argv, env)


# ------------------------------------------------------------------ backtest


class _ProgressBar:
    """One self-overwriting stderr line: percent, messages, rate, ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last_len = 0

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        frac = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
        rate = p.messages / p.elapsed_s if p.elapsed_s > 0 else 0.0
        eta = (p.elapsed_s / frac - p.elapsed_s) if 0 < frac < 1 else 0.0
        width = 30
        filled = int(width * min(1.0, frac))
        line = (
            f"backtest [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}%  "
            f"{p.messages:,} msgs  {rate:,.0f} msg/s  ETA {eta:4.0f}s"
        )
        pad = " " * max(0, self.last_len - len(line))
        self.last_len = len(line)
        end = "\n" if p.done else ""
        sys.stderr.write("\r" + line + pad + end)
        sys.stderr.flush()


def _parse_offsets(text: str, topics: list[str], partitions: dict[str, int]) -> dict[str, int]:
    """``N`` (every partition) or ``P:N,P:N`` (per partition of the single topic)."""
    from sentinel.sources.kafka import part_key

    if ":" not in text:
        return dict.fromkeys(partitions, int(text))
    out = {}
    for item in text.split(","):
        p, _, n = item.partition(":")
        key = part_key(topics[0], int(p))
        if key not in partitions:
            raise ValueError(f"partition {p} does not exist in topic {topics[0]}")
        out[key] = int(n)
    return out


def _kafka_bounds(args: argparse.Namespace, settings: Any) -> tuple[dict[str, int], dict[str, int]]:
    from sentinel.sources.kafka import end_offsets, offsets_for_time

    ks = settings.kafka
    cfg = ks.librdkafka_config()
    stop = end_offsets(ks.brokers, ks.topics, cfg)
    start: dict[str, int] = {}
    if args.from_offset is not None:
        start = _parse_offsets(args.from_offset, ks.topics, stop)
    elif args.from_time is not None:
        start = offsets_for_time(ks.brokers, ks.topics, int(parse_ts(args.from_time) * 1000), cfg)
    if args.to_time is not None:
        until = offsets_for_time(ks.brokers, ks.topics, int(parse_ts(args.to_time) * 1000), cfg)
        stop = {k: min(v, until.get(k, v)) for k, v in stop.items()}
    return start, stop


def cmd_backtest(args: argparse.Namespace) -> int:
    from bytewax.run import cli_main

    from dataflows.sentinel import SourceOverride, build_flow
    from sentinel import metrics
    from sentinel.config import load_settings
    from sentinel.report import write_report

    out = Path(args.output)
    overrides: dict[str, Any] = {"output": {"dir": out, "console": False, "dlq": "file"}}
    source = None
    if args.input.startswith("kafka://"):
        topic = args.input.removeprefix("kafka://").strip("/")
        if not topic:
            return _die("kafka:// needs a topic: kafka://TOPIC")
        overrides["source"] = {"type": "kafka"}
        # a backtest never writes to the live DLQ topic nor mirrors anomalies (the rest of the
        # kafka section comes from the config: overrides are merged into it key by key)
        overrides["kafka"] = {"topics": [topic], "tail": False, "anomalies_topic": None}
    else:
        inp = Path(args.input)
        if not inp.is_file():
            return _die(f"input file not found: {inp}")
        overrides["source"] = {"type": "file", "path": inp}
    if (args.from_offset or args.from_time or args.to_time) and "kafka" not in overrides:
        return _die("--from-offset/--from-time/--to-time apply to kafka:// input only")
    settings = load_settings(args.config, **overrides)
    if settings.source.type == "kafka":
        try:
            start, stop = _kafka_bounds(args, settings)
        except (RuntimeError, ValueError) as e:
            return _die(f"cannot resolve Kafka offsets: {e}")
        source = SourceOverride(start_offsets=start, stop_offsets=stop)
        total = sum(stop.values()) - sum(start.get(k, 0) for k in stop)
        print(
            f"backtest: {len(stop)} partitions of {settings.kafka.topics[0]}, up to {total:,} messages", file=sys.stderr
        )
    out.mkdir(parents=True, exist_ok=True)  # the JSONL sinks start their files afresh (no recovery state)

    before = metrics.summary()
    bar = _ProgressBar(enabled=not args.quiet)
    flow = build_flow(settings, progress=bar, source=source)
    t0 = time.perf_counter()
    # a backtest always starts from fresh state: no recovery directory, so it never collides with a live job
    cli_main(flow, workers_per_process=args.workers, epoch_interval=timedelta(seconds=10))  # type: ignore[no-untyped-call]
    elapsed = time.perf_counter() - t0
    counts = metrics.summary()
    report = write_report(
        out, counts=_diff(before, counts), elapsed_s=elapsed, labels=args.labels, input_name=args.input
    )
    print(
        f"backtest: {report['events']:,} events in {elapsed:.1f}s ({report['events_per_s']:,.0f} events/s); "
        f"{report['anomalies']:,} anomalies, {report['alerts']:,} alerts, {report['dead_letters']:,} dead letters"
        f" → {out}",
        file=sys.stderr,
    )
    if "labels" in report:
        lab = report["labels"]
        print(f"labels: {json.dumps(lab.get('summary', lab))}", file=sys.stderr)
    return 0


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """b − a, recursively, for the counters of one run within a longer-lived process."""
    out: dict[str, Any] = {}
    for k, v in b.items():
        if isinstance(v, dict):
            out[k] = {kk: vv for kk, vv in _diff(a.get(k, {}), v).items() if vv}
        elif isinstance(v, int | float):
            out[k] = v - a.get(k, 0)
        else:
            out[k] = v
    return out


# ------------------------------------------------------------------ generate


def cmd_generate(argv: Sequence[str]) -> int:
    from sentinel import generate

    return generate.main(list(argv))


# ------------------------------------------------------------------ produce


def cmd_produce(args: argparse.Namespace) -> int:
    from sentinel.config import load_settings
    from sentinel.produce import produce_file

    settings = load_settings(args.config)
    brokers = [b.strip() for b in args.brokers.split(",")] if args.brokers else settings.kafka.brokers
    inp = Path(args.input)
    if not inp.is_file():
        return _die(f"input file not found: {inp}")
    try:
        produce_file(inp, args.topic, brokers, args.format, settings.kafka.librdkafka_config(), progress=not args.quiet)
    except (RuntimeError, ValueError) as e:
        return _die(f"produce failed: {e}", 1)
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sentinel", description="LLM-Sentinel: anomaly detection for LLM telemetry")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the dataflow (as `python -m bytewax.run dataflows.sentinel:flow`)")
    r.add_argument("--config", help="YAML config (else $SENTINEL_CONFIG, else defaults)")
    r.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process")
    r.add_argument("--recovery-dir", help="initialised Bytewax recovery directory")
    r.add_argument("-i", "--process-id", type=int, help="this process's index in a cluster")
    r.add_argument("-a", "--addresses", help="cluster addresses host:port;host:port (all processes)")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("backtest", help="bounded replay of recorded telemetry, with a report")
    b.add_argument("--input", required=True, help="FILE (.jsonl / .jsonl.gz) or kafka://TOPIC")
    b.add_argument("--output", required=True, help="directory for anomalies/alerts/windows/dlq and the report")
    b.add_argument("--config", help="YAML config")
    b.add_argument("--labels", help="labels JSON (from `sentinel generate`) to score the alerts against")
    b.add_argument("--from-offset", help="kafka: start offset N for every partition, or P:N,P:N")
    b.add_argument("--from-time", help="kafka: start at the first message at/after this time (RFC 3339 or epoch s)")
    b.add_argument("--to-time", help="kafka: stop before the first message at/after this time")
    b.add_argument("-w", "--workers", type=int, default=1)
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_backtest)

    # `generate` has its own parser (sentinel.generate.main); listed here for --help
    sub.add_parser("generate", help="labelled synthetic telemetry (OTLP JSON lines + FILE.labels.json)", add_help=False)

    pr = sub.add_parser("produce", help="load a telemetry file into a Kafka topic (as the Collector would)")
    pr.add_argument("--input", required=True, help="OTLP JSON lines or native event JSON lines (.gz ok)")
    pr.add_argument("--topic", required=True)
    pr.add_argument("--brokers", help="host:port,host:port (default: kafka.brokers from config)")
    pr.add_argument("--format", choices=["otlp_proto", "otlp_json", "native"], default="otlp_proto")
    pr.add_argument("--config", help="YAML config (for kafka.config: SASL/TLS)")
    pr.add_argument("-q", "--quiet", action="store_true")
    pr.set_defaults(func=cmd_produce)

    c = sub.add_parser("check-config", help="validate a config file; non-zero exit on errors")
    c.add_argument("file")
    c.add_argument("--show", action="store_true", help="print the effective configuration (secrets masked)")
    c.set_defaults(func=cmd_check_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["generate"]:
        return cmd_generate(argv[1:])
    args = build_parser().parse_args(argv)
    from sentinel.config import ConfigError

    try:
        rc: int = args.func(args)
    except ConfigError as e:  # one line per offending key, from every command
        print(str(e), file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
