"""Bytewax operators of the LLM-Sentinel flow: small typed functions ``(step_id, stream, …) -> streams``.

Each wraps pure logic from elsewhere in :mod:`sentinel` — decoding, validation,
the per-key :class:`~sentinel.detect.bank.DetectorBank`, the window accumulator
and the alert deduper — so that ``dataflows/sentinel.py`` reads as wiring only.
Multi-output operators return a small frozen dataclass of named streams, like
Bytewax's own ``KafkaOpOut``. Bad input never raises: it becomes a
:class:`~sentinel.models.DeadLetter` on an error stream.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window

from sentinel import control, metrics
from sentinel.alerting.dedup import AlertDeduper
from sentinel.control import ControlPoller
from sentinel.decode import Decoder
from sentinel.detect.bank import DetectorBank
from sentinel.detect.settings import DetectionSettings
from sentinel.models import AlertEvent, AnomalyEvent, DeadLetter, TelemetryEvent, WindowStats, format_ts, split_key
from sentinel.sinks.jsonl import dumps
from sentinel.sources.file import RawMessage
from sentinel.validate import Validator
from sentinel.windows import WindowAccumulator

__all__ = [
    "DetectRuntime",
    "IngestOut",
    "KeyChunk",
    "WindowPartial",
    "WindowsOut",
    "chunk_events",
    "dedup_alerts",
    "detect",
    "ingest",
    "key_chunks",
    "windows",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- ingest


@dataclass(slots=True)
class KeyChunk:
    """The valid events of one ``service|model`` key from one input batch, in arrival order.

    Grouping a batch by key before the keyed exchange is the flow's main throughput
    lever: Bytewax's per-item cost (routing, exchange, stateful dispatch) is paid once
    per key and batch instead of once per event, while per-key order is unchanged.
    """

    key: str
    events: list[TelemetryEvent]


@dataclass(frozen=True)
class IngestOut:
    chunks: Stream[KeyChunk]
    dead: Stream[DeadLetter]


def _reason_code(reason: str) -> str:
    """A low-cardinality label for a validation reason (its first word: the field)."""
    return reason.split(" ", 1)[0].rstrip(":")


class _DecodeValidate:
    """Batch function: messages → events and dead letters, counting everything."""

    def __init__(self, decoder: Decoder, validator: Validator) -> None:
        self.decoder = decoder
        self.validator = validator

    def __call__(self, batch: list[RawMessage]) -> list[KeyChunk | DeadLetter]:
        t0 = time.perf_counter()
        out: list[KeyChunk | DeadLetter] = []
        by_key: dict[str, list[TelemetryEvent]] = {}
        spans = decoded = skipped = unpriced = valid = 0
        check = self.validator.check
        now = time.time()
        for msg in batch:
            res = self.decoder.decode(msg.payload, msg.source)
            spans += res.spans
            skipped += res.skipped
            unpriced += res.unpriced
            decoded += len(res.events)
            out.extend(res.dead)
            for ev in res.events:
                reason = check(ev, now)
                if reason is None:
                    valid += 1
                    key = ev.key
                    chunk = by_key.get(key)
                    if chunk is None:
                        by_key[key] = [ev]
                    else:
                        chunk.append(ev)
                else:
                    metrics.EVENTS_INVALID.labels(_reason_code(reason)).inc()
                    out.append(_invalid_letter(ev, reason, msg.payload if res.spans == 1 else None))
        out.extend(KeyChunk(k, evs) for k, evs in by_key.items())
        metrics.MESSAGES.inc(len(batch))
        metrics.SPANS.inc(spans)
        metrics.EVENTS_DECODED.inc(decoded)
        metrics.SPANS_SKIPPED.inc(skipped)
        metrics.EVENTS_UNPRICED.inc(unpriced)
        metrics.EVENTS_VALID.inc(valid)
        metrics.STAGE_SECONDS.labels("decode").observe(time.perf_counter() - t0)
        return out


def _invalid_letter(ev: TelemetryEvent, reason: str, original: bytes | None) -> DeadLetter:
    """A refused event: the original message when it held only this event, else the event itself.

    A message with many spans is not dead-lettered whole for one bad span — replaying
    the dead letter would count its good spans twice — so the event's JSON stands in,
    marked by the ``sentinel.payload`` header.
    """
    if original is not None:
        return DeadLetter("validate", reason, original, ev.source, {"sentinel.payload": "message"})
    return DeadLetter("validate", reason, dumps(ev.to_dict()), ev.source, {"sentinel.payload": "event"})


@operator
def ingest(step_id: str, up: Stream[RawMessage], decoder: Decoder, validator: Validator) -> IngestOut:
    """Decode, mask and validate messages; one message may yield many events, grouped per key."""
    mixed = op.flat_map_batch("decode_validate", up, _DecodeValidate(decoder, validator))
    split = op.branch("split", mixed, lambda x: isinstance(x, KeyChunk))
    return IngestOut(chunks=split.trues, dead=split.falses)  # type: ignore[arg-type]


def count_dead(step_id: str, up: Stream[DeadLetter]) -> Stream[DeadLetter]:
    """Count every dead letter once, by stage, where all their streams meet (decode, validate, source)."""
    return op.inspect(step_id, up, lambda _step, dl: metrics.DEAD_LETTERS.labels(dl.stage).inc())


def key_chunks(step_id: str, up: Stream[KeyChunk]) -> KeyedStream[KeyChunk]:
    """Key by ``service|model`` (keys are made in one place: :func:`sentinel.models.key_of`)."""
    return op.key_on(step_id, up, lambda c: c.key)


def chunk_events(step_id: str, up: KeyedStream[KeyChunk]) -> Stream[TelemetryEvent]:
    """The individual events again (for taps and tests)."""
    return op.flat_map(step_id, up, lambda kv: kv[1].events)


# ---------------------------------------------------------------- windows


@dataclass(frozen=True)
class WindowsOut:
    stats: KeyedStream[WindowStats]
    late: KeyedStream[dict[str, Any]]


@dataclass(slots=True)
class WindowPartial:
    """The events of one key, batch and window folded into an accumulator (a combiner).

    The windowing operator folds partials instead of single events; its clock
    sees the partial at its earliest event time, so a partial is late exactly
    when its earliest event would have been.
    """

    window_id: int
    first_ts: float
    last_ts: float
    acc: WindowAccumulator


def _partials(length_s: float) -> Any:
    def split(chunk: KeyChunk) -> list[WindowPartial]:
        parts: dict[int, WindowPartial] = {}
        for ev in chunk.events:
            ts = ev.timestamp
            wid = int(ts // length_s)
            p = parts.get(wid)
            if p is None:
                p = parts[wid] = WindowPartial(wid, ts, ts, WindowAccumulator())
            elif ts < p.first_ts:
                p.first_ts = ts
            elif ts > p.last_ts:
                p.last_ts = ts
            p.acc.add(ev)
        return list(parts.values())

    return split


def _partial_dt_in(length_s: float) -> Any:
    """A partial's event time for Bytewax's clock, inside the window it was cut for.

    ``datetime`` rounds to the microsecond, so an event in the last half-microsecond of
    a window would otherwise be placed in the next one while counted in this one.
    """
    tick = timedelta(microseconds=1)

    def dt(p: WindowPartial) -> datetime:
        at = datetime.fromtimestamp(p.first_ts, UTC)
        last = _EPOCH + timedelta(seconds=(p.window_id + 1) * length_s) - tick
        return at if at <= last else last

    return dt


class _WakeNoEarlierThan:
    """``EventClock.to_system_utc`` that never asks for a wake-up in the past.

    Bytewax 0.21's default (identity) reads a window's close time — event time —
    as the system time to wake at. When event time lags arrival (a backlog, a
    replay, clock skew) that instant is always in the past and the worker
    re-arms a near-immediate wake in a tight loop (bytewax issue #578). Windows
    can only close once the watermark has passed ``close + late``, so we wake no
    earlier than that and, when it is already past, at most every ``poll_s``.
    """

    def __init__(self, late: timedelta, poll_s: float = 1.0) -> None:
        self.late = late
        self.poll = timedelta(seconds=poll_s)

    def __call__(self, close_at: datetime) -> datetime:
        floor = datetime.now(UTC) + self.poll
        at = close_at + self.late
        return at if at > floor else floor


def _fold(acc: WindowAccumulator, p: WindowPartial) -> WindowAccumulator:
    return acc.merge(p.acc)


def _merge(a: WindowAccumulator, b: WindowAccumulator) -> WindowAccumulator:
    return a.merge(b)


@operator
def windows(step_id: str, up: KeyedStream[KeyChunk], length_s: float, late_s: float) -> WindowsOut:
    """Tumbling event-time windows per key (aligned to the epoch), aggregated to :class:`WindowStats`.

    Bytewax's ``EventClock`` with ``late_s`` of waiting for late data decides when a
    window closes. Late data is counted and reported on ``late`` (one record per
    late partial: key, window, event count and time range) — never silently lost.
    """
    late = timedelta(seconds=late_s)
    partials = op.flat_map_value("partials", up, _partials(length_s))
    clock: EventClock[WindowPartial] = EventClock(
        _partial_dt_in(length_s), wait_for_system_duration=late, to_system_utc=_WakeNoEarlierThan(late)
    )
    windower = TumblingWindower(length=timedelta(seconds=length_s), align_to=_EPOCH)
    out = fold_window("fold", partials, clock, windower, WindowAccumulator, _fold, _merge, ordered=False)

    def to_stats(key: str, id_acc: tuple[int, WindowAccumulator]) -> tuple[str, WindowStats]:
        window_id, acc = id_acc
        service, model = split_key(key)
        start = window_id * length_s
        metrics.WINDOWS.inc()
        return key, acc.stats(service, model, start, start + length_s)

    stats = op.map("stats", out.down, lambda kv: to_stats(*kv))

    def late_record(kv: tuple[str, tuple[int, WindowPartial]]) -> tuple[str, dict[str, Any]]:
        key, (_wid, p) = kv
        service, model = split_key(key)
        metrics.LATE_EVENTS.inc(p.acc.requests)
        start = p.window_id * length_s
        return key, {
            "service": service,
            "model": model,
            "window_start": format_ts(start),
            "window_end": format_ts(start + length_s),
            "events": p.acc.requests,
            "first_event": format_ts(p.first_ts),
            "last_event": format_ts(p.last_ts),
        }

    late_records = op.map("late", out.late, late_record)
    return WindowsOut(stats=stats, late=late_records)


# ---------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectRuntime:
    """Runtime hooks of the detect step (the HTTP API's): settings from the control channel, baselines out."""

    control: ControlPoller | None = None
    baselines_interval_s: float = 5.0


class _DetectLogic(StatefulBatchLogic[KeyChunk | WindowStats, AnomalyEvent, bytes]):
    """One :class:`DetectorBank` per key; events and window stats of that key arrive here.

    Bytewax's builder does not see the key, so a fresh bank is created on the
    first item (which names the service and model). Keys idle for ``idle_s`` of
    wall-clock time are discarded so the key space cannot grow without bound.

    With a :class:`DetectRuntime`, each batch first asks the control channel for
    the current settings version; on a new one the bank gets ``apply_settings``
    (learned state kept) before the batch is scored. The bank's ``baselines()``
    are published for the API at most every ``baselines_interval_s``.
    """

    def __init__(
        self,
        settings: DetectionSettings,
        bank: DetectorBank | None,
        idle_s: float,
        runtime: DetectRuntime | None = None,
        version: int = 0,
    ) -> None:
        self.settings = settings
        self.bank = bank
        self.idle_s = idle_s
        self.touched = time.time()
        self.runtime = runtime
        self.version = version
        self.published = -math.inf

    def _refresh_settings(self) -> None:
        rt = self.runtime
        if rt is None or rt.control is None:
            return
        version, s = rt.control.current()
        if version != self.version:
            self.version, self.settings = version, s
            if self.bank is not None:
                try:
                    self.bank.apply_settings(s)
                except Exception:
                    # settings pydantic accepted but a detector cannot take: keep the flow alive
                    log.exception("detect: %s cannot apply settings version %d", self.bank.service, version)

    def on_batch(self, values: list[KeyChunk | WindowStats]) -> tuple[list[AnomalyEvent], bool]:
        t0 = time.perf_counter()
        self._refresh_settings()
        bank = self.bank
        if bank is None:
            first = values[0]
            service, model = split_key(first.key)
            bank = self.bank = DetectorBank(self.settings, service, model)
        out: list[AnomalyEvent] = []
        on_event = bank.on_event
        for v in values:
            if isinstance(v, KeyChunk):
                for ev in v.events:
                    found = on_event(ev)
                    if found:
                        out.extend(found)
            else:
                found = bank.on_window(v)
                if found:
                    out.extend(found)
        now = time.time()
        for a in out:
            a.detected_at = now
            metrics.ANOMALIES.labels(a.anomaly_type.value, a.severity.value).inc()
        self.touched = now
        rt = self.runtime
        if rt is not None:
            control.activity.touch(now)
            if now - self.published >= rt.baselines_interval_s:
                self.published = now
                try:
                    control.baselines.publish(bank.service, bank.model, bank.baselines())
                except (ArithmeticError, ValueError) as e:  # e.g. exp() overflow under extreme settings
                    log.warning("detect: baselines of %s/%s unavailable: %r", bank.service, bank.model, e)
        metrics.STAGE_SECONDS.labels("detect").observe(time.perf_counter() - t0)
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[AnomalyEvent], bool]:
        if time.time() - self.touched >= self.idle_s:
            metrics.ACTIVE_KEYS.dec()
            if self.runtime is not None and self.bank is not None:
                control.baselines.remove(self.bank.service, self.bank.model)
            return [], StatefulBatchLogic.DISCARD
        return [], StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.touched + self.idle_s, UTC)

    def snapshot(self) -> bytes:
        # bytes are immutable, so this is a safe snapshot, and cheaper than deepcopy
        t0 = time.perf_counter()
        state = pickle.dumps(self.bank, protocol=pickle.HIGHEST_PROTOCOL)
        metrics.SNAPSHOT_SECONDS.labels("detect").observe(time.perf_counter() - t0)
        metrics.SNAPSHOT_BYTES.labels("detect").observe(len(state))
        return state


