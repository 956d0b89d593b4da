"""A flow for tests/integration/test_api.py: the real dataflow over a *gated* source.

``python -m bytewax.run tests.integration.api_flow:flow`` with ``API_TEST_DIR``
holding ``phase1.jsonl`` and ``phase2.jsonl``. The source emits phase 1, waits
for the file ``go2`` (the test changes settings meanwhile), emits phase 2, waits
for ``finish`` and ends. Everything else is configured by ``SENTINEL_*``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflows.sentinel import SourceOverride, build_flow
from sentinel.sources.file import RawMessage

BATCH = 200


class _Gated(StatefulSourcePartition[RawMessage, None]):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.phases = [(root / "phase1.jsonl", None), (root / "phase2.jsonl", root / "go2")]
        self.finish = root / "finish"
        self.lines: list[bytes] = []
        self.pos = 0
        self.phase = -1
        self.waiting = False

    def next_batch(self) -> list[RawMessage]:
        self.waiting = False
        if self.pos < len(self.lines):
            chunk = self.lines[self.pos : self.pos + BATCH]
            self.pos += len(chunk)
            return [RawMessage(x, f"phase{self.phase + 1}:{self.pos}") for x in chunk]
        if self.phase + 1 < len(self.phases):
            path, gate = self.phases[self.phase + 1]
            if gate is not None and not gate.exists():
                self.waiting = True
                return []
            self.phase += 1
            self.lines = [x for x in path.read_bytes().splitlines() if x.strip()]
            self.pos = 0
            return []
        if not self.finish.exists():
            self.waiting = True
            return []
        raise StopIteration

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=0.05) if self.waiting else None

    def snapshot(self) -> None:
        return None


class GatedSource(FixedPartitionedSource[RawMessage, None]):
    def __init__(self, root: Path) -> None:
        self.root = root

    def list_parts(self) -> list[str]:
        return ["gated"]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _Gated:
        return _Gated(self.root)


def __getattr__(name: str) -> Dataflow:
    if name == "flow":
        return build_flow(source=SourceOverride(source=GatedSource(Path(os.environ["API_TEST_DIR"]))))
    raise AttributeError(name)
