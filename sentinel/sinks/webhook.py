"""Webhook alert notifier (the backup channel).

Every alert that passes the channel's routing (``webhook.min_severity``, default
``high``; ``webhook.services``) is POSTed to ``webhook.url`` as the ⚑ alert
record in JSON (the same bytes as its ``alerts.jsonl`` line), with headers::

    Content-Type: application/json
    X-Sentinel-Signature: sha256=<hex HMAC-SHA256(webhook.secret, raw body)>
    X-Sentinel-Timestamp: <unix seconds when the request was sent>
    Idempotency-Key: <alert_id>

Any 2xx is success. 5xx, 408, 429 (honouring ``Retry-After``), timeouts and
connection errors are retried with exponential backoff and jitter, at most
``webhook.max_retries`` times; any other status (4xx, or a 3xx: redirects are
not followed, a signed POST must not turn into a GET) gives up on that alert.
Both count in ``sentinel_alerts_total{channel="webhook"}``. The same alert may
arrive more than once (a retry after a timeout, a replay after crash
recovery): receivers deduplicate on ``Idempotency-Key``.

The flow never waits for the endpoint: requests are made by one background
thread per worker from a bounded buffer (``webhook.max_buffer``), and shutdown
waits at most ``webhook.close_timeout_s`` (see :mod:`sentinel.sinks._buffered`).

Verifying a delivery (receiver side) — compute the HMAC over the *raw* request
body, before any JSON parsing, and compare in constant time::

    from sentinel.sinks.webhook import verify_signature

    if not verify_signature(SECRET, request_body_bytes, request.headers.get("X-Sentinel-Signature")):
        return 401

or without LLM-Sentinel installed::

    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected.encode(), header.encode())

The timestamp header is informational (it is not covered by the signature);
replays of a captured request carry an ``Idempotency-Key`` the receiver has
already seen.

>>> sig = sign("s3cret", b'{"alert_id":"al-1"}')
>>> sig
'sha256=379c42f0e6b4b51c830524d445804d0e33ee44f79460467daaa105079ae239ef'
>>> verify_signature("s3cret", b'{"alert_id":"al-1"}', sig), verify_signature("other", b'{"alert_id":"al-1"}', sig)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import time
import urllib.request
from typing import Any
from urllib.error import HTTPError, URLError

from bytewax.outputs import DynamicSink

from sentinel import __version__
from sentinel.config import WebhookSettings
from sentinel.models import AlertEvent
from sentinel.sinks._buffered import (
    PUBLISHED,
    Backoff,
    BufferedPartition,
    Outcome,
    Result,
    Transport,
    alert_partition,
    retry_after_s,
)
from sentinel.sinks.jsonl import dumps

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookAlertSink",
    "WebhookTransport",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

CHANNEL = "webhook"
SIGNATURE_HEADER = "X-Sentinel-Signature"
TIMESTAMP_HEADER = "X-Sentinel-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRY_STATUS = frozenset({408, 429})


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Sentinel-Signature`` value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (an ``X-Sentinel-Signature`` value) signs the raw ``body`` with ``secret``.

    Constant-time comparison; a missing or malformed header is simply ``False``.
    """
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode("utf-8", "replace"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an HTTPError: give up, and say so


class WebhookTransport(Transport[AlertEvent]):
    """POST one alert per request with ``urllib`` (proxies from the environment are honoured)."""

    def __init__(self, settings: WebhookSettings) -> None:
        if not settings.url:
            raise ValueError("webhook.url is not set")
        self._url = settings.url
        self._secret = _key(settings.secret.get_secret_value()) if settings.secret is not None else None
        self._timeout = settings.timeout_s
        self.max_attempts = settings.max_retries + 1
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._user_agent = f"llm-sentinel/{__version__}"

    def headers(self, alert: AlertEvent, body: bytes) -> dict[str, str]:
        h = {
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
            TIMESTAMP_HEADER: str(int(time.time())),
            IDEMPOTENCY_HEADER: alert.alert_id,
        }
        if self._secret is not None:
            h[SIGNATURE_HEADER] = sign(self._secret, body)
        return h

    def send(self, item: AlertEvent, attempt: int) -> Result:
        body = dumps(item.to_dict())
        req = urllib.request.Request(self._url, data=body, headers=self.headers(item, body), method="POST")
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                resp.read(65536)  # let the server finish; the answer itself is not used
            return PUBLISHED
        except HTTPError as e:
            status, retry_after = e.code, retry_after_s(e.headers.get("Retry-After") if e.headers else None)
            e.close()
            if status >= 500 or status in _RETRY_STATUS:
                return Result(Outcome.RETRY, f"HTTP {status}", retry_after)
            if 300 <= status < 400:
                return Result(Outcome.FAILED, f"HTTP {status}: redirects are not followed; fix webhook.url")
            return Result(Outcome.FAILED, f"HTTP {status} {e.reason}")
        except (URLError, OSError, http.client.HTTPException) as e:
            reason = e.reason if isinstance(e, URLError) else e
            return Result(Outcome.RETRY, f"{type(reason).__name__}: {reason}")


class WebhookAlertSink(DynamicSink[AlertEvent]):
    """POST alerts to a webhook from every worker (one background thread per worker)."""

    def __init__(self, settings: WebhookSettings, *, backoff: Backoff | None = None) -> None:
        if not settings.url:
            raise ValueError("webhook.url is not set")
        if settings.secret is None:
            log.warning("webhook: no webhook.secret configured; requests are not signed")
        self._settings = settings
        self._backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> BufferedPartition[AlertEvent]:
        s = self._settings
        return alert_partition(WebhookTransport(s), CHANNEL, s, self._backoff, f"sentinel-webhook-{worker_index}")
