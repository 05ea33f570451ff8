"""How many CPU threads the jobs on this machine may use at once, so CPU trainings do not share cores.

A CPU training uses every core (``core.engine`` sets torch's threads to the core count unless
``W2S_TORCH_THREADS``/``OMP_NUM_THREADS`` pins fewer); two of them on a 2-core box took 22 min each
instead of 1.5 min alone. So the scheduler starts a job that runs here only while the threads it
declares fit beside those already running; a job alone always starts. Declared threads: the job's
``threads`` (or ``meta.threads``); else an ``idea_run`` without GPUs takes the pinned count or every
core; anything else (commands, agents, GPU runs) counts as light (0).

``W2S_LOCAL_CPUS`` sets the budget (default: the cores this process may use). An explicit job cap
(``W2S_LOCAL_CONCURRENCY`` or the scheduler's ``limits["local"]``) is the operator's choice and
turns the budget off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from core.common.job_types import IDEA_RUN_KIND

MACHINE_EXECUTORS = frozenset({"local", "docker"})  # executors whose jobs run on this machine's cores


def machine_cpus() -> int:
    override = os.environ.get("W2S_LOCAL_CPUS", "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _pinned_threads(env: Mapping[str, str]) -> int | None:
    for name in ("W2S_TORCH_THREADS", "OMP_NUM_THREADS"):
        value = str(env.get(name, "")).strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def job_threads(job: Mapping[str, Any], cpus: int, env: Mapping[str, str] | None = None) -> int:
    """The CPU threads ``job`` declares (see the module docstring)."""
    meta = job.get("meta") if isinstance(job.get("meta"), dict) else {}
    for declared in (job.get("threads"), (meta or {}).get("threads")):
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
            return declared
    if job.get("kind") == IDEA_RUN_KIND and not int(job.get("gpus_requested") or 0):
        return min(_pinned_threads(os.environ if env is None else env) or cpus, cpus)
    return 0


def on_machine(job: Mapping[str, Any]) -> bool:
    return str(job.get("executor", "local")) in MACHINE_EXECUTORS


def fits(job: Mapping[str, Any], running: Iterable[Mapping[str, Any]], cpus: int) -> bool:
    """Whether ``job`` may start beside the ``running`` jobs without oversubscribing the cores."""
    if not on_machine(job):
        return True
    want = job_threads(job, cpus)
    if want == 0:
        return True
    used = sum(job_threads(j, cpus) for j in running if on_machine(j))
    return used == 0 or used + want <= cpus
