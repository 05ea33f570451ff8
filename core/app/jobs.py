"""Jobs as every front end sees them: submit, list, show, cancel, retry, read logs.

The CLI, the TUI, the web API and the agent tools call these functions, so a job looks the same,
and a refusal reads the same, whoever asks. Core's job queue (``core.control.jobs``) does the work;
this module adds what people need on top of it: prefixes as ids, one feed for a live view, and
errors a front end can show as they are (``NoSuchJob`` is a 404, ``JobRefused`` a 409).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from core.common.errors import UserError
from core.common.files import MAX_LOG_CHUNK
from core.common.job_types import TERMINAL_STATES, Job
from core.common.workspace import paths
from core.control import jobs as queue
from core.control.store import Store
from core.control.submit import (
    MAX_SEEDS,
    check_dataset,
    parse_seeds,
    resolve_run_config,
    submit_idea_runs,
)

__all__ = [
    "MAX_SEEDS",
    "JobRefused",
    "JobsFeed",
    "NoSuchJob",
    "cancel_job",
    "check_dataset",
    "get_job",
    "is_finished",
    "jobs_feed",
    "list_jobs",
    "parse_seeds",
    "read_log",
    "read_log_bytes",
    "resolve_job_id",
    "resolve_run_config",
    "retry_job",
    "show_job",
    "submit_command",
    "submit_idea_runs",
]

_STORES: dict[Path, Store] = {}


class NoSuchJob(UserError):
    """No job has that id (or id prefix)."""


class JobRefused(UserError):
    """The job exists but its state does not allow the action (cancel a finished job, retry a running one)."""


def shared_store() -> Store:
    """One Store per workspace for a long-lived viewer's polls: it keeps parsed tables between reads."""
    root = paths().state
    if root not in _STORES:
        _STORES[root] = Store(root)
    return _STORES[root]


def list_jobs(store: Store | None = None, *, active_only: bool = False, limit: int | None = None) -> list[Job]:
    """Jobs newest first: every unfinished one plus the newest finished, ``limit`` in all (None: all)."""
    return [with_cost(job) for job in queue.list_jobs(store, active_only=active_only, limit=limit)]


@dataclass
class JobsFeed:
    """One poll of the queue for a live view: the jobs shown, how many exist, counts by state."""

    jobs: list[Job]
    total: int
    counts: dict[str, int] = field(default_factory=dict)


