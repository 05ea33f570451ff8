"""Agents are jobs: :func:`launch_agent` records an agent and queues a job running
``python -m core.agent.launcher --agent-id ID``; :func:`main` is that job.

The API key travels only in the job's environment (the job system keeps it out of ``env.json``,
logs and the store), never in argv. A crashed agent resumes when its job is retried: the same run
folder, the same transcript, and the budgets re-read from the store.

An agent's shell runs in the sandbox (``core.sandbox``). Without a working one an agent is not
launched (nor run) unless the operator accepts unverified results explicitly: ``w2s agent launch
--unsafe-no-sandbox``, or ``W2S_UNSAFE_NO_SANDBOX=1`` in the environment of the process that
launches it (the service, for the web API and the TUI). The choice is recorded in the agent's
document, so the job follows it whatever environment it is started in.

Settings the job reads from its environment (the service's): ``W2S_AGENT_CONTEXT_TOKENS`` (the
model's context window, default 200k; the API's own limit wins when it refuses a prompt),
``W2S_AGENT_COMPACT=0`` and ``W2S_AGENT_PROMPT_CACHE=0`` (switch compaction or prompt caching off,
to measure what they save: ``bench/agent_episode.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.agent.budgets import DEFAULT_EVALS, DEFAULT_TURNS, DEFAULT_USD, DEFAULT_WALL_S, Budgets
from core.agent.prices import API_KEY_ENV, BASE_URL_ENV, DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from core.agent.transcript import TRANSCRIPT_NAME
from core.common.atomic import atomic_write_bytes
from core.common.errors import UserError
from core.common.job_types import TERMINAL_STATES
from core.common.workspace import paths
from core.control import service
from core.control.jobs import JobError, cancel_job, get_job, retry_job, secrets_path, submit_job
from core.control.store import Store, new_id
from core.run.idea_md import direction_from_idea_md, expand_direction
from core.sandbox.base import UNVERIFIED_LABEL, Sandbox, SandboxUnavailable
from core.sandbox.select import default_sandbox

TABLE = "agents"
FINAL_STATES = ("finished", "stopped", "failed")
MODEL_ENV = "W2S_AGENT_MODEL"
UNSAFE_FLAG = "--unsafe-no-sandbox"

if TYPE_CHECKING:  # the SDK loads only in the agent's own process, not for `w2s agent list`
    from core.agent.client import RetryPolicy


def _store(store: Store | None = None) -> Store:
    return store if store is not None else Store()


def launch_agent(
    direction: str | None = None,
    *,
    idea_md: int | None = None,
    budget_usd: float = DEFAULT_USD,
    max_turns: int = DEFAULT_TURNS,
    max_evals: int = DEFAULT_EVALS,
    max_wall_s: float = DEFAULT_WALL_S,
    executor: str | None = None,
    model: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    store: Store | None = None,
    unsafe_no_sandbox: bool = False,
) -> dict[str, Any]:
    """Record an agent and queue its job; returns the agent document. Raises UserError without
    ``ANTHROPIC_API_KEY`` or without a working sandbox (unless ``unsafe_no_sandbox`` or
    ``W2S_UNSAFE_NO_SANDBOX=1``); nothing is recorded or queued then."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise UserError(f"{API_KEY_ENV} is not set: export your Anthropic API key to launch an agent")
    executor = executor or service.default_executor()
    sandbox = agent_sandbox(True if unsafe_no_sandbox else None, executor=executor)
    if (direction is None) == (idea_md is None):
        raise UserError("give exactly one of --direction TEXT or --idea-md N")
    if idea_md is not None:
        direction = direction_from_idea_md(int(idea_md))
    direction = expand_direction((direction or "").strip())
    if not direction:
        raise UserError("--direction: must not be empty")
    try:
        budgets = Budgets(max_usd=float(budget_usd), max_turns=int(max_turns), max_wall_s=float(max_wall_s),
                          max_evals=int(max_evals))
    except ValueError as exc:
        raise UserError(f"budgets: {exc}") from None
    model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if int(max_tokens) <= 0:
        raise UserError("--max-tokens: must be positive")
    store = _store(store)
    table = store.table(TABLE)
    agent_id = new_id()
    while table.get(agent_id) is not None:
        agent_id = new_id()
    idea_name = f"agent_{agent_id}"
    table.insert({
        "id": agent_id,
        "job_id": None,
        "state": "queued",
        "direction": direction,
        "idea_md": idea_md,
        "idea": idea_name,
        "model": model,
        "max_tokens": int(max_tokens),
        "budgets": budgets.to_dict(),
        "usage": {},
        "cost_usd": 0.0,
        "transcript_path": None,
        "stop_reason": None,
        "stop_requested": False,
        "executor": executor,
        "sandbox": sandbox.name,
        "unsafe_no_sandbox": not sandbox.isolated,  # the operator's explicit choice; the job follows it
        "verified": sandbox.isolated,
        "created": time.time(),
    })
    env = {API_KEY_ENV: key}
    if os.environ.get(BASE_URL_ENV):
        env[BASE_URL_ENV] = os.environ[BASE_URL_ENV]
    try:
        job = submit_job(
            "agent",
            [sys.executable, "-m", "core.agent.launcher", "--agent-id", agent_id],
            name=f"agent {agent_id}: {direction.splitlines()[0][:60]}",
            executor=executor,
            env=env,
            eval_budget=budgets.max_evals,
            meta={"agent_id": agent_id, "idea": idea_name},
            store=store,
        )
    except ValueError as exc:
        table.remove(agent_id)
        raise UserError(f"agent job not queued: {exc}") from None
    transcript = str(Path(job["run_dir"]) / TRANSCRIPT_NAME)
    return table.update(agent_id, {"job_id": job["id"], "transcript_path": transcript})