def detect(
    step_id: str,
    up: KeyedStream[KeyChunk | WindowStats],
    settings: DetectionSettings,
    idle_s: float,
    runtime: DetectRuntime | None = None,
) -> KeyedStream[AnomalyEvent]:
    """Run the detector bank of each key over its events and window aggregates (score before learn).

    ``runtime`` (optional) connects the step to the control channel and the
    baselines registry of :mod:`sentinel.control`.
    """

    def builder(resume: bytes | None) -> _DetectLogic:
        current, version = settings, 0
        if runtime is not None and runtime.control is not None:
            version, current = runtime.control.current()
        bank: DetectorBank | None = pickle.loads(resume) if resume is not None else None
        if bank is not None:
            bank.apply_settings(current)
        metrics.ACTIVE_KEYS.inc()
        return _DetectLogic(current, bank, idle_s, runtime, version)

    return op.stateful_batch(step_id, up, builder)


# ---------------------------------------------------------------- alerting


@operator
def dedup_alerts(step_id: str, up: KeyedStream[AnomalyEvent], window_s: float) -> KeyedStream[AlertEvent]:
    """Collapse bursts of the same anomaly type per key into alerts (escalations re-alert)."""

    def mapper(state: AlertDeduper | None, a: AnomalyEvent) -> tuple[AlertDeduper, list[AlertEvent]]:
        d = state if state is not None else AlertDeduper(window_s)
        alert = d.on_anomaly(a)
        return d, [alert] if alert is not None else []

    return op.stateful_flat_map("state", up, mapper)
