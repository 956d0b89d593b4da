"""Runtime control: detection settings changed without a restart, and process-local state for the API.

The control channel
-------------------
Two tables in the anomaly store's SQLite file (``api.store_path``; a file all
processes on the host share; WAL mode)::

    config_versions(version INTEGER PRIMARY KEY AUTOINCREMENT, created_at, overrides)
    config_audit(id, version, at, who, changes)

* A version holds the **cumulative overrides** (a partial ``detection`` dict)
  that the API accepted so far, not a full settings object: each process
  computes its effective settings as *its own config file's* ``detection``
  deep-merged with the overrides. Keys never changed at runtime therefore keep
  following the config file, and a field added to
  :class:`~sentinel.detect.settings.DetectionSettings` later just takes its
  default.
* :meth:`ControlChannel.update` validates the merged result with pydantic
  (the error names the offending field), then, inside one ``BEGIN IMMEDIATE``
  transaction, appends the new version and an audit row (who, when, the
  ``old → new`` value of every changed leaf). Concurrent updates from several
  API processes serialise on SQLite's write lock; none is lost.
* Every worker's ``detect`` step asks a process-wide :class:`ControlPoller` for
  the current settings at each batch; the poller reads ``max(version)`` at most
  once per ``api.control_poll_s`` (a primary-key lookup, ~20 µs). On a new
  version each key's :class:`~sentinel.detect.bank.DetectorBank` gets
  ``apply_settings(new)`` before its next item — learned state is kept, only
  thresholds change — and keys created later start with the new settings.
* Overrides persist in the file: a restarted flow with the same store resumes
  with them (``GET /api/v1/config`` shows the version). Delete the file (or POST
  the old values) to return to the config file.

Because the flow reads the version *between batches*, "subsequent events" means
events in batches that start after the poll interval has passed since the
change was committed (≤ ``control_poll_s`` of wall-clock time).

Process-local state
-------------------
:data:`baselines` (a :class:`BaselineRegistry`): each key's bank publishes
``bank.baselines()`` at most every ``api.baselines_interval_s``; the API of the
same process serves them. Keys live on the worker that owns them, so another
process's keys are not here (404). :data:`activity` records when the flow last
processed a batch (``/ready`` reports it).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from sentinel import metrics
from sentinel.detect.bank import DetectorBank
from sentinel.detect.settings import DetectionSettings

__all__ = [
    "AuditEntry",
    "BaselineRegistry",
    "ControlChannel",
    "ControlPoller",
    "FlowActivity",
    "activity",
    "baselines",
    "connect",
    "deep_merge",
    "diff",
]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config_versions (
    version    INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    overrides  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS config_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    version INTEGER NOT NULL,
    at      REAL NOT NULL,
    who     TEXT NOT NULL,
    changes BLOB NOT NULL
);
"""


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` applied: nested mappings merge, anything else replaces."""
    out = dict(base)
    for k, v in patch.items():
        cur = out.get(k)
        out[k] = deep_merge(cur, v) if isinstance(cur, Mapping) and isinstance(v, Mapping) else v
    return out


def with_overrides(base: DetectionSettings, overrides: Mapping[str, Any]) -> DetectionSettings:
    """``base`` with the runtime ``overrides`` merged in and validated (raises ``ValidationError``)."""
    return DetectionSettings.model_validate(deep_merge(base.model_dump(mode="json"), overrides))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, path + "."))
        else:
            out[path] = v
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"zscore.threshold": {"old": 4.0, "new": 3.0}, …}`` for every leaf that differs."""
    a, b = _flatten(old), _flatten(new)
    return {k: {"old": a.get(k), "new": b.get(k)} for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _check_usable(settings: DetectionSettings, patch: Mapping[str, Any]) -> None:
    """Refuse settings pydantic accepts but the detectors cannot take, before they are stored.

    Every key's bank is built and reconfigured from the stored version; a bad version
    would fail on each new key and after every restart.
    """
    try:
        DetectorBank(settings, "probe", "probe")
    except Exception as e:  # any failure means the version is unusable
        raise ValidationError.from_exception_data(
            "DetectionSettings",
            [{"type": "value_error", "loc": (), "input": patch, "ctx": {"error": f"{type(e).__name__}: {e}"}}],
        ) from e


@dataclass(frozen=True, slots=True)
class AuditEntry:
    version: int
    at: float
    who: str
    changes: dict[str, dict[str, Any]]


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout (shared by the store and the control channel)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class ControlChannel:
    """The versioned runtime overrides of the detection settings in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def latest_version(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT max(version) FROM config_versions").fetchone()
        return int(row[0] or 0)

    def _latest(self) -> tuple[int, dict[str, Any]]:
        row = self._conn.execute(
            "SELECT version, overrides FROM config_versions ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return 0, {}
        return int(row[0]), orjson.loads(row[1])

    def effective(self, base: DetectionSettings) -> tuple[int, DetectionSettings]:
        """The latest version and ``base`` with its overrides applied.

        Overrides that no longer validate (a field renamed since) are ignored with an
        error log, so a stale store cannot stop the flow.
        """
        with self._lock:
            version, overrides = self._latest()
        if not overrides:
            return version, base
        try:
            return version, with_overrides(base, overrides)
        except ValidationError as e:
            log.error(
                "control: runtime overrides of version %d no longer validate; using the config file's: %s",
                version,
                "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()),
            )
            return version, base

    def update(
        self, base: DetectionSettings, patch: Mapping[str, Any], who: str
    ) -> tuple[int, DetectionSettings, dict[str, dict[str, Any]]]:
        """Apply a partial update; returns (version, effective settings, changes).

        Raises :class:`pydantic.ValidationError` (locations relative to ``detection``)
        when the merged settings are invalid; nothing is written then. A patch that
        changes nothing writes nothing and returns the current version.
        """
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                version, overrides = self._latest()
                old = with_overrides(base, overrides) if overrides else base
                new_overrides = deep_merge(overrides, patch)
                new = with_overrides(base, new_overrides)
                _check_usable(new, patch)
                changes = diff(old.model_dump(mode="json"), new.model_dump(mode="json"))
                if not changes:
                    c.execute("ROLLBACK")
                    return version, old, {}
                now = time.time()
                cur = c.execute(
                    "INSERT INTO config_versions (created_at, overrides) VALUES (?, ?)",
                    (now, orjson.dumps(new_overrides)),
                )
                new_version = int(cur.lastrowid or 0)
                c.execute(
                    "INSERT INTO config_audit (version, at, who, changes) VALUES (?, ?, ?, ?)",
                    (new_version, now, who, orjson.dumps(changes)),
                )
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        log.info(
            "control: detection settings version %d by %s: %s",
            new_version,
            who,
            ", ".join(f"{k} {v['old']!r} → {v['new']!r}" for k, v in changes.items()),
            extra={"version": new_version, "changes": changes},
        )
        return new_version, new, changes

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        """Audit entries, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT version, at, who, changes FROM config_audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [AuditEntry(int(v), float(at), str(who), orjson.loads(ch)) for v, at, who, ch in rows]


class ControlPoller:
    """Process-wide cache of the effective detection settings, refreshed at most every ``poll_s``.

    Shared by every worker thread of the process (thread-safe). The database is
    opened lazily on the first poll, so building a flow touches no file.
    """

    def __init__(self, path: str | Path, base: DetectionSettings, poll_s: float = 1.0) -> None:
        self.path = Path(path)
        self.base = base
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._channel: ControlChannel | None = None
        self._next_poll = -math.inf
        self._version = 0
        self._settings = base
        self._failing = False

    def current(self) -> tuple[int, DetectionSettings]:
        """(version, settings); version 0 means the config file's settings."""
        now = time.monotonic()
        if now < self._next_poll:
            return self._version, self._settings
        with self._lock:
            if now < self._next_poll:
                return self._version, self._settings
            self._next_poll = now + self.poll_s
            try:
                if self._channel is None:
                    self._channel = ControlChannel(self.path)
                latest = self._channel.latest_version()
                if latest != self._version:
                    self._version, self._settings = self._channel.effective(self.base)
                    metrics.CONFIG_VERSION.set(self._version)
                    metrics.CONFIG_RELOADS.inc()
                    log.info("control: applying detection settings version %d", self._version)
                self._failing = False
            except sqlite3.Error as e:
                if not self._failing:
                    log.warning("control: cannot read %s (keeping version %d): %s", self.path, self._version, e)
                self._failing = True
            return self._version, self._settings


class BaselineRegistry:
    """Latest published baselines per ``service|model`` key of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def publish(self, service: str, model: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._data[(service, model)] = (time.time(), data)

    def remove(self, service: str, model: str) -> None:
        with self._lock:
            self._data.pop((service, model), None)

    def get(self, service: str, model: str) -> tuple[float, dict[str, Any]] | None:
        with self._lock:
            return self._data.get((service, model))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class FlowActivity:
    """When this process's flow was built and last processed a batch in the detect step (wall clock)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.last_batch: float | None = None

    def touch(self, now: float) -> None:
        self.last_batch = now


baselines = BaselineRegistry()
activity = FlowActivity()
