"""GenAI attribute mapping: one test per family, plus the rules shared by all."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel.config import PrivacySettings
from sentinel.decode.genai import SpanError, SpanMapper, is_llm_span
from sentinel.models import TelemetryEvent
from sentinel.pricing import Pricing
from sentinel.privacy import Masker

START = 1_767_225_600_000_000_000
END = START + 2_500_000_000  # 2.5 s later


def run(mapper: SpanMapper, attrs: dict[str, Any], **kw: Any) -> tuple[TelemetryEvent, bool]:
    kw.setdefault("resource", {"service.name": "chat-api"})
    out = mapper.map(attrs, start_ns=START, end_ns=END, **kw)
    assert out is not None
    return out


def test_current_semconv(mapper: SpanMapper) -> None:
    ev, priced = run(
        mapper,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.time_to_first_chunk": 0.25,
            "gen_ai.input.messages": "secret prompt",
        },
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
    )
    assert priced
    assert ev.service == "chat-api"
    assert ev.model == "gpt-4o"  # the key uses the request model
    assert ev.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert ev.provider == "openai"
    assert ev.operation == "chat"
    assert (ev.input_tokens, ev.output_tokens) == (1000, 200)
    assert ev.cost_usd == pytest.approx((1000 * 2.50 + 200 * 10.00) / 1e6)
    assert ev.finish_reason == "stop"
    assert ev.ttft_ms == pytest.approx(250.0)
    assert ev.latency_ms == pytest.approx(2500.0)
    assert ev.timestamp == pytest.approx(END / 1e9)
    assert not ev.is_error
    assert ev.error_type is None
    assert (ev.trace_id, ev.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "gen_ai.input.messages" not in ev.attributes  # no content by default
    assert "gen_ai.request.model" not in ev.attributes  # it is the event's model already


def test_deprecated_semconv(mapper: SpanMapper) -> None:
    ev, _ = run(
        mapper,
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.prompt_tokens": 300,
            "gen_ai.usage.completion_tokens": 50,
        },
    )
    assert ev.provider == "anthropic"
    assert ev.model == "claude-3-5-haiku-20241022"
    assert (ev.input_tokens, ev.output_tokens) == (300, 50)
    assert ev.cost_usd == pytest.approx((300 * 0.80 + 50 * 4.00) / 1e6)


def test_openllmetry(mapper: SpanMapper) -> None:
    ev, _ = run(
        mapper,
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "llm.request.model": "gpt-4o-mini",
            "llm.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.completion_tokens": 40,
            "llm.usage.total_tokens": 140,
            "gen_ai.usage.cache_read_input_tokens": 64,
            "traceloop.entity.input": "prompt text",
        },
    )
    assert ev.operation == "chat"
    assert ev.model == "gpt-4o-mini"
    assert (ev.input_tokens, ev.output_tokens) == (100, 40)  # input = total − output
    assert ev.attributes["gen_ai.usage.cache_read_input_tokens"] == 64
    assert "traceloop.entity.input" not in ev.attributes


def test_openinference(mapper: SpanMapper) -> None:
    ev, _ = run(
        mapper,
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gemini-1.5-pro-002",
            "llm.provider": "google",
            "llm.system": "vertexai",
            "llm.token_count.prompt": 2000,
            "llm.token_count.completion": 100,
            "llm.token_count.total": 2100,
            "input.value": "hello",
        },
    )
    assert ev.model == "gemini-1.5-pro-002"
    assert ev.provider == "google"
    assert (ev.input_tokens, ev.output_tokens) == (2000, 100)
    assert ev.cost_usd == pytest.approx((2000 * 1.25 + 100 * 5.00) / 1e6)


def test_openinference_llm_kind_without_model_is_a_call(mapper: SpanMapper) -> None:
    ev, priced = run(mapper, {"openinference.span.kind": "LLM", "llm.token_count.prompt": 5})
    assert ev.model == ""
    assert not priced


@pytest.mark.parametrize(
    "attrs",
    [
        {"http.method": "GET", "http.route": "/v1/chat"},
        {"gen_ai.agent.name": "joke_agent", "gen_ai.usage.input_tokens": 502, "gen_ai.usage.output_tokens": 14},
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-5-mini"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        {"openinference.span.kind": "CHAIN", "llm.model_name": "gpt-4o"},
        {"traceloop.span.kind": "workflow", "llm.request.model": "gpt-4o"},
        {"ai.model.id": "gpt-5", "ai.usage.completionTokens": 85},  # Vercel wrapper span
        {},
    ],
)
def test_non_llm_spans_are_skipped(mapper: SpanMapper, attrs: dict[str, Any]) -> None:
    assert not is_llm_span(attrs)
    assert mapper.map(attrs, start_ns=START, end_ns=END) is None


def test_model_without_tokens_is_a_call(mapper: SpanMapper) -> None:
    ev, _ = run(mapper, {"gen_ai.request.model": "gpt-4o", "error.type": "timeout"})
    assert (ev.input_tokens, ev.output_tokens, ev.cost_usd) == (0, 0, 0.0)
    assert ev.is_error
    assert ev.error_type == "timeout"


def test_status_error_without_error_type(mapper: SpanMapper) -> None:
    ev, _ = run(mapper, {"gen_ai.request.model": "gpt-4o"}, status_code=2)
    assert ev.is_error
    assert ev.error_type == "_OTHER"
    ok, _ = run(mapper, {"gen_ai.request.model": "gpt-4o"}, status_code=1)
    assert not ok.is_error


def test_explicit_cost_wins(mapper: SpanMapper) -> None:
    for key in ("gen_ai.usage.cost", "llm.cost.total", "gen_ai.usage.cost_usd"):
        ev, priced = run(
            mapper,
            {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10, key: 0.125},
        )
        assert (ev.cost_usd, priced) == (0.125, True), key


def test_response_model_prices_before_request_model(mapper: SpanMapper) -> None:
    ev, _ = run(
        mapper,
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1_000_000,
        },
    )
    assert ev.cost_usd == pytest.approx(0.15)


def test_unknown_response_model_falls_back_to_request_model(mapper: SpanMapper) -> None:
    ev, priced = run(
        mapper,
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "my-proxy-alias",
            "gen_ai.usage.input_tokens": 1000,
        },
    )
    assert priced
    assert ev.model == "gpt-4o"
    assert ev.cost_usd == pytest.approx(0.0025)


def test_unknown_model_costs_zero_and_is_flagged(mapper: SpanMapper) -> None:
    ev, priced = run(mapper, {"gen_ai.request.model": "acme-llm-7b", "gen_ai.usage.input_tokens": 1000})
    assert ev.cost_usd == 0.0
    assert not priced


def test_service_defaults_to_unknown_service(mapper: SpanMapper) -> None:
    ev, _ = run(mapper, {"gen_ai.request.model": "gpt-4o"}, resource={})
    assert ev.service == "unknown_service"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["length", "stop"], "length"), ('["tool-calls"]', "tool-calls"), ("stop", "stop"), ([], None)],
)
def test_finish_reasons_shapes(mapper: SpanMapper, value: Any, expected: str | None) -> None:
    ev, _ = run(mapper, {"gen_ai.request.model": "gpt-4o", "gen_ai.response.finish_reasons": value})
    assert ev.finish_reason == expected


def test_token_strings_are_accepted(mapper: SpanMapper) -> None:
    ev, _ = run(
        mapper,
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "417", "gen_ai.usage.output_tokens": 53.0},
    )
    assert (ev.input_tokens, ev.output_tokens) == (417, 53)


@pytest.mark.parametrize(
    ("attrs", "fragment"),
    [
        ({"gen_ai.usage.input_tokens": "many"}, "attribute 'gen_ai.usage.input_tokens' must be an integer, got str"),
        ({"gen_ai.usage.output_tokens": 1.5}, "attribute 'gen_ai.usage.output_tokens' must be an integer, got float"),
        ({"gen_ai.usage.cost": "cheap"}, "attribute 'gen_ai.usage.cost' must be a number, got str"),
        ({"gen_ai.response.time_to_first_chunk": True}, "must be a number, got bool"),
    ],
)
def test_bad_values_raise_span_error(mapper: SpanMapper, attrs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpanError, match=fragment.replace("(", r"\(")):
        run(mapper, {"gen_ai.request.model": "gpt-4o", **attrs})


def test_keep_attributes_are_masked_and_redacted(pricing: Pricing) -> None:
    masker = Masker(PrivacySettings(keep_attributes=["user.note", "app.api_key", "deployment.environment.name"]))
    mapper = SpanMapper(pricing, masker, masker.keep_attributes)
    ev, _ = run(
        mapper,
        {"gen_ai.request.model": "gpt-4o", "user.note": "mail bob@example.com", "app.api_key": "sk-abc"},
        resource={"service.name": "svc", "deployment.environment.name": "prod"},
    )
    assert ev.attributes["user.note"] == "mail [EMAIL]"
    assert ev.attributes["app.api_key"] == "[REDACTED]"
    assert ev.attributes["deployment.environment.name"] == "prod"  # resource attributes can be kept too


def test_privacy_disabled_keeps_text(pricing: Pricing) -> None:
    masker = Masker(PrivacySettings(enabled=False, keep_attributes=["user.note"]))
    mapper = SpanMapper(pricing, masker, masker.keep_attributes)
    ev, _ = run(mapper, {"gen_ai.request.model": "gpt-4o", "user.note": "bob@example.com"})
    assert ev.attributes["user.note"] == "bob@example.com"
