"""What every tool shares: the context it may reach, its result type, path confinement, the output cap.

Path confinement lives here, on the trusted side, because every tool that takes a path (files,
predictions to evaluate) must refuse the same things the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.agent.budgets import Budgets, Usage

OUTPUT_CAP = 20_000  # characters of any tool result the model sees


class ToolError(Exception):
    """A refused or failed tool call; its message goes back to the model as an error result."""


@dataclass
class ToolContext:
    """What the tools may reach: one agent's folder, its jobs, its run token, its budgets."""

    agent_id: str
    idea_name: str
    folder: Path
    run_dir: Path
    budgets: Budgets
    usage: Usage
    service_url: str | None = None
    run_token: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    deadline: Callable[[], float] | None = None  # seconds of wall budget left
    sleep: Callable[[float], None] = time.sleep


@dataclass
class ToolOutcome:
    """A tool's answer plus what the loop must do about it (count an evaluation, finish, stop)."""

    text: str
    is_error: bool = False
    evaluation: bool = False  # a scored referee call (counts against the evaluation budget)
    finish: str | None = None  # the agent's final summary
    stop: str | None = None  # the loop must stop (reason)


def resolve_inside(ctx: ToolContext, rel: str, *, must_exist: bool = False) -> Path:
    """The real path of ``rel`` inside the agent's folder, or ToolError. Symlinks are followed
    before the check, so a link pointing at ``../../labeled_data`` is refused like the path itself."""
    if not isinstance(rel, str) or not rel.strip():
        raise ToolError("path is required")
    if "\x00" in rel:
        raise ToolError("path contains a NUL byte")
    root = Path(os.path.realpath(ctx.folder))
    candidate = Path(rel)
    target = Path(os.path.realpath(candidate if candidate.is_absolute() else root / candidate))
    if target != root and root not in target.parents:
        raise ToolError(f"refused: {rel!r} resolves outside your folder ideas/{ctx.idea_name}/")
    if must_exist and not target.exists():
        raise ToolError(f"{rel}: no such file or folder")
    return target


def relative(ctx: ToolContext, path: Path) -> str:
    """``path`` as the agent names it: relative to its folder."""
    root = Path(os.path.realpath(ctx.folder))
    return str(path.relative_to(root)) if path != root else "."


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail of long output (errors usually sit at the end)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"
