"""Graceful stop on SIGINT/SIGTERM.

Bytewax 0.21 turns SIGINT into an abrupt ``KeyboardInterrupt`` inside the
runtime: sinks are not closed, so buffered alerts and window points are lost.
We install handlers that only set a flag; our sources check it and end their
partitions (``StopIteration``), so the dataflow drains and every sink is closed
and flushed the normal way. A second signal falls back to the default (abort).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

__all__ = ["install_graceful_shutdown", "shutdown_requested"]

_stop = threading.Event()
_installed = False


def shutdown_requested() -> bool:
    return _stop.is_set()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _stop.is_set():  # second signal: the user really wants out
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return
    print(f"\nsentinel: {signal.Signals(signum).name} received, draining (repeat to abort)…", file=sys.stderr)
    _stop.set()


def install_graceful_shutdown() -> bool:
    """Install the handlers (main thread only); returns whether they are installed."""
    global _installed
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    _installed = True
    return True
