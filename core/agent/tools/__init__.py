"""The agent's tools, split by concern, all declared once in :mod:`core.agent.tools.registry`.

Everything a tool touches is checked on this, the trusted, side. File tools resolve every path
(symlinks included) and refuse anything outside the agent's own idea folder (``files``); the shell
runs in that folder with secrets scrubbed from its environment, a timeout and an output cap
(``shell``); job tools only see jobs this agent launched (``jobs``); evaluations go to the referee
with the run token and count against the loop's own evaluation budget as well as the referee's
(``referee``); findings and Idea.md are the shared forum (``forum``).
"""

from core.agent.tools.context import OUTPUT_CAP, ToolContext, ToolError, ToolOutcome, cap, resolve_inside
from core.agent.tools.registry import TOOLS, TOOLS_BY_NAME, Tool, run_tool, tool_names, tool_schemas

__all__ = [
    "OUTPUT_CAP",
    "TOOLS",
    "TOOLS_BY_NAME",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "cap",
    "resolve_inside",
    "run_tool",
    "tool_names",
    "tool_schemas",
]
