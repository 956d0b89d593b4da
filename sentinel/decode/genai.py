"""GenAI span attributes → :class:`~sentinel.models.TelemetryEvent` (DESIGN.md ⚑ Input).

Understands four attribute families, first match wins in this order:

========================  ==========================================================
current semconv           ``gen_ai.provider.name``, ``gen_ai.request.model``,
                          ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` /
                          ``output_tokens``, ``gen_ai.response.finish_reasons``,
                          ``gen_ai.response.time_to_first_chunk`` (s), ``error.type``
deprecated semconv        ``gen_ai.system``, ``gen_ai.usage.prompt_tokens`` /
                          ``completion_tokens``
OpenLLMetry (Traceloop)   ``llm.request.model``, ``llm.response.model``,
                          ``llm.request.type``, ``llm.usage.total_tokens``,
                          ``gen_ai.usage.cache_*``
OpenInference (Arize)     ``llm.model_name``, ``llm.provider``, ``llm.system``,
                          ``llm.token_count.prompt|completion|total``,
                          ``openinference.span.kind``
========================  ==========================================================

A span is an LLM call when it carries one of the model attributes above (or is an
OpenInference ``LLM`` span), unless it is an agent/tool/workflow wrapper
(``gen_ai.operation.name`` ``invoke_agent``, ``create_agent``, ``execute_tool``, …;
OpenInference kinds ``AGENT``, ``CHAIN``, ``TOOL``, …) — those aggregate the calls
they contain and would count them twice. A model without token counts is still a
call (tokens 0), typically a failed one.

The event's ``model`` (half of the ``service|model`` key) is the *request* model —
the stable name the application asked for; the response model (a dated snapshot,
missing on failed calls) is kept as the ``gen_ai.response.model`` attribute.
Cost: an explicit cost attribute wins, else the price table by the *response*
model, else the request model; an unknown model costs 0 and is reported unpriced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sentinel.models import DeadLetter, TelemetryEvent
from sentinel.pricing import Pricing
from sentinel.privacy import Masker

__all__ = [
    "DEFAULT_KEEP_ATTRIBUTES",
    "STATUS_ERROR",
    "DecodeResult",
    "MessageError",
    "SpanError",
    "SpanMapper",
    "is_llm_span",
]

STATUS_ERROR = 2
UNKNOWN_SERVICE = "unknown_service"
OTHER_ERROR = "_OTHER"  # semconv's error.type when no better value is known

RESPONSE_MODEL_KEYS = ("gen_ai.response.model", "llm.response.model")
REQUEST_MODEL_KEYS = ("gen_ai.request.model", "llm.request.model", "llm.model_name", "gen_ai.model.name")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "llm.vendor")
OPERATION_KEYS = ("gen_ai.operation.name", "llm.request.type")
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
TOTAL_TOKEN_KEYS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")
COST_KEYS = ("gen_ai.usage.cost", "gen_ai.usage.cost_usd", "gen_ai.cost.usd", "llm.usage.cost", "llm.cost.total")
TTFT_SECONDS_KEYS = ("gen_ai.response.time_to_first_chunk", "gen_ai.response.time_to_first_token")
FINISH_KEYS = ("gen_ai.response.finish_reasons", "gen_ai.response.finish_reason", "llm.response.finish_reason")
OPENINFERENCE_KIND = "openinference.span.kind"

# Every span attribute the mapping reads: decoders convert only these (and the kept ones),
# so large unrelated attributes (prompts, HTTP details) cost nothing.
MAPPED_KEYS = frozenset(
    RESPONSE_MODEL_KEYS
    + REQUEST_MODEL_KEYS
    + PROVIDER_KEYS
    + OPERATION_KEYS
    + INPUT_TOKEN_KEYS
    + OUTPUT_TOKEN_KEYS
    + TOTAL_TOKEN_KEYS
    + COST_KEYS
    + TTFT_SECONDS_KEYS
    + FINISH_KEYS
    + (OPENINFERENCE_KIND, "traceloop.span.kind", "error.type")
)

# Wrapper spans that contain LLM calls rather than being one.
NON_CALL_OPERATIONS = frozenset(
    {"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "workflow", "agent", "tool", "task"}
)
NON_CALL_OPENINFERENCE_KINDS = frozenset({"AGENT", "CHAIN", "TOOL", "RETRIEVER", "RERANKER", "GUARDRAIL", "EVALUATOR"})

# Kept on every event when present (numbers as they are, text masked). Deliberately short;
# ``PrivacySettings.keep_attributes`` adds more. No prompt or completion content.
DEFAULT_KEEP_ATTRIBUTES: tuple[str, ...] = (
    "gen_ai.response.model",
    "gen_ai.response.id",
    "server.address",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning_tokens",
)


class SpanError(ValueError):
    """One span (or record) that cannot be used; it becomes a dead letter, the rest of the message goes on."""


class MessageError(ValueError):
    """A whole message that cannot be used: exactly one dead letter, no events."""


@dataclass(slots=True)
class DecodeResult:
    """What one message decoded to.

    ``spans`` counts spans (or native records) seen; ``spans == len(events) + skipped
    + (dead letters for individual spans)``. A message that could not be parsed at all
    has ``spans == 0`` and exactly one dead letter. ``unpriced`` counts events whose
    model is not in the price table (their ``cost_usd`` is 0).
    """

    events: list[TelemetryEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    spans: int = 0
    skipped: int = 0
    unpriced: int = 0

    def add(self, mapped: tuple[TelemetryEvent, bool] | None, source: str | None) -> None:
        """Record what :meth:`SpanMapper.map` made of one span."""
        if mapped is None:
            self.skipped += 1
            return
        ev, priced = mapped
        ev.source = source
        self.events.append(ev)
        if not priced:
            self.unpriced += 1

    def span_failed(self, where: str, error: SpanError, payload: bytes, source: str | None) -> None:
        """One span could not be used: a dead letter holding just that span, the rest goes on."""
        self.dead.append(DeadLetter(stage="decode", error=f"{where}: {error}", payload=payload, source=source))


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def _first_key(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return k, v
    return "", None


def _int(key: str, v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                f = 0.5
            if f.is_integer():
                return int(f)
    raise SpanError(f"attribute '{key}' must be an integer, got {type(v).__name__} {v!r:.60}")


def _float(key: str, v: Any) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise SpanError(f"attribute '{key}' must be a number, got {type(v).__name__} {v!r:.60}")


def _str(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _finish_reason(v: Any) -> str | None:
    if isinstance(v, list | tuple):
        return _str(v[0]) if v else None
    if isinstance(v, str):
        if v.startswith("["):  # some SDKs send the JSON text of the array
            try:
                arr = orjson.loads(v)
            except orjson.JSONDecodeError:
                return v
            if isinstance(arr, list):
                return _str(arr[0]) if arr else None
        return v
    return _str(v)


def _model_of(attrs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(response model, request model) as strings or None."""
    resp = _first(attrs, RESPONSE_MODEL_KEYS)
    req = _first(attrs, REQUEST_MODEL_KEYS)
    return (None if resp is None else _str(resp)), (None if req is None else _str(req))


