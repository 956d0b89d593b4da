"""Every dead letter is counted once by stage, wherever it came from (source, decode, validate)."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from sentinel import metrics
from sentinel import operators as sop
from sentinel.models import DeadLetter


def _counts() -> dict[str, int]:
    counts: dict[str, int] = metrics.summary()["dead_letters"]
    return counts


def test_dead_letters_of_every_stage_are_counted_where_the_streams_meet() -> None:
    letters = [
        DeadLetter(stage=stage, error="x", payload=b"p", source=f"t/0/{i}")
        for i, stage in enumerate(["source", "source", "decode", "validate"])
    ]
    before = _counts()
    flow = Dataflow("count_dead_test")
    out: list[DeadLetter] = []
    counted = sop.count_dead("count_dead", op.input("in", flow, TestingSource(letters)))
    op.output("out", counted, TestingSink(out))
    run_main(flow)
    after = _counts()
    assert out == letters  # passed through unchanged
    assert {k: after.get(k, 0) - before.get(k, 0) for k in ("source", "decode", "validate")} == {
        "source": 2,
        "decode": 1,
        "validate": 1,
    }
