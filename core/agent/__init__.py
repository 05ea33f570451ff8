"""The research agent: a Claude loop with tools, budgets, a resumable transcript, run as a job.

Front ends call :func:`launch_agent`, :func:`list_agents`, :func:`stop_agent`, :func:`resume_agent`
and read transcripts with :func:`read_events`.
"""

from core.agent.launcher import find_agent, launch_agent, list_agents, resume_agent, stop_agent
from core.agent.transcript import read_events

__all__ = ["find_agent", "launch_agent", "list_agents", "read_events", "resume_agent", "stop_agent"]
