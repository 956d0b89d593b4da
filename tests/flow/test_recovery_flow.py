"""Crash and resume inside Bytewax: TestingSource.ABORT mid-stream, then resume from the recovery directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bytewax.recovery import init_db_dir
from bytewax.testing import TestingSource

from tests.flow.factories import T0, normal_stream, run_flow, to_messages


def stream() -> list:
    rng = np.random.default_rng(31)
    spike = (T0 + 4000, T0 + 4600)
    return to_messages(
        normal_stream(rng, "chat", "gpt-4o", 5400)
        + normal_stream(
            rng, "rag", "gpt-4o-mini", 5400, latency_factor=lambda t: 6.0 if spike[0] <= t < spike[1] else 1.0
        )
    )


# One worker: with 2 worker threads, bytewax 0.21 stops only the aborting worker and the other
# waits forever for it. Multi-worker and multi-process crashes are tested with real SIGKILLs in
# tests/integration/test_cluster.py and test_recovery.py.
@pytest.mark.parametrize("workers", [1])
def test_abort_and_resume_gives_the_uninterrupted_output(tmp_path: Path, workers: int) -> None:
    messages = stream()
    reference = run_flow(messages, tmp_path / "ref", workers=workers)

    rec = tmp_path / "rec"
    rec.mkdir()
    init_db_dir(rec, 1)
    crashing = [*messages[: len(messages) * 2 // 3], TestingSource.ABORT(), *messages[len(messages) * 2 // 3 :]]
    aborted = run_flow(crashing, tmp_path / "run", workers=workers, recovery=rec)  # stops at ABORT
    assert len(aborted.taps["events"]) < len(reference.taps["events"])
    resumed = run_flow(crashing, tmp_path / "run", workers=workers, recovery=rec)

    ref_lines = sorted(x["id"] for x in reference.jsonl("anomalies"))
    assert ref_lines, "the reference run found nothing"
    # the JSONL sinks are truncated back to the snapshot on resume: exactly the reference, no duplicates
    assert sorted(x["id"] for x in resumed.jsonl("anomalies")) == ref_lines
    assert sorted(x["alert_id"] for x in resumed.jsonl("alerts")) == sorted(
        x["alert_id"] for x in reference.jsonl("alerts")
    )
    assert len(resumed.jsonl("windows")) == len(reference.jsonl("windows"))
    # resumed from the last snapshot: together the two executions saw every event at least once
    assert len(aborted.taps["events"]) + len(resumed.taps["events"]) >= len(reference.taps["events"])
