"""Decoder: format detection, whole-message failures, and the span-count invariant."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.decode import Decoder, DecodeResult, detect_format


@pytest.mark.parametrize(
    ("payload", "fmt"),
    [
        (b'{"resourceSpans": []}', "otlp_json"),
        (b'  \n{"resource_spans": []}', "otlp_json"),
        (b'{"service": "a"}', "native"),
        (b"[]", "native"),
        (b"\x0a\x02\x0a\x00", "otlp_proto"),
        (b"", None),
        (b"   ", None),
        (b"hello", None),
        (b"\x1f\x8b\x08", None),  # gzip
        (b'{"service": "a", "note": "resourceSpans"}', "native"),  # as the decoder reads it: by shape
        (b'{"resourceSpans": [', None),  # broken JSON is none of ours
    ],
)
def test_detect_format(payload: bytes, fmt: str | None) -> None:
    assert detect_format(payload) == fmt


def assert_one_dead(res: DecodeResult, payload: bytes, source: str | None, reason: str) -> None:
    assert (res.spans, res.events, res.skipped, res.unpriced) == (0, [], 0, 0)
    assert len(res.dead) == 1
    dl = res.dead[0]
    assert (dl.stage, dl.payload, dl.source) == ("decode", payload, source)
    assert reason in dl.error, dl.error


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty message"),
        (b" \r\n\t", "empty message (whitespace only)"),
        (b'{"service": "\xff\xfe"}', "invalid UTF-8 in JSON message"),
        (b'{"resourceSpans": [', "invalid JSON: unexpected end of data"),
        (b"42", "unrecognised message"),
        (b'"text"', "unrecognised message"),
        (b"not json at all", "unrecognised message: not JSON and not OTLP protobuf (first byte n)"),
        (gzip.compress(b"{}"), "unrecognised message"),
        (b'{"resourceSpans": {}}', "otlp_json: resourceSpans must be an array, got dict"),
        (b"{}", "native: missing required field 'service'"),
        (b'\n{"service": "a", "model": ', "invalid JSON: unexpected end of data"),  # "\n{" could be protobuf
    ],
)
def test_unreadable_message_is_one_dead_letter(decoder: Decoder, payload: bytes, reason: str) -> None:
    res = decoder.decode(payload, source="llm.telemetry/3/99")
    if payload == b"{}":  # a native record that fails still counts as one record
        assert res.spans == 1
        assert len(res.dead) == 1
        assert reason in res.dead[0].error
        return
    assert_one_dead(res, payload, "llm.telemetry/3/99", reason)


def test_message_too_large(make_decoder: Callable[..., Decoder]) -> None:
    payload = b'{"resourceSpans": []}' + b" " * 100
    res = make_decoder(max_message_bytes=64).decode(payload, source="s")
    assert_one_dead(res, payload, "s", f"message of {len(payload)} bytes exceeds max_message_bytes 64")


def test_forced_formats(make_decoder: Callable[..., Decoder], otlp: SimpleNamespace) -> None:
    otlp_raw = orjson.dumps(otlp.request([otlp.span({"gen_ai.request.model": "gpt-4o"})]))
    native_raw = b'{"service": "a", "model": "gpt-4o", "latency_ms": 1, "timestamp": 1767225600}'
    assert len(make_decoder(fmt="otlp_json").decode(otlp_raw).events) == 1
    res = make_decoder(fmt="otlp_json").decode(native_raw)
    assert_one_dead(res, native_raw, None, "otlp_json: expected an object with 'resourceSpans'")
    # forced native reads an OTLP request as a (bad) native record
    assert make_decoder(fmt="native").decode(otlp_raw).dead[0].error == "native: missing required field 'service'"
    with pytest.raises(ValueError, match="unknown format"):
        make_decoder(fmt="xml")


def test_accepts_bytearray_and_memoryview(decoder: Decoder) -> None:
    raw = b'{"service": "a", "model": "gpt-4o", "latency_ms": 1, "timestamp": 1767225600}'
    assert len(decoder.decode(bytearray(raw)).events) == 1
    assert len(decoder.decode(memoryview(raw)).events) == 1  # type: ignore[arg-type]


def test_unpriced_is_counted(decoder: Decoder, otlp: SimpleNamespace) -> None:
    spans = [otlp.span({"gen_ai.request.model": m, "gen_ai.usage.input_tokens": 9}) for m in ("gpt-4o", "acme", "zz")]
    res = decoder.decode(orjson.dumps(otlp.request(spans)))
    assert res.unpriced == 2
    assert [e.cost_usd for e in res.events][1:] == [0.0, 0.0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(decoder: Decoder, payload: bytes) -> None:
    res = decoder.decode(payload, source="fuzz")
    if res.spans == 0:  # unreadable: one dead letter (or a valid empty message such as b"[]")
        assert res.events == []
        assert len(res.dead) <= 1
    else:
        assert res.spans == len(res.events) + res.skipped + len(res.dead)


_ATTR = st.sampled_from(
    [
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2},
        {"gen_ai.request.model": "unknown-model"},
        {"llm.model_name": "claude-sonnet-4", "openinference.span.kind": "LLM"},
        {"http.method": "GET"},
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"},
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "NaN-ish"},  # bad → span dead letter
    ]
)


@st.composite
def _request(draw: st.DrawFn) -> dict[str, Any]:
    rss = []
    for _ in range(draw(st.integers(0, 3))):
        scopes = []
        for _ in range(draw(st.integers(0, 3))):
            spans = []
            for _ in range(draw(st.integers(0, 5))):
                attrs = draw(_ATTR)
                sp: dict[str, Any] = {
                    "startTimeUnixNano": str(1_767_225_600_000_000_000),
                    "endTimeUnixNano": str(1_767_225_601_000_000_000),
                    "attributes": [{"key": k, "value": {"stringValue": str(v)}} for k, v in attrs.items()],
                    "status": {"code": draw(st.sampled_from([0, 1, 2, "STATUS_CODE_ERROR"]))},
                }
                if draw(st.booleans()):
                    del sp["endTimeUnixNano"]
                spans.append(sp if draw(st.integers(0, 9)) else "broken")
            scopes.append({"scope": {"name": "s"}, "spans": spans})
        rss.append({"resource": {"attributes": []}, "scopeSpans": scopes})
    return {"resourceSpans": rss}


@settings(max_examples=200, deadline=None)
@given(_request(), st.booleans())
def test_span_count_invariant(decoder: Decoder, req: dict[str, Any], snake: bool) -> None:
    raw = orjson.dumps(req)
    if snake:
        raw = raw.replace(b'"resourceSpans"', b'"resource_spans"').replace(b'"scopeSpans"', b'"scope_spans"')
    res = decoder.decode(raw, source="hyp")
    n = sum(len(ss["spans"]) for rs in req["resourceSpans"] for ss in rs["scopeSpans"])
    assert res.spans == n
    assert res.spans == len(res.events) + res.skipped + len(res.dead)
    assert res.unpriced <= len(res.events)
    assert all(e.source == "hyp" for e in res.events)
    assert all(d.source == "hyp" for d in res.dead)
