"""The job model's types, defined once: states, the store document, executor handles.

They live in ``core.common`` because both sides of the executor interface use them: the control
layer (store, scheduler) and ``executors/`` (which may import nothing else from core). ``JobState``
is a ``StrEnum``, so a state read back from the JSON store compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypedDict

DEFAULT_EVAL_BUDGET = 20  # referee evaluations a run token allows, unless the submitter says otherwise
IDEA_RUN_KIND = "idea_run"  # the one job kind for "run this idea on this seed", whoever submits it


class JobState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = frozenset({JobState.STARTING, JobState.RUNNING})
WAITING_STATES = frozenset({JobState.QUEUED, JobState.RETRYING})
LIVE_STATES = ACTIVE_STATES | WAITING_STATES


class HistoryEntry(TypedDict):
    state: str
    time: float
    reason: str


class Handle(TypedDict, total=False):
    """What an executor returns from ``submit`` and the scheduler stores, so any later process can
    poll, adopt or cancel the same attempt. Adapters add their own keys (pids, container ids)."""

    attempt: int
    launched: float


class Job(TypedDict, total=False):
    """A job as the store keeps it (compact: command, env and logs live in ``runs/<id>/``)."""

    id: str
    kind: str
    name: str
    state: str
    executor: str
    gpus: list[int]
    gpus_requested: int
    created: float
    started: float | None
    finished: float | None
    exit_code: int | None
    history: list[HistoryEntry]
    run_dir: str
    meta: dict[str, Any]
    progress: float | None
    progress_message: str | None
    attempt: int
    max_retries: int
    retry_at: float | None
    eval_budget: int
    handle: dict[str, Any] | None
    cancel_requested: bool
    cancel_sent: bool
    launching: bool
