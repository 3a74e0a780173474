"""Estimated cost of a turn from its token usage and the configured price table."""

from __future__ import annotations

from bot.core.models import Usage

PER_TOKEN = 1_000_000


def estimate_cost(usage: Usage, model: str, prices: dict[str, dict[str, float]]) -> float:
    """USD for one response: each token kind times its price per 1M tokens."""
    table = prices.get(model) or prices.get("default") or {}
    return (
        usage.text_input * table.get("text_input", 0.0)
        + usage.text_output * table.get("text_output", 0.0)
        + usage.image_input * table.get("image_input", 0.0)
        + usage.image_output * table.get("image_output", 0.0)
    ) / PER_TOKEN
