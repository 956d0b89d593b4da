"""Pricing: defaults, longest-prefix match, provider prefixes, overrides."""

from __future__ import annotations

import pytest

from sentinel.config import PriceSettings, Settings
from sentinel.pricing import DEFAULT_PRICES, Pricing

REQUIRED = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-1.5-pro": (1.25, 5.00),
}


def test_required_defaults() -> None:
    for name, price in REQUIRED.items():
        assert DEFAULT_PRICES[name] == price
        assert Pricing().lookup(name) == price


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4-0613", "gpt-4"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("models/gemini-1.5-pro", "gemini-1.5-pro"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("o3-mini-2025-01-31", "o3-mini"),
    ],
)
def test_longest_prefix_match(model: str, entry: str) -> None:
    p = Pricing()
    assert p.matched_name(model) == entry
    assert p.lookup(model) == DEFAULT_PRICES[entry]


@pytest.mark.parametrize("model", ["gpt-4omni", "gpt-4.5-preview", "llama-3-70b", "", "my-ft:gpt-4o", "o1x"])
def test_unknown_models(model: str) -> None:
    p = Pricing()
    assert p.lookup(model) is None
    assert p.cost(model, 100, 100) is None


def test_cost_arithmetic() -> None:
    p = Pricing()
    assert p.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)
    assert p.cost("gpt-4o-mini", 417, 53) == pytest.approx(9.435e-05)  # what Langfuse charged
    assert p.cost("gpt-4o", 0, 0) == 0.0


def test_overrides_replace_and_extend() -> None:
    p = Pricing(
        {
            "gpt-4o": PriceSettings(input_per_1m=1.0, output_per_1m=2.0),
            "acme-7b": PriceSettings(input_per_1m=0.1, output_per_1m=0.2),
        }
    )
    assert p.lookup("gpt-4o-2024-08-06") == (1.0, 2.0)
    assert p.cost("acme-7b-instruct", 1_000_000, 0) == pytest.approx(0.1)
    assert p.lookup("gpt-4o-mini") == (0.15, 0.60)  # a longer default still wins over a shorter override
    assert "acme-7b" in p.models


def test_override_from_settings() -> None:
    s = Settings(pricing={"My-Model": {"input_per_1m": 3, "output_per_1m": 4}})
    p = Pricing(s.pricing)
    assert p.lookup("my-model-v2") == (3.0, 4.0)


def test_lookup_is_cached() -> None:
    p = Pricing()
    assert p.lookup("gpt-4o-2024-08-06") is p.lookup("gpt-4o-2024-08-06")
    for i in range(5000):  # the cache is bounded
        p.lookup(f"unknown-{i}")
    assert p.lookup("gpt-4o") == (2.5, 10.0)
