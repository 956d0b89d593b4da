"""Encode :class:`~sentinel.models.TelemetryEvent` records as OpenTelemetry spans.

The output is what an OpenTelemetry SDK instrumented with the *current* GenAI
semantic conventions would send, serialised the way the OTel Collector's
exporters write it (DESIGN.md ⚑ Input):

* :func:`events_to_otlp_json` — one ``ExportTraceServiceRequest`` in OTLP/JSON
  (``otlp_json`` encoding, file exporter): camelCase field names, hex trace/span
  ids, int64 values (``*TimeUnixNano``, ``intValue``) as strings, enums as
  integers, zero-valued fields omitted (``"status": {}`` for an unset status).
* :func:`events_to_otlp_proto` — the same request as protobuf bytes
  (``otlp_proto``, what the Kafka exporter puts in each message).
* :func:`events_to_native` — the native event JSON (:meth:`TelemetryEvent.to_dict`).
* :func:`batch_spans` — cut a time-ordered event stream into export batches the
  way the Collector's batch processor does (size *or* timeout, whichever first).

Every event becomes one span: name ``"chat <model>"`` (``"<operation> <model>"``),
kind ``CLIENT``, ``endTimeUnixNano`` = the event timestamp and
``startTimeUnixNano`` = timestamp − latency, so a decoder recovers the latency as
end − start. Attributes::

    gen_ai.operation.name             "chat"
    gen_ai.provider.name              "openai" | "anthropic" | "gcp.gemini" | …
    gen_ai.request.model              event.model
    gen_ai.response.model             attributes["gen_ai.response.model"] or event.model
    gen_ai.usage.input_tokens         int
    gen_ai.usage.output_tokens        int
    gen_ai.response.finish_reasons    ["stop"] (string array)
    gen_ai.response.time_to_first_chunk  seconds (double)
    error.type                        on errors, with span status ERROR (code 2)

On an error the response attributes (response model, usage, finish reasons,
time to first chunk) are left out, as instrumentations do when no response
arrived. Any other ``event.attributes`` are emitted as extra span attributes.
Spans are grouped by service into ``resourceSpans`` (resource ``service.name``),
each with one ``scopeSpans`` (default scope ``sentinel.generator``).

Events without ``trace_id``/``span_id`` get deterministic ids derived from
``id_seed``, the event's position in the sequence and its content, so encoding
the same events twice gives byte-identical output.

Example:
    >>> from sentinel.models import TelemetryEvent
    >>> ev = TelemetryEvent(timestamp=1767571200.5, service="chat-api", model="gpt-4o",
    ...                     latency_ms=1250.0, input_tokens=812, output_tokens=95,
    ...                     provider="openai", operation="chat", finish_reason="stop")
    >>> req = events_to_otlp_json([ev])
    >>> span = req["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    >>> span["name"], span["kind"], span["endTimeUnixNano"], span["startTimeUnixNano"]
    ('chat gpt-4o', 3, '1767571200500000000', '1767571199250000000')
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from sentinel.decode.genai import OTHER_ERROR, STATUS_ERROR
from sentinel.models import TelemetryEvent

__all__ = [
    "DEFAULT_SCOPE_NAME",
    "DEFAULT_SCOPE_VERSION",
    "SPAN_KIND_CLIENT",
    "STATUS_CODE_ERROR",
    "batch_spans",
    "event_ids",
    "events_to_native",
    "events_to_otlp_json",
    "events_to_otlp_proto",
    "events_to_otlp_request",
    "json_value",
    "proto_value",
]

DEFAULT_SCOPE_NAME = "sentinel.generator"
DEFAULT_SCOPE_VERSION = "0.1.0"
SPAN_KIND_CLIENT = 3  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_CLIENT
STATUS_CODE_ERROR = STATUS_ERROR  # opentelemetry.proto.trace.v1.Status.StatusCode.STATUS_CODE_ERROR

# attribute names (current GenAI semantic conventions)
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TTFC = "gen_ai.response.time_to_first_chunk"
ERROR_TYPE = "error.type"
SERVICE_NAME = "service.name"

_OWN_KEYS = frozenset(
    {OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, INPUT_TOKENS, OUTPUT_TOKENS, FINISH_REASONS, TTFC, ERROR_TYPE}
)


# ---------------------------------------------------------------------------- ids and times


def event_ids(event: TelemetryEvent, index: int, id_seed: int = 0) -> tuple[str, str]:
    """``(trace_id, span_id)`` as lowercase hex (32 and 16 digits).

    The event's own ids win; missing ones are derived from ``id_seed``, the
    event's position ``index`` and its identity (service, model, timestamp), so
    they are deterministic and distinct across batches of the same stream.
    """
    trace_id, span_id = event.trace_id, event.span_id
    if trace_id and span_id:
        return trace_id, span_id
    raw = f"{id_seed}\x1f{index}\x1f{event.service}\x1f{event.model}\x1f{event.timestamp!r}"
    digest = hashlib.blake2b(raw.encode(), digest_size=24).hexdigest()
    return trace_id or digest[:32], span_id or digest[32:]


def _nanos(event: TelemetryEvent) -> tuple[int, int]:
    """``(start, end)`` in epoch nanoseconds; end is the event time, start = end − latency."""
    end = round(event.timestamp * 1e9)
    return end - round(max(event.latency_ms, 0.0) * 1e6), end


def _group_by_service(events: Sequence[TelemetryEvent]) -> dict[str, list[tuple[int, TelemetryEvent]]]:
    groups: dict[str, list[tuple[int, TelemetryEvent]]] = {}
    for i, ev in enumerate(events):
        groups.setdefault(ev.service, []).append((i, ev))
    return groups


# ---------------------------------------------------------------------------- OTLP/JSON


def json_value(v: Any) -> dict[str, Any]:
    """An ``AnyValue`` in OTLP/JSON (int64 as string)."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bytes):
        import base64

        return {"bytesValue": base64.b64encode(v).decode("ascii")}
    if isinstance(v, Mapping):
        return {"kvlistValue": {"values": [{"key": str(k), "value": json_value(x)} for k, x in v.items()]}}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [json_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _span_attributes(event: TelemetryEvent) -> list[tuple[str, Any]]:
    """The span's attributes as (key, Python value): one list, rendered as JSON or protobuf."""
    extra = event.attributes
    attrs: list[tuple[str, Any]] = [(OPERATION, event.operation or "chat")]
    if event.provider:
        attrs.append((PROVIDER, event.provider))
    attrs.append((REQUEST_MODEL, event.model))
    if event.is_error:
        attrs.append((ERROR_TYPE, event.error_type or OTHER_ERROR))
    else:
        attrs.append((RESPONSE_MODEL, extra.get(RESPONSE_MODEL) or event.model))
        attrs += [(INPUT_TOKENS, event.input_tokens), (OUTPUT_TOKENS, event.output_tokens)]
        if event.finish_reason:
            attrs.append((FINISH_REASONS, [event.finish_reason]))
        if event.ttft_ms is not None:
            attrs.append((TTFC, event.ttft_ms / 1000.0))
    if extra:
        attrs += [(k, v) for k, v in extra.items() if k not in _OWN_KEYS]
    return attrs


def _json_span(event: TelemetryEvent, index: int, id_seed: int) -> dict[str, Any]:
    trace_id, span_id = event_ids(event, index, id_seed)
    start, end = _nanos(event)
    status: dict[str, Any] = {}
    if event.is_error:
        status["code"] = STATUS_CODE_ERROR
        if event.error_type:
            status["message"] = event.error_type
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": f"{event.operation or 'chat'} {event.model}",
        "kind": SPAN_KIND_CLIENT,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": json_value(v)} for k, v in _span_attributes(event)],
        "status": status,
    }


