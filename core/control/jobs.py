"""The job queue: submit, list, show, cancel, retry, read logs. The scheduler starts what is queued.

A job is a store document (compact: no command, no env, no logs) plus a run folder
``runs/<job-id>/`` that holds everything needed to rebuild it: ``command.json``, ``env.json`` (no
secrets), ``stdout.log``, ``result.json`` (written by the job), ``exit_status`` (written by the
wrapper), ``progress.json`` (optional, written by the job). Every state change is one atomic
compare-and-set on the store, recorded in ``history`` with time and reason.

Secrets (env names containing KEY, TOKEN, SECRET or PASSWORD) given to :func:`submit_job` are kept
in a 0600 hand-off file under ``.w2s/job_secrets/`` until the job is finished, never in
``env.json``, logs or the store; the job sees them only in its environment.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from core.common.atomic import atomic_write_bytes, atomic_write_json
from core.common.files import MAX_LOG_CHUNK
from core.common.job_types import (
    ACTIVE_STATES,
    DEFAULT_EVAL_BUDGET,
    TERMINAL_STATES,
    WAITING_STATES,
    Handle,
    Job,
    JobState,
)
from core.common.workspace import paths
from core.control.store import Store, Table, default_store, new_id
from executors import Executor, get_executor

JOB_STATES = frozenset(JobState)
SECRET_NAME_RE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
TRANSIENT_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later"
CANCEL_GRACE_S = float(os.environ.get("W2S_CANCEL_GRACE", "10"))
EXIT_STATUS_WAIT_S = 5.0  # how long cancel waits for the wrapper to record how the job ended
MAX_EVAL_BUDGET = 10_000  # the most evaluations the operator may give one run


class JobError(ValueError):
    """An action that does not fit the job's state (cancel a finished job, retry a running one)."""


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME_RE.search(name))


def _store(store: Store | None) -> Store:
    return store if store is not None else default_store()


def _table(store: Store | None) -> Table:
    return _store(store).table("jobs")


def secrets_path(job_id: str) -> Path:
    return paths().state / "job_secrets" / f"{job_id}.json"


def _now() -> float:
    return time.time()


# -- state changes -----------------------------------------------------------------------------
def transition(
    job_id: str,
    state: JobState,
    reason: str,
    *,
    expect: Iterable[JobState] | None = None,
    store: Store | None = None,
    **fields: Any,
) -> Job | None:
    """Move a job to ``state`` atomically, only if its current state is in ``expect`` (when given).

    Returns the new job, or None when the job was not in an expected state (someone else moved it
    first: that is how a job is never launched or finished twice).
    """
    if state not in JOB_STATES:
        raise ValueError(f"unknown job state {state!r}")
    allowed = None if expect is None else set(expect)
    changed = False

    def apply(job: dict[str, Any]) -> None:
        nonlocal changed
        changed = False
        if allowed is not None and job.get("state") not in allowed:
            return
        now = _now()
        job.update(fields)
        job["state"] = state
        job.setdefault("history", []).append({"state": state, "time": now, "reason": reason})
        if state == JobState.RUNNING and not job.get("started"):
            job["started"] = now
        if state in TERMINAL_STATES:
            job["finished"] = now
        changed = True

    job = _table(store).update(job_id, apply)
    return cast(Job, job) if changed else None