def is_llm_span(attrs: Mapping[str, Any]) -> bool:
    """True when the attributes describe one LLM call (see the module docstring)."""
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str) and op in NON_CALL_OPERATIONS:
        return False
    tl_kind = attrs.get("traceloop.span.kind")
    if isinstance(tl_kind, str) and tl_kind in NON_CALL_OPERATIONS:
        return False
    kind = attrs.get(OPENINFERENCE_KIND)
    if kind is not None:
        kind_u = _str(kind).upper()
        if kind_u in NON_CALL_OPENINFERENCE_KINDS:
            return False
        if kind_u == "LLM":
            return True
    return _first(attrs, RESPONSE_MODEL_KEYS) is not None or _first(attrs, REQUEST_MODEL_KEYS) is not None


class SpanMapper:
    """Turns one span (flattened attributes + timing + status) into a TelemetryEvent.

    Shared by the OTLP JSON and protobuf decoders. ``map`` returns ``None`` for
    spans that are not LLM calls, ``(event, priced)`` otherwise, and raises
    :class:`SpanError` for an LLM span with unusable attribute values.
    """

    __slots__ = ("_keep", "_masker", "_pricing", "wanted")

    def __init__(self, pricing: Pricing, masker: Masker, keep_attributes: Iterable[str] = ()) -> None:
        self._pricing = pricing
        self._masker = masker
        keep = list(DEFAULT_KEEP_ATTRIBUTES)
        for k in keep_attributes:
            if k not in keep:
                keep.append(k)
        self._keep: tuple[str, ...] = tuple(keep)
        #: the span attributes :meth:`map` can read; decoders may skip all others
        self.wanted: frozenset[str] = MAPPED_KEYS | frozenset(keep)

    def map(
        self,
        attrs: Mapping[str, Any],
        *,
        start_ns: int,
        end_ns: int,
        status_code: int = 0,
        resource: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        checked: bool = False,
    ) -> tuple[TelemetryEvent, bool] | None:
        """``None`` if not an LLM span, else ``(event, priced)``; raises :class:`SpanError`.

        ``checked=True`` skips the :func:`is_llm_span` test (the caller already made it).
        """
        if not checked and not is_llm_span(attrs):
            return None
        resp_model, req_model = _model_of(attrs)
        # The key is the model the application asked for: the response model is a dated
        # snapshot (gpt-4o → gpt-4o-2024-08-06) that is absent on failed calls and changes on
        # provider upgrades — keying by it would split one series and send errors elsewhere.
        model = req_model or resp_model or ""

        k, v = _first_key(attrs, INPUT_TOKEN_KEYS)
        input_tokens = None if v is None else _int(k, v)
        k, v = _first_key(attrs, OUTPUT_TOKEN_KEYS)
        output_tokens = 0 if v is None else _int(k, v)
        if input_tokens is None:
            k, v = _first_key(attrs, TOTAL_TOKEN_KEYS)
            input_tokens = 0 if v is None else max(_int(k, v) - output_tokens, 0)

        priced = True
        k, v = _first_key(attrs, COST_KEYS)
        if v is not None:
            cost = _float(k, v)
        else:
            c = self._pricing.cost(resp_model, input_tokens, output_tokens) if resp_model else None
            if c is None and req_model and req_model != resp_model:
                c = self._pricing.cost(req_model, input_tokens, output_tokens)
            if c is None:
                cost, priced = 0.0, False
            else:
                cost = c

        k, v = _first_key(attrs, TTFT_SECONDS_KEYS)
        ttft_ms = None if v is None else _float(k, v) * 1000.0

        err = attrs.get("error.type")
        is_error = status_code == STATUS_ERROR or (err is not None and err != "")
        error_type = (_str(err) if err else OTHER_ERROR) if is_error else None

        provider = _first(attrs, PROVIDER_KEYS)
        operation = _first(attrs, OPERATION_KEYS)
        finish = _first(attrs, FINISH_KEYS)

        service: Any = resource.get("service.name") if resource else None
        if not service:
            service = UNKNOWN_SERVICE

        kept: dict[str, Any] = {}
        for key in self._keep:
            val = attrs.get(key)
            if val is None and resource:
                val = resource.get(key)
            if val is not None:
                kept[key] = val
        if kept:
            kept = self._masker.mask_attributes(kept)

        ev = TelemetryEvent(
            timestamp=end_ns / 1e9,
            service=_str(service),
            model=model,
            latency_ms=(end_ns - start_ns) / 1e6,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            is_error=is_error,
            error_type=error_type,
            provider=None if provider is None else _str(provider),
            operation=None if operation is None else _str(operation),
            ttft_ms=ttft_ms,
            finish_reason=None if finish is None else _finish_reason(finish),
            trace_id=trace_id or None,
            span_id=span_id or None,
            attributes=kept,
        )
        return ev, priced
