"""Bytewax source over a telemetry file: one message per line (``.jsonl``, optionally ``.gz``).

This is the OpenTelemetry Collector file-exporter layout: each line is one OTLP
JSON ``ExportTraceServiceRequest`` (or one native event JSON). The source emits
:class:`RawMessage` items — bytes plus where they came from — so decoding,
validation and dead-lettering are the same for files and Kafka.

The partition snapshots the byte offset of the next line (of the uncompressed
stream), so a resumed run continues where the last snapshot left off. Progress
(bytes, messages, rate, ETA) is reported to a callback when one is given.
"""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from sentinel.sources.shutdown import shutdown_requested

__all__ = ["FileProgress", "JsonLinesSource", "RawMessage"]


@dataclass(slots=True, frozen=True)
class RawMessage:
    """One undecoded message and its origin (``file:line`` or ``topic/partition/offset``)."""

    payload: bytes
    source: str


@dataclass(slots=True, frozen=True)
class FileProgress:
    path: str
    bytes_done: int
    bytes_total: int
    messages: int
    elapsed_s: float
    done: bool


ProgressFn = Callable[[FileProgress], None]


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """Return (reader, raw file); progress is measured on the raw (compressed) file."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the partition
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), buffer_size=1 << 20), raw
    return raw, raw


class _FilePartition(StatefulSourcePartition[RawMessage, tuple[int, int]]):
    def __init__(self, path: Path, batch_size: int, resume: tuple[int, int] | None, progress: ProgressFn | None):
        self._path = path
        self._reader, self._raw = _open(path)
        self._total = os.fstat(self._raw.fileno()).st_size
        self._line, self._offset = resume or (0, 0)
        if self._offset:
            # gzip streams cannot seek cheaply backwards but forward seeks decompress, which is fine
            self._reader.seek(self._offset)
        self._batch_size = batch_size
        self._progress = progress
        self._messages = 0
        self._started = time.monotonic()
        self._last_report = 0.0
        self._name = str(path)

    def next_batch(self) -> list[RawMessage]:
        if shutdown_requested():
            raise StopIteration
        out: list[RawMessage] = []
        readline = self._reader.readline
        name = self._name
        while len(out) < self._batch_size:
            line = readline()
            if not line:
                if not out:  # reported once, after the last batch was counted
                    self._report(done=True)
                    raise StopIteration
                break
            self._line += 1
            self._offset += len(line)
            stripped = line.strip()
            if not stripped:
                continue  # blank lines carry nothing: not a message
            out.append(RawMessage(stripped, f"{name}:{self._line}"))
        self._messages += len(out)
        self._report(done=False)
        return out

    def _report(self, done: bool) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not done and now - self._last_report < 0.5:
            return
        self._last_report = now
        self._progress(
            FileProgress(self._name, self._raw.tell(), self._total, self._messages, now - self._started, done)
        )

    def snapshot(self) -> tuple[int, int]:
        return (self._line, self._offset)

    def close(self) -> None:
        self._reader.close()
        self._raw.close()


class JsonLinesSource(FixedPartitionedSource[RawMessage, tuple[int, int]]):
    """Read one file, line by line, resumable; a single partition."""

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 1000, progress: ProgressFn | None = None):
        self._path = Path(path)
        if not self._path.is_file():
            raise FileNotFoundError(f"input file not found: {self._path}")
        self._batch_size = batch_size
        self._progress = progress

    def list_parts(self) -> list[str]:
        return [str(self._path)]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _FilePartition:
        return _FilePartition(self._path, self._batch_size, resume_state, self._progress)
