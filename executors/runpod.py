"""RunPod executor: the job's trusted process runs here as a local job; its idea runs on a RunPod pod.

Why this split (the docker executor's, one machine further): the trusted process stages label-free
inputs, holds the run token and has the referee score what comes back, so it stays on the trusted
side; ``W2S_SANDBOX=runpod`` in its environment makes the sandbox it opens a
:class:`~core.sandbox.runpod.RunPodSandbox` (S3 artifacts, one pod per run, see there). So
submit, poll, logs and adopt-after-restart are the local executor's (detached wrapper, pid + start
time), and this class adds the pods:

- ``submit`` checks the settings and the bucket first (one line saying what is missing) and gives the
  job process (an agent's loop too: its shell calls then run on pods) the operator's RunPod and
  AWS credentials (the scheduler strips secrets from the service's environment; these go to the
  trusted process only, never into a pod) and the pod's GPU count (the job's GPUs, at least 1; this
  machine's GPUs are not reserved: ``allocates_gpus``);
- ``cancel`` stops the job as the local executor does (its attach process terminates its pod on the way
  out), then terminates every pod still tagged with the job;
- when a job ends (``poll`` says exited or lost) its pods are terminated and its ``cost.json`` closed;
- the first call in a process (a restarted service) reconciles: every pod of this workspace whose
  owning job process is gone is terminated, and the user is told in the service log and in that job's
  log; pods of live jobs are left alone (those jobs are adopted, never launched again).

Without ``RUNPOD_API_KEY`` in the service's environment the pod clean-up is skipped with a warning
(nothing could have been created either).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from core.common.errors import UserError
from core.common.job_types import Handle, Job
from core.common.workspace import paths
from core.sandbox.base import SandboxUnavailable
from core.sandbox.runpod_pods import (
    PodApi,
    all_records,
    end_record,
    owner_alive,
    parse_name,
    read_record,
    terminate,
    workspace_lock,
)
from core.sandbox.runpod_settings import RunPodSettings, load_settings, workspace_tag
from executors.base import ExecutorError, PollResult
from executors.local import LocalExecutor, LocalHandle

log = logging.getLogger(__name__)

# the operator's credentials the trusted job process needs (RunPod API, S3 uploads and reads)
CREDENTIAL_ENV = ("RUNPOD_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_SECURITY_TOKEN")
SWEEP_RETRY_S = 60  # RunPod did not answer the orphan sweep: ask again after this long, not every tick


def _tell_job(run_dir: str | None, line: str) -> None:
    """A line in the job's own log (``w2s jobs logs``), where its user looks."""
    if not run_dir or not Path(run_dir).is_dir():
        return
    try:
        with open(Path(run_dir) / "stdout.log", "a", encoding="utf-8") as fh:
            fh.write(f"[w2s] {time.strftime('%H:%M:%S')} {line}\n")
    except OSError:
        pass


