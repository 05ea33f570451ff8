"""The wait tool: sleep until one of the agent's runs ends or a new finding appears, for one turn.

A long GPU run used to cost a turn per ``job_status`` wait (600 s at most). Here the loop itself
sleeps, outside the model (no tokens), watching the job store the scheduler writes, and answers
the one tool call when something happened: a watched run reached a final state, another
researcher shared a finding, the timeout passed, the wall budget ran out, or the operator asked the
agent to stop (which ends the loop at once).
"""

from __future__ import annotations

from core.agent.tools.context import StopRequested, ToolContext, ToolError
from core.agent.tools.jobs import _summary, own_job, own_jobs
from core.common.job_types import TERMINAL_STATES
from core.control import findings as forum
from core.control.jobs import get_job
from core.control.store import Store

WAIT_MAX_S = 24 * 3600  # one wait; the wall budget bounds it too
WAIT_DEFAULT_S = 3600


def _others_findings(ctx: ToolContext) -> dict[str, str]:
    """``{id: title}`` of findings not written by this agent (its job posts as ``run:<job>``)."""
    own = {f"run:{ctx.run_dir.name}", f"agent:{ctx.agent_id}"}
    return {str(f.get("id")): str(f.get("title")) for f in forum.list_findings(Store())
            if str(f.get("author")) not in own}


def wait(ctx: ToolContext, job_ids: list[str] | None = None, timeout_s: float = WAIT_DEFAULT_S,
         findings: bool = True, until: str = "any") -> str:
    """Wait for any (``until="all"``: every one) of ``job_ids`` (default: every run of yours still
    queued or running) to end, or (``findings``) for another researcher's new finding; at most
    ``timeout_s``."""
    if until not in ("any", "all"):
        raise ToolError("until must be 'any' or 'all'")
    if job_ids:
        watched = [own_job(ctx, str(j))["id"] for j in job_ids]
    else:
        watched = [j["id"] for j in own_jobs(ctx, live_only=True)]
    timeout = max(0.0, min(float(timeout_s if timeout_s is not None else WAIT_DEFAULT_S), WAIT_MAX_S))
    if ctx.deadline is not None:
        timeout = min(timeout, max(0.0, ctx.deadline()))
    states = {i: job for i in watched if (job := get_job(i)) is not None}
    done_at_start = {i for i in watched if (states.get(i) or {}).get("state") in TERMINAL_STATES}
    live = [i for i in watched if i not in done_at_start]
    if done_at_start and job_ids and (until == "any" or not live):
        return "already finished:\n" + "\n".join(_summary(states[i]) for i in watched if i in done_at_start)
    if not live and not findings:
        return "nothing to wait for: none of your runs is queued or running"
    seen = _others_findings(ctx) if findings else {}
    start = ctx.clock()
    end = start + timeout
    while True:
        if ctx.stop_check():
            raise StopRequested
        now = [get_job(i) for i in live]  # one small read each: cheap at any history size
        ended = [j for j in now if j is not None and j.get("state") in TERMINAL_STATES]
        new = {k: v for k, v in _others_findings(ctx).items() if k not in seen} if findings else {}
        waited = ctx.clock() - start
        if new or (ended and (until == "any" or len(ended) == len(live))):
            break
        if ctx.clock() >= end:
            left = ", ".join(live) or "none"
            why = "the wall budget is nearly spent" if ctx.deadline is not None and ctx.deadline() <= 1 else \
                "the timeout passed"
            return f"waited {waited:.0f}s; {why}; nothing finished (still in flight: {left})"
        ctx.sleep(max(0.05, min(ctx.poll_s, end - ctx.clock())))
    lines = [f"waited {waited:.0f}s"]
    lines += [_summary(j) for j in ended]
    lines += [f"new finding {k}: {v} (read it with list_findings)" for k, v in new.items()]
    still = [i for i in live if i not in {j["id"] for j in ended}]
    if still:
        lines.append(f"still in flight: {', '.join(still)}")
    return "\n".join(lines)

