"""OTLP protobuf decoding: round trips through the real protobuf classes, and garbage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from sentinel.decode import Decoder, detect_format
from sentinel.decode.otlp_proto import any_value
from sentinel.encode import proto_value
from sentinel.produce import hex_ids_to_base64

T0 = 1_767_225_600_000_000_000
TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
SPAN = bytes.fromhex("00f067aa0ba902b7")


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=proto_value(value))


def build(spans: list[dict[str, Any]], service: str = "billing") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", service))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for i, s in enumerate(spans):
        sp = ss.spans.add()
        sp.trace_id = TRACE
        sp.span_id = SPAN[:-1] + bytes([i])
        sp.name = "chat"
        sp.kind = 3
        sp.start_time_unix_nano = T0
        sp.end_time_unix_nano = T0 + int(s.get("latency_ms", 1000) * 1e6)
        if s.get("error"):
            sp.status.code = Status.STATUS_CODE_ERROR
        sp.attributes.extend(kv(k, v) for k, v in s["attrs"].items())
    return req


def test_round_trip(decoder: Decoder) -> None:
    req = build(
        [
            {
                "attrs": {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4",
                    "gen_ai.response.model": "claude-sonnet-4-20250514",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.response.finish_reasons": ["end_turn"],
                    "gen_ai.response.time_to_first_chunk": 0.4,
                },
                "latency_ms": 3200,
            },
            {"attrs": {"db.system": "postgresql"}},
            {"attrs": {"gen_ai.request.model": "gpt-4o", "error.type": "429"}, "error": True},
        ]
    )
    payload = req.SerializeToString()
    assert detect_format(payload) == "otlp_proto"
    res = decoder.decode(payload, source="llm.telemetry/0/42")
    assert (res.spans, len(res.events), res.skipped, res.dead) == (3, 2, 1, [])
    ev, err = res.events
    assert ev.service == "billing"
    assert ev.model == "claude-sonnet-4"
    assert ev.provider == "anthropic"
    assert (ev.input_tokens, ev.output_tokens) == (1200, 300)
    assert ev.cost_usd == pytest.approx((1200 * 3 + 300 * 15) / 1e6)
    assert ev.latency_ms == pytest.approx(3200.0)
    assert ev.ttft_ms == pytest.approx(400.0)
    assert ev.finish_reason == "end_turn"
    assert ev.timestamp == pytest.approx((T0 + 3.2e9) / 1e9)
    assert ev.trace_id == TRACE.hex()
    assert ev.span_id == "00f067aa0ba90200"
    assert ev.source == "llm.telemetry/0/42"
    assert err.is_error
    assert err.error_type == "429"


def test_same_events_as_json(decoder: Decoder, fixture_bytes: Callable[[str], bytes]) -> None:
    """A Langfuse-derived OTLP JSON fixture, converted to protobuf, decodes to the same events."""
    raw = fixture_bytes("langfuse_csharp_gemini.otlp.json")
    doc = hex_ids_to_base64(orjson.loads(raw))  # protobuf's JSON mapping wants base64 bytes
    proto = json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()
    a, b = decoder.decode(raw), decoder.decode(proto)
    assert b.dead == []
    assert (b.spans, b.skipped, b.unpriced) == (a.spans, a.skipped, a.unpriced)
    assert [e.to_dict() for e in b.events] == [e.to_dict() for e in a.events]


def test_any_value_all_types() -> None:
    v = AnyValue()
    v.kvlist_value.values.append(kv("n", 3))
    v.kvlist_value.values.append(kv("xs", ["a", "b"]))
    v.kvlist_value.values.append(kv("b", True))
    v.kvlist_value.values.append(kv("f", 0.25))
    assert any_value(v) == {"n": 3, "xs": ["a", "b"], "b": True, "f": 0.25}
    assert any_value(AnyValue(bytes_value=b"\x01\xff")) == "01ff"
    assert any_value(AnyValue()) is None


def test_repeated_arrays_are_equal_but_independent() -> None:
    """Small arrays are memoised by their bytes; every caller still gets its own list."""
    first = any_value(kv("xs", ["stop", "length"]).value)
    first.append("changed")
    again = any_value(kv("xs", ["stop", "length"]).value)
    assert again == ["stop", "length"]
    assert any_value(kv("xs", ["length", "stop"]).value) == ["length", "stop"]  # order is part of the bytes
    nested = AnyValue()
    nested.array_value.values.add().array_value.values.add().string_value = "a"
    assert any_value(nested) == [["a"]]
    inner = any_value(nested)[0]
    inner.append("b")
    assert any_value(nested) == [["a"]]  # arrays holding containers are not memoised


def test_newline_brace_prefix_is_still_protobuf(decoder: Decoder) -> None:
    """A request whose first length byte is 123 starts with b'\\n{' and looks like JSON."""
    for pad in range(120):
        req = ExportTraceServiceRequest()
        sp = req.resource_spans.add().scope_spans.add().spans.add()
        sp.start_time_unix_nano, sp.end_time_unix_nano = T0, T0 + 10**9
        sp.attributes.extend([kv("gen_ai.request.model", "gpt-4o"), kv("x", "p" * pad)])
        payload = req.SerializeToString()
        if payload[:2] == b"\n{":
            break
    else:  # pragma: no cover
        pytest.fail("could not build a payload starting with \\n{")
    assert detect_format(payload) == "otlp_proto"
    res = decoder.decode(payload)
    assert len(res.events) == 1
    assert res.dead == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x0a\x05hel", "otlp_proto: not a valid protobuf ExportTraceServiceRequest"),  # truncated
        (b"\x0a\x00", "otlp_proto: ExportTraceServiceRequest has no spans"),
        (b"\x0a\x02\x0a\x00", "otlp_proto: ExportTraceServiceRequest has no spans"),
        (b"\x12\x00", "unrecognised message"),  # auto-detect: not our tag
        (b"\xff\xfe\x00garbage", "unrecognised message: not JSON and not OTLP protobuf (first byte 0xff)"),
    ],
)
def test_garbage_is_one_dead_letter(decoder: Decoder, payload: bytes, reason: str) -> None:
    res = decoder.decode(payload, source="k/1/2")
    assert (res.spans, res.events) == (0, [])
    assert len(res.dead) == 1
    assert res.dead[0].payload == payload
    assert res.dead[0].error.startswith(reason)


def test_truncated_real_request(decoder: Decoder) -> None:
    payload = build([{"attrs": {"gen_ai.request.model": "gpt-4o"}}]).SerializeToString()
    for cut in (1, len(payload) // 2, len(payload) - 1):
        res = decoder.decode(payload[:cut])
        assert (len(res.dead), res.spans, res.events) == (1, 0, []), cut


def test_unknown_top_level_fields_are_refused(make_decoder: Callable[..., Decoder]) -> None:
    payload = build([{"attrs": {"gen_ai.request.model": "gpt-4o"}}]).SerializeToString() + b"\x10\x01"
    res = make_decoder(fmt="otlp_proto").decode(payload)
    assert len(res.dead) == 1
    assert "unknown top-level fields" in res.dead[0].error


def test_forced_proto_refuses_json(make_decoder: Callable[..., Decoder]) -> None:
    res = make_decoder(fmt="otlp_proto").decode(b'{"resourceSpans": []}')
    assert len(res.dead) == 1
    assert res.dead[0].error.startswith("otlp_proto:")
