"""Docker executor: the job's trusted process runs on the host as a local job; everything untrusted
it runs (the idea's code, an agent's shell) runs in Docker containers.

Why this split: the trust boundary is the sandbox, not the job. The trusted job process stages
label-free inputs, starts the idea and has the referee score what comes back; it holds labels and
a run token, so it must not run inside the container the idea controls. So this executor is the
local one (detached wrapper, adopted after a service restart by pid + start time; see
``executors.local``) plus ``W2S_SANDBOX=docker`` in the job's environment, which makes every sandbox
the job opens a :class:`~core.sandbox.docker.DockerSandbox` (and fails the job, naming
``DOCKER_HOST``, when the engine or image is missing: never a silent fall back to bwrap).

Containers are labelled with the job, the attempt and the workspace, so:

- ``cancel`` stops the job as the local executor does (its sandbox removes its container on the way
  out) and then removes every container still labelled with exactly that job and workspace;
- when a job ends (``poll`` says exited or lost) whatever it left is removed;
- the first call in a process (a restarted service) removes this workspace's containers whose
  creating process is gone (0 orphans) and leaves the others alone: a running job's container
  belongs to a running job process that is adopted, never launched again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from core.common.job_types import Handle, Job
from core.common.workspace import paths
from core.sandbox.base import SandboxUnavailable
from executors.base import ExecutorError, PollResult
from executors.local import LocalExecutor, LocalHandle

log = logging.getLogger(__name__)


class DockerExecutor(LocalExecutor):
    name = "docker"
    supports_gpus = True  # CUDA_VISIBLE_DEVICES becomes a DeviceRequest for exactly those ids (unverified)

    def __init__(self) -> None:
        super().__init__()
        self._swept: set[str] = set()
        self._sweep_lock = threading.Lock()

    # -- the engine ------------------------------------------------------------------------
    @staticmethod
    def _client() -> Any:
        from core.sandbox.docker import connect

        return connect()

    def _sweep_once(self) -> None:
        """After a (re)start: remove this workspace's containers whose creating process is gone."""
        workspace = str(paths().root)
        with self._sweep_lock:
            if workspace in self._swept:
                return
            self._swept.add(workspace)
        try:
            from core.sandbox.docker import remove_containers

            removed = remove_containers(self._client(), workspace, orphans_only=True)
        except Exception as exc:  # noqa: BLE001 - the engine is away: the next process sweeps
            log.warning("docker: orphan sweep skipped: %s", exc)
            return
        if removed:
            log.info("docker: removed %d orphaned container(s): %s", len(removed), ", ".join(removed))

    def _remove_job_containers(self, job: Job) -> list[str]:
        from core.sandbox.docker import remove_containers

        try:
            return remove_containers(self._client(), str(paths().root), job=str(job["id"]))
        except SandboxUnavailable as exc:
            log.warning("docker: containers of job %s not removed: %s", job["id"], exc)
            return []

    # -- the executor interface --------------------------------------------------------------
    def submit(self, job: Job, command: list[str], env: dict[str, str]) -> Handle:
        """Check the engine and image first (a one-line launch failure naming DOCKER_HOST), then start
        the job as a local one with ``W2S_SANDBOX=docker`` and its attempt in its environment."""
        from core.sandbox.docker import DockerSandbox

        problem = DockerSandbox().problem()
        if problem:
            raise ExecutorError(problem)
        self._sweep_once()
        env = {**env, "W2S_SANDBOX": "docker", "W2S_JOB_ATTEMPT": str(job["attempt"])}
        return super().submit(job, command, env)

    def poll(self, job: Job, handle: Handle) -> PollResult:
        self._sweep_once()
        result = super().poll(job, handle)
        if result.status != "running":
            self._remove_job_containers(job)  # the job process is gone: so is anything it left
        return result

    def adopt(self, job: Job, handle: Handle | None = None) -> LocalHandle | None:
        self._sweep_once()
        return super().adopt(job, handle)

    def cancel(self, job: Job, handle: Handle, grace: float = 10.0) -> bool:
        stopped = super().cancel(job, handle, grace)
        removed = self._remove_job_containers(job)
        return stopped or bool(removed)
