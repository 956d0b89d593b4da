"""OTLP JSON decoding: real (Langfuse-derived) fixtures, encodings variants, bad spans."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from sentinel.decode import Decoder
from sentinel.decode.otlp_json import any_value, flatten_attributes, hex_id

# Costs Langfuse computed for the same generations (its own price table); ours must agree.
LANGFUSE = {
    "langfuse_pydantic_ai.otlp.json": {
        "spans": 12,
        "events": {
            "00d2804abb764b1b": (417, 53, 9.435e-05),
            "eb0cc14cf7943ad5": (131, 69, 6.105e-05),
            "8976b072313c51f2": (502, 14, 8.37e-05),
            "be64c23f44dd98be": (265, 73, 8.355e-05),
        },
    },
    "langfuse_microsoft_agent.otlp.json": {  # invoke_agent wrapper + execute_tool skipped
        "spans": 4,
        "events": {"2406e8343fd49c0e": (77, 86, 0.00019125), "b0913e7cd82d72b8": (216, 20, 9.4e-05)},
    },
    "langfuse_vercel_aisdk.otlp.json": {  # ai.generateText wrapper (no gen_ai.*) skipped
        "spans": 3,
        "events": {"91a17a2274bfd23f": (62, 85, 0.0009275)},
    },
    "langfuse_csharp_gemini.otlp.json": {
        "spans": 8,
        "events": {
            "50d470aa18418652": (3004, 167, 0.0013187),
            "c651c1dac855f97e": (2546, 47, 0.0008813),
            "cb394d8e10fdda0f": (2497, 200, 0.0012491),
        },
    },
}


@pytest.mark.parametrize("name", sorted(LANGFUSE))
def test_langfuse_fixtures(decoder: Decoder, fixture_bytes: Callable[[str], bytes], name: str) -> None:
    want = LANGFUSE[name]
    res = decoder.decode(fixture_bytes(name), source=f"{name}:1")
    assert res.dead == []
    assert res.spans == want["spans"]
    assert res.skipped == res.spans - len(res.events)
    assert res.unpriced == 0
    got = {ev.span_id: (ev.input_tokens, ev.output_tokens, ev.cost_usd) for ev in res.events}
    assert got.keys() == want["events"].keys()
    for sid, (i, o, cost) in want["events"].items():
        assert got[sid][:2] == (i, o)
        assert got[sid][2] == pytest.approx(cost, rel=1e-6)
    for ev in res.events:
        assert ev.source == f"{name}:1"
        assert ev.latency_ms > 0
        assert ev.timestamp > 1.7e9
        assert re.fullmatch(r"[0-9a-f]{32}", ev.trace_id or "")


def test_csharp_fixture_details(decoder: Decoder, fixture_bytes: Callable[[str], bytes]) -> None:
    ev = decoder.decode(fixture_bytes("langfuse_csharp_gemini.otlp.json")).events[0]
    assert ev.service == "agentic-clientinsights"
    assert ev.provider == "gcp.vertex_ai"
    assert ev.model == "gemini-2.5-flash"
    assert ev.finish_reason == "stop"  # sent as the JSON text '["stop"]'
    assert ev.latency_ms == pytest.approx(3398.0)


def _snake(s: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", s).lower()


def _to_snake(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {_snake(k): _to_snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_snake(x) for x in obj]
    return obj


def test_snake_case_variant_decodes_the_same(decoder: Decoder, fixture_bytes: Callable[[str], bytes]) -> None:
    raw = fixture_bytes("langfuse_pydantic_ai.otlp.json")
    snake = orjson.dumps(_to_snake(orjson.loads(raw)))
    assert b'"resource_spans"' in snake
    assert b'"start_time_unix_nano"' in snake
    assert b'"string_value"' in snake
    a, b = decoder.decode(raw), decoder.decode(snake)
    assert b.dead == []
    assert (b.spans, b.skipped) == (a.spans, a.skipped)
    assert [e.to_dict() for e in b.events] == [e.to_dict() for e in a.events]


def test_instrumentation_library_spans(decoder: Decoder, otlp: SimpleNamespace) -> None:
    req = otlp.request([otlp.span({"gen_ai.request.model": "gpt-4o"})])
    rs = req["resourceSpans"][0]
    rs["instrumentationLibrarySpans"] = rs.pop("scopeSpans")
    res = decoder.decode(orjson.dumps(req))
    assert len(res.events) == 1
    assert res.events[0].service == "chat-api"


def test_any_value_types() -> None:
    assert any_value({"stringValue": "x"}) == "x"
    assert any_value({"intValue": "9007199254740993"}) == 9007199254740993
    assert any_value({"intValue": 42}) == 42
    assert any_value({"doubleValue": 0.5}) == 0.5
    assert any_value({"doubleValue": "NaN"}) != any_value({"doubleValue": "NaN"})  # NaN
    assert any_value({"boolValue": True}) is True
    assert any_value({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}) == ["a", 1]
    assert any_value({"arrayValue": {}}) == []
    assert any_value({"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": False}}]}}) == {"k": False}
    assert any_value({"int_value": "7"}) == 7
    assert any_value({"bytesValue": "AAE="}) == "0001"  # hex, as the protobuf decoder gives bytes
    assert any_value({"bytesValue": "not base64!"}) == "not base64!"
    assert any_value({}) is None
    assert any_value("bare") == "bare"


def test_flatten_attributes_names_the_bad_key() -> None:
    assert flatten_attributes([{"key": "a", "value": {}}, {"key": "b"}]) == {"a": None, "b": None}
    with pytest.raises(ValueError, match="attribute 'n': invalid value"):
        flatten_attributes([{"key": "n", "value": {"intValue": "twelve"}}])


def test_hex_id() -> None:
    assert hex_id("4BF92F3577B34DA6A3CE929D0E0E4736") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert hex_id("S/kvNXezTaajzpKdDg5HNg==") == "4bf92f3577b34da6a3ce929d0e0e4736"  # base64 (protobuf JSON)
    assert hex_id("") is None


@pytest.mark.parametrize("status", [2, "STATUS_CODE_ERROR", "2"])
def test_status_error_forms(decoder: Decoder, otlp: SimpleNamespace, status: Any) -> None:
    req = otlp.request([otlp.span({"gen_ai.request.model": "gpt-4o"}, status=status)])
    ev = decoder.decode(orjson.dumps(req)).events[0]
    assert ev.is_error
    assert ev.error_type == "_OTHER"


def test_int_times_and_values(decoder: Decoder, otlp: SimpleNamespace) -> None:
    sp = otlp.span({"gen_ai.request.model": "gpt-4o"}, latency_ms=250.0)
    sp["startTimeUnixNano"] = int(sp["startTimeUnixNano"])
    sp["endTimeUnixNano"] = int(sp["endTimeUnixNano"])
    sp["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": 12}})
    ev = decoder.decode(orjson.dumps(otlp.request([sp]))).events[0]
    assert ev.latency_ms == pytest.approx(250.0)
    assert ev.input_tokens == 12


def test_bad_span_is_its_own_dead_letter(decoder: Decoder, otlp: SimpleNamespace) -> None:
    good = otlp.span({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10})
    other = otlp.span({"http.method": "GET"})
    bad = otlp.span({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "lots"})
    no_end = otlp.span({"gen_ai.request.model": "gpt-4o"})
    del no_end["endTimeUnixNano"]
    res = decoder.decode(orjson.dumps(otlp.request([good, other, bad, no_end, "junk"])), source="t/0/7")
    assert (res.spans, len(res.events), res.skipped, len(res.dead)) == (5, 1, 1, 3)
    assert res.spans == len(res.events) + res.skipped + len(res.dead)
    reasons = [d.error for d in res.dead]
    assert reasons[0].startswith("otlp_json: resourceSpans[0].scopeSpans[0].spans[2]: attribute")
    assert "no startTimeUnixNano/endTimeUnixNano" in reasons[1]
    assert "span must be an object, got str" in reasons[2]
    # the dead letter is a replayable one-span request
    replay = decoder.decode(res.dead[0].payload)
    assert replay.spans == 1
    assert len(replay.dead) == 1
    assert replay.dead[0].error.split("]: ", 1)[1] == reasons[0].split("]: ", 1)[1]
    assert all(d.source == "t/0/7" and d.stage == "decode" for d in res.dead)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"resourceSpans": 5}, "otlp_json: resourceSpans must be an array, got int"),
        ({"resourceSpans": [7]}, "otlp_json: resourceSpans[0] must be an object, got int"),
        ({"resourceSpans": [{"scopeSpans": {}}]}, "otlp_json: resourceSpans[0].scopeSpans must be an array, got dict"),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]},
            "otlp_json: resourceSpans[0].scopeSpans[0].spans must be an array, got str",
        ),
        (
            {"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"intValue": "x"}}]}}]},
            "otlp_json: resourceSpans[0].resource: attribute 'k': invalid value",
        ),
    ],
)
def test_broken_envelope_is_one_dead_letter(decoder: Decoder, doc: dict[str, Any], reason: str) -> None:
    raw = orjson.dumps(doc)
    res = decoder.decode(raw, source="f:3")
    assert (res.spans, res.events, res.skipped) == (0, [], 0)
    assert len(res.dead) == 1
    assert res.dead[0].payload == raw
    assert res.dead[0].source == "f:3"
    assert res.dead[0].error.startswith(reason)


def test_empty_request_is_not_an_error(decoder: Decoder) -> None:
    res = decoder.decode(b'{"resourceSpans": []}')
    assert (res.spans, res.events, res.dead) == (0, [], [])
