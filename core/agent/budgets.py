"""Budgets the loop enforces. They live in the agents table and in the loop's memory, never in a
file the agent's tools can reach, so an agent cannot extend its own limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.common.job_types import DEFAULT_EVAL_BUDGET

DEFAULT_USD = 5.0
DEFAULT_TURNS = 60
DEFAULT_WALL_S = 4 * 3600.0
DEFAULT_EVALS = DEFAULT_EVAL_BUDGET  # an agent gets as many referee calls as one run, unless told
WRAP_UP_TURNS = 3  # turns an agent still gets, once its evaluations are spent, to share findings and finish


@dataclass(frozen=True)
class Budgets:
    """Limits of one agent run. ``max_wall_s`` counts active time (a crash's downtime is not billed)."""

    max_usd: float = DEFAULT_USD
    max_turns: int = DEFAULT_TURNS
    max_wall_s: float = DEFAULT_WALL_S
    max_evals: int = DEFAULT_EVALS

    def __post_init__(self) -> None:
        if self.max_usd <= 0 or self.max_turns <= 0 or self.max_wall_s <= 0 or self.max_evals < 0:
            raise ValueError("budgets must be positive (max_evals may be 0)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Budgets:
        data = data or {}
        known = {k: data[k] for k in ("max_usd", "max_turns", "max_wall_s", "max_evals") if k in data}
        return cls(**known)


@dataclass
class Usage:
    """What the run has spent so far; rebuilt from the transcript on resume."""

    turns: int = 0
    cost_usd: float = 0.0
    evals: int = 0
    elapsed_s: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "cost_usd": round(self.cost_usd, 6),
            "evals": self.evals,
            "elapsed_s": round(self.elapsed_s, 3),
            "tokens": dict(self.tokens),
        }


def exhausted(budgets: Budgets, usage: Usage) -> str | None:
    """The stop reason if a budget is spent before the next model call, else None."""
    if usage.cost_usd >= budgets.max_usd:
        return f"budget_usd: spent ${usage.cost_usd:.4f} of ${budgets.max_usd:.2f}"
    if usage.turns >= budgets.max_turns:
        return f"max_turns: {usage.turns} of {budgets.max_turns} turns used"
    if usage.elapsed_s >= budgets.max_wall_s:
        return f"max_wall: {usage.elapsed_s:.0f}s of {budgets.max_wall_s:.0f}s used"
    return None
