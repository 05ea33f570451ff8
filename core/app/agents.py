"""Research agents as every front end sees them: launch, list, stop, resume, read the transcript.

``core.agent.launcher`` does the work; this module is the one door the CLI, the TUI and the web
API use, so they list the same (reconciled) states and read transcripts the same way. Starting a
control service for the queued job stays a front-end decision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.agent import launcher
from core.agent.budgets import DEFAULT_EVALS, DEFAULT_TURNS, DEFAULT_USD, DEFAULT_WALL_S
from core.agent.prices import API_KEY_ENV, DEFAULT_MAX_TOKENS
from core.agent.transcript import TRANSCRIPT_NAME, format_event
from core.common.files import tail_jsonl
from core.common.workspace import paths
from core.control.store import Store
from core.sandbox.base import UNVERIFIED_LABEL

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_EVALS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TURNS",
    "DEFAULT_USD",
    "DEFAULT_WALL_S",
    "FINAL_STATES",
    "UNVERIFIED_LABEL",
    "find_agent",
    "format_event",
    "get_agent",
    "has_api_key",
    "launch_agent",
    "list_agents",
    "read_transcript",
    "resume_agent",
    "stop_agent",
    "transcript_file",
]

FINAL_STATES = launcher.FINAL_STATES


def has_api_key() -> bool:
    """Agents call Claude with the key from this process's environment; without it nothing is queued."""
    return bool(os.environ.get(API_KEY_ENV, "").strip())


# Record an agent and queue its job (exactly one of ``direction`` or ``idea_md``); refused without a
# working sandbox. ``unsafe_no_sandbox`` is the CLI's explicit operator flag: the web API and the TUI
# never pass it (there only ``W2S_UNSAFE_NO_SANDBOX=1`` set for the service can).
launch_agent = launcher.launch_agent


def list_agents(store: Store | None = None) -> list[dict[str, Any]]:
    """Agents newest first; one whose job died under it shows the job's fate, not a stale state."""
    return launcher.list_agents(store)


def get_agent(agent_id: str, store: Store | None = None) -> dict[str, Any] | None:
    """One agent by exact id, reconciled like :func:`list_agents`; None when there is none."""
    return next((a for a in list_agents(store) if a.get("id") == agent_id), None)


def find_agent(ident: str, store: Store | None = None) -> dict[str, Any]:
    """An agent by id, id prefix or job id (what people type); UserError when none or ambiguous."""
    return launcher.find_agent(ident, store)


def stop_agent(ident: str, store: Store | None = None) -> dict[str, Any]:
    """Ask the agent to stop and cancel its job; UserError when there is no such agent."""
    return launcher.stop_agent(ident, store)


def resume_agent(ident: str, store: Store | None = None) -> dict[str, Any]:
    """Re-queue a crashed agent's job; it picks up from its transcript."""
    return launcher.resume_agent(ident, store)


def transcript_file(agent: dict[str, Any]) -> Path | None:
    """The agent's transcript if it exists inside ``runs/`` (a stored path is not trusted blindly)."""
    runs = paths().runs.resolve()
    candidates = []
    if agent.get("transcript_path"):
        candidates.append(Path(str(agent["transcript_path"])))
    job_id = str(agent.get("job_id") or "")
    if job_id and "/" not in job_id and job_id not in (".", ".."):
        candidates.append(runs / job_id / TRANSCRIPT_NAME)
    for candidate in candidates:
        path = (candidate if candidate.is_absolute() else paths().root / candidate).resolve()
        if path.is_relative_to(runs) and path.is_file():
            return path
    return None


def read_transcript(
    agent: dict[str, Any], offset: int = 0, max_bytes: int | None = None, include_unparsed: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """Whole transcript records from byte ``offset`` (a half-written last line waits), and the offset
    to poll from next; none while the transcript does not exist yet. Lines that are not JSON objects
    come back as ``{"type": "unparsed"}`` records unless ``include_unparsed`` is False."""
    path = transcript_file(agent)
    if path is None:
        return [], offset
    records, end = tail_jsonl(path, offset, max_bytes)
    if not include_unparsed:
        records = [r for r in records if r.get("type") != "unparsed"]
    return records, end
