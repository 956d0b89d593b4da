"""OTLP encoding of TelemetryEvents (sentinel.encode)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sentinel.encode import (
    batch_spans,
    event_ids,
    events_to_native,
    events_to_otlp_json,
    events_to_otlp_proto,
)
from sentinel.models import TelemetryEvent
from sentinel.produce import hex_ids_to_base64

T0 = 1767571200.0  # 2026-01-05T00:00:00Z


def _event(i: int = 0, **kw: Any) -> TelemetryEvent:
    base: dict[str, Any] = {
        "timestamp": T0 + i * 0.25,
        "service": "chat-api",
        "model": "gpt-4o",
        "latency_ms": 1234.5 + i,
        "input_tokens": 800 + i,
        "output_tokens": 95,
        "cost_usd": 0.003,
        "provider": "openai",
        "operation": "chat",
        "ttft_ms": 321.0,
        "finish_reason": "stop",
        "attributes": {"gen_ai.response.model": "gpt-4o-2024-08-06"},
    }
    base.update(kw)
    return TelemetryEvent(**base)


def _mixed_events() -> list[TelemetryEvent]:
    return [
        _event(0),
        _event(1, service="code-assistant", model="claude-sonnet-4", provider="anthropic", attributes={}),
        _event(2, is_error=True, error_type="rate_limit_exceeded", input_tokens=0, output_tokens=0, ttft_ms=None),
        _event(3, trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331"),
        _event(4, attributes={"app.user_tier": "pro", "app.retries": 2, "app.cached": False, "app.temp": 0.7}),
    ]


def _parse_otlp_json(doc: dict[str, Any]) -> Any:
    msg = ExportTraceServiceRequest()
    json_format.Parse(orjson.dumps(hex_ids_to_base64(doc)), msg)
    return msg


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in span["attributes"]}


def _spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def test_json_parses_as_export_trace_service_request() -> None:
    doc = events_to_otlp_json(_mixed_events())
    msg = _parse_otlp_json(doc)
    assert sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans) == 5


def test_json_and_proto_encode_the_same_request() -> None:
    events = _mixed_events()
    from_json = _parse_otlp_json(events_to_otlp_json(events, id_seed=3))
    from_proto = ExportTraceServiceRequest()
    from_proto.ParseFromString(events_to_otlp_proto(events, id_seed=3))
    assert from_json == from_proto


def test_json_is_otlp_json_shaped() -> None:
    doc = events_to_otlp_json([_event(0)])
    text = orjson.dumps(doc).decode()
    assert "resource_spans" not in text  # camelCase, not the proto field names
    span = _spans(doc)[0]
    assert isinstance(span["startTimeUnixNano"], str)
    assert isinstance(span["endTimeUnixNano"], str)
    assert len(span["traceId"]) == 32
    assert len(span["spanId"]) == 16
    int(span["traceId"], 16), int(span["spanId"], 16)
    assert span["kind"] == 3  # SPAN_KIND_CLIENT, enums as integers
    assert span["status"] == {}
    assert _attrs(span)["gen_ai.usage.input_tokens"] == {"intValue": "800"}


def test_span_times_end_at_event_time_and_start_latency_earlier() -> None:
    ev = _event(0, timestamp=T0 + 0.5, latency_ms=1250.0)
    span = _spans(events_to_otlp_json([ev]))[0]
    assert span["endTimeUnixNano"] == "1767571200500000000"
    assert span["startTimeUnixNano"] == "1767571199250000000"
    assert (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6 == pytest.approx(1250.0)


def test_genai_semconv_attributes() -> None:
    doc = events_to_otlp_json([_event(0)], scope_name="my.scope")
    rs = doc["resourceSpans"][0]
    assert rs["resource"]["attributes"] == [{"key": "service.name", "value": {"stringValue": "chat-api"}}]
    assert rs["scopeSpans"][0]["scope"]["name"] == "my.scope"
    span = rs["scopeSpans"][0]["spans"][0]
    assert span["name"] == "chat gpt-4o"
    a = _attrs(span)
    assert a["gen_ai.operation.name"] == {"stringValue": "chat"}
    assert a["gen_ai.provider.name"] == {"stringValue": "openai"}
    assert a["gen_ai.request.model"] == {"stringValue": "gpt-4o"}
    assert a["gen_ai.response.model"] == {"stringValue": "gpt-4o-2024-08-06"}
    assert a["gen_ai.usage.output_tokens"] == {"intValue": "95"}
    assert a["gen_ai.response.finish_reasons"] == {"arrayValue": {"values": [{"stringValue": "stop"}]}}
    assert a["gen_ai.response.time_to_first_chunk"] == {"doubleValue": pytest.approx(0.321)}
    assert "error.type" not in a
    assert "gen_ai.system" not in a  # deprecated names are not written


def test_response_model_defaults_to_request_model() -> None:
    span = _spans(events_to_otlp_json([_event(0, attributes={})]))[0]
    assert _attrs(span)["gen_ai.response.model"] == {"stringValue": "gpt-4o"}


def test_error_span_has_error_type_and_status_error() -> None:
    ev = _event(0, is_error=True, error_type="timeout", input_tokens=0, output_tokens=0, ttft_ms=None)
    span = _spans(events_to_otlp_json([ev]))[0]
    assert span["status"] == {"code": 2, "message": "timeout"}
    a = _attrs(span)
    assert a["error.type"] == {"stringValue": "timeout"}
    assert "gen_ai.usage.output_tokens" not in a
    assert "gen_ai.response.time_to_first_chunk" not in a
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(events_to_otlp_proto([ev]))
    assert msg.resource_spans[0].scope_spans[0].spans[0].status.code == 2


def test_extra_attributes_keep_their_types() -> None:
    ev = _event(0, attributes={"a.s": "x", "a.i": 7, "a.b": True, "a.f": 0.5, "a.l": ["p", "q"]})
    a = _attrs(_spans(events_to_otlp_json([ev]))[0])
    assert a["a.s"] == {"stringValue": "x"}
    assert a["a.i"] == {"intValue": "7"}
    assert a["a.b"] == {"boolValue": True}
    assert a["a.f"] == {"doubleValue": 0.5}
    assert a["a.l"] == {"arrayValue": {"values": [{"stringValue": "p"}, {"stringValue": "q"}]}}


def test_resource_spans_grouped_by_service() -> None:
    events = _mixed_events()
    doc = events_to_otlp_json(events)
    services = [rs["resource"]["attributes"][0]["value"]["stringValue"] for rs in doc["resourceSpans"]]
    assert services == ["chat-api", "code-assistant"]
    assert [len(rs["scopeSpans"][0]["spans"]) for rs in doc["resourceSpans"]] == [4, 1]


def test_resource_attributes_are_added() -> None:
    doc = events_to_otlp_json([_event(0)], resource_attributes={"deployment.environment.name": "prod"})
    keys = [a["key"] for a in doc["resourceSpans"][0]["resource"]["attributes"]]
    assert keys == ["service.name", "deployment.environment.name"]


def test_ids_kept_when_present_and_deterministic_when_missing() -> None:
    events = _mixed_events()
    a = _spans(events_to_otlp_json(events))
    b = _spans(events_to_otlp_json(copy.deepcopy(events)))
    assert a == b
    kept = [s for s in a if s["traceId"] == "0af7651916cd43dd8448eb211c80319c"]
    assert kept
    assert kept[0]["spanId"] == "b7ad6b7169203331"
    assert len({s["spanId"] for s in a}) == len(a)
    other_seed = _spans(events_to_otlp_json(events, id_seed=1))
    assert {s["spanId"] for s in a} != {s["spanId"] for s in other_seed}


def test_ids_differ_across_batches_of_one_stream() -> None:
    events = [_event(0, timestamp=T0) for _ in range(4)]  # identical content
    ids = {event_ids(ev, i) for i, ev in enumerate(events)}
    assert len(ids) == 4
    first = _spans(events_to_otlp_json(events[:2]))
    second = _spans(events_to_otlp_json(events[2:], index_offset=2))
    assert {s["spanId"] for s in first}.isdisjoint({s["spanId"] for s in second})


def test_proto_bytes_parse_back_with_attributes() -> None:
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(events_to_otlp_proto([_event(0)]))
    rs = msg.resource_spans[0]
    assert rs.resource.attributes[0].key == "service.name"
    span = rs.scope_spans[0].spans[0]
    assert len(span.trace_id) == 16
    assert len(span.span_id) == 8
    assert span.kind == 3
    attrs = {kv.key: kv.value for kv in span.attributes}
    assert attrs["gen_ai.usage.input_tokens"].int_value == 800
    assert attrs["gen_ai.response.time_to_first_chunk"].double_value == pytest.approx(0.321)
    assert [v.string_value for v in attrs["gen_ai.response.finish_reasons"].array_value.values] == ["stop"]


def test_empty_request() -> None:
    assert events_to_otlp_json([]) == {"resourceSpans": []}
    assert events_to_otlp_proto([]) == b""


def test_native_is_to_dict() -> None:
    events = _mixed_events()
    assert events_to_native(events) == [ev.to_dict() for ev in events]
    orjson.dumps(events_to_native(events))


def test_batch_spans_cuts_on_size() -> None:
    events = [_event(i) for i in range(10)]
    batches = list(batch_spans(events, max_spans=4, timeout_s=None))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [ev for b in batches for ev in b] == events


def test_batch_spans_cuts_on_event_time_timeout() -> None:
    events = [_event(0, timestamp=T0 + t) for t in (0.0, 1.0, 4.9, 5.0, 5.1, 12.0)]
    batches = list(batch_spans(events, max_spans=100, timeout_s=5.0))
    assert [len(b) for b in batches] == [3, 2, 1]


def test_batch_spans_edge_cases() -> None:
    assert list(batch_spans([], max_spans=3)) == []
    with pytest.raises(ValueError, match="max_spans"):
        list(batch_spans([_event(0)], max_spans=0))


def test_values_round_trip_through_the_decoders() -> None:
    from sentinel.decode import otlp_json, otlp_proto
    from sentinel.encode import json_value, proto_value

    value = {"n": 3, "f": 0.25, "ok": True, "xs": ["a", "b"], "nested": {"k": "v"}}
    assert otlp_proto.any_value(proto_value(b"\x01\xff")) == otlp_json.any_value(json_value(b"\x01\xff")) == "01ff"
    assert otlp_proto.any_value(proto_value(value)) == value
    assert otlp_json.any_value(json_value(value)) == value
