"""LLM-Sentinel's own event JSON → events.

A message is one object or an array of objects with the field names of
:meth:`TelemetryEvent.to_dict` (so its output round-trips):

- required: ``service`` (str), ``model`` (str), ``latency_ms`` (number),
  ``timestamp`` (RFC 3339 string, or epoch seconds / milliseconds / microseconds /
  nanoseconds as a number, told apart by magnitude);
- optional: ``input_tokens``, ``output_tokens`` (integers), ``cost_usd`` (number;
  absent → priced from the table), ``is_error`` or ``error`` (bool; a string
  ``error`` is taken as the error type), ``error_type``, ``provider``,
  ``operation``, ``ttft_ms``, ``finish_reason``, ``trace_id``, ``span_id`` and
  ``attributes`` (object, masked). Unknown fields are ignored.

A record with a wrong type becomes a dead letter whose reason names the field,
e.g. ``native: field 'latency_ms' must be a number, got str``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from sentinel.decode.genai import DecodeResult, MessageError, SpanError
from sentinel.models import DeadLetter, TelemetryEvent
from sentinel.pricing import Pricing
from sentinel.privacy import Masker

__all__ = ["decode_native", "parse_timestamp", "record_to_event"]

_REQUIRED = ("service", "model", "latency_ms", "timestamp")


def parse_timestamp(v: Any, field: str = "timestamp") -> float:
    """Epoch seconds from an RFC 3339 string or an epoch number in s, ms, µs or ns."""
    if isinstance(v, bool):
        raise SpanError(f"native: field '{field}' must be an RFC 3339 string or epoch number, got bool")
    if isinstance(v, int | float):
        x = float(v)
        a = abs(x)
        if a < 1e11:  # seconds (until year 5138)
            return x
        if a < 1e14:
            return x / 1e3
        if a < 1e17:
            return x / 1e6
        return x / 1e9
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise SpanError(f"native: field '{field}' is not an RFC 3339 time: {v!r:.40}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise SpanError(f"native: field '{field}' must be an RFC 3339 string or epoch number, got {type(v).__name__}")


def _number(d: dict[str, Any], key: str, default: float | None) -> float | None:
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise SpanError(f"native: field '{key}' must be a number, got {type(v).__name__}")


def _integer(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    if v is None:
        return 0
    if type(v) is int:
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise SpanError(f"native: field '{key}' must be an integer, got {type(v).__name__}")


def _text(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None or isinstance(v, str):
        return v
    raise SpanError(f"native: field '{key}' must be a string, got {type(v).__name__}")


def record_to_event(d: dict[str, Any], pricing: Pricing, masker: Masker) -> tuple[TelemetryEvent, bool]:
    """One native record → ``(event, priced)``; raises :class:`SpanError` with the reason."""
    for key in _REQUIRED:
        if d.get(key) is None:
            raise SpanError(f"native: missing required field '{key}'")
    service = _text(d, "service") or ""
    model = _text(d, "model") or ""
    latency = _number(d, "latency_ms", None)
    assert latency is not None  # required above
    ts = parse_timestamp(d["timestamp"])
    input_tokens = _integer(d, "input_tokens")
    output_tokens = _integer(d, "output_tokens")

    field = "is_error"
    is_error = d.get(field)
    error_type = _text(d, "error_type")
    if is_error is None:
        field = "error"  # the fallback: a flag, or the error's text
        err = d.get(field)
        if isinstance(err, str):
            is_error, error_type = bool(err), error_type or err or None
        else:
            is_error = err
    if is_error is None:
        is_error = False
    elif not isinstance(is_error, bool):
        wanted = "a boolean or text" if field == "error" else "a boolean"
        raise SpanError(f"native: field '{field}' must be {wanted}, got {type(is_error).__name__}")

    priced = True
    cost = _number(d, "cost_usd", None)
    if cost is None:
        c = pricing.cost(model, input_tokens, output_tokens) if model else None
        cost, priced = (0.0, False) if c is None else (c, True)

    attrs = d.get("attributes")
    if attrs is None:
        attrs = {}
    elif not isinstance(attrs, dict):
        raise SpanError(f"native: field 'attributes' must be an object, got {type(attrs).__name__}")
    elif attrs:
        attrs = masker.mask_attributes(attrs)

    ev = TelemetryEvent(
        timestamp=ts,
        service=service,
        model=model,
        latency_ms=latency,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        is_error=is_error,
        error_type=error_type,
        provider=_text(d, "provider"),
        operation=_text(d, "operation"),
        ttft_ms=_number(d, "ttft_ms", None),
        finish_reason=_text(d, "finish_reason"),
        trace_id=_text(d, "trace_id"),
        span_id=_text(d, "span_id"),
        attributes=attrs,
    )
    return ev, priced


def decode_native(
    obj: Any, pricing: Pricing, masker: Masker, source: str | None = None, raw: bytes | None = None
) -> DecodeResult:
    """Decode a parsed native message (object or array of objects).

    ``raw`` is the original message; a single-object message that fails keeps it as
    the dead letter's payload (an array's failed records carry their own JSON).
    """
    if isinstance(obj, dict):
        records: list[Any] = [obj]
        single = True
    elif isinstance(obj, list):
        records, single = obj, False
    else:
        raise MessageError(f"native: expected an object or an array of objects, got {type(obj).__name__}")
    out = DecodeResult(spans=len(records))
    for i, rec in enumerate(records):
        try:
            if not isinstance(rec, dict):
                raise SpanError(f"native: record must be an object, got {type(rec).__name__}")
            mapped = record_to_event(rec, pricing, masker)
        except SpanError as e:
            reason = str(e) if single else f"{e} (record {i})"
            if single and raw is not None:
                payload = raw
            else:
                try:
                    payload = orjson.dumps(rec)
                except TypeError:  # pragma: no cover - parsed JSON always re-serialises
                    payload = repr(rec).encode()
            out.dead.append(DeadLetter(stage="decode", error=reason, payload=payload, source=source))
            continue
        out.add(mapped, source)
    return out
