"""Build the bundled sample (sentinel/data/sample.jsonl.gz): labelled synthetic telemetry plus a few
messages a real Collector feed also carries — non-LLM spans (skipped and counted) and broken input
(dead-lettered with a reason) — so `make run` shows every path of the flow.

    python scripts/make_sample.py [--hours 12] [--seed 7] [--rate-scale 0.24]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import orjson

from sentinel import generate

OUT = Path(__file__).resolve().parent.parent / "sentinel" / "data" / "sample.jsonl.gz"


def extras(t_ns: int) -> list[bytes]:
    def attr(k: str, v: object) -> dict[str, object]:
        key = "intValue" if isinstance(v, int) else "stringValue"
        return {"key": k, "value": {key: str(v)}}

    http_span = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "chat-api")]},
                 "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.fastapi"}, "spans": [{
                     "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                     "name": "POST /v1/chat", "kind": 2, "startTimeUnixNano": str(t_ns),
                     "endTimeUnixNano": str(t_ns + 850_000_000),
                     "attributes": [attr("http.request.method", "POST"), attr("http.route", "/v1/chat")]}]}]}]}
    bad_tokens = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "support-bot")]},
                  "scopeSpans": [{"spans": [{
                      "traceId": "6b8efff798038103d269b633813fc60c", "spanId": "fee19b7ec3c1b174",
                      "name": "chat claude-3-5-haiku", "kind": 3, "startTimeUnixNano": str(t_ns),
                      "endTimeUnixNano": str(t_ns + 1_200_000_000),
                      "attributes": [attr("gen_ai.request.model", "claude-3-5-haiku"),
                                     attr("gen_ai.usage.input_tokens", -40)]}]}]}]}
    return [
        orjson.dumps(http_span),
        orjson.dumps(bad_tokens),  # validation: negative tokens
        b'{"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{"name": "trunc',  # cut off
        orjson.dumps({"service": "billing", "model": "gpt-4o", "latency_ms": "fast", "timestamp": t_ns / 1e9}),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate-scale", type=float, default=0.24)
    args = ap.parse_args()
    tmp = OUT.with_suffix(".tmp.gz")
    generate.write(tmp, hours=args.hours, seed=args.seed, rate_scale=args.rate_scale)
    with gzip.open(tmp, "rb") as f:
        lines = f.read().splitlines()
    first = orjson.loads(lines[0])
    t_ns = int(first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["endTimeUnixNano"]) + 3_600_000_000_000
    # the extras go in an hour into the run, between two regular batches
    at = len(lines) // 12
    lines[at:at] = extras(t_ns)
    with gzip.open(OUT, "wb", compresslevel=9) as f:
        f.write(b"\n".join(lines) + b"\n")
    generate.labels_path(tmp).replace(generate.labels_path(OUT))
    tmp.unlink()
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.2f} MB, {len(lines)} messages")


if __name__ == "__main__":
    main()
