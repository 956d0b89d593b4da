"""ASGI middleware in front of the API: request metrics, a per-client rate limit, a body-size limit.

Pure ASGI (no ``BaseHTTPMiddleware``) so a refused request costs a few
microseconds and never reaches routing or the body parser.

* **Rate limit.** A token bucket per client address (``rate_per_s`` sustained,
  ``burst`` at once); an empty bucket answers 429 with ``Retry-After`` (whole
  seconds until one token is back). ``/health`` and ``/ready`` are exempt (Kubernetes probes). At
  most ``max_clients`` buckets are kept; the least recently used go first.
* **Body size.** A ``Content-Length`` above ``max_body_bytes`` is refused with
  413 before the body is read; a chunked body is counted while it streams and
  refused the same way once it passes the limit.
* **Metrics.** ``sentinel_api_requests_total{method,route,status}`` and
  ``sentinel_api_request_duration_seconds{route}``, labelled by the route
  *template* (``/api/v1/baselines/{service}/{model}``), never the raw path.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinel import metrics

__all__ = ["Guard", "TokenBucket", "json_error_response"]

EXEMPT = frozenset({"/health", "/ready"})


def json_error_response(status: int, error: str, message: str) -> bytes:
    return orjson.dumps({"error": error, "message": message, "status": status})


class TokenBucket:
    """Per-key token buckets: ``take(key)`` returns 0 when allowed, else the seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_clients = max_clients
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._b.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._b[key] = (tokens, now)
            while len(self._b) > self.max_clients:
                self._b.popitem(last=False)
            return wait


class _TooLargeError(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, rate_per_s: float, burst: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.bucket = TokenBucket(rate_per_s, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
            await send(message)

        try:
            path = scope.get("path", "")
            if path not in EXEMPT:
                client = scope.get("client")
                wait = self.bucket.take(client[0] if client else "unknown")
                if wait > 0:
                    retry = str(max(1, math.ceil(wait)))
                    msg = f"too many requests; retry after {retry} s"
                    await _respond(send_wrapper, 429, "rate_limited", msg, {"retry-after": retry})
                    return
            length = _content_length(scope)
            if length is not None and length > self.max_body:
                await _respond(send_wrapper, 413, "payload_too_large", f"request body over {self.max_body} bytes")
                return
            received = 0
            limit = self.max_body

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _TooLargeError
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except _TooLargeError:
                if not started:
                    await _respond(send_wrapper, 413, "payload_too_large", f"request body over {limit} bytes")
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if status == 404 else "none")
            metrics.API_REQUESTS.labels(scope.get("method", ""), template, str(status)).inc()
            metrics.API_SECONDS.labels(template).observe(time.perf_counter() - t0)


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _respond(send: Any, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = json_error_response(status, error, message)
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})
