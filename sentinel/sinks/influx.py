"""InfluxDB sink: window aggregates and anomalies as line protocol (DESIGN.md ⚑ Sinks).

Two measurements, exactly as the contract names them::

    llm_window   tags service, model
                 fields requests, errors, error_rate, latency_p50_ms, latency_p95_ms,
                        latency_p99_ms, input_tokens, output_tokens, cost_usd,
                        output_tokens_per_s
                 time   window START (epoch ms)
    llm_anomaly  tags service, model, anomaly_type, severity, detection_method
                 fields observed, expected, score
                 time   the anomaly's event time (epoch ms)

Timestamps are event time at millisecond precision, derived only from the
record, so a replay (recovery, backtest) writes the same series at the same
timestamps and InfluxDB overwrites instead of duplicating. A window is stamped
with its *start* — the same instant as ``window_start`` in ``windows.jsonl`` and
the label Grafana puts on a bar — so the point for ``[12:00, 12:01)`` is at 12:00.
Counts are integer fields (``42i``), everything else float (whole numbers
included), so a field never changes type between points (InfluxDB refuses that).
Non-finite floats cannot be written in line protocol and are left out of the
point, like ``influxdb_client.Point`` does.

Formatting is hand-written and produces byte-for-byte what
``influxdb_client.Point(...).to_line_protocol()`` would: ~4.7 µs per window point
(~210k/s on one core) against ~14 µs with ``Point``; :func:`to_point` builds that
reference and the unit tests compare the two on generated values.

Writing: ``influxdb-client``'s batching ``WriteApi`` is not used — its reactive
buffer is unbounded while it retries and a batch that runs out of retries is
dropped from inside the client. Instead each worker's partition owns

* a bounded deque of formatted lines (``max_buffer``). ``write_batch`` only
  formats and appends, so it never blocks on the network and the flow never
  stalls when the server is down. When the deque is full the OLDEST points are
  dropped; drops are counted and logged (rate-limited), never silent;
* one daemon writer thread that sends up to ``batch_size`` lines per request
  (synchronous ``WriteApi.write``, precision ms, ``Authorization: Token …``),
  as soon as a batch is full or ``flush_interval_ms`` after the last send.
  A point leaves the deque only once its request got an answer, so a point is
  lost only by overflow or by the close timeout.

Outcomes (``sentinel_sink_records_total{sink="influxdb", outcome=…}``, counted in
points): ``written``; ``retried`` (a failed attempt: 5xx, 408, 429, timeout,
connection error — retried with exponential backoff and jitter, ``Retry-After``
honoured); ``rejected`` (any other 4xx: bad data or credentials — logged with the
server's message, not retried); ``dropped`` (buffer overflow, or still unsent
when ``close`` gives up). ``sentinel_influx_buffered_points`` is the backlog.

``close`` flushes: it lets the writer drain the deque for at most
``close_timeout_s`` (the flow's end or a graceful shutdown waits that long when
the server is down) and counts whatever is left as dropped.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
import time
from collections import deque
from typing import Any, Literal, cast

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from prometheus_client import Gauge
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from sentinel import metrics
from sentinel.config import InfluxSettings
from sentinel.models import AnomalyEvent, WindowStats
from sentinel.sinks._buffered import retry_after_s

__all__ = [
    "ANOMALY_FIELDS",
    "ANOMALY_MEASUREMENT",
    "ANOMALY_TAGS",
    "BUFFERED",
    "WINDOW_FIELDS",
    "WINDOW_MEASUREMENT",
    "WINDOW_TAGS",
    "InfluxSink",
    "anomaly_line",
    "to_line",
    "to_point",
    "window_line",
]

log = logging.getLogger(__name__)

WINDOW_MEASUREMENT = "llm_window"
ANOMALY_MEASUREMENT = "llm_anomaly"
WINDOW_TAGS = ("service", "model")
WINDOW_FIELDS = (
    "requests",
    "errors",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "output_tokens_per_s",
)
ANOMALY_TAGS = ("service", "model", "anomaly_type", "severity", "detection_method")
ANOMALY_FIELDS = ("observed", "expected", "score")
_INT_FIELDS = frozenset({"requests", "errors", "input_tokens", "output_tokens"})
_Point: Any = Point  # influxdb_client is untyped
_MS: Any = WritePrecision.MS

SINK = "influxdb"
BUFFERED = Gauge(
    "sentinel_influx_buffered_points",
    "Points waiting in the InfluxDB sink's buffers (not yet acknowledged)",
    multiprocess_mode="livesum",
)

# ----------------------------------------------------------------------------- line protocol

# the escapes of influxdb_client.client.write.point (tag keys/values and field keys)
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_tag_cache: dict[str, str] = {}
_TAG_CACHE_MAX = 65_536


def _tag(value: str) -> str:
    """An escaped tag value (cached: services and models repeat on every point)."""
    esc = _tag_cache.get(value)
    if esc is None:
        esc = value.translate(_ESCAPE_KEY)
        if esc.endswith("\\"):
            esc += " "
        if len(_tag_cache) >= _TAG_CACHE_MAX:
            _tag_cache.clear()
        _tag_cache[value] = esc
    return esc


def _float(name: str, v: float) -> str | None:
    """``name=value`` for a float field, as ``Point`` writes it (``1.0`` → ``1``); None when not finite."""
    v = float(v)
    if not math.isfinite(v):
        return None
    s = repr(v)
    if s.endswith(".0"):
        s = s[:-2]
    return f"{name}={s}"


def _tags(pairs: tuple[tuple[str, str], ...]) -> str:
    # pairs are in key order; empty values are left out (InfluxDB refuses them), like Point does
    return "".join(f",{k}={_tag(v)}" for k, v in pairs if v)


def window_line(w: WindowStats) -> str:
    """The ``llm_window`` point of a window, stamped with the window start (ms)."""
    tags = _tags((("model", w.model), ("service", w.service)))
    fields = [
        _float("cost_usd", w.cost_usd),
        _float("error_rate", w.error_rate),
        f"errors={int(w.errors)}i",
        f"input_tokens={int(w.input_tokens)}i",
        _float("latency_p50_ms", w.latency_p50_ms),
        _float("latency_p95_ms", w.latency_p95_ms),
        _float("latency_p99_ms", w.latency_p99_ms),
        f"output_tokens={int(w.output_tokens)}i",
        _float("output_tokens_per_s", w.output_tokens_per_s),
        f"requests={int(w.requests)}i",
    ]
    return f"{WINDOW_MEASUREMENT}{tags} {','.join(f for f in fields if f)} {round(w.start * 1000)}"


def anomaly_line(a: AnomalyEvent) -> str | None:
    """The ``llm_anomaly`` point of an anomaly, stamped with its event time (ms); None if no field is finite."""
    tags = _tags(
        (
            ("anomaly_type", a.anomaly_type.value),
            ("detection_method", a.detection_method.value),
            ("model", a.model),
            ("service", a.service),
            ("severity", a.severity.value),
        )
    )
    fields = [
        f for f in (_float("expected", a.expected), _float("observed", a.observed), _float("score", a.score)) if f
    ]
    if not fields:
        return None
    return f"{ANOMALY_MEASUREMENT}{tags} {','.join(fields)} {round(a.timestamp * 1000)}"


def to_line(item: WindowStats | AnomalyEvent) -> str | None:
    """The line-protocol point of a sink item; None when it cannot be written."""
    if isinstance(item, WindowStats):
        return window_line(item)
    if isinstance(item, AnomalyEvent):
        return anomaly_line(item)
    raise TypeError(f"InfluxSink cannot write {type(item).__name__}")


def to_point(item: WindowStats | AnomalyEvent) -> Point:
    """The same point built with ``influxdb_client.Point`` (the reference for :func:`to_line`; ~3× slower)."""
    p: Any  # Point's methods are untyped
    if isinstance(item, WindowStats):
        p = _Point(WINDOW_MEASUREMENT).tag("service", item.service).tag("model", item.model)
        for name in WINDOW_FIELDS:
            v = getattr(item, name)
            p.field(name, int(v) if name in _INT_FIELDS else float(v))
        p.time(round(item.start * 1000), _MS)
        return cast(Point, p)
    p = _Point(ANOMALY_MEASUREMENT)
    for name in ANOMALY_TAGS:
        v = getattr(item, name)
        p.tag(name, getattr(v, "value", v))
    for name in ANOMALY_FIELDS:
        p.field(name, float(getattr(item, name)))
    p.time(round(item.timestamp * 1000), _MS)
    return cast(Point, p)


# ----------------------------------------------------------------------------- writing

Outcome = Literal["ok", "retry", "reject"]
_RETRY_AFTER_MAX_S = 60.0


class _Partition(StatelessSinkPartition[WindowStats | AnomalyEvent]):
    """One worker's buffer and writer thread (see the module docstring)."""

    def __init__(
        self,
        settings: InfluxSettings,
        name: str,
        retry_initial_s: float,
        retry_max_s: float,
        close_timeout_s: float,
    ) -> None:
        self._bucket = settings.bucket
        self._org = settings.org
        self._batch_size = settings.batch_size
        self._flush_s = settings.flush_interval_ms / 1000.0
        self._max_buffer = settings.max_buffer
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._close_timeout = close_timeout_s
        assert settings.url is not None
        self._url = settings.url
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=settings.timeout_ms,
            retries=False,  # retries are ours, so the buffer stays bounded and every loss is counted
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

        self._cv = threading.Condition()
        self._buf: deque[tuple[int, str]] = deque()  # (sequence number, line), oldest first
        self._seq = itertools.count()
        self._inflight = (0, -1)  # first, last sequence number of the request being sent
        self._evicted_inflight = 0  # in-flight points the overflow pushed out of the deque
        self._closing = False
        self._abort = False
        self._dropped_unlogged = 0
        self._last_drop_log = -math.inf
        self._thread = threading.Thread(target=self._run, name=f"influx-writer-{name}", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- the flow's side

    def write_batch(self, items: list[WindowStats | AnomalyEvent]) -> None:
        lines: list[str] = []
        for item in items:
            try:
                line = to_line(item)
            except (TypeError, ValueError, AttributeError) as e:
                line = None
                log.error("influxdb: cannot format %s: %s", type(item).__name__, e)
            if line is None:
                metrics.SINK_RECORDS.labels(SINK, "rejected").inc()
            else:
                lines.append(line)
        if not lines:
            return
        dropped = evicted = 0
        with self._cv:
            buf = self._buf
            buf.extend(zip(self._seq, lines, strict=False))  # _seq is endless
            first, last = self._inflight
            while len(buf) > self._max_buffer:
                seq, _ = buf.popleft()
                if first <= seq <= last:
                    evicted += 1  # being sent: the writer counts it once its request is answered
                else:
                    dropped += 1
            self._evicted_inflight += evicted
            if len(buf) >= self._batch_size:
                self._cv.notify()
        BUFFERED.inc(len(lines) - dropped - evicted)
        if dropped:
            self._count_dropped(dropped, "buffer full")

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(self._close_timeout)
        alive = self._thread.is_alive()
        with self._cv:
            self._abort = True
            first, last = self._inflight if alive else (0, -1)
            # a request still in flight is accounted by the writer when it returns
            left = sum(1 for seq, _ in self._buf if not first <= seq <= last)
            self._buf.clear()
            self._cv.notify()
            unlogged, self._dropped_unlogged = self._dropped_unlogged, 0
        if unlogged:
            log.error(
                "influxdb %s: dropped %d points (buffer full; max_buffer=%d)", self._url, unlogged, self._max_buffer
            )
        if left:
            BUFFERED.dec(left)
            self._count_dropped(left, f"unsent after the {self._close_timeout:g}s close timeout", force_log=True)
        if alive:
            self._thread.join(1.0)
        self._client.close()  # type: ignore[no-untyped-call]

    # -------------------------------------------------------------- the writer thread

    def _count_dropped(self, n: int, why: str, force_log: bool = False) -> None:
        metrics.SINK_RECORDS.labels(SINK, "dropped").inc(n)
        now = time.monotonic()
        with self._cv:
            self._dropped_unlogged += n
            if not force_log and now - self._last_drop_log < 10.0:
                return
            n, self._dropped_unlogged, self._last_drop_log = self._dropped_unlogged, 0, now
        log.error("influxdb %s: dropped %d points (%s; max_buffer=%d)", self._url, n, why, self._max_buffer)

    def _aborted(self) -> bool:
        # a call, not the attribute: close() sets it from another thread, and a type checker
        # would otherwise carry over its value from an earlier test in the same loop
        return self._abort

    def _send(self, body: str) -> tuple[Outcome, float | None, str]:
        try:
            self._write_api.write(bucket=self._bucket, org=self._org, record=body, write_precision=_MS)
        except ApiException as e:
            status = int(e.status or 0)
            detail = f"HTTP {status}: {(e.body or e.reason or '')!s:.300}"
            if status in (408, 429) or status >= 500 or status == 0:
                return "retry", retry_after_s(e.headers.get("Retry-After") if e.headers else None), detail
            return "reject", None, detail
        except (Urllib3HTTPError, OSError) as e:  # refused, reset, timeout
            return "retry", None, f"{type(e).__name__}: {e}"
        except Exception as e:  # a bug, not an outage: retrying the same body would stall the sink
            log.exception("influxdb %s: unexpected error writing a batch", self._url)
            return "reject", None, f"{type(e).__name__}: {e}"
        return "ok", None, ""

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # never silent: what is left is counted as dropped by close()
            log.exception("influxdb %s: writer thread failed", self._url)

    def _loop(self) -> None:
        backoff = self._retry_initial
        failing_since: float | None = None
        while True:
            with self._cv:
                if not self._abort and not self._closing and len(self._buf) < self._batch_size:
                    self._cv.wait(self._flush_s)
                if self._abort or (self._closing and not self._buf):
                    return
                if not self._buf:
                    continue
                batch = list(itertools.islice(self._buf, self._batch_size))
                first, last = batch[0][0], batch[-1][0]
                self._inflight = (first, last)
                self._evicted_inflight = 0
            outcome, retry_after, detail = self._send("\n".join(line for _, line in batch))
            n = len(batch)
            with self._cv:
                evicted, self._evicted_inflight = self._evicted_inflight, 0
                self._inflight = (0, -1)
                if outcome != "retry" or self._abort:
                    buf = self._buf
                    while buf and buf[0][0] <= last:
                        buf.popleft()
            if outcome == "ok":
                metrics.SINK_RECORDS.labels(SINK, "written").inc(n)
                BUFFERED.dec(n - evicted)
                if failing_since is not None:
                    log.warning(
                        "influxdb %s: writing again after %.1fs of failures",
                        self._url,
                        time.monotonic() - failing_since,
                    )
                failing_since, backoff = None, self._retry_initial
                continue
            if outcome == "reject":
                metrics.SINK_RECORDS.labels(SINK, "rejected").inc(n)
                BUFFERED.dec(n - evicted)
                log.error("influxdb %s rejected %d points, not retried: %s", self._url, n, detail)
                continue
            # retry: the points stay in the deque (minus any the overflow pushed out meanwhile)
            metrics.SINK_RECORDS.labels(SINK, "retried").inc(n - evicted)
            if evicted:
                self._count_dropped(evicted, "buffer full while the server was failing")
            if self._aborted():
                self._count_dropped(n - evicted, "server failing at close", force_log=True)
                BUFFERED.dec(n - evicted)
                return
            delay = backoff * random.uniform(0.8, 1.2)
            if retry_after is not None:
                delay = max(delay, min(retry_after, _RETRY_AFTER_MAX_S))
            backoff = min(backoff * 2.0, self._retry_max)
            if failing_since is None:
                failing_since = time.monotonic()
                log.warning("influxdb %s: write of %d points failed (%s); retrying with backoff", self._url, n, detail)
            else:
                log.debug("influxdb %s: retry failed (%s); next in %.2fs", self._url, detail, delay)
            with self._cv:
                self._cv.wait_for(lambda: self._abort, timeout=delay)


class InfluxSink(DynamicSink[WindowStats | AnomalyEvent]):
    """Write windows and anomalies to InfluxDB (v2 write API) from every worker; see the module docstring.

    ``retry_initial_s``/``retry_max_s`` bound the exponential backoff between
    attempts (doubling, ±20 % jitter; a longer ``Retry-After`` wins, up to 60 s);
    ``close_timeout_s`` bounds the flush at shutdown.
    """

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 10.0,
        close_timeout_s: float = 30.0,
    ) -> None:
        if not settings.url:
            raise ValueError("influxdb.url is not set")
        self._settings = settings
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._close_timeout = close_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(
            self._settings, f"{step_id}-{worker_index}", self._retry_initial, self._retry_max, self._close_timeout
        )
