"""Model settings and the price table the loop turns token usage into dollars with.

Prices are USD per million tokens. A workspace may override or extend the table with
``.w2s/agent_prices.json`` (``{"model": {"input": 3.0, "output": 15.0}}``) so a new model or a
price change needs no code edit. An unknown model is priced at the most expensive known rate, so a
budget can never be under-counted by a typo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.workspace import paths

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 8192
PRICES_FILE = "agent_prices.json"


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Cache writes cost 1.25x input and cache reads 0.1x unless given."""

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None

    def cost(self, usage: dict[str, Any]) -> float:
        """Dollars for one response's ``usage`` block (missing fields count as zero)."""
        cw = self.cache_write if self.cache_write is not None else self.input * 1.25
        cr = self.cache_read if self.cache_read is not None else self.input * 0.1
        total = (
            _n(usage, "input_tokens") * self.input
            + _n(usage, "output_tokens") * self.output
            + _n(usage, "cache_creation_input_tokens") * cw
            + _n(usage, "cache_read_input_tokens") * cr
        )
        return total / 1_000_000


# Published list prices (platform.claude.com model pages, checked 2026-11); cache writes at the
# 5-minute rate. Models missing here are priced at the dearest entry until added.
PRICES: dict[str, Price] = {
    "claude-fable-5-2": Price(8.0, 40.0),
    "claude-fable-5-1": Price(10.0, 50.0),
    "claude-opus-5-5": Price(4.0, 20.0),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-opus-4-8": Price(5.0, 25.0),
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-sonnet-5-5": Price(2.0, 10.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
}


def _n(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    return int(value) if isinstance(value, int | float) else 0


def load_prices(state_dir: Path | None = None) -> dict[str, Price]:
    """The built-in table merged with the workspace override file, if any."""
    table = dict(PRICES)
    path = (state_dir or paths().state) / PRICES_FILE
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        for model, entry in data.items():
            table[model] = Price(
                float(entry["input"]),
                float(entry["output"]),
                entry.get("cache_write"),
                entry.get("cache_read"),
            )
    return table


def price_for(model: str, table: dict[str, Price] | None = None) -> Price:
    """Exact name, then the longest known prefix (dated snapshots), else the dearest known price."""
    table = table if table is not None else load_prices()
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name)]
    if prefixes:
        return table[max(prefixes, key=len)]
    return max(table.values(), key=lambda p: (p.output, p.input))


def add_usage(total: dict[str, int], usage: dict[str, Any]) -> dict[str, int]:
    """Running token totals (a new dict; the four fields the API reports)."""
    out = dict(total)
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        out[key] = int(out.get(key, 0)) + _n(usage, key)
    return out
