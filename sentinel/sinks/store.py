"""The anomaly store: a SQLite file the flow writes and the HTTP API reads.

* **Idempotent.** Rows are keyed by the anomaly's deterministic ``id`` and
  written with ``INSERT OR REPLACE``, so a replay after recovery (at-least-once)
  or a backtest over the same data does not duplicate anything.
* **Batched.** One transaction per Bytewax batch (``executemany``).
* **Concurrent.** WAL journal: readers (the API) never block the writer and
  vice versa; several worker threads/processes on one host share the file,
  serialised by SQLite's write lock with a ``busy_timeout``.
* **Bounded.** At most every ``prune_every_s`` a partition deletes rows detected
  more than ``retention_s`` ago (wall clock, so a backtest of old data is kept)
  and, beyond ``max_rows``, the oldest by event time.

:class:`AnomalyStore` is plain Python (tests use it directly);
:class:`AnomalyStoreSink` is the Bytewax adapter, one partition per worker.
The same database holds the control channel's tables (:mod:`sentinel.control`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from sentinel import metrics
from sentinel.control import connect
from sentinel.models import AnomalyEvent
from sentinel.sinks.jsonl import dumps

__all__ = ["AnomalyQuery", "AnomalyStore", "AnomalyStoreSink", "StoreHealth", "store_health"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anomalies (
    id           TEXT PRIMARY KEY,
    ts           REAL NOT NULL,
    detected_at  REAL NOT NULL,
    service      TEXT NOT NULL,
    model        TEXT NOT NULL,
    anomaly_type TEXT NOT NULL,
    severity     TEXT NOT NULL,
    record       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS anomalies_ts ON anomalies (ts);
CREATE INDEX IF NOT EXISTS anomalies_key_ts ON anomalies (service, model, ts);
CREATE INDEX IF NOT EXISTS anomalies_detected ON anomalies (detected_at);
"""


@dataclass(frozen=True, slots=True)
class AnomalyQuery:
    service: str | None = None
    model: str | None = None
    anomaly_type: str | None = None
    severity: str | None = None
    since: float | None = None  # event time, epoch seconds, inclusive
    until: float | None = None  # exclusive
    limit: int = 100


class AnomalyStore:
    """Thread-safe access to the ``anomalies`` table of one SQLite file."""

    def __init__(self, path: str | Path, retention_s: float = 7 * 86_400.0, max_rows: int = 1_000_000) -> None:
        self.path = Path(path)
        self.retention_s = retention_s
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def write_events(self, events: Iterable[AnomalyEvent]) -> int:
        """Insert or replace the anomalies (by id) in one transaction; returns how many."""
        rows = []
        for a in events:
            r = a.to_dict()
            when = a.detected_at or time.time()
            rows.append((r["id"], a.timestamp, when, a.service, a.model, r["anomaly_type"], r["severity"], dumps(r)))
        if not rows:
            return 0
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany("INSERT OR REPLACE INTO anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return len(rows)

    def prune(self, now: float | None = None) -> int:
        """Apply retention (age, then row count); returns the rows deleted."""
        now = time.time() if now is None else now
        with self._lock:
            c = self._conn
            n = c.execute("DELETE FROM anomalies WHERE detected_at < ?", (now - self.retention_s,)).rowcount
            total = c.execute("SELECT count(*) FROM anomalies").fetchone()[0]
            if total > self.max_rows:
                n += c.execute(
                    "DELETE FROM anomalies WHERE id IN (SELECT id FROM anomalies ORDER BY ts ASC, id ASC LIMIT ?)",
                    (total - self.max_rows,),
                ).rowcount
        return int(n)

    def query(self, q: AnomalyQuery) -> list[dict[str, Any]]:
        """Anomalies matching ``q``, newest event time first."""
        where: list[str] = []
        args: list[Any] = []
        for col, val in (
            ("service", q.service),
            ("model", q.model),
            ("anomaly_type", q.anomaly_type),
            ("severity", q.severity),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if q.since is not None:
            where.append("ts >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("ts < ?")
            args.append(q.until)
        sql = "SELECT record FROM anomalies"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id ASC LIMIT ?"
        args.append(q.limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM anomalies").fetchone()[0])

    def ping(self) -> None:
        """Raises if the database cannot be read."""
        with self._lock:
            self._conn.execute("SELECT 1 FROM anomalies LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# ------------------------------------------------------------------ health (process-local, read by /ready)


@dataclass
class StoreHealth:
    """What this process's store partitions last did (``/ready`` reads it)."""

    open_partitions: int = 0
    last_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    @property
    def failing(self) -> bool:
        return self.last_error_at is not None and (self.last_ok is None or self.last_error_at > self.last_ok)


_health = StoreHealth()
_health_lock = threading.Lock()


def store_health() -> StoreHealth:
    with _health_lock:
        return StoreHealth(_health.open_partitions, _health.last_ok, _health.last_error, _health.last_error_at)


def _note(ok: bool, error: str | None = None, opened: int = 0) -> None:
    with _health_lock:
        _health.open_partitions += opened
        now = time.time()
        if ok:
            _health.last_ok = now
        elif error is not None:
            _health.last_error, _health.last_error_at = error, now


# ------------------------------------------------------------------ Bytewax adapter


class _StorePartition(StatelessSinkPartition[AnomalyEvent]):
    def __init__(self, store: AnomalyStore, prune_every_s: float) -> None:
        self._store = store
        self._prune_every_s = prune_every_s
        self._last_prune = 0.0
        self._ok = metrics.SINK_RECORDS.labels("store", "written")
        self._failed = metrics.SINK_RECORDS.labels("store", "failed")
        _note(True, opened=1)

    def write_batch(self, items: list[AnomalyEvent]) -> None:
        t0 = time.perf_counter()
        try:
            n = self._store.write_events(items)
            now = time.monotonic()
            if now - self._last_prune >= self._prune_every_s:
                self._last_prune = now
                pruned = self._store.prune()
                if pruned:
                    log.info("anomaly store: pruned %d rows", pruned, extra={"path": str(self._store.path)})
        except (sqlite3.Error, TypeError) as e:
            # a full disk, a locked file or a value JSON cannot hold must not kill the flow: the JSONL
            # file still has every anomaly
            self._failed.inc(len(items))
            _note(False, f"{type(e).__name__}: {e}")
            log.error("anomaly store: write of %d rows failed: %s", len(items), e)
            return
        self._ok.inc(n)
        _note(True)
        metrics.STAGE_SECONDS.labels("store").observe(time.perf_counter() - t0)

    def close(self) -> None:
        self._store.close()
        _note(True, opened=-1)


class AnomalyStoreSink(DynamicSink[AnomalyEvent]):
    """Write anomalies to the SQLite store at ``path`` (one connection per worker)."""

    def __init__(self, path: str | Path, retention_s: float, max_rows: int, prune_every_s: float = 60.0) -> None:
        self._path = Path(path)
        self._retention_s = retention_s
        self._max_rows = max_rows
        self._prune_every_s = prune_every_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        return _StorePartition(AnomalyStore(self._path, self._retention_s, self._max_rows), self._prune_every_s)
