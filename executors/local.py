"""Local executor: each job attempt is a detached wrapper process (see ``executors._wrapper``).

Jobs outlive the service and the UI: the wrapper runs in its own session, is re-parented to init,
and writes ``exit_status`` itself. Cancel signals the job's own process group only after checking
that the group really is this job's (leader pid + start time, or a member whose environment
carries this job's ``W2S_JOB_ID``), so a recycled pid can never make us kill a stranger. What
the job started outside its group (``setsid``, a daemon) is found before the first signal (every
descendant of the group, and every process carrying the job's ``W2S_JOB_ID``) and killed with it.

A wrapper that died without ``exit_status`` is not the end of the story: the job's group leader
writes ``job_exit`` (see ``executors._wrapper``), and that is the job's status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import psutil

from core.common.files import MAX_LOG_CHUNK, read_log_file
from core.common.job_types import Handle, Job
from core.common.process import CTIME_TOLERANCE_S, process_alive
from executors._wrapper import JOB_EXIT
from executors.base import Executor, ExecutorError, PollResult

START_TIMEOUT_S = float(os.environ.get("W2S_LOCAL_START_TIMEOUT", "20"))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_exit_status(run_dir: Path, attempt: int) -> dict[str, Any] | None:
    status = read_json(run_dir / "exit_status")
    return status if status and status.get("attempt") == attempt else None


def read_job_exit(run_dir: Path, attempt: int) -> dict[str, Any] | None:
    """What the job's group leader recorded about the command (present even if the wrapper died)."""
    status = read_json(run_dir / JOB_EXIT)
    return status if status and status.get("attempt") == attempt else None


class LocalHandle(Handle, total=False):
    """The local handle once the wrapper has written ``pids.json``: its pid and the job's group."""

    wrapper_pid: int | None
    wrapper_ctime: float | None
    pid: int | None
    pgid: int | None
    ctime: float | None


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def _belongs_to_job(members: list[psutil.Process], job_id: str, handle: LocalHandle) -> bool:
    for proc in members:
        try:
            if proc.pid == handle.get("pid") and abs(proc.create_time() - (handle.get("ctime") or 0)) < CTIME_TOLERANCE_S:
                return True
            if proc.environ().get("W2S_JOB_ID") == job_id:
                return True
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return False


def _escaped(members: list[psutil.Process], pgid: int, job_id: str, wrapper_pid: int | None) -> list[psutil.Process]:
    """The job's processes outside its group: descendants of any member (a ``setsid`` child keeps its
    parent until that dies) and processes carrying this job's ``W2S_JOB_ID`` (orphans re-parented to
    init). Collected before the first signal, while the tree still shows who started whom. The
    wrapper (it records the exit status) and processes of other users are never included."""
    found: dict[int, psutil.Process] = {}
    for proc in members:
        try:
            for child in proc.children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            continue
    me = os.getuid()
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == wrapper_pid:
            continue
        try:
            if proc.uids().real == me and proc.environ().get("W2S_JOB_ID") == job_id:
                found[proc.pid] = proc
        except (psutil.Error, OSError):
            continue
    out = []
    for pid, proc in found.items():
        try:
            if pid != wrapper_pid and os.getpgid(pid) != pgid:
                out.append(proc)
        except (ProcessLookupError, OSError):
            continue
    return out


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)  # psutil checks the process is still the one collected (no reused pid)
        except psutil.Error:
            continue