def _json_resource(service: str, resource_attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    attrs = [{"key": SERVICE_NAME, "value": {"stringValue": service}}]
    if resource_attributes:
        attrs.extend({"key": k, "value": json_value(v)} for k, v in resource_attributes.items() if k != SERVICE_NAME)
    return {"attributes": attrs}


def events_to_otlp_json(
    events: Sequence[TelemetryEvent],
    *,
    scope_name: str = DEFAULT_SCOPE_NAME,
    scope_version: str = DEFAULT_SCOPE_VERSION,
    resource_attributes: Mapping[str, Any] | None = None,
    id_seed: int = 0,
    index_offset: int = 0,
) -> dict[str, Any]:
    """One OTLP/JSON ``ExportTraceServiceRequest`` holding every event, grouped by service.

    ``index_offset`` is the position of ``events[0]`` in the whole stream (used
    only to derive ids for events that have none).
    """
    scope = {"name": scope_name, "version": scope_version}
    resource_spans = []
    for service, items in _group_by_service(events).items():
        spans = [_json_span(ev, index_offset + i, id_seed) for i, ev in items]
        resource_spans.append(
            {
                "resource": _json_resource(service, resource_attributes),
                "scopeSpans": [{"scope": scope, "spans": spans}],
            }
        )
    return {"resourceSpans": resource_spans}


# ---------------------------------------------------------------------------- OTLP/protobuf


def proto_value(v: Any) -> AnyValue:
    """A Python value as a protobuf ``AnyValue`` (the counterpart of :func:`json_value`)."""
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, Mapping):
        kvs = [KeyValue(key=str(k), value=proto_value(x)) for k, x in v.items()]
        return AnyValue(kvlist_value=KeyValueList(values=kvs))
    if isinstance(v, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[proto_value(x) for x in v]))
    return AnyValue(string_value=str(v))