def jobs_feed(limit: int = 200, store: Store | None = None) -> JobsFeed:
    """The newest ``limit`` jobs plus every unfinished one, newest first, and counts by state.

    Reads the store's hot part and its newest archive segment only (``Table.recent``), so a refresh
    costs the same at 10k jobs as at 10; finished jobs beyond the newest are counted, not copied.
    """
    table = (store or shared_store()).table("jobs")
    active = [dict(j) for j in table.hot()]
    total = len(table)
    recent = [dict(j) for j in table.recent(limit)]

    def newest_first(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(docs, key=lambda j: (_sort_time(j.get("created")), str(j.get("id", ""))), reverse=True)

    active_ids = {str(j.get("id")) for j in active}
    finished = [j for j in newest_first(recent) if str(j.get("id")) not in active_ids]
    jobs = newest_first(active + finished[: max(limit - len(active), 0)])
    counts: dict[str, int] = {}
    for job in jobs:
        state = str(job.get("state", "?"))
        counts[state] = counts.get(state, 0) + 1
    if total > len(jobs):  # every unfinished job is shown, so the rest finished
        counts["older, finished"] = total - len(jobs)
    return JobsFeed([with_cost(cast(Job, job)) for job in jobs], total, counts)


def _sort_time(value: object) -> float:
    """``created`` as seconds: the store writes epoch floats, older documents ISO text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def get_job(job_id: str, store: Store | None = None) -> Job | None:
    job = queue.get_job(job_id, store)
    return with_cost(job) if job is not None else None


def resolve_job_id(prefix: str, store: Store | None = None) -> str:
    """A full job id from a unique prefix (what people type)."""
    try:
        return queue.resolve_job_id(prefix, store)
    except queue.JobError as exc:
        raise NoSuchJob(str(exc)) from None


def show_job(prefix: str, store: Store | None = None) -> Job:
    """One job in full, by id or unique prefix."""
    job = get_job(resolve_job_id(prefix, store), store)
    if job is None:
        raise NoSuchJob(f"no job {prefix!r}")
    return job


def with_cost(job: Job) -> Job:
    """The job plus ``cost_usd`` (what its RunPod pods cost so far) when it ran on RunPod."""
    if job.get("executor") != "runpod":
        return job
    cost = job_cost_usd(job)
    return cast(Job, {**job, "cost_usd": cost}) if cost is not None else job


def job_cost_usd(job: Job) -> float | None:
    """What the job's cloud machines (RunPod pods) cost so far, from its run folder's ``cost.json``;
    None for a job that used none."""
    if not job.get("run_dir"):
        return None
    try:
        data = json.loads((Path(str(job["run_dir"])) / "cost.json").read_text(encoding="utf-8"))
        return round(float(data["usd"]), 4)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _existing(job_id: str, store: Store | None) -> Job:
    job = get_job(job_id, store)
    if job is None:
        raise NoSuchJob(f"no job {job_id!r}")
    return job


def cancel_job(job_id: str, store: Store | None = None) -> Job:
    """Cancel a job (its whole process tree); queued ones at once, running ones by signal."""
    _existing(job_id, store)
    try:
        return queue.cancel_job(job_id, store)
    except queue.JobError as exc:
        raise JobRefused(str(exc)) from None


def retry_job(job_id: str, store: Store | None = None) -> Job:
    """Queue a failed or cancelled job again (same id and run folder)."""
    _existing(job_id, store)
    try:
        return queue.retry_job(job_id, store)
    except queue.JobError as exc:
        raise JobRefused(str(exc)) from None


def is_finished(job_id: str, store: Store | None = None) -> bool:
    """True once the job reached a final state (or no longer exists): a follower can stop."""
    job = get_job(job_id, store)
    return job is None or job.get("state") in TERMINAL_STATES


def read_log(job_id: str, offset: int = 0, max_bytes: int = MAX_LOG_CHUNK, store: Store | None = None
             ) -> tuple[str, int]:
    """A job's output as text from byte ``offset`` (at most ``max_bytes``), as its executor serves it;
    poll again from the returned offset. ``JobRefused`` when its executor serves no logs."""
    _existing(job_id, store)
    try:
        return queue.read_log(job_id, offset, store, max_bytes)
    except queue.JobError as exc:
        raise JobRefused(str(exc)) from None


def read_log_bytes(job_id: str, offset: int, max_bytes: int = MAX_LOG_CHUNK) -> tuple[bytes, int]:
    """New bytes of a job's log from ``offset``, for a viewer that keeps only the end.

    At most ``max_bytes`` per call; when the file is further ahead than that it jumps to the last
    ``max_bytes``, and a shorter file (truncated or replaced) starts over from 0.
    """
    path = paths().runs / job_id / "stdout.log"
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:
                offset = 0
            if size - offset > max_bytes:
                offset = size - max_bytes
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:  # a job whose run folder lies elsewhere: ask the queue where
        try:
            text, new_offset = read_log(job_id, offset, max_bytes)
        except UserError:  # gone, or its executor serves no logs
            return b"", offset
        return text.encode("utf-8", "replace"), new_offset
    return data, offset + len(data)


def submit_command(
    command: Sequence[str], *, kind: str = "command", name: str = "", executor: str | None = None, gpus: int = 0,
    max_retries: int = 0, store: Store | None = None,
) -> Job:
    """Queue any command as a job (``w2s jobs submit -- CMD``); ideas go through ``submit_idea_runs``."""
    if not command:
        raise UserError("give the command to run, e.g. python train.py")
    try:
        return queue.submit_job(kind, list(command), name=name, executor=executor, gpus=gpus,
                                max_retries=max_retries, store=store)
    except ValueError as exc:
        raise UserError(str(exc)) from None