class LocalExecutor(Executor):
    name = "local"
    supports_gpus = True  # the scheduler's CUDA_VISIBLE_DEVICES reaches the job's environment

    def __init__(self) -> None:
        self._launchers: list[subprocess.Popen] = []

    def _reap_launchers(self) -> None:
        self._launchers = [p for p in self._launchers if p.poll() is None]

    def submit(self, job: Job, command: list[str], env: dict[str, str]) -> Handle:
        """Start the wrapper and return at once: the handle gains pids when ``pids.json`` appears."""
        run_dir = Path(job["run_dir"])
        attempt = int(job["attempt"])
        self._reap_launchers()
        env = {**env, "W2S_EXECUTOR": self.name}  # what the job itself submits (an agent's runs) runs here too
        for stale in ("pids.json", "exit_status", JOB_EXIT):
            path = run_dir / stale
            if path.exists():
                path.replace(run_dir / f"{stale}.prev")
        try:
            with open(run_dir / "wrapper.err", "ab") as err:
                launcher = subprocess.Popen(
                    [sys.executable, "-m", "executors._wrapper", str(run_dir), str(attempt)],
                    env=env, cwd=str(run_dir), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=err, start_new_session=True, close_fds=True,
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start the job wrapper: {exc}") from exc
        self._launchers.append(launcher)  # reaped later; it exits as soon as it has forked the wrapper
        return {"attempt": attempt, "launched": time.time()}

    def adopt(self, job: Job, handle: Handle | None = None) -> LocalHandle | None:
        """The full handle (pids) of the job's current attempt, once its wrapper has written it."""
        pids = read_json(Path(job["run_dir"]) / "pids.json")
        attempt = (handle or {}).get("attempt", job.get("attempt"))
        if pids and pids.get("attempt") == attempt:
            full = {key: pids.get(key) for key in ("attempt", "wrapper_pid", "wrapper_ctime", "pid", "pgid", "ctime")}
            return cast(LocalHandle, {**(handle or {}), **full})
        return None

    def _complete(self, job: Job, handle: LocalHandle, wait: float = 0.0) -> LocalHandle | None:
        deadline = time.monotonic() + wait
        while True:
            full = handle if (handle.get("wrapper_pid") or handle.get("pgid")) else self.adopt(job, handle)
            if full or time.monotonic() >= deadline:
                return full
            time.sleep(0.02)

    def poll(self, job: Job, handle: Handle) -> PollResult:
        self._reap_launchers()
        run_dir = Path(job["run_dir"])
        attempt = int(handle.get("attempt") or job.get("attempt") or 0)
        full = self._complete(job, cast(LocalHandle, handle))
        if full is None:
            status = read_exit_status(run_dir, attempt)
            if status:
                return PollResult("exited", status.get("exit_code"), status.get("signal"), status.get("error") or "")
            if time.time() - float(handle.get("launched") or 0) < START_TIMEOUT_S:
                return PollResult("running", reason="starting")
            return PollResult("lost", reason=f"the job wrapper did not start within {START_TIMEOUT_S:.0f}s "
                                             f"(see {run_dir}/wrapper.err)")
        result = self._poll_full(run_dir, attempt, full)
        if full is not handle:
            result.handle = full
        return result

    def _poll_full(self, run_dir: Path, attempt: int, handle: LocalHandle) -> PollResult:
        for _ in range(2):  # check twice around the liveness test: the wrapper may exit in between
            status = read_exit_status(run_dir, attempt)
            if status:
                return PollResult("exited", status.get("exit_code"), status.get("signal"), status.get("error") or "")
            if process_alive(handle.get("wrapper_pid"), handle.get("wrapper_ctime")):
                return PollResult("running")
        recorded = read_job_exit(run_dir, attempt)
        if recorded:  # the wrapper died, the job did not: its own status stands
            return PollResult("exited", recorded.get("exit_code"), recorded.get("signal"), recorded.get("error") or "")
        pgid = handle.get("pgid")
        if pgid and group_members(int(pgid)):
            return PollResult("running", reason="wrapper gone; job processes still running")
        return PollResult("lost", reason="the job's wrapper exited without recording an exit status")

    def logs(self, job: Job, offset: int = 0, max_bytes: int = MAX_LOG_CHUNK) -> tuple[str, int]:
        """The wrapper appends the job's output to ``runs/<id>/stdout.log``: read it as it grows."""
        return read_log_file(Path(job["run_dir"]) / "stdout.log", offset, max_bytes)

    def cancel(self, job: Job, handle: Handle, grace: float = 10.0) -> bool:
        full = self._complete(job, cast(LocalHandle, handle), wait=START_TIMEOUT_S) or cast(LocalHandle, handle)
        if not full.get("pgid"):
            return False
        pgid = int(full["pgid"] or 0)
        members = group_members(pgid)
        if not members or not _belongs_to_job(members, str(job["id"]), full):
            return False
        strays = _escaped(members, pgid, str(job["id"]), full.get("wrapper_pid"))
        _signal_all(strays, signal.SIGTERM)
        try:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    return True
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    if not group_members(pgid):
                        return True
                    time.sleep(0.05)
            return True
        finally:
            _, alive = psutil.wait_procs(strays, timeout=0.5)
            _signal_all(alive, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5)
