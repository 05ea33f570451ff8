"""The research agent: a Claude loop with tools, budgets, a resumable transcript, run as a job.

Front ends call :func:`launch_agent`, :func:`list_agents`, :func:`stop_agent`, :func:`resume_agent`
and read transcripts with :func:`read_events`. Exports load lazily so that
``python -m core.agent.launcher`` does not import its own module twice.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "find_agent": "core.agent.launcher",
    "launch_agent": "core.agent.launcher",
    "list_agents": "core.agent.launcher",
    "resume_agent": "core.agent.launcher",
    "stop_agent": "core.agent.launcher",
    "read_events": "core.agent.transcript",
    "format_event": "core.agent.transcript",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core.agent' has no attribute {name!r}")
