"""Buffered delivery to a remote channel without ever stalling the dataflow.

Shared by the RabbitMQ and webhook alert sinks. A :class:`BufferedPartition`
is the Bytewax sink partition: ``write_batch`` only filters and appends to a
bounded in-memory buffer (microseconds), and one background thread per
partition hands the buffer's head to a :class:`Transport` until it is
delivered::

    write_batch ─► deque(maxlen=max_buffer) ─► worker thread ─► Transport.send(item, attempt)
                    overflow drops the oldest                    PUBLISHED / UNROUTABLE / FAILED → pop
                    (counted + logged)                           RETRY → backoff, same item again

* **At-least-once.** An item leaves the buffer only after the transport reports
  a final outcome (a confirmed publish, or a permanent failure). A retry after an
  ambiguous failure may duplicate an item; consumers deduplicate by its id.
* **Thread confinement.** The transport is created by the partition and used only
  from the worker thread (``open``/``send``/``idle``/``close``), so clients that are
  not thread-safe (pika's ``BlockingConnection``) are safe.
* **Bounded close.** ``close`` keeps delivering until the buffer is empty or
  ``close_timeout_s`` has passed, then counts and logs what is left. It returns
  within the timeout (plus a 0.5 s grace) even if the thread is stuck in a
  network call; that thread is a daemon and dies with the process.
* **Backoff.** Exponential with jitter (:class:`Backoff`); a transport can ask for
  a specific delay (HTTP ``Retry-After``).
* **Metrics.** ``sentinel_alerts_total{channel, outcome}`` with outcomes
  ``buffered`` (accepted into the buffer), ``published``, ``unroutable`` (the
  broker confirmed it but no queue was bound), ``failed`` (given up: permanent
  error, retries exhausted, or still pending at close) and ``dropped`` (buffer
  overflow). :meth:`BufferedPartition.stats` returns the same counts for this
  partition plus the number still pending.

The buffer is in memory: a process that is killed (not closed) loses what is
pending, at most ``max_buffer`` items per partition.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Generic, Protocol, TypeVar

from bytewax.outputs import StatelessSinkPartition

from sentinel import metrics
from sentinel.alerting.routing import accepts
from sentinel.models import AlertEvent, Severity

__all__ = [
    "Backoff",
    "BufferedPartition",
    "DeliveryStats",
    "Outcome",
    "Result",
    "Transport",
    "alert_partition",
    "retry_after_s",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(StrEnum):
    PUBLISHED = "published"
    UNROUTABLE = "unroutable"
    FAILED = "failed"  # permanent for this item: give up on it
    RETRY = "retry"  # transient: the same item again after a backoff


@dataclass(frozen=True, slots=True)
class Result:
    """What :meth:`Transport.send` made of one attempt."""

    outcome: Outcome
    detail: str = ""
    retry_after_s: float | None = None  # a server's wish (Retry-After), capped by the backoff maximum


PUBLISHED = Result(Outcome.PUBLISHED)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits in [(1-jitter)·d, d], d = initial·2^(n-1) ≤ max."""

    initial_s: float = 0.5
    max_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        d = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt - 1))
        return d * (1.0 - self.jitter * random.random())


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    buffered: int
    published: int
    unroutable: int
    failed: int
    dropped: int
    pending: int


class Transport(ABC, Generic[T]):
    """One channel's client. Every method is called from the partition's worker thread only."""

    #: attempts per item before it counts as failed; ``None``: retry until delivered or closed
    max_attempts: int | None = None

    def open(self) -> None:
        """Connect eagerly when the partition starts (failures are logged; ``send`` retries)."""

    @abstractmethod
    def send(self, item: T, attempt: int) -> Result:
        """Deliver one item (``attempt`` counts from 1 for this item). Must not raise for expected failures."""

    def idle(self) -> None:
        """Called about once a second while there is nothing to send (heartbeats, keep-alives)."""

    def reset(self) -> None:
        """Drop any connection after an unexpected error; the next ``send`` reconnects."""

    def close(self) -> None:
        """Release the connection when the partition closes."""


class _Signal(Enum):
    IDLE = "idle"
    STOP = "stop"


_DROP_LOG_INTERVAL_S = 10.0
_FAIL_LOG_INTERVAL_S = 60.0


