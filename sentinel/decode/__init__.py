"""Message bytes → :class:`~sentinel.models.TelemetryEvent` (DESIGN.md ⚑ Input).

Each message is detected on its own (:func:`detect_format`): OTLP protobuf
``ExportTraceServiceRequest``, OTLP JSON (camelCase or snake_case) or our native
event JSON. :class:`Decoder` never raises: a message it cannot read becomes exactly
one :class:`~sentinel.models.DeadLetter` (stage ``decode``) carrying the original
bytes, and a bad span inside a good message becomes a dead letter of its own.

Modules: :mod:`~sentinel.decode.genai` (attribute mapping, shared),
:mod:`~sentinel.decode.otlp_json`, :mod:`~sentinel.decode.otlp_proto`,
:mod:`~sentinel.decode.native`.

>>> from sentinel.config import PrivacySettings
>>> from sentinel.pricing import Pricing
>>> from sentinel.privacy import Masker
>>> d = Decoder(Pricing(), Masker(PrivacySettings()))
>>> r = d.decode(b'{"service": "chat", "model": "gpt-4o", "latency_ms": 812, "timestamp": 1767225600}')
>>> (r.spans, len(r.events), r.events[0].key)
(1, 1, 'chat|gpt-4o')
>>> d.decode(b"", source="t/0/1").dead[0].error
'empty message'
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import orjson

from sentinel.decode.genai import DecodeResult, MessageError, SpanMapper
from sentinel.decode.native import decode_native
from sentinel.decode.otlp_json import decode_otlp_json, is_otlp_json
from sentinel.decode.otlp_proto import decode_otlp_proto
from sentinel.models import DeadLetter
from sentinel.pricing import Pricing
from sentinel.privacy import Masker

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "DecodeResult", "Decoder", "Format", "detect_format"]

Format = Literal["otlp_json", "otlp_proto", "native"]
_FORMATS: frozenset[str] = frozenset(get_args(Format)) | {"auto"}
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_WS = b" \t\r\n"
_PROTO_TAG = 0x0A  # field 1 (resource_spans), wire type 2: every non-empty request starts with it


def _first_byte(payload: bytes) -> int | None:
    head = payload[:64].lstrip(_WS)
    if not head and len(payload) > 64:
        head = payload.lstrip(_WS)
    return head[0] if head else None


def _sniff(payload: bytes) -> tuple[Format, Any]:
    """(format, the parsed JSON or ``None``) of a message; raises :class:`MessageError` if it is none of ours.

    JSON when the first non-blank byte is ``{`` or ``[`` and it parses (OTLP JSON when it
    is an object with ``resourceSpans``/``resource_spans``, else native); protobuf when it
    starts with the ``resource_spans`` tag. A protobuf request can also start with ``\\n{``
    (the tag, then a length of 123), so such a payload is protobuf when it is not JSON.
    """
    first = _first_byte(payload)
    if first is None:
        raise MessageError("empty message (whitespace only)")
    if first not in b"{[":
        if payload[0] == _PROTO_TAG:
            return "otlp_proto", None
        shown = chr(first) if 32 <= first < 127 else f"0x{first:02x}"
        raise MessageError(f"unrecognised message: not JSON and not OTLP protobuf (first byte {shown})")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        if payload[0] == _PROTO_TAG:
            return "otlp_proto", None
        raise MessageError(_json_reason(e)) from None
    return ("otlp_json" if is_otlp_json(obj) else "native"), obj


def detect_format(payload: bytes) -> Format | None:
    """A message's encoding as :class:`Decoder` (``fmt="auto"``) reads it; ``None`` when it is none of ours."""
    try:
        return _sniff(payload)[0]
    except MessageError:
        return None


def _json_reason(e: orjson.JSONDecodeError) -> str:
    msg = str(e)
    if "UTF-8" in msg or "utf-8" in msg:
        return f"invalid UTF-8 in JSON message ({msg})"
    return f"invalid JSON: {msg}"


class Decoder:
    """Decodes one message (bytes) into events, counts and dead letters.

    ``fmt`` is ``"auto"`` (detect per message) or forces one of ``"otlp_json"``,
    ``"otlp_proto"``, ``"native"``. Messages above ``max_message_bytes`` are refused
    unread. Keeps no per-message state; safe to share.
    """

    __slots__ = ("_mapper", "fmt", "masker", "max_message_bytes", "pricing")

    def __init__(
        self,
        pricing: Pricing,
        masker: Masker,
        fmt: str = "auto",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if fmt not in _FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(_FORMATS)}")
        self.pricing = pricing
        self.masker = masker
        self.fmt = fmt
        self.max_message_bytes = max_message_bytes
        self._mapper = SpanMapper(pricing, masker, masker.keep_attributes)

    def decode(self, payload: bytes, source: str | None = None) -> DecodeResult:
        """Events, dead letters and counts for one message; never raises."""
        try:
            if type(payload) is not bytes:  # bytearray / memoryview from some clients
                payload = bytes(payload)
            return self._decode(payload, source)
        except MessageError as e:
            return self._fail(payload, source, str(e))
        except Exception as e:  # a bug must not stop the flow: keep the message, say why
            return self._fail(payload, source, f"decoder error: {type(e).__name__}: {e}")

    @staticmethod
    def _fail(payload: object, source: str | None, reason: str) -> DecodeResult:
        raw = payload if isinstance(payload, bytes) else repr(payload).encode()
        return DecodeResult(dead=[DeadLetter(stage="decode", error=reason, payload=raw, source=source)])

    def _decode(self, payload: bytes, source: str | None) -> DecodeResult:
        n = len(payload)
        if n == 0:
            raise MessageError("empty message")
        if n > self.max_message_bytes:
            raise MessageError(f"message of {n} bytes exceeds max_message_bytes {self.max_message_bytes}")
        fmt = self.fmt
        if fmt == "otlp_proto":
            return decode_otlp_proto(payload, self._mapper, source)
        if fmt == "auto":
            fmt, obj = _sniff(payload)
            if fmt == "otlp_proto":
                try:
                    return decode_otlp_proto(payload, self._mapper, source)
                except MessageError:
                    first = _first_byte(payload)
                    if first is None or first not in b"{[":
                        raise
                    # "\n{…" that is neither: as it looks like JSON, the JSON error says more
                    try:
                        orjson.loads(payload)
                    except orjson.JSONDecodeError as e:
                        raise MessageError(f"{_json_reason(e)} (nor is it OTLP protobuf)") from None
                    raise
        else:
            if _first_byte(payload) is None:
                raise MessageError("empty message (whitespace only)")
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError as e:
                raise MessageError(_json_reason(e)) from None
        if fmt == "otlp_json":
            if not is_otlp_json(obj):
                raise MessageError("otlp_json: expected an object with 'resourceSpans'")
            return decode_otlp_json(obj, self._mapper, source)
        return decode_native(obj, self.pricing, self.masker, source, raw=payload)
