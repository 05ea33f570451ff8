"""Job tools: launch the agent's idea (one job per seed), watch its jobs, read their output.

An agent only sees jobs it launched (``meta.agent_id``); the jobs run agent-written code, so every
secret visible here is blanked in their environment. An agent may keep ``MAX_IN_FLIGHT`` runs
queued or running at once (seeds and variants in parallel); the scheduler's capacity decides when
each one starts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from core.agent.tools.context import OUTPUT_CAP, ToolContext, ToolError
from core.agent.tools.shell import is_secret
from core.common.config import RunConfig
from core.common.errors import UserError
from core.common.job_types import TERMINAL_STATES, Job
from core.common.workspace import paths
from core.control.jobs import get_job, list_jobs, read_log
from core.control.submit import submit_idea_runs
from core.run.runner import OUT_DIR
from core.run.sandboxed_idea import NOTES_FILE as IDEA_OUTPUT_FILE

JOB_WAIT_MAX = 600  # seconds one job_status call may wait
MAX_AGENT_SEEDS = 10  # seeds one run_idea call may launch
RESULT_CHARS = 4000  # characters of result.json job_status shows
IDEA_OUTPUT_CHARS = 2000  # characters of the idea's own output (idea_output.json) job_status shows
MAX_IN_FLIGHT = int(os.environ.get("W2S_AGENT_MAX_IN_FLIGHT", "8") or 8)  # runs queued or running per agent


def own_job(ctx: ToolContext, job_id: str) -> Job:
    """The job ``job_id`` if this agent launched it, else ToolError (other jobs are invisible)."""
    job = get_job(str(job_id))
    if not job or (job.get("meta") or {}).get("agent_id") != ctx.agent_id:
        raise ToolError(f"no job {job_id!r} launched by you")
    return job


def own_jobs(ctx: ToolContext, live_only: bool = False) -> list[Job]:
    """Every job this agent launched (``live_only``: those not finished), oldest first."""
    mine = [j for j in list_jobs(active_only=live_only) if (j.get("meta") or {}).get("agent_id") == ctx.agent_id
            and j.get("kind") != "agent" and not (live_only and j.get("state") in TERMINAL_STATES)]
    return sorted(mine, key=lambda j: j.get("created") or 0)


def jobs_overview(ctx: ToolContext, limit: int = 40) -> str:
    """One line per job of this agent (the newest ``limit``): id, seed, dataset, state, config."""
    jobs = own_jobs(ctx)
    lines = []
    for job in jobs[-limit:]:
        meta = job.get("meta") or {}
        config = {k: v for k, v in (meta.get("config") or {}).items() if k not in ("data_dir", "seed")}
        lines.append(f"job {job['id']}: seed {meta.get('seed')} {(meta.get('config') or {}).get('data_dir')} "
                     f"{job.get('state')} config {json.dumps(config, default=str)[:200]}")
    cut = len(jobs) - len(lines)
    return "\n".join(([f"({cut} older jobs not shown)"] if cut else []) + lines) or "(no jobs yet)"


def jobs_of_call(ctx: ToolContext, tool_use_id: str) -> list[Job]:
    """The jobs one run_idea call of this agent submitted (found by the tool_use_id in their meta)."""
    if not tool_use_id:
        return []
    return [j for j in list_jobs()
            if (j.get("meta") or {}).get("agent_id") == ctx.agent_id
            and (j.get("meta") or {}).get("tool_use_id") == tool_use_id]


def blanked_secrets() -> dict[str, str]:
    """Jobs inherit the service's environment; an idea job runs agent-written code, so every
    secret-looking variable visible here is overridden with an empty value for it (the scheduler
    still gives the job its own run token)."""
    return {k: "" for k in os.environ if is_secret(k) and k != "W2S_RUN_TOKEN"}


def run_idea(
    ctx: ToolContext,
    seeds: list[int] | None = None,
    data_dir: str = "data/demo-math",
    config: dict[str, Any] | None = None,
    tool_use_id: str = "",
) -> str:
    """One job per seed of the agent's idea (the trusted job entry runs it in the sandbox). Idempotent per tool
    call: a resumed call finds the jobs it already submitted instead of submitting twice."""
    if not (ctx.folder / "run.py").is_file():
        raise ToolError(f"ideas/{ctx.idea_name}/run.py does not exist yet (start_from_template first)")
    seeds = [int(s) for s in (seeds or [42])]
    if not seeds or len(seeds) > MAX_AGENT_SEEDS:
        raise ToolError(f"give 1 to {MAX_AGENT_SEEDS} seeds")
    data_dir = str(data_dir).rstrip("/")
    if "labeled_data" in data_dir or not data_dir.startswith("data/"):
        raise ToolError("data_dir must be a label-free dataset under data/ (for example data/demo-math)")
    if not (paths().root / data_dir).is_dir():
        raise ToolError(f"{data_dir}: no such dataset")
    config = dict(config or {})
    for banned in ("data_dir", "seed"):
        config.pop(banned, None)
    try:
        base = RunConfig.from_dict({**config, "data_dir": data_dir})
    except TypeError as exc:
        raise ToolError(f"bad config: {exc}") from None
    existing = {
        (j.get("meta") or {}).get("seed"): j
        for j in list_jobs()
        if (j.get("meta") or {}).get("agent_id") == ctx.agent_id
        and (j.get("meta") or {}).get("tool_use_id") == tool_use_id
        and tool_use_id
    }
    missing = [s for s in seeds if s not in existing]
    if len(set(seeds)) != len(seeds):
        raise ToolError("a seed is listed twice")
    in_flight = own_jobs(ctx, live_only=True)
    if missing and len(in_flight) + len(missing) > MAX_IN_FLIGHT:
        raise ToolError(f"{len(in_flight)} of your runs are queued or running and {len(missing)} more would pass "
                        f"the limit of {MAX_IN_FLIGHT} in flight; wait for some to finish (wait) first")
    if missing:
        try:
            for job in submit_idea_runs(  # the one submit path every front end uses
                ctx.idea_name, base, missing, source="agent", env=blanked_secrets(),
                meta={"agent_id": ctx.agent_id, "tool_use_id": tool_use_id},
            ):
                existing[job["meta"]["seed"]] = job
        except UserError as exc:
            raise ToolError(str(exc)) from None
    lines = [f"seed {seed}: job {existing[seed]['id']} ({existing[seed].get('state')})" for seed in seeds]
    return "\n".join(lines) + "\npoll with job_status(job_id, wait_s=...); read output with job_log"


def _run_dir(job: Job) -> Path:
    return Path(job.get("run_dir") or paths().runs / job["id"])


def _summary(job: Job) -> str:
    parts = [f"job {job['id']}: {job.get('state')}"]
    if job.get("exit_code") is not None:
        parts.append(f"exit code {job['exit_code']}")
    progress = job.get("progress")
    if progress is not None:
        parts.append(f"progress {float(progress):.0%}")
    text = ", ".join(parts)
    result = _run_dir(job) / "result.json"
    if job.get("state") in TERMINAL_STATES and result.is_file():
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = None
        if isinstance(data, dict):
            data.pop("test_predictions", None)
            text += "\nresult: " + json.dumps(data, default=str)[:RESULT_CHARS]
    own = _run_dir(job) / OUT_DIR / IDEA_OUTPUT_FILE
    if job.get("state") in TERMINAL_STATES and own.is_file() and not own.is_symlink():
        try:  # what the idea itself returned besides predictions (validation numbers, counts)
            text += "\nyour run.py returned: " + own.read_text(encoding="utf-8")[:IDEA_OUTPUT_CHARS]
        except OSError:
            pass
    return text


def job_status(ctx: ToolContext, job_id: str, wait_s: float = 0) -> str:
    """State of one of the agent's jobs, optionally waiting (up to 10 min) for it to end."""
    job = own_job(ctx, job_id)
    wait = max(0.0, min(float(wait_s or 0), JOB_WAIT_MAX))
    if ctx.deadline is not None:
        wait = min(wait, max(0.0, ctx.deadline()))
    end = time.monotonic() + wait
    while job.get("state") not in TERMINAL_STATES and time.monotonic() < end:
        ctx.sleep(min(1.0, max(0.05, end - time.monotonic())))
        job = get_job(job["id"]) or job
    return _summary(job)


def job_log(ctx: ToolContext, job_id: str, tail_chars: int = 4000) -> str:
    job = own_job(ctx, job_id)
    tail = max(200, min(int(tail_chars), OUTPUT_CAP))
    log = _run_dir(job) / "stdout.log"
    if log.is_file():
        size = log.stat().st_size
        with open(log, "rb") as fh:
            fh.seek(max(0, size - tail))
            text = fh.read().decode("utf-8", errors="replace")
    else:
        text, _ = read_log(job["id"], 0)
        text = text[-tail:]
    return f"[job {job['id']} {job.get('state')}, last {len(text)} characters]\n{text}"
