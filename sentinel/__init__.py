"""LLM-Sentinel: streaming anomaly detection for LLM applications.

The flow (see DESIGN.md): decode → validate + mask → key by ``service|model`` →
detect (per key) and window → dedup/route → sinks. Everything here is pure,
unit-testable logic except :mod:`sentinel.sources` and :mod:`sentinel.sinks`,
the Bytewax adapters.
"""

__version__ = "0.1.0"
