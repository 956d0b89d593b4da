"""Factory fixtures for the decode tests: decoders and OTLP request builders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sentinel.config import PrivacySettings
from sentinel.decode import Decoder
from sentinel.decode.genai import SpanMapper
from sentinel.encode import json_value
from sentinel.pricing import Pricing
from sentinel.privacy import Masker

FIXTURES = Path(__file__).parent / "fixtures"
T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def json_span(
    attrs: dict[str, Any],
    *,
    start_ns: int = T0_NS,
    latency_ms: float = 1500.0,
    status: int | str | None = None,
    span_id: str = "00f067aa0ba902b7",
    trace_id: str = "4bf92f3577b34da6a3ce929d0e0e4736",
) -> dict[str, Any]:
    sp: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + int(latency_ms * 1e6)),
        "attributes": [{"key": k, "value": json_value(v)} for k, v in attrs.items()],
    }
    sp["status"] = {} if status is None else {"code": status}
    return sp


def json_request(spans: list[dict[str, Any]], service: str | None = "chat-api") -> dict[str, Any]:
    res_attrs = [] if service is None else [{"key": "service.name", "value": {"stringValue": service}}]
    return {
        "resourceSpans": [
            {"resource": {"attributes": res_attrs}, "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}
        ]
    }


@pytest.fixture(scope="session")
def pricing() -> Pricing:
    return Pricing()


@pytest.fixture(scope="session")
def masker() -> Masker:
    return Masker(PrivacySettings())


@pytest.fixture(scope="session")
def decoder(pricing: Pricing, masker: Masker) -> Decoder:
    return Decoder(pricing, masker)


@pytest.fixture(scope="session")
def make_decoder(pricing: Pricing) -> Callable[..., Decoder]:
    def make(fmt: str = "auto", max_message_bytes: int = 4 * 1024 * 1024, **privacy: Any) -> Decoder:
        return Decoder(pricing, Masker(PrivacySettings(**privacy)), fmt=fmt, max_message_bytes=max_message_bytes)

    return make


@pytest.fixture(scope="session")
def mapper(pricing: Pricing, masker: Masker) -> SpanMapper:
    return SpanMapper(pricing, masker)


@pytest.fixture(scope="session")
def fixture_bytes() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def otlp() -> SimpleNamespace:
    """OTLP JSON builders: ``otlp.span(attrs, …)``, ``otlp.request(spans, service=…)``, ``otlp.value(v)``."""
    return SimpleNamespace(span=json_span, request=json_request, value=json_value, T0_NS=T0_NS)