def agent_sandbox(allow_unsafe: bool | None, doing: str = "launched", executor: str | None = None) -> Sandbox:
    """The sandbox an agent's shell runs in (on the docker executor: its containers; on the runpod
    executor: a pod per call, see :mod:`core.sandbox.runpod`); UserError (one
    line, with both ways out) when there is none and the operator did not accept running unisolated."""
    try:
        if executor == "docker":
            from core.sandbox.docker import DockerSandbox

            docker = DockerSandbox()
            problem = docker.problem()
            if problem:
                raise SandboxUnavailable(problem)
            return docker
        if executor == "runpod":  # each shell call on a pod; the loop and its key stay on this side
            from core.sandbox.runpod import RunPodSandbox

            pod = RunPodSandbox()
            problem = pod.problem()
            if problem:
                raise SandboxUnavailable(problem)
            return pod
        return default_sandbox(allow_unsafe)
    except SandboxUnavailable as exc:
        raise UserError(f"agent not {doing}: {exc} (or `w2s agent launch {UNSAFE_FLAG}`)") from None


def list_agents(store: Store | None = None) -> list[dict[str, Any]]:
    """Agents, newest first. An agent whose job ended without the loop recording a final state
    (killed hard) shows the job's fate instead of a stale "running"."""
    store = _store(store)
    out = []
    for doc in store.table(TABLE).all():
        if doc.get("state") not in FINAL_STATES and doc.get("job_id"):
            job = get_job(doc["job_id"], store)
            if job and job.get("state") in TERMINAL_STATES:
                doc = {**doc, "state": "stopped" if job["state"] == "cancelled" else "failed",
                       "stop_reason": doc.get("stop_reason") or f"job {job['state']}"}
        out.append(doc)
    return sorted(out, key=lambda d: d.get("created") or 0, reverse=True)


def find_agent(ident: str, store: Store | None = None) -> dict[str, Any]:
    """An agent by id, id prefix or job id."""
    store = _store(store)
    agents = store.table(TABLE).all()
    exact = [a for a in agents if ident in (a.get("id"), a.get("job_id"))]
    matches = exact or [a for a in agents if str(a.get("id", "")).startswith(ident)]
    if not matches:
        raise UserError(f"no agent {ident!r} (see `w2s agent list`)")
    if len(matches) > 1:
        raise UserError(f"agent id {ident!r} is ambiguous")
    return matches[0]


def stop_agent(ident: str, store: Store | None = None) -> dict[str, Any]:
    """Ask the loop to stop (checked between turns) and cancel its job (SIGTERM ends the current
    step cleanly; the loop records ``stopped by user``)."""
    store = _store(store)
    agent = find_agent(ident, store)
    table = store.table(TABLE)
    doc = table.update(agent["id"], {"stop_requested": True})
    job = get_job(agent["job_id"], store) if agent.get("job_id") else None
    if job and job.get("state") not in TERMINAL_STATES:
        try:
            cancel_job(job["id"], store)
        except JobError:
            pass
    if doc.get("state") in ("queued",):
        doc = table.update(agent["id"], {"state": "stopped", "stop_reason": "stopped by user"})
    return table.get(agent["id"]) or doc


def resume_agent(ident: str, store: Store | None = None) -> dict[str, Any]:
    """Re-queue a crashed agent's job: the loop picks up from its transcript. The job system drops
    a job's secrets when it ends, so the key is handed over again from this environment."""
    store = _store(store)
    agent = find_agent(ident, store)
    if agent.get("state") in ("finished",):
        raise UserError(f"agent {agent['id']} already finished")
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise UserError(f"{API_KEY_ENV} is not set: export your Anthropic API key to resume an agent")
    job = get_job(agent["job_id"], store) if agent.get("job_id") else None
    if job is None:
        raise UserError(f"agent {agent['id']} has no job to resume")
    if job.get("state") not in ("failed", "cancelled"):
        raise UserError(
            f"agent {agent['id']}: its job is {job.get('state')}; only a failed or cancelled one resumes"
        )
    atomic_write_bytes(secrets_path(job["id"]), json.dumps({API_KEY_ENV: key}).encode(), mode=0o600)
    try:
        retry_job(job["id"], store)
    except JobError as exc:
        secrets_path(job["id"]).unlink(missing_ok=True)
        raise UserError(str(exc)) from None
    return store.table(TABLE).update(agent["id"], {"state": "queued", "stop_requested": False})


