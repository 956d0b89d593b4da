"""Model prices (USD per 1M tokens) and the cost of one call (DESIGN.md ⚑ Input, "Cost").

A model name is matched to the *longest* known name that is a prefix of it and ends
on a boundary (``-``, ``@``, ``:``, ``_``, ``/`` or the end), so ``gpt-4o-2024-08-06``
prices as ``gpt-4o`` and ``gpt-4o-mini-2024-07-18`` as ``gpt-4o-mini``. Provider
prefixes are ignored: ``openai/gpt-4o``, ``models/gemini-1.5-pro`` and Bedrock ids
such as ``us.anthropic.claude-sonnet-4-20250514-v1:0`` all resolve. Lookups are
cached per model name (models repeat on every event).

>>> p = Pricing()
>>> p.cost("gpt-4o-2024-08-06", 1_000_000, 100_000)
3.5
>>> p.cost("my-finetune", 10, 10) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["DEFAULT_PRICES", "Pricing"]

# (input, output) USD per 1M tokens. Keys are lower-case.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    # Anthropic
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    # Google
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
}

_BOUNDARY = frozenset("-@:_/ ")
_CACHE_MAX = 4096


class _Price(Protocol):
    """Anything with per-1M prices (``sentinel.config.PriceSettings`` fits)."""

    @property
    def input_per_1m(self) -> float: ...

    @property
    def output_per_1m(self) -> float: ...


def _normalise(model: str) -> str:
    name = model.strip().lower()
    if "/" in name:  # openai/gpt-4o, models/gemini-1.5-pro, accounts/x/models/y
        name = name.rsplit("/", 1)[1]
    head = name.split("-", 1)[0]
    if "." in head:  # bedrock: anthropic.claude-…, us.anthropic.claude-…
        name = name[name.rindex(".", 0, len(head)) + 1 :]
    return name


class Pricing:
    """The price table: defaults, overridden and extended by ``Settings.pricing``.

    ``cost`` returns ``None`` for a model it does not know; the caller charges 0
    and counts the event as unpriced.
    """

    __slots__ = ("_cache", "_names", "_prices")

    def __init__(
        self,
        overrides: Mapping[str, _Price] | None = None,
        *,
        defaults: Mapping[str, tuple[float, float]] = DEFAULT_PRICES,
    ) -> None:
        prices = {k.lower(): (float(i), float(o)) for k, (i, o) in defaults.items()}
        for name, p in (overrides or {}).items():
            prices[name.strip().lower()] = (float(p.input_per_1m), float(p.output_per_1m))
        self._prices = prices
        self._names = sorted(prices, key=len, reverse=True)  # longest first
        self._cache: dict[str, tuple[float, float] | None] = {}

    @property
    def models(self) -> dict[str, tuple[float, float]]:
        """A copy of the table: model name → (input, output) USD per 1M tokens."""
        return dict(self._prices)

    def lookup(self, model: str) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens for ``model``, or ``None`` when unknown."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        known = self.matched_name(model)
        found = None if known is None else self._prices[known]
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[model] = found
        return found

    def matched_name(self, model: str) -> str | None:
        """The table entry ``model`` prices as (for diagnostics), or ``None``."""
        name = _normalise(model)
        for known in self._names:
            if name.startswith(known) and (len(name) == len(known) or name[len(known)] in _BOUNDARY):
                return known
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """USD cost of one call, or ``None`` when the model is not in the table."""
        p = self.lookup(model)
        if p is None:
            return None
        return (input_tokens * p[0] + output_tokens * p[1]) / 1_000_000.0
