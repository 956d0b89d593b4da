"""OTLP protobuf ``ExportTraceServiceRequest`` → events (Collector ``otlp_proto``).

Protobuf has no magic number and a lenient wire format: arbitrary bytes can parse
"successfully" into a message made of unknown fields. A payload counts as OTLP
protobuf only if it parses, has no unknown top-level fields, has at least one
``resource_spans`` entry and at least one span; anything else is a whole-message
dead letter.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sentinel.decode.genai import DecodeResult, MessageError, SpanError, SpanMapper

__all__ = ["any_value", "decode_otlp_proto", "flatten_attributes", "parse_request"]


def any_value(v: Any) -> Any:
    """The Python value of one protobuf ``AnyValue`` (``None`` when unset)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return _array(v)
    if kind == "kvlist_value":
        return flatten_attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return None


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})

# Arrays repeat from span to span (``gen_ai.response.finish_reasons: ["stop"]``) and are
# the dearest values to convert (a protobuf wrapper per element). Serialising one back is
# cheap, so small arrays of scalars are memoised by their bytes: the conversion is a pure
# function of them. Bounded; a copy is handed out so callers may keep or change it.
_ARRAY_CACHE: dict[bytes, tuple[Any, ...]] = {}
_ARRAY_CACHE_SIZE = 4096
_ARRAY_CACHE_MAX_BYTES = 256
_SCALAR_TYPES = (str, int, float, bool)


def _array(v: Any) -> list[Any]:
    raw: bytes = v.SerializeToString()
    hit = _ARRAY_CACHE.get(raw)
    if hit is not None:
        return list(hit)
    out = [any_value(x) for x in v.array_value.values]
    if len(raw) <= _ARRAY_CACHE_MAX_BYTES and all(type(x) in _SCALAR_TYPES for x in out):
        if len(_ARRAY_CACHE) >= _ARRAY_CACHE_SIZE:
            _ARRAY_CACHE.clear()
        _ARRAY_CACHE[raw] = tuple(out)
    return out


def flatten_attributes(kvs: Any, wanted: frozenset[str] | None = None) -> dict[str, Any]:
    """Repeated ``KeyValue`` → ``{key: value}``, only for ``wanted`` keys when given."""
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv.key
        if wanted is not None and key not in wanted:
            continue
        v = kv.value
        kind = v.WhichOneof("value")
        out[key] = getattr(v, kind) if kind in _SCALARS else any_value(v)
    return out


def parse_request(payload: bytes) -> Any:
    """Parse and sanity-check a request; raises :class:`MessageError` if it is not OTLP protobuf."""
    try:
        req = ExportTraceServiceRequest.FromString(payload)
    except DecodeError as e:
        raise MessageError(f"otlp_proto: not a valid protobuf ExportTraceServiceRequest ({e})") from None
    except Exception as e:  # e.g. RuntimeError on recursion limits
        raise MessageError(f"otlp_proto: cannot parse ({type(e).__name__}: {e})") from None
    if len(UnknownFieldSet(req)):
        raise MessageError("otlp_proto: not an ExportTraceServiceRequest (unknown top-level fields)")
    if not req.resource_spans:
        raise MessageError("otlp_proto: ExportTraceServiceRequest has no resourceSpans")
    if not any(ss.spans for rs in req.resource_spans for ss in rs.scope_spans):
        raise MessageError("otlp_proto: ExportTraceServiceRequest has no spans")
    return req


def _fragment(rs: Any, ss: Any, sp: Any) -> bytes:
    req = ExportTraceServiceRequest()
    r = req.resource_spans.add()
    r.resource.CopyFrom(rs.resource)
    s = r.scope_spans.add()
    s.scope.CopyFrom(ss.scope)
    s.spans.append(sp)
    out: bytes = req.SerializeToString()
    return out


def decode_otlp_proto(payload: bytes, mapper: SpanMapper, source: str | None = None) -> DecodeResult:
    """Decode protobuf bytes; raises :class:`MessageError` when they are not an OTLP request."""
    req = parse_request(payload)
    out = DecodeResult()
    classify, wanted = mapper.classify, mapper.wanted
    for ri, rs in enumerate(req.resource_spans):
        resource = mapper.resource(flatten_attributes(rs.resource.attributes))
        for si, ss in enumerate(rs.scope_spans):
            spans = ss.spans
            out.spans += len(spans)
            for pi, sp in enumerate(spans):
                try:
                    attrs = flatten_attributes(sp.attributes, wanted)
                    slots = classify(attrs)
                    if slots is None:
                        out.skipped += 1
                        continue
                    mapped = mapper.map(
                        attrs,
                        start_ns=sp.start_time_unix_nano,
                        end_ns=sp.end_time_unix_nano,
                        status_code=sp.status.code,
                        resource=resource,
                        trace_id=sp.trace_id.hex() if sp.trace_id else None,
                        span_id=sp.span_id.hex() if sp.span_id else None,
                        slots=slots,
                    )
                    out.add(mapped, source)
                except SpanError as e:
                    where = f"otlp_proto: resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                    out.span_failed(where, e, _fragment(rs, ss, sp), source)
    return out