# -- public API --------------------------------------------------------------------------------
def submit_job(
    kind: str,
    command: Sequence[str],
    *,
    name: str = "",
    executor: str | None = None,
    env: Mapping[str, str] | None = None,
    gpus: int = 0,
    max_retries: int = 0,
    meta: Mapping[str, Any] | None = None,
    eval_budget: int = DEFAULT_EVAL_BUDGET,
    store: Store | None = None,
) -> Job:
    """Queue a job; the scheduler inside ``w2s serve`` starts it. Returns the job dict.

    Submitting is an operator action (over HTTP it needs the operator token; in-process callers are
    trusted code). ``eval_budget`` is what the job's run token may spend, 0..``MAX_EVAL_BUDGET``; a
    job an agent launched (``meta.agent_id``) draws from the agent's pool instead, whatever its
    ``eval_budget`` says (the scheduler binds that when it issues the token). ``executor`` defaults to
    ``core.control.service.default_executor()`` (the service's ``--executor``, else local).
    """
    if not kind or not isinstance(kind, str):
        raise ValueError("job kind must be a non-empty string")
    if isinstance(command, str) or not command or not all(isinstance(c, str) for c in command):
        raise ValueError("command must be a non-empty list of strings")
    if not isinstance(gpus, int) or gpus < 0:
        raise ValueError("gpus must be an integer >= 0")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError("max_retries must be an integer >= 0")
    if isinstance(eval_budget, bool) or not isinstance(eval_budget, int) or not 0 <= eval_budget <= MAX_EVAL_BUDGET:
        raise ValueError(f"eval_budget must be an integer 0..{MAX_EVAL_BUDGET}")
    if executor is None:
        from core.control.service import default_executor

        executor = default_executor()
    capabilities = get_executor(executor).capabilities  # unknown executor: ValueError now, not a failed job later
    if gpus and not capabilities.supports_gpus:
        raise ValueError(f"the {executor} executor cannot give a job GPUs")
    env = {str(k): str(v) for k, v in (env or {}).items()}
    public_env = {k: v for k, v in env.items() if not is_secret_name(k)}
    secret_env = {k: v for k, v in env.items() if is_secret_name(k)}

    table = _table(store)
    ws = paths()
    while True:
        job_id = new_id()
        run_dir = ws.runs / job_id
        if not run_dir.exists() and table.get(job_id) is None:
            break
    run_dir.mkdir(parents=True)
    created = _now()
    atomic_write_json(
        run_dir / "command.json",
        {"command": list(command), "cwd": str(ws.root), "kind": kind, "name": name,
         "executor": executor, "gpus": gpus, "created": created},
    )
    atomic_write_json(run_dir / "env.json", public_env)
    (run_dir / "stdout.log").touch()
    if secret_env:
        atomic_write_bytes(secrets_path(job_id), json.dumps(secret_env).encode(), mode=0o600)
    job: Job = {
        "id": job_id,
        "kind": kind,
        "name": name or kind,
        "state": JobState.QUEUED,
        "executor": executor,
        "gpus": [],
        "gpus_requested": gpus,
        "created": created,
        "started": None,
        "finished": None,
        "exit_code": None,
        "history": [{"state": JobState.QUEUED, "time": created, "reason": "submitted"}],
        "run_dir": str(run_dir),
        "meta": dict(meta or {}),
        "progress": None,
        "attempt": 0,
        "max_retries": max_retries,
        "retry_at": None,
        "eval_budget": eval_budget,
        "handle": None,
        "cancel_requested": False,
    }
    table.insert(job)
    return get_job(job_id, store=store) or job


def list_jobs(
    store: Store | None = None, *, active_only: bool = False, limit: int | None = None
) -> list[Job]:
    """Jobs, newest first. ``active_only`` reads only the small hot file (unfinished jobs);
    ``limit`` returns every unfinished job plus the most recently finished, up to ``limit`` in all
    (cheap at any history size: only the newest archive segment(s) are read)."""
    table = _table(store)
    if active_only:
        jobs = table.hot()
    elif limit is not None:
        jobs = table.recent(limit)
    else:
        jobs = table.all()
    jobs.sort(key=lambda j: j.get("created") or 0, reverse=True)
    if limit is not None and not active_only:
        active = [j for j in jobs if j.get("state") not in TERMINAL_STATES]
        done = [j for j in jobs if j.get("state") in TERMINAL_STATES][: max(0, limit - len(active))]
        jobs = sorted(active + done, key=lambda j: j.get("created") or 0, reverse=True)
    return cast(list[Job], jobs)


def get_job(job_id: str, store: Store | None = None) -> Job | None:
    return cast("Job | None", _table(store).get(job_id))


def resolve_job_id(prefix: str, store: Store | None = None) -> str:
    """A full job id from a unique prefix (what people type); JobError when none or ambiguous."""
    table = _table(store)
    if table.get(prefix) is not None:
        return prefix
    matches = [j["id"] for j in table.all() if j["id"].startswith(prefix)]
    if not matches:
        raise JobError(f"no job {prefix!r}")
    if len(matches) > 1:
        raise JobError(f"job id {prefix!r} is ambiguous ({', '.join(sorted(matches)[:5])})")
    return matches[0]