def _fill_proto_span(span: Any, event: TelemetryEvent, index: int, id_seed: int) -> None:
    trace_id, span_id = event_ids(event, index, id_seed)
    start, end = _nanos(event)
    span.trace_id = bytes.fromhex(trace_id)
    span.span_id = bytes.fromhex(span_id)
    span.name = f"{event.operation or 'chat'} {event.model}"
    span.kind = SPAN_KIND_CLIENT
    span.start_time_unix_nano = start
    span.end_time_unix_nano = end
    span.status.SetInParent()  # the Collector always writes a (possibly empty) status
    if event.is_error:
        span.status.code = STATUS_CODE_ERROR
        if event.error_type:
            span.status.message = event.error_type
    span.attributes.extend(KeyValue(key=k, value=proto_value(v)) for k, v in _span_attributes(event))


def events_to_otlp_request(
    events: Sequence[TelemetryEvent],
    *,
    scope_name: str = DEFAULT_SCOPE_NAME,
    scope_version: str = DEFAULT_SCOPE_VERSION,
    resource_attributes: Mapping[str, Any] | None = None,
    id_seed: int = 0,
    index_offset: int = 0,
) -> Any:
    """The ``ExportTraceServiceRequest`` message (see :func:`events_to_otlp_proto`)."""
    req = ExportTraceServiceRequest()
    for service, items in _group_by_service(events).items():
        rs = req.resource_spans.add()
        rs.resource.attributes.append(KeyValue(key=SERVICE_NAME, value=AnyValue(string_value=service)))
        if resource_attributes:
            rs.resource.attributes.extend(
                KeyValue(key=k, value=proto_value(v)) for k, v in resource_attributes.items() if k != SERVICE_NAME
            )
        ss = rs.scope_spans.add()
        ss.scope.name = scope_name
        ss.scope.version = scope_version
        spans = ss.spans
        for i, ev in items:
            _fill_proto_span(spans.add(), ev, index_offset + i, id_seed)
    return req


def events_to_otlp_proto(
    events: Sequence[TelemetryEvent],
    *,
    scope_name: str = DEFAULT_SCOPE_NAME,
    scope_version: str = DEFAULT_SCOPE_VERSION,
    resource_attributes: Mapping[str, Any] | None = None,
    id_seed: int = 0,
    index_offset: int = 0,
) -> bytes:
    """One serialised ``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest``."""
    req = events_to_otlp_request(
        events,
        scope_name=scope_name,
        scope_version=scope_version,
        resource_attributes=resource_attributes,
        id_seed=id_seed,
        index_offset=index_offset,
    )
    data: bytes = req.SerializeToString()
    return data


# ---------------------------------------------------------------------------- native and batching


def events_to_native(events: Iterable[TelemetryEvent]) -> list[dict[str, Any]]:
    """Native event JSON objects (:meth:`TelemetryEvent.to_dict`), one per event."""
    return [ev.to_dict() for ev in events]


def batch_spans(
    events: Iterable[TelemetryEvent],
    max_spans: int = 200,
    timeout_s: float | None = 10.0,
) -> Iterator[list[TelemetryEvent]]:
    """Cut a time-ordered stream into export batches, like the Collector's batch processor.

    A batch is sent when it holds ``max_spans`` spans (``send_batch_size``) or
    when the next span ends ``timeout_s`` or more after the batch's first span
    (the processor's ``timeout``, in event time). ``timeout_s=None`` cuts on
    size only. Order is preserved; every batch is non-empty.
    """
    if max_spans < 1:
        raise ValueError("max_spans must be >= 1")
    batch: list[TelemetryEvent] = []
    first = 0.0
    for ev in events:
        if batch and (len(batch) >= max_spans or (timeout_s is not None and ev.timestamp - first >= timeout_s)):
            yield batch
            batch = []
        if not batch:
            first = ev.timestamp
        batch.append(ev)
    if batch:
        yield batch
