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
    "ResourceInfo",
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


# One slot per thing the mapping reads; each attribute key feeds one slot at a rank
# (0 = preferred). A span's attributes are read in one pass: every key is looked up
# once, and a slot keeps the value of its best-ranked non-empty key.
_RESP, _REQ, _PROV, _OP, _IN, _OUT, _TOTAL, _COST, _TTFT, _FINISH, _OI_KIND, _TL_KIND, _ERR = range(13)
_NSLOTS = 13
_SLOT_KEYS: tuple[tuple[str, ...], ...] = (
    RESPONSE_MODEL_KEYS,
    REQUEST_MODEL_KEYS,
    PROVIDER_KEYS,
    OPERATION_KEYS,
    INPUT_TOKEN_KEYS,
    OUTPUT_TOKEN_KEYS,
    TOTAL_TOKEN_KEYS,
    COST_KEYS,
    TTFT_SECONDS_KEYS,
    FINISH_KEYS,
    (OPENINFERENCE_KIND,),
    ("traceloop.span.kind",),
    ("error.type",),
)
_SLOT_OF: dict[str, tuple[int, int]] = {
    k: (slot, rank) for slot, keys in enumerate(_SLOT_KEYS) for rank, k in enumerate(keys)
}
assert len(_SLOT_OF) == sum(map(len, _SLOT_KEYS)), "a key feeds two slots"
# Every span attribute the mapping reads: decoders convert only these (and the kept ones),
# so large unrelated attributes (prompts, HTTP details) cost nothing.
MAPPED_KEYS = frozenset(_SLOT_OF)
_OPERATION_KEY = OPERATION_KEYS[0]  # only gen_ai.operation.name marks wrapper spans


Slots = tuple[list[Any], list[str]]


def _slots(attrs: Mapping[str, Any]) -> Slots:
    """(values, keys) per slot: the best-ranked non-empty value and the key it came from."""
    vals: list[Any] = [None] * _NSLOTS
    keys: list[str] = [""] * _NSLOTS
    slot_of = _SLOT_OF
    for k, v in attrs.items():
        sr = slot_of.get(k)
        if sr is None or v is None or v == "":
            continue
        slot = sr[0]
        cur = keys[slot]
        if not cur or sr[1] < slot_of[cur][1]:
            vals[slot] = v
            keys[slot] = k
    return vals, keys


def _is_call(vals: list[Any], keys: list[str]) -> bool:
    op = vals[_OP]
    if keys[_OP] == _OPERATION_KEY and isinstance(op, str) and op in NON_CALL_OPERATIONS:
        return False
    tl_kind = vals[_TL_KIND]
    if isinstance(tl_kind, str) and tl_kind in NON_CALL_OPERATIONS:
        return False
    kind = vals[_OI_KIND]
    if kind is not None:
        kind_u = _str(kind).upper()
        if kind_u in NON_CALL_OPENINFERENCE_KINDS:
            return False
        if kind_u == "LLM":
            return True
    return vals[_RESP] is not None or vals[_REQ] is not None


def is_llm_span(attrs: Mapping[str, Any]) -> bool:
    """True when the attributes describe one LLM call (see the module docstring)."""
    return _is_call(*_slots(attrs))


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """What the mapping needs from a span's resource, worked out once per resource."""

    service: str
    kept: dict[str, Any]  # the kept attributes the resource carries, masked


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

    def resource(self, attrs: Mapping[str, Any] | None) -> ResourceInfo:
        """The service name and kept attributes of a resource (pass it to :meth:`map`)."""
        service: Any = attrs.get("service.name") if attrs else None
        mask = self._masker.mask_item
        kept = {k: mask(k, v) for k in self._keep if (v := attrs.get(k)) is not None} if attrs else {}
        return ResourceInfo(_str(service) if service else UNKNOWN_SERVICE, kept)

    @staticmethod
    def classify(attrs: Mapping[str, Any]) -> Slots | None:
        """The attributes read into slots if they describe an LLM call, else ``None``."""
        slots = _slots(attrs)
        return slots if _is_call(*slots) else None

    def map(
        self,
        attrs: Mapping[str, Any],
        *,
        start_ns: int,
        end_ns: int,
        status_code: int = 0,
        resource: ResourceInfo | Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        slots: Slots | None = None,
    ) -> tuple[TelemetryEvent, bool] | None:
        """``None`` if not an LLM span, else ``(event, priced)``; raises :class:`SpanError`.

        ``resource`` is best made once per resource with :meth:`resource` (a plain
        attribute mapping is accepted too); ``slots`` is what :meth:`classify` returned
        for ``attrs`` when the caller has classified the span already.
        """
        if slots is None:
            slots = self.classify(attrs)
            if slots is None:
                return None
        vals, keys = slots
        if not isinstance(resource, ResourceInfo):
            resource = self.resource(resource)
        resp_model = vals[_RESP]
        if resp_model is not None:
            resp_model = _str(resp_model)
        req_model = vals[_REQ]
        if req_model is not None:
            req_model = _str(req_model)
        # The key is the model the application asked for: the response model is a dated
        # snapshot (gpt-4o → gpt-4o-2024-08-06) that is absent on failed calls and changes on
        # provider upgrades — keying by it would split one series and send errors elsewhere.
        model = req_model or resp_model or ""

        v = vals[_IN]
        input_tokens = None if v is None else (v if type(v) is int else _int(keys[_IN], v))
        v = vals[_OUT]
        output_tokens = 0 if v is None else (v if type(v) is int else _int(keys[_OUT], v))
        if input_tokens is None:
            v = vals[_TOTAL]
            input_tokens = 0 if v is None else max(_int(keys[_TOTAL], v) - output_tokens, 0)

        priced = True
        v = vals[_COST]
        if v is not None:
            cost = _float(keys[_COST], v)
        else:
            c = self._pricing.cost(resp_model, input_tokens, output_tokens) if resp_model else None
            if c is None and req_model and req_model != resp_model:
                c = self._pricing.cost(req_model, input_tokens, output_tokens)
            if c is None:
                cost, priced = 0.0, False
            else:
                cost = c

        v = vals[_TTFT]
        ttft_ms = None if v is None else (v if type(v) is float else _float(keys[_TTFT], v)) * 1000.0

        err = vals[_ERR]
        is_error = status_code == STATUS_ERROR or err is not None
        error_type = (_str(err) if err else OTHER_ERROR) if is_error else None

        provider = vals[_PROV]
        operation = vals[_OP]
        finish = vals[_FINISH]

        rkept = resource.kept  # masked already, once per resource
        mask = self._masker.mask_item
        kept: dict[str, Any] = {}
        for key in self._keep:
            val = attrs.get(key)
            if val is not None:
                kept[key] = mask(key, val)
            elif rkept and (val := rkept.get(key)) is not None:
                kept[key] = val

        ev = TelemetryEvent(
            end_ns / 1e9,
            resource.service,
            model,
            (end_ns - start_ns) / 1e6,
            input_tokens,
            output_tokens,
            cost,
            is_error,
            error_type,
            None if provider is None else _str(provider),
            None if operation is None else _str(operation),
            ttft_ms,
            None if finish is None else _finish_reason(finish),
            trace_id or None,
            span_id or None,
            kept,
        )
        return ev, priced
