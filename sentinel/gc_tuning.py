"""Garbage-collector settings for a long-running flow process.

The flow allocates a few small objects per event (events, chunks, anomalies) and
keeps a large, long-lived heap (imported modules, detector state, client
libraries). With CPython's defaults a full collection runs every ~700·10·10
allocations and walks that whole heap each time — measured at ~7 % of the full
flow's time on 300k events (``benchmarks/throughput.py``). :func:`tune_gc`
therefore, once per process:

1. moves everything alive after start-up into the permanent generation
   (:func:`gc.freeze`), so collections no longer walk the imported modules, and
2. raises the first-generation threshold (default 50,000 allocations), so young
   objects are examined in larger, rarer batches. Collections still run: reference
   cycles are freed, only later.

``runtime.gc_threshold: 0`` keeps CPython's defaults.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["tune_gc"]

_lock = threading.Lock()
_tuned = False


def tune_gc(threshold: int) -> bool:
    """Freeze the start-up heap and set the gen-0 threshold; True if this call changed anything.

    Only the first call in a process acts (tests build many flows in one process);
    ``threshold <= 0`` leaves the collector as it is.
    """
    global _tuned
    if threshold <= 0:
        return False
    with _lock:
        if _tuned:
            return False
        _tuned = True
    gc.collect()  # free start-up garbage before freezing what is left
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(threshold, g1, g2)
    return True