def retry_policy_from_env() -> RetryPolicy:
    from core.agent.client import RetryPolicy

    base = RetryPolicy()
    return RetryPolicy(
        base_s=float(os.environ.get("W2S_AGENT_BACKOFF_BASE_S", base.base_s)),
        cap_s=float(os.environ.get("W2S_AGENT_BACKOFF_CAP_S", base.cap_s)),
        max_rate_limit_retries=int(os.environ.get("W2S_AGENT_MAX_RATE_RETRIES", base.max_rate_limit_retries)),
        max_network_retries=int(os.environ.get("W2S_AGENT_MAX_NETWORK_RETRIES", base.max_network_retries)),
    )


def _service_url() -> str | None:
    """The referee's address: the job's environment names it, else the running service's file."""
    return os.environ.get("W2S_SERVICE_URL") or service.service_url()


def run_agent(agent_id: str, store: Store | None = None) -> tuple[int, str]:
    """Run or resume one agent in this process; returns (exit code, stop reason)."""
    from core.agent.client import FatalAPIError, ModelCaller, make_client
    from core.agent.loop import DEFAULT_CONTEXT_TOKENS, AgentLoop, AgentSpec

    store = _store(store)
    table = store.table(TABLE)
    doc = table.get(agent_id)
    if doc is None:
        return 2, f"no agent {agent_id!r}"
    job_id = os.environ.get("W2S_JOB_ID") or doc.get("job_id")
    if not job_id:
        return 2, f"agent {agent_id} has no job"
    run_dir = paths().runs / job_id
    try:  # the launch-time choice, from the store: never widened by this process's environment
        sandbox = agent_sandbox(True if doc.get("unsafe_no_sandbox") else False, "run")
    except UserError as exc:
        table.update(agent_id, {"state": "failed", "stop_reason": str(exc)})
        return 1, str(exc)
    spec = AgentSpec(
        agent_id=agent_id,
        job_id=job_id,
        idea_name=doc["idea"],
        direction=doc["direction"],
        budgets=Budgets.from_dict(doc.get("budgets")),
        model=doc.get("model") or DEFAULT_MODEL,
        max_tokens=int(doc.get("max_tokens") or DEFAULT_MAX_TOKENS),
        run_dir=run_dir,
        folder=paths().ideas / doc["idea"],
        context_tokens=int(os.environ.get("W2S_AGENT_CONTEXT_TOKENS") or DEFAULT_CONTEXT_TOKENS),
    )

    def update(changes: dict[str, Any]) -> None:
        table.update(agent_id, changes)

    table.update(agent_id, {"job_id": job_id, "transcript_path": str(spec.transcript_path),
                            "pid": os.getpid()})
    try:
        client = make_client()
    except FatalAPIError as exc:
        update({"state": "failed", "stop_reason": f"api: {exc}"})
        return 1, str(exc)
    caller = ModelCaller(client, spec.model, spec.max_tokens, retry_policy_from_env(),
                         caching=os.environ.get("W2S_AGENT_PROMPT_CACHE", "1") != "0")
    loop = AgentLoop(
        spec,
        caller,
        on_update=update,
        stop_check=lambda: bool((table.get(agent_id) or {}).get("stop_requested")),
        service_url=_service_url(),
        run_token=os.environ.get("W2S_RUN_TOKEN"),
        sandbox=sandbox,
        compact_history=os.environ.get("W2S_AGENT_COMPACT", "1") != "0",
    )
    if not sandbox.isolated:
        print(f"agent {agent_id}: shell runs without a sandbox, results {UNVERIFIED_LABEL}", flush=True)
    reason = loop.run()
    final = (table.get(agent_id) or {}).get("state")
    return (1 if final == "failed" else 0), reason


def _on_sigterm(signum: int, frame: Any) -> None:
    from core.agent.loop import StopRequested

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean stop; a second signal is ignored
    raise StopRequested


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.agent.launcher",
                                     description="Run one research agent.", allow_abbrev=False)
    parser.add_argument("--agent-id", required=True)
    args = parser.parse_args(argv)
    from core.agent.loop import StopRequested  # also loads the SDK before the handler is armed

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code, reason = run_agent(args.agent_id)
    except StopRequested:
        return 143
    print(f"agent {args.agent_id}: {reason}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
