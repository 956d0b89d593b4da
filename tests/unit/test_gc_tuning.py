"""GC tuning: once per process, off with 0 (run in a child so the test process is untouched)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _child(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def test_tune_gc_freezes_once_and_sets_the_threshold() -> None:
    out = _child(
        """
        import gc
        from sentinel.gc_tuning import tune_gc
        before = gc.get_threshold()
        first = tune_gc(40_000)
        frozen = gc.get_freeze_count()
        second = tune_gc(10)
        print(first, second, frozen > 0, gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:])
        """
    )
    assert out == "True False True 40000 True"


def test_zero_keeps_the_defaults() -> None:
    out = _child(
        """
        import gc
        from sentinel.gc_tuning import tune_gc
        before = gc.get_threshold()
        print(tune_gc(0), gc.get_freeze_count(), gc.get_threshold() == before)
        """
    )
    assert out == "False 0 True"


def test_the_flow_process_is_tuned_from_settings() -> None:
    out = _child(
        """
        import gc, tempfile
        from dataflows.sentinel import build_flow
        from sentinel.config import load_settings
        d = tempfile.mkdtemp()
        build_flow(load_settings(None, output={"dir": d, "console": False}, runtime={"gc_threshold": 12_345}))
        print(gc.get_threshold()[0], gc.get_freeze_count() > 0)
        """
    )
    assert out == "12345 True"