def cancel_job(job_id: str, store: Store | None = None, grace: float | None = None) -> Job:
    """Cancel a job. Queued/retrying: at once. Running: the executor stops it (locally SIGTERM to
    its process group, SIGKILL later); JobError when its executor cannot cancel jobs."""
    store = _store(store)
    job = get_job(job_id, store)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    if job["state"] in TERMINAL_STATES:
        raise JobError(f"job {job_id} is already {job['state']}")
    done = transition(job_id, JobState.CANCELLED, "cancelled by user", expect=WAITING_STATES, store=store)
    if done is not None:
        _drop_secrets(job_id, store)
        return done
    executor = _executor_of(job)
    if not executor.capabilities.can_cancel:
        raise JobError(f"job {job_id} runs on the {job['executor']} executor, which cannot cancel a started job")
    job = cast(Job, _table(store).update(job_id, {"cancel_requested": True}))
    if job["state"] in TERMINAL_STATES:
        return job
    handle = cast("Handle | None", job.get("handle"))
    if handle:
        executor.cancel(job, handle, CANCEL_GRACE_S if grace is None else grace)
        status = _wait_exit_status(job, EXIT_STATUS_WAIT_S)
        done = transition(
            job_id, JobState.CANCELLED, "cancelled by user", expect=ACTIVE_STATES, store=store,
            exit_code=status.get("exit_code") if status else None,
        )
        if done is not None:
            _drop_secrets(job_id, store)
            return done
    # still starting: the scheduler sees cancel_requested and stops it right after launch
    return get_job(job_id, store) or job


def retry_job(job_id: str, store: Store | None = None) -> Job:
    """Queue a failed or cancelled job again (same id and run folder; the log keeps all attempts)."""
    job = get_job(job_id, store)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    done = transition(
        job_id, JobState.QUEUED, "retry requested by user", expect=(JobState.FAILED, JobState.CANCELLED),
        store=store, cancel_requested=False, exit_code=None, finished=None, retry_at=None, handle=None, gpus=[],
        progress=None,
    )
    if done is None:
        raise JobError(f"job {job_id} is {job['state']}; only failed or cancelled jobs can be retried")
    return done


def read_log(
    job_id: str, offset: int = 0, store: Store | None = None, max_bytes: int = MAX_LOG_CHUNK
) -> tuple[str, int]:
    """The job's output from byte ``offset``, as its executor serves it; returns (text, next offset)."""
    job = get_job(job_id, store)
    if job is None:
        raise JobError(f"no job {job_id!r}")
    executor = _executor_of(job)
    if not executor.capabilities.streams_logs:
        raise JobError(f"job {job_id} runs on the {job['executor']} executor, which does not serve logs")
    return executor.logs(job, offset, max_bytes)


# -- helpers shared with the scheduler ----------------------------------------------------------
def _executor_of(job: Job) -> Executor:
    """The job's executor; JobError when this process does not know its name."""
    try:
        return get_executor(job["executor"])
    except ValueError as exc:
        raise JobError(str(exc)) from exc


def job_command(job: Mapping[str, Any]) -> list[str]:
    spec = json.loads((Path(job["run_dir"]) / "command.json").read_text(encoding="utf-8"))
    return [str(c) for c in spec["command"]]


def job_env(job: Mapping[str, Any]) -> dict[str, str]:
    """The job's extra environment: env.json plus the secret hand-off file (if still there)."""
    env: dict[str, str] = {}
    try:
        env.update(json.loads((Path(job["run_dir"]) / "env.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    try:
        env.update(json.loads(secrets_path(job["id"]).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    return {str(k): str(v) for k, v in env.items()}


def _exit_status(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The attempt's ``exit_status`` (the wrapper's), else its ``job_exit`` (the job's group leader's,
    there even when the wrapper died); None when neither is written yet."""
    for name in ("exit_status", "job_exit"):
        try:
            data = json.loads((Path(job["run_dir"]) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("attempt") == job.get("attempt"):
            return data
    return None


def _wait_exit_status(job: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
    """After a cancel the wrapper writes ``exit_status`` a moment after the last job process is gone:
    wait for it briefly, so the cancelled job's ``exit_code`` says what ``exit_status`` says (143
    for SIGTERM, 137 for SIGKILL)."""
    deadline = time.monotonic() + timeout
    while True:
        status = _exit_status(job)
        if status is not None or time.monotonic() >= deadline:
            return status
        time.sleep(0.05)


def _drop_secrets(job_id: str, store: Store | None = None) -> None:
    """A finished job's secrets hand-off file and run token are no longer needed: remove both."""
    from core.control.tokens import revoke_run_tokens

    secrets_path(job_id).unlink(missing_ok=True)
    revoke_run_tokens(_store(store), job_id)


def read_progress_message(job: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(progress clamped to 0..1, message cut to 200 chars) from ``runs/<id>/progress.json``
    (``{"progress": 0..1, "message": str}``, written by the job); Nones when absent."""
    try:
        data = json.loads((Path(job["run_dir"]) / "progress.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    raw = data.get("progress")
    try:
        value: float | None = None if raw is None else min(1.0, max(0.0, float(raw)))
    except (TypeError, ValueError):
        value = None
    message = data.get("message")
    return value, (str(message)[:200] if message is not None else None)


def read_result(job: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(job["run_dir"]) / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
