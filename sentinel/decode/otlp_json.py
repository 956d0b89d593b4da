"""OTLP/JSON ``ExportTraceServiceRequest`` → events (Collector ``otlp_json`` / file exporter).

Follows the OTLP JSON encoding: lowerCamelCase keys, hex trace/span ids, 64-bit
integers as strings, enums as integers. Also accepted, because real producers emit
them: snake_case keys (``resource_spans``, ``start_time_unix_nano``,
``string_value``…), integers as numbers, enum names (``"STATUS_CODE_ERROR"``),
base64 ids (protobuf's own JSON mapping) and the pre-1.0
``instrumentationLibrarySpans``.

A structural error in the envelope (``resourceSpans`` not an array, a bad resource
attribute…) fails the whole message; a bad span becomes its own dead letter whose
payload is a one-span request (replayable), and the other spans go on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from sentinel.decode.genai import DecodeResult, MessageError, SpanError, SpanMapper

__all__ = ["any_value", "decode_otlp_json", "flatten_attributes", "hex_id", "is_otlp_json"]

_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _int(x: Any) -> int:
    if type(x) is int:
        return x
    if isinstance(x, str | float) and not isinstance(x, bool):
        return int(x)
    raise ValueError(f"expected an integer, got {type(x).__name__}")


def _bool(x: Any) -> bool:
    if isinstance(x, bool):
        return x
    if x == "true" or x == "false":
        return bool(x == "true")
    raise ValueError(f"expected a boolean, got {type(x).__name__}")


def _array(x: Any) -> list[Any]:
    return [any_value(v) for v in (x.get("values") or ())]


def _kvlist(x: Any) -> dict[str, Any]:
    return flatten_attributes(x.get("values") or ())


def _bytes_hex(v: Any) -> str:
    """Bytes (base64 in OTLP JSON) as hex text, as the protobuf decoder gives them (text that is
    not base64 is kept as it is: an attribute nobody reads must not cost the message)."""
    try:
        return base64.b64decode(str(v), validate=True).hex()
    except ValueError:
        return str(v)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "intValue": _int,
    "int_value": _int,
    "doubleValue": float,
    "double_value": float,
    "boolValue": _bool,
    "bool_value": _bool,
    "arrayValue": _array,
    "array_value": _array,
    "kvlistValue": _kvlist,
    "kvlist_value": _kvlist,
    "bytesValue": _bytes_hex,
    "bytes_value": _bytes_hex,
}


def any_value(v: Any) -> Any:
    """The Python value of one OTLP JSON ``AnyValue`` object (``None`` when empty).

    A bare scalar in place of the object (hand-written JSON) is taken as is.
    """
    if type(v) is not dict:
        if isinstance(v, str | int | float):
            return v
        raise ValueError(f"AnyValue must be an object, got {type(v).__name__}")
    for k, x in v.items():
        if k == "stringValue" or k == "string_value":
            return x
        conv = _CONVERTERS.get(k)
        if conv is not None:
            return conv(x)
    return None


def flatten_attributes(kvs: Any, wanted: frozenset[str] | None = None) -> dict[str, Any]:
    """``[{"key": k, "value": AnyValue}, …]`` → ``{k: value}``; raises ``ValueError`` naming the key.

    With ``wanted``, other keys are skipped without converting (or validating) their values.

    The common shapes (one ``stringValue``/``intValue``/``doubleValue``/``boolValue``
    per value) are handled inline: this runs for every attribute of every span.
    """
    out: dict[str, Any] = {}
    for kv in kvs:
        try:
            key = kv["key"]
            if wanted is not None and key not in wanted:
                continue
            v = kv.get("value")
            if type(v) is dict and len(v) == 1:
                for tag, x in v.items():
                    if tag == "stringValue":
                        out[key] = x
                    elif tag == "intValue":
                        out[key] = x if type(x) is int else _int(x)
                    elif tag == "doubleValue":
                        out[key] = x if type(x) is float else float(x)
                    else:
                        out[key] = any_value(v)
            else:
                out[key] = any_value(v) if v else None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            where = kv.get("key") if isinstance(kv, dict) else None
            raise ValueError(f"attribute {where!r}: invalid value ({type(e).__name__}: {e})") from None
    return out


def hex_id(v: Any) -> str | None:
    """A trace/span id as lower-case hex (hex kept, base64 converted)."""
    if not v:
        return None
    if not isinstance(v, str):
        raise ValueError(f"id must be a string, got {type(v).__name__}")
    n = len(v)
    if n == 32 or n == 16:
        return v.lower()
    if n == 24 or n == 12:  # protobuf JSON mapping: base64 of 16 / 8 bytes
        try:
            return base64.b64decode(v, validate=True).hex()
        except ValueError:
            pass
    return v


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _status_code(sp: dict[str, Any]) -> int:
    st = sp.get("status")
    if not st:
        return 0
    code = st.get("code", 0)
    if isinstance(code, str):
        named = _STATUS_NAMES.get(code)
        return named if named is not None else int(code)
    return int(code)


def is_otlp_json(obj: Any) -> bool:
    """True for a parsed JSON object shaped like an ``ExportTraceServiceRequest``."""
    return isinstance(obj, dict) and ("resourceSpans" in obj or "resource_spans" in obj)


def _list(v: Any, where: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise MessageError(f"otlp_json: {where} must be an array, got {type(v).__name__}")
    return v


def _fragment(res: Any, scope: Any, sp: Any) -> bytes:
    req = {"resourceSpans": [{"resource": res or {}, "scopeSpans": [{"scope": scope or {}, "spans": [sp]}]}]}
    try:
        return orjson.dumps(req)
    except TypeError:  # pragma: no cover - parsed JSON always re-serialises
        return repr(sp).encode()


def decode_otlp_json(obj: Any, mapper: SpanMapper, source: str | None = None) -> DecodeResult:
    """Map a parsed OTLP JSON request; raises :class:`MessageError` for a broken envelope."""
    if not isinstance(obj, dict):
        raise MessageError(f"otlp_json: expected an object, got {type(obj).__name__}")
    out = DecodeResult()
    for ri, rs in enumerate(_list(_get(obj, "resourceSpans", "resource_spans"), "resourceSpans")):
        if not isinstance(rs, dict):
            raise MessageError(f"otlp_json: resourceSpans[{ri}] must be an object, got {type(rs).__name__}")
        res = rs.get("resource")
        try:
            resource = mapper.resource(flatten_attributes(res.get("attributes") or ()) if res else None)
        except (ValueError, TypeError, AttributeError) as e:
            raise MessageError(f"otlp_json: resourceSpans[{ri}].resource: {e}") from None
        scopes = _get(rs, "scopeSpans", "scope_spans")
        if scopes is None:
            scopes = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")
        for si, ss in enumerate(_list(scopes, f"resourceSpans[{ri}].scopeSpans")):
            if not isinstance(ss, dict):
                raise MessageError(f"otlp_json: resourceSpans[{ri}].scopeSpans[{si}] must be an object")
            spans = _list(ss.get("spans"), f"resourceSpans[{ri}].scopeSpans[{si}].spans")
            out.spans += len(spans)
            for pi, sp in enumerate(spans):
                try:
                    if not isinstance(sp, dict):
                        raise SpanError(f"span must be an object, got {type(sp).__name__}")
                    try:
                        attrs = flatten_attributes(sp.get("attributes") or (), mapper.wanted)
                    except (ValueError, TypeError) as e:
                        raise SpanError(str(e)) from None
                    slots = mapper.classify(attrs)
                    if slots is None:
                        out.skipped += 1
                        continue
                    start = _get(sp, "startTimeUnixNano", "start_time_unix_nano")
                    end = _get(sp, "endTimeUnixNano", "end_time_unix_nano")
                    if start is None or end is None:
                        raise SpanError("span has no startTimeUnixNano/endTimeUnixNano")
                    try:
                        start_ns, end_ns = _int(start), _int(end)
                        status = _status_code(sp)
                        trace_id = hex_id(_get(sp, "traceId", "trace_id"))
                        span_id = hex_id(_get(sp, "spanId", "span_id"))
                    except (ValueError, TypeError, AttributeError) as e:
                        raise SpanError(f"invalid span field: {e}") from None
                    mapped = mapper.map(
                        attrs,
                        start_ns=start_ns,
                        end_ns=end_ns,
                        status_code=status,
                        resource=resource,
                        trace_id=trace_id,
                        span_id=span_id,
                        slots=slots,
                    )
                    out.add(mapped, source)
                except SpanError as e:
                    where = f"otlp_json: resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                    out.span_failed(where, e, _fragment(res, ss.get("scope"), sp), source)
    return out
