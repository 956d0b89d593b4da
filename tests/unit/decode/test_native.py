"""Native event JSON: minimal and full records, timestamps, precise type errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sentinel.decode import Decoder
from sentinel.decode.genai import SpanError
from sentinel.decode.native import parse_timestamp
from sentinel.models import TelemetryEvent

TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z
BASE = {"service": "chat-api", "model": "gpt-4o", "latency_ms": 812.5, "timestamp": TS}


def one(decoder: Decoder, rec: Any) -> TelemetryEvent:
    res = decoder.decode(orjson.dumps(rec), source="f:1")
    assert res.dead == [], res.dead
    assert len(res.events) == 1
    return res.events[0]


def test_minimal_record_is_priced(decoder: Decoder) -> None:
    ev = one(decoder, {**BASE, "input_tokens": 1000, "output_tokens": 100})
    assert ev.key == "chat-api|gpt-4o"
    assert ev.latency_ms == 812.5
    assert ev.timestamp == TS
    assert ev.cost_usd == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert ev.source == "f:1"
    assert not ev.is_error


def test_to_dict_round_trips(decoder: Decoder) -> None:
    ev = TelemetryEvent(
        timestamp=TS + 0.25,
        service="search",
        model="claude-3-5-haiku-20241022",
        latency_ms=420.0,
        input_tokens=50,
        output_tokens=7,
        cost_usd=0.0123,
        is_error=True,
        error_type="timeout",
        provider="anthropic",
        operation="chat",
        ttft_ms=88.0,
        finish_reason="max_tokens",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        attributes={"tier": "gold"},
    )
    back = one(decoder, ev.to_dict())
    back.source = None
    assert back == ev


def test_array_of_records_with_a_bad_one(decoder: Decoder) -> None:
    raw = orjson.dumps([BASE, {**BASE, "latency_ms": "fast"}, 5, {**BASE, "model": "acme-7b"}])
    res = decoder.decode(raw, source="f:9")
    assert (res.spans, len(res.events), len(res.dead), res.skipped, res.unpriced) == (4, 2, 2, 0, 1)
    assert res.dead[0].error == "native: field 'latency_ms' must be a number, got str (record 1)"
    assert res.dead[1].error == "native: record must be an object, got int (record 2)"
    assert orjson.loads(res.dead[0].payload)["latency_ms"] == "fast"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"latency_ms": "12"}, "native: field 'latency_ms' must be a number, got str"),
        ({"latency_ms": True}, "native: field 'latency_ms' must be a number, got bool"),
        ({"service": 5}, "native: field 'service' must be a string, got int"),
        ({"model": None}, "native: missing required field 'model'"),
        ({"timestamp": None}, "native: missing required field 'timestamp'"),
        ({"timestamp": "yesterday"}, "native: field 'timestamp' is not an RFC 3339 time: 'yesterday'"),
        ({"timestamp": [1]}, "native: field 'timestamp' must be an RFC 3339 string or epoch number, got list"),
        ({"input_tokens": 1.5}, "native: field 'input_tokens' must be an integer, got float"),
        ({"output_tokens": "3"}, "native: field 'output_tokens' must be an integer, got str"),
        ({"cost_usd": "0.1"}, "native: field 'cost_usd' must be a number, got str"),
        ({"is_error": "yes"}, "native: field 'is_error' must be a boolean, got str"),
        ({"error": 1}, "native: field 'error' must be a boolean or text, got int"),
        ({"error": {"message": "boom"}}, "native: field 'error' must be a boolean or text, got dict"),
        ({"attributes": []}, "native: field 'attributes' must be an object, got list"),
        ({"ttft_ms": "1"}, "native: field 'ttft_ms' must be a number, got str"),
        ({"trace_id": 7}, "native: field 'trace_id' must be a string, got int"),
    ],
)
def test_wrong_types_are_precise(decoder: Decoder, patch: dict[str, Any], reason: str) -> None:
    raw = orjson.dumps({**BASE, **patch})
    res = decoder.decode(raw, source="f:2")
    assert res.events == []
    assert res.spans == 1
    assert [d.error for d in res.dead] == [reason]
    assert res.dead[0].payload == raw
    assert res.dead[0].source == "f:2"


@pytest.mark.parametrize(
    "value",
    [
        TS,
        int(TS),
        TS * 1e3,
        int(TS * 1e6),
        int(TS) * 10**9,
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00.000Z",
    ],
)
def test_timestamp_forms(value: Any) -> None:
    assert parse_timestamp(value) == pytest.approx(TS)


def test_timestamp_bool_is_refused() -> None:
    with pytest.raises(SpanError, match="got bool"):
        parse_timestamp(True)


def test_error_fields(decoder: Decoder) -> None:
    assert one(decoder, {**BASE, "error": True}).is_error
    ev = one(decoder, {**BASE, "error": "rate_limited"})
    assert ev.is_error
    assert ev.error_type == "rate_limited"
    assert not one(decoder, {**BASE, "is_error": False, "error": True}).is_error  # is_error wins


def test_explicit_cost_and_masked_attributes(decoder: Decoder) -> None:
    ev = one(decoder, {**BASE, "cost_usd": 0.5, "attributes": {"note": "call 415-555-2671", "password": "x"}})
    assert ev.cost_usd == 0.5
    assert ev.attributes == {"note": "call [PHONE]", "password": "[REDACTED]"}


def test_unknown_fields_are_ignored(decoder: Decoder) -> None:
    assert one(decoder, {**BASE, "window": 3, "extra": {"a": 1}}).model == "gpt-4o"