class BufferedPartition(StatelessSinkPartition[T]):
    """A sink partition that buffers items and delivers them from a background thread."""

    def __init__(
        self,
        transport: Transport[T],
        *,
        channel: str,
        max_buffer: int,
        close_timeout_s: float,
        backoff: Backoff | None = None,
        accept: Callable[[T], bool] | None = None,
        describe: Callable[[T], str] = repr,
        idle_s: float = 1.0,
        name: str | None = None,
    ) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be >= 1")
        self._transport = transport
        self._channel = channel
        self._max_buffer = max_buffer
        self._close_timeout_s = close_timeout_s
        self._backoff = backoff or Backoff()
        self._accept = accept
        self._describe = describe
        self._idle_s = idle_s
        self._buf: deque[T] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._inflight: object = None
        self._finished = False  # leftovers have been accounted; nothing more to count
        self._counts = dict.fromkeys(("buffered", "published", "unroutable", "failed", "dropped"), 0)
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self._failing_since: float | None = None
        self._last_fail_log = 0.0
        self._m = {o: metrics.ALERTS.labels(channel, o) for o in self._counts}
        self._thread = threading.Thread(target=self._run, name=name or f"sentinel-{channel}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ flow side (Bytewax worker thread)

    def write_batch(self, items: list[T]) -> None:
        accept = self._accept
        batch = [x for x in items if accept(x)] if accept is not None else items
        if not batch:
            return
        dropped: list[T] = []
        with self._cond:
            if self._finished:
                raise RuntimeError(f"{self._channel} sink partition is closed")
            buf = self._buf
            for x in batch:
                if len(buf) >= self._max_buffer:
                    # drop the oldest that is not being sent right now (its outcome is still pending)
                    if len(buf) > 1 and buf[0] is self._inflight:
                        dropped.append(buf[1])
                        del buf[1]
                    else:
                        dropped.append(buf.popleft())
                buf.append(x)
            self._counts["buffered"] += len(batch)
            self._counts["dropped"] += len(dropped)
            self._cond.notify()
        self._m["buffered"].inc(len(batch))
        if dropped:
            self._m["dropped"].inc(len(dropped))
            self._log_drops(dropped)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + self._close_timeout_s
            pending = len(self._buf)
            self._cond.notify_all()
        if pending:
            log.info(
                "%s: closing, delivering %d pending alerts (up to %.0f s)",
                self._channel,
                pending,
                self._close_timeout_s,
            )
        self._thread.join(self._close_timeout_s + 0.5)
        if self._thread.is_alive():
            log.error(
                "%s: delivery thread still busy after %.1f s; abandoning it", self._channel, self._close_timeout_s
            )
            self._abandon("the close timeout passed while a delivery was still in progress")
        s = self.stats()
        log.info(
            "%s: closed — published %d, unroutable %d, failed %d, dropped %d (of %d buffered)",
            self._channel,
            s.published,
            s.unroutable,
            s.failed,
            s.dropped,
            s.buffered,
        )

    def stats(self) -> DeliveryStats:
        with self._cond:
            return DeliveryStats(pending=len(self._buf), **self._counts)

    # ------------------------------------------------------------ delivery side (own thread)

    def _run(self) -> None:
        try:
            self._safe(self._transport.open, "open")
            head: T | None = None
            attempt = 0
            while True:
                item = self._next()
                if item is _Signal.STOP:
                    break
                if item is _Signal.IDLE:
                    self._safe(self._transport.idle, "idle")
                    continue
                if item is not head:
                    head, attempt = item, 0
                attempt += 1
                result = self._send(item, attempt)
                if result.outcome is Outcome.RETRY:
                    limit = self._transport.max_attempts
                    if limit is not None and attempt >= limit:
                        self._finish(item, Result(Outcome.FAILED, f"gave up after {attempt} attempts: {result.detail}"))
                        continue
                    self._note_failure(result, attempt)
                    delay = self._backoff.delay(attempt)
                    if result.retry_after_s is not None:
                        delay = min(self._backoff.max_s, max(delay, result.retry_after_s))
                    self._sleep(delay)
                else:
                    self._finish(item, result)
        except Exception:  # pragma: no cover - a bug in this module; never let it pass silently
            log.exception("%s: delivery thread crashed", self._channel)
        finally:
            self._abandon("the close timeout passed before they could be delivered")
            self._safe(self._transport.close, "close")

    def _next(self) -> T | _Signal:
        """The buffer's head (left in place), ``IDLE`` after ``idle_s`` with nothing to do, or ``STOP``."""
        with self._cond:
            while True:
                if self._finished:
                    return _Signal.STOP
                if self._closing and (not self._buf or time.monotonic() >= self._deadline):
                    return _Signal.STOP
                if self._buf:
                    head = self._buf[0]
                    self._inflight = head
                    return head
                if not self._cond.wait(self._idle_s):
                    return _Signal.IDLE

    def _send(self, item: T, attempt: int) -> Result:
        try:
            return self._transport.send(item, attempt)
        except Exception as e:
            log.exception("%s: unexpected error sending %s", self._channel, self._describe(item))
            self._safe(self._transport.reset, "reset")
            return Result(Outcome.FAILED, f"unexpected error: {e!r}")

    def _finish(self, item: T, result: Result) -> None:
        outcome = result.outcome.value
        with self._cond:
            self._inflight = None
            if not self._buf or self._buf[0] is not item:
                return  # dropped on overflow or abandoned at close meanwhile; already counted
            self._buf.popleft()
            self._counts[outcome] += 1
        self._m[outcome].inc()
        if result.outcome is Outcome.FAILED:
            log.error("%s: giving up on %s: %s", self._channel, self._describe(item), result.detail)
        if self._failing_since is not None and result.outcome is not Outcome.FAILED:
            log.warning(
                "%s: delivering again after %.1f s of failures (%d pending)",
                self._channel,
                time.monotonic() - self._failing_since,
                len(self._buf),
            )
            self._failing_since = None

    def _note_failure(self, result: Result, attempt: int) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._last_fail_log = now
            log.warning("%s: delivery failed (%s); buffering and retrying with backoff", self._channel, result.detail)
        elif now - self._last_fail_log >= _FAIL_LOG_INTERVAL_S:
            self._last_fail_log = now
            log.warning(
                "%s: still failing after %.0f s (%d pending): %s",
                self._channel,
                now - self._failing_since,
                len(self._buf),
                result.detail,
            )
        else:
            log.debug("%s: attempt %d failed: %s", self._channel, attempt, result.detail)

    def _sleep(self, delay: float) -> None:
        """Back off for ``delay`` seconds, but not past the close deadline."""
        end = time.monotonic() + delay
        with self._cond:
            while not self._finished:
                limit = min(end, self._deadline) if self._closing else end
                remaining = limit - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)  # woken by close() (new deadline) or new items (ignored)

    def _abandon(self, why: str) -> None:
        """Count whatever is still buffered as failed (once), and stop accepting items."""
        with self._cond:
            if self._finished:
                return
            self._finished = True
            left = list(self._buf)
            self._buf.clear()
            self._counts["failed"] += len(left)
        if left:
            self._m["failed"].inc(len(left))
            ids = ", ".join(self._describe(x) for x in left[:20])
            more = f" and {len(left) - 20} more" if len(left) > 20 else ""
            log.error("%s: %d alerts not delivered (%s): %s%s", self._channel, len(left), why, ids, more)

    def _log_drops(self, dropped: list[T]) -> None:
        now = time.monotonic()
        with self._cond:
            self._dropped_unlogged += len(dropped)
            if now - self._last_drop_log < _DROP_LOG_INTERVAL_S:
                return
            n, self._dropped_unlogged, self._last_drop_log = self._dropped_unlogged, 0, now
        log.error(
            "%s: buffer full (%d): dropped %d oldest alerts, e.g. %s",
            self._channel,
            self._max_buffer,
            n,
            self._describe(dropped[0]),
        )

    def _safe(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception as e:
            log.warning("%s: transport %s failed: %r", self._channel, what, e)


class AlertChannelSettings(Protocol):
    """The settings every alert channel shares (``RabbitSettings``, ``WebhookSettings``)."""

    max_buffer: int
    close_timeout_s: float
    min_severity: Severity
    services: list[str]


def alert_partition(
    transport: Transport[AlertEvent],
    channel: str,
    settings: AlertChannelSettings,
    backoff: Backoff | None,
    name: str,
) -> BufferedPartition[AlertEvent]:
    """A buffered partition delivering the alerts that ``settings`` routes to this channel."""
    min_severity, services = settings.min_severity, list(settings.services)
    return BufferedPartition(
        transport,
        channel=channel,
        max_buffer=settings.max_buffer,
        close_timeout_s=settings.close_timeout_s,
        backoff=backoff,
        accept=lambda a: accepts(a, min_severity, services),
        describe=_alert_id,
        name=name,
    )


def _alert_id(a: AlertEvent) -> str:
    return a.alert_id