class RunPodExecutor(LocalExecutor):
    name = "runpod"
    supports_gpus = True  # a pod's GPUs: gpu_count from the job's gpus_requested (UNVERIFIED: no GPU here)
    allocates_gpus = True  # the pod brings its GPUs; this machine's are neither consulted nor reserved

    def __init__(self) -> None:
        super().__init__()
        self._swept: set[str] = set()
        self._sweep_after: dict[str, float] = {}  # workspace -> when a failed sweep may be tried again
        self._sweep_lock = threading.Lock()

    # -- settings and the API --------------------------------------------------------------------
    @staticmethod
    def _settings() -> RunPodSettings:
        try:
            return load_settings()
        except UserError as exc:
            raise ExecutorError(str(exc)) from None

    def _api_settings(self) -> RunPodSettings | None:
        """The settings when RunPod can be asked at all (an API key), else None (and a warning)."""
        try:
            settings = self._settings()
        except ExecutorError as exc:
            log.warning("runpod: pods not reconciled: %s", exc)
            return None
        if not settings.api_key:
            log.warning("runpod: pods not reconciled: RUNPOD_API_KEY is not set in the service's environment")
            return None
        return settings

    def _sweep_once(self) -> None:
        """After a (re)start: terminate this workspace's pods whose job process is gone, and say so."""
        workspace = str(paths().root)
        with self._sweep_lock:
            if workspace in self._swept or time.monotonic() < self._sweep_after.get(workspace, 0.0):
                return
            self._swept.add(workspace)
        settings = self._api_settings()
        if settings is None:
            return
        with workspace_lock():  # a pod being created now gets its record first: never taken for an orphan
            try:
                listed = PodApi(settings).ours(workspace_tag())
            except SandboxUnavailable as exc:
                log.warning("runpod: orphan sweep skipped (tried again in %d s): %s", SWEEP_RETRY_S, exc)
                with self._sweep_lock:
                    self._swept.discard(workspace)
                    self._sweep_after[workspace] = time.monotonic() + SWEEP_RETRY_S
                return
            self._sweep(settings, listed)

    def _sweep(self, settings: RunPodSettings, listed: list[dict[str, object]]) -> None:
        for pod in listed:
            pod_id = str(pod.get("id"))
            record = read_record(pod_id)
            if record is not None and owner_alive(record):
                continue  # its job runs: adopted by the scheduler, pod left alone
            job = (record or {}).get("job") or "?"
            done = terminate(settings, pod_id, "no live job after a service restart", say=log.warning)
            cost = (read_record(pod_id) or {}).get("cost_per_hr")
            line = (f"runpod: pod {pod_id} ({pod.get('name')}) of job {job} had no live job: "
                    + ("terminated" if done else "could NOT be terminated, terminate it in the RunPod console")
                    + (f" (${float(cost):.2f}/h)" if cost else ""))
            log.warning(line)
            _tell_job((record or {}).get("run_dir"), line)
        alive = {str(p.get("id")) for p in listed}
        for record in all_records():  # recorded as running, yet RunPod no longer lists it: it is gone
            if not record.get("ended") and record["id"] not in alive and not owner_alive(record):
                end_record(record["id"], "gone when the service restarted")

    def _end_job_pods(self, job: Job, reason: str) -> list[str]:
        """Terminate every pod still tagged with ``job``; their ids."""
        settings = self._api_settings()
        if settings is None:
            return []
        try:
            listed = PodApi(settings).ours(workspace_tag())
        except SandboxUnavailable as exc:
            log.warning("runpod: pods of job %s not checked: %s", job["id"], exc)
            return []
        ended = []
        for pod in listed:
            if (parse_name(str(pod.get("name"))) or {}).get("job") != job["id"]:
                continue
            if terminate(settings, str(pod["id"]), reason, say=log.warning):
                ended.append(str(pod["id"]))
                _tell_job(job.get("run_dir"), f"runpod: pod {pod['id']} terminated ({reason})")
        for record in all_records():
            if record.get("job") == job["id"] and not record.get("ended"):
                end_record(record["id"], reason)
        return ended

    # -- the executor interface ------------------------------------------------------------------
    def submit(self, job: Job, command: list[str], env: dict[str, str]) -> Handle:
        from core.sandbox.runpod import RunPodSandbox

        problem = RunPodSandbox().problem()
        if problem:
            raise ExecutorError(problem)
        self._sweep_once()
        credentials = {k: os.environ[k] for k in CREDENTIAL_ENV if os.environ.get(k)}
        gpus = max(1, int(job.get("gpus_requested") or 0))
        env = {**env, **credentials, "W2S_SANDBOX": "runpod", "W2S_JOB_ATTEMPT": str(job["attempt"]),
               "W2S_RUNPOD_GPU_COUNT": str(gpus)}
        return super().submit(job, command, env)

    def poll(self, job: Job, handle: Handle) -> PollResult:
        self._sweep_once()
        result = super().poll(job, handle)
        if result.status != "running":
            self._end_job_pods(job, "its job ended")  # the job process is gone: so is anything it left
        return result

    def adopt(self, job: Job, handle: Handle | None = None) -> LocalHandle | None:
        self._sweep_once()
        return super().adopt(job, handle)

    def cancel(self, job: Job, handle: Handle, grace: float = 10.0) -> bool:
        stopped = super().cancel(job, handle, grace)
        ended = self._end_job_pods(job, "cancelled")
        return stopped or bool(ended)
