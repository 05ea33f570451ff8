"""The scheduler: the loop inside ``w2s serve`` that starts queued jobs and records how they end.

Rules it keeps (each one a lesson from the reference sandbox):
- a job is launched at most once per attempt: it is claimed with an atomic queued->starting
  compare-and-set, and a launch the service did not see finish is adopted, never repeated;
- no head-of-line blocking: a job waiting for its retry time, a busy GPU or a full executor is
  skipped, and the next candidate is considered;
- retries only for transient failures (exit code 75, ``{"transient": true}`` in result.json, or an
  executor capacity error), with exponential backoff;
- on start-up every starting/running job is reconciled with reality (alive: re-attached;
  exited: finished from its exit_status; gone: failed with the reason).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from core.common.job_types import (
    ACTIVE_STATES,
    DEFAULT_EVAL_BUDGET,
    WAITING_STATES,
    Handle,
    Job,
    JobState,
)
from core.common.workspace import paths
from core.control import cpu_budget
from core.control import jobs as J
from core.control.store import Store, StoreError, default_store
from core.control.tokens import agent_pool, issue_run_token
from executors import CapacityError, Executor, get_executor

log = logging.getLogger("w2s.scheduler")

DEFAULT_POLL_S = float(os.environ.get("W2S_SCHED_POLL", "1.0"))
DEFAULT_BACKOFF_S = float(os.environ.get("W2S_RETRY_BACKOFF", "10"))
MAX_BACKOFF_S = 600.0
LAUNCH_GRACE_S = 60.0  # a "starting" job with no pids.json after this long is given up on
CAPACITY_RETRIES = int(os.environ.get("W2S_CAPACITY_RETRIES", "20"))
STALE_CLAIM_S = 30.0  # a launch takes one tick; an older claim belongs to a scheduler that died


def slurm_max_jobs() -> int:
    """How many w2s jobs may sit in the Slurm queue at once (``max_jobs`` of the workspace's settings)."""
    from core.common.errors import UserError
    from executors.slurm_settings import DEFAULT_MAX_JOBS, load_settings

    try:
        return load_settings().max_jobs
    except UserError:
        return DEFAULT_MAX_JOBS  # the same error fails the first Slurm submit, naming the field


def runpod_max_pods() -> int:
    """How many runpod jobs run at once: the workspace's ``max_pods`` (a pod each)."""
    from core.common.errors import UserError
    from core.sandbox.runpod_settings import RunPodSettings, load_settings

    try:
        return load_settings().max_pods
    except UserError:
        return RunPodSettings().max_pods  # the same error fails the first RunPod submit, naming the field


def gpu_inventory() -> list[int]:
    """GPU indices the scheduler may hand out: ``W2S_GPUS=0,1`` (or empty) overrides the probe."""
    override = os.environ.get("W2S_GPUS")
    if override is not None:
        parts = [x for x in override.replace(" ", "").split(",") if x != ""]
        if not all(x.isdigit() for x in parts):
            from core.common.errors import UserError

            raise UserError(f"W2S_GPUS={override!r}: expected GPU indices like 0,1 (or empty for none)")
        return [int(x) for x in parts]
    from core.control.gpu import probe

    return [g.index for g in probe()]


def token_scope(store: Store, job: Job) -> dict[str, Any]:
    """What a job's run token is bound to, from the job's recorded meta on the trusted side.

    ``idea`` and ``dataset`` come from ``meta.idea`` and ``meta.dataset`` (else ``meta.config``'s
    data_dir). A job an agent launched (``meta.agent_id``, as the agent's own job and its
    ``run_idea`` runs record) draws from the agent's pool, sized by the ``max_evals`` the operator
    gave the agent; its own ``eval_budget`` is ignored, and an unknown agent gets no evaluations.
    """
    meta = job.get("meta") or {}
    idea = meta.get("idea") if isinstance(meta.get("idea"), str) else None
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), str) else None
    if dataset is None and isinstance(meta.get("config"), dict):
        from core.common.config import RunConfig

        try:
            dataset = RunConfig.from_dict(meta["config"]).dataset or None
        except (TypeError, ValueError):
            dataset = None
    agent_id = meta.get("agent_id")
    if agent_id:
        agent = store.table("agents").get(str(agent_id)) or {}
        budgets = agent.get("budgets") or {}
        try:
            budget = max(0, int(budgets.get("max_evals", 0)))
        except (TypeError, ValueError):
            budget = 0
        return {"idea": idea, "dataset": dataset, "budget": budget, "pool": agent_pool(str(agent_id))}
    budget = job.get("eval_budget", DEFAULT_EVAL_BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        budget = DEFAULT_EVAL_BUDGET
    return {"idea": idea, "dataset": dataset, "budget": budget, "pool": None}


def issue_job_token(store: Store, job: Job) -> str:
    """A fresh run token for ``job``, scoped by :func:`token_scope` (the only way jobs get one)."""
    scope = token_scope(store, job)
    return issue_run_token(store, job["id"], scope["budget"], idea=scope["idea"], dataset=scope["dataset"],
                           pool=scope["pool"])


# Jobs that supervise other jobs (a research agent waits on the runs it launches): they hold no GPU
# and little CPU, so they do not take an executor's slots (else an agent could sit queued behind,
# or starve, its own runs); they have a cap of their own, ``limits[SUPERVISORS]``.
SUPERVISOR_KINDS = frozenset({"agent"})
SUPERVISORS = "supervisors"


def default_limits(n_gpus: int) -> dict[str, int]:
    local = int(os.environ.get("W2S_LOCAL_CONCURRENCY", "0") or 0) or max(2, n_gpus)
    supervisors = int(os.environ.get("W2S_AGENT_CONCURRENCY", "0") or 0) or 8
    docker = int(os.environ.get("W2S_DOCKER_CONCURRENCY", "0") or 0) or local  # trusted side here, idea in a container
    return {"local": local, "docker": docker, SUPERVISORS: supervisors}


def slot_of(job: Job) -> str:
    """The capacity a job counts against: its executor's, or the supervisors' for an agent job."""
    return SUPERVISORS if job.get("kind") in SUPERVISOR_KINDS and not job.get("gpus_requested") else job["executor"]


class Scheduler:
    """One scheduling loop. ``tick()`` does one pass; ``run(stop)`` loops until ``stop`` is set."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        limits: Mapping[str, int] | None = None,
        gpus: Sequence[int] | None = None,
        poll_interval: float = DEFAULT_POLL_S,
        backoff_base: float = DEFAULT_BACKOFF_S,
        service_url: str | Callable[[], str | None] | None = None,
    ):
        self.store = store if store is not None else default_store()
        self.gpus = list(gpu_inventory() if gpus is None else gpus)
        self.limits = dict(default_limits(len(self.gpus)))
        self.limits.setdefault("slurm", slurm_max_jobs())
        self.limits.setdefault("runpod", runpod_max_pods())
        self.limits.update(limits or {})
        # CPU trainings one at a time per core budget (core.control.cpu_budget), unless the operator
        # capped local jobs explicitly
        explicit = "local" in (limits or {}) or bool(os.environ.get("W2S_LOCAL_CONCURRENCY"))
        self.cpus: int | None = None if explicit else cpu_budget.machine_cpus()
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self._service_url = service_url
        self._reconciled = False

    # -- helpers ---------------------------------------------------------------------------
    def _url(self) -> str:
        if callable(self._service_url):
            return self._service_url() or ""
        if self._service_url is not None:
            return self._service_url
        from core.control.service import service_url

        return service_url() or ""

    @staticmethod
    def _executor(name: str) -> Executor:
        return get_executor(name)

    @staticmethod
    def _allocates_gpus(job: Job) -> bool:
        """True when the job's executor (a cluster) picks GPUs itself: none of ours are reserved."""
        try:
            return get_executor(job["executor"]).allocates_gpus
        except ValueError:
            return False

    def backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF_S, self.backoff_base * (2 ** max(0, attempt - 1)))

    # -- reconcile -------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Bring every starting/running job in line with reality (run once at service start)."""
        for job in J.list_jobs(self.store, active_only=True):
            try:
                if job["state"] == JobState.STARTING:
                    self._reconcile_starting(job)
                elif job["state"] == JobState.RUNNING:
                    self._poll_one(job, reconciling=True)
            except Exception as exc:  # one broken job must not stop the service
                log.exception("reconcile %s failed", job.get("id"))
                J.transition(job["id"], JobState.FAILED, f"reconcile error: {exc}", expect=ACTIVE_STATES,
                             store=self.store)
        self._reconciled = True

    def _reconcile_starting(self, job: Job) -> None:
        # an executor without adopt() returns None: the launch is then judged by its claim alone
        handle = self._executor(job["executor"]).adopt(job, None)
        if handle:  # the attempt runs: adopting it never launches anything, so do it at once
            J.transition(job["id"], JobState.RUNNING, "re-attached after service restart",
                         expect=(JobState.STARTING,), store=self.store, handle=handle)
            return
        if self._claim_age(job) <= STALE_CLAIM_S:
            return  # may belong to a live scheduler mid-launch: look again on a later tick
        if not job.get("launching"):  # claimed, but the executor was never called: safe to requeue
            J.transition(job["id"], JobState.QUEUED, "service stopped before launch; requeued",
                         expect=(JobState.STARTING,), store=self.store, gpus=[])
        elif self._claim_age(job) > LAUNCH_GRACE_S:
            J.transition(job["id"], JobState.FAILED, "service stopped during launch; not relaunched to avoid a "
                         "double run", expect=(JobState.STARTING,), store=self.store, gpus=[])

    # -- one pass --------------------------------------------------------------------------
    def tick(self) -> None:
        if not self._reconciled:
            self.reconcile()
        active = J.list_jobs(self.store, active_only=True)
        for job in active:
            try:
                if job["state"] == JobState.RUNNING:
                    self._poll_one(job)
                elif job["state"] == JobState.STARTING:
                    self._reconcile_starting(job)  # claimed by a scheduler that died mid-launch?
            except Exception:
                log.exception("poll %s failed", job["id"])
        self._launch_ready()

    @staticmethod
    def _claim_age(job: Job) -> float:
        history = job.get("history") or []
        return time.time() - float(history[-1]["time"] if history else 0)

    def run(self, stop: threading.Event) -> None:
        last_store_error = ""
        while not stop.is_set():
            try:
                self.tick()
                last_store_error = ""
            except StoreError as exc:  # a damaged store: one line per distinct problem, not every tick
                if str(exc) != last_store_error:
                    log.error("scheduler paused: %s", exc)
                    last_store_error = str(exc)
            except Exception:
                log.exception("scheduler tick failed")
            stop.wait(self.poll_interval)

    # -- polling ---------------------------------------------------------------------------
    def _poll_one(self, job: Job, reconciling: bool = False) -> None:
        handle = cast("Handle | None", job.get("handle"))
        executor = self._executor(job["executor"])
        if not handle:
            J.transition(job["id"], JobState.FAILED, "running without an executor handle",
                         expect=(JobState.RUNNING,), store=self.store)
            return
        result = executor.poll(job, handle)
        if result.handle:
            job = cast(Job, self.store.table("jobs").update(job["id"], {"handle": result.handle}))
            handle = result.handle
        if result.status == "running":
            progress, message = J.read_progress_message(job)
            changes: dict[str, Any] = {}
            if progress is not None and progress != job.get("progress"):
                changes["progress"] = progress
            if message is None:  # the job says nothing itself: show the executor's word (Slurm's pending reason)
                message = result.reason or None
            if message != job.get("progress_message"):
                changes["progress_message"] = message
            if job.get("cancel_requested") and not job.get("cancel_sent"):
                changes["cancel_sent"] = True
                threading.Thread(target=executor.cancel, args=(job, handle, J.CANCEL_GRACE_S),
                                 daemon=True).start()
            if changes:
                self.store.table("jobs").update(job["id"], changes)
            if reconciling:
                log.info("re-attached job %s", job["id"])
            return
        if result.status == "exited":
            self._finish(job, result.exit_code, result.signal, result.reason)
        else:
            self._end(job, JobState.FAILED, result.reason or "job lost", exit_code=None)

    def _finish(self, job: Job, exit_code: int | None, signal: int | None, error: str) -> None:
        if job.get("cancel_requested"):
            self._end(job, JobState.CANCELLED, "cancelled by user", exit_code=exit_code)
            return
        if exit_code == 0:
            self._end(job, JobState.SUCCEEDED, "exit code 0", exit_code=0)
            return
        result = J.read_result(job) or {}
        transient = exit_code == J.TRANSIENT_EXIT_CODE or bool(result.get("transient"))
        how = error or (f"killed by signal {signal}" if signal else f"exit code {exit_code}")
        if transient and int(job.get("attempt", 0)) <= int(job.get("max_retries", 0)):
            delay = self.backoff(int(job.get("attempt", 1)))
            J.transition(job["id"], JobState.RETRYING, f"{how} (transient); retry in {delay:.0f}s",
                         expect=ACTIVE_STATES, store=self.store, exit_code=exit_code,
                         retry_at=time.time() + delay, gpus=[], handle=None)
            return
        self._end(job, JobState.FAILED, how, exit_code=exit_code)

    def _end(self, job: Job, state: JobState, reason: str, exit_code: int | None) -> None:
        done = J.transition(job["id"], state, reason, expect=ACTIVE_STATES, store=self.store,
                            exit_code=exit_code)
        if done is not None:
            J._drop_secrets(job["id"], self.store)

    # -- launching -------------------------------------------------------------------------
    def _launch_ready(self) -> None:
        now = time.time()
        active = J.list_jobs(self.store, active_only=True)
        running_by_exec: dict[str, int] = {}
        busy_gpus: set[int] = set()
        started = [j for j in active if j["state"] in ACTIVE_STATES]  # grows as this pass launches
        for job in active:
            if job["state"] in ACTIVE_STATES:
                running_by_exec[slot_of(job)] = running_by_exec.get(slot_of(job), 0) + 1
                busy_gpus.update(job.get("gpus") or [])
        candidates = [
            j for j in active
            if j["state"] == JobState.QUEUED or (j["state"] == JobState.RETRYING and (j.get("retry_at") or 0) <= now)
        ]
        candidates.sort(key=lambda j: (j.get("created") or 0))
        for job in candidates:
            name = slot_of(job)
            if running_by_exec.get(name, 0) >= self.limits.get(name, 1):
                continue  # this executor (or the supervisors' cap) is full; other jobs may still start
            if self.cpus is not None and not cpu_budget.fits(job, started, self.cpus):
                continue  # its threads would share cores with a running CPU training; lighter jobs may start
            want = 0 if self._allocates_gpus(job) else int(job.get("gpus_requested") or 0)
            free = [g for g in self.gpus if g not in busy_gpus]
            if want > len(self.gpus):
                J.transition(job["id"], JobState.FAILED, f"needs {want} GPU(s); this machine has {len(self.gpus)}",
                             expect=WAITING_STATES, store=self.store)
                continue
            if want > len(free):
                continue  # wait for GPUs without holding back jobs that need fewer
            assigned = free[:want]
            claimed = J.transition(
                job["id"], JobState.STARTING, f"claimed by scheduler (attempt {int(job.get('attempt', 0)) + 1})",
                expect=WAITING_STATES, store=self.store,
                attempt=int(job.get("attempt", 0)) + 1, gpus=assigned, launching=False, cancel_sent=False,
            )
            if claimed is None:
                continue  # someone else moved it (cancelled, or another scheduler claimed it)
            running_by_exec[name] = running_by_exec.get(name, 0) + 1
            busy_gpus.update(assigned)
            started.append(claimed)
            self._launch(claimed)

    def _launch(self, job: Job) -> None:
        job_id = job["id"]
        try:
            executor = self._executor(job["executor"])
            command = J.job_command(job)
            env = self._child_env(job)
            job = cast(Job, self.store.table("jobs").update(job_id, {"launching": True}))
            handle = executor.submit(job, command, env)
        except CapacityError as exc:  # not the job's fault: retried beyond max_retries, with backoff
            delay = self.backoff(int(job.get("attempt", 1)))
            if int(job.get("attempt", 0)) <= int(job.get("max_retries", 0)) + CAPACITY_RETRIES:
                J.transition(job_id, JobState.RETRYING, f"no capacity: {exc}; retry in {delay:.0f}s",
                             expect=(JobState.STARTING,), store=self.store, retry_at=time.time() + delay, gpus=[])
            else:
                J.transition(job_id, JobState.FAILED, f"no capacity: {exc}", expect=(JobState.STARTING,),
                             store=self.store)
            return
        except Exception as exc:
            log.exception("launch of %s failed", job_id)
            if J.transition(job_id, JobState.FAILED, f"launch failed: {exc}", expect=(JobState.STARTING,),
                            store=self.store, gpus=[]):
                J._drop_secrets(job_id, self.store)
            return
        running = J.transition(job_id, JobState.RUNNING, "started", expect=(JobState.STARTING,),
                               store=self.store, handle=handle, launching=False)
        if running is not None and running.get("cancel_requested"):
            self.store.table("jobs").update(job_id, {"cancel_sent": True})
            threading.Thread(target=executor.cancel, args=(running, handle, J.CANCEL_GRACE_S),
                             daemon=True).start()

    def _child_env(self, job: Job) -> dict[str, str]:
        """The service's environment (minus its secrets) + the job's env + w2s variables.

        A key exported where the service was started (``ANTHROPIC_API_KEY``, cloud credentials)
        reaches only the jobs that were submitted with it; secrets travel only here.
        """
        env = {k: v for k, v in os.environ.items() if not J.is_secret_name(k)}
        env.update(J.job_env(job))
        token = issue_job_token(self.store, job)
        env.update({
            "W2S_JOB_ID": job["id"],
            "W2S_RUN_TOKEN": token,
            "W2S_SERVICE_URL": self._url(),
            "W2S_WORKSPACE": str(paths().root),
            "W2S_RUN_DIR": job["run_dir"],
            "PYTHONUNBUFFERED": "1",
        })
        if job.get("gpus"):
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in job["gpus"])
        return env
