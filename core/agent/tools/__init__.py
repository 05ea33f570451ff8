"""The agent's tools, split by concern, all declared once in :mod:`core.agent.tools.registry`.

Every tool runs on the trusted side except what the shell executes. File tools resolve every path
(symlinks included): writes only inside the agent's own idea folder, reads there and in the
label-free ``data/`` (``files``); the shell runs inside the sandbox, whose filesystem view is that
folder (writable), ``data/`` and the library code (read-only), with no network, no other process
visible, a clean environment, a timeout and an output cap (``shell``); job tools only see jobs
this agent launched (``jobs``); evaluations go to the referee with the run token and count against
the loop's own evaluation budget as well as the referee's (``referee``); findings and Idea.md are
the shared forum (``forum``).
"""

from core.agent.tools.context import OUTPUT_CAP, ToolContext, ToolError, ToolOutcome, cap, resolve_inside
from core.agent.tools.registry import (
    TOOLS,
    TOOLS_BY_NAME,
    Tool,
    interrupted_note,
    run_tool,
    tool_names,
    tool_schemas,
)

__all__ = [
    "OUTPUT_CAP",
    "TOOLS",
    "TOOLS_BY_NAME",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "cap",
    "interrupted_note",
    "resolve_inside",
    "run_tool",
    "tool_names",
    "tool_schemas",
]
