"""Slurm executor: each job attempt is one batch job on the cluster the researcher already has.

``submit`` writes a small batch script into the job's run folder and hands it to ``sbatch --parsable``;
the Slurm job id goes into the handle (and ``slurm.json`` in the run folder). The run folder must be on
a filesystem the compute nodes share (a cluster's home or project space): the job writes its output
to ``stdout.log`` there (``--output``), and its exit status to ``exit_status`` (the local executor's
format), because ``sacct`` needs accounting storage that many clusters do not open to users.

Secrets: the job's environment (run token, the job's own secrets) never goes on sbatch's command line,
into the batch script or through Slurm (which keeps a job's exported environment in its state files).
It is written to ``.slurm_env.a<attempt>`` in the run folder, mode 0600, which the batch script
sources and deletes as its first act; the executor deletes it too once the attempt ends (a job
cancelled while pending never read it). ``sbatch`` itself runs with a small environment (PATH, HOME,
locale, SLURM_CONF, SBATCH_*) and ``--export=ALL``, so that is all Slurm stores. (``--export=NONE``
would make slurmd build the user's login environment on the node first: 2.3 s more per job here.)

Poll reads one ``squeue`` listing of this user's jobs (cached for ``SQUEUE_TTL_S``, so many jobs
cost one query per tick), with the pending reason and queue position; a job that left the queue is
finished from ``exit_status``, else from ``scontrol show job`` (kept ``MinJobAge`` seconds), else it
is lost. Cancel signals exactly that job id (``scancel --full --signal=TERM``, then ``scancel``).
Adopt finds the attempt by its job name ``w2s-<job id>-a<attempt>`` and a comment naming the
workspace, so a restarted service never submits a running attempt twice.

What runs on the node is the trusted job command (``python -m core.app.seed_job`` for idea runs);
the idea inside it runs in the node's local sandbox as it would locally, so labels stay on the
trusted side. GPUs are requested with ``--gres=gpu:N`` (Slurm sets ``CUDA_VISIBLE_DEVICES``);
that path is not exercised by the tests here (the test cluster has no GPUs).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from core.common.atomic import atomic_write_json
from core.common.files import MAX_LOG_CHUNK, read_log_file
from core.common.job_types import Handle, Job
from core.common.workspace import paths
from executors.base import CapacityError, Executor, ExecutorError, PollResult
from executors.slurm_settings import SlurmSettings, load_settings

SQUEUE_TTL_S = float(os.environ.get("W2S_SLURM_SQUEUE_TTL", "1.0"))
COMMAND_TIMEOUT_S = 30.0
SECRET_NAME_RE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_SBATCH_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
                         "TMPDIR", "SLURM_CONF"})
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# set by Slurm on the node (GPUs it granted, the job's own ids), never copied from the service
_NODE_OWNED = re.compile(r"^(CUDA_VISIBLE_DEVICES|SLURM_.*|SBATCH_.*|SRUN_.*|PWD|OLDPWD|SHLVL|HOSTNAME|_)$")
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
# transient: the controller is busy or restarting; the scheduler retries the submit with backoff
_TRANSIENT = ("Unable to contact slurm controller", "Socket timed out", "temporarily unavailable",
              "Slurm temporarily unable", "Resource temporarily unavailable", "Zero Bytes were transmitted")


class SlurmHandle(Handle, total=False):
    slurm_job_id: str
    name: str


@dataclass(frozen=True)
class QueueEntry:
    """One line of ``squeue``: a job Slurm still lists (pending, running, completing, ...)."""

    job_id: str
    state: str
    reason: str
    partition: str
    name: str
    comment: str


def _user() -> str:
    """This process's user name (squeue -u), from the uid rather than $USER, which may be stale."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def job_name(job_id: str, attempt: int) -> str:
    return f"w2s-{job_id}-a{attempt}"


def job_comment(job_id: str, root: Path | None = None) -> str:
    """The ``--comment`` that says which w2s job and workspace a batch job belongs to (for adopt)."""
    return f"w2s job {job_id} in {root or paths().root}"


def env_file(run_dir: Path, attempt: int) -> Path:
    return run_dir / f".slurm_env.a{attempt}"


def sbatch_env() -> dict[str, str]:
    """What ``sbatch`` runs with, and so all that Slurm stores of the environment: nothing secret."""
    return {k: v for k, v in os.environ.items()
            if (k in _SBATCH_ENV or k.startswith("SBATCH_")) and not SECRET_NAME_RE.search(k)}


def _run(argv: list[str], timeout: float = COMMAND_TIMEOUT_S,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A Slurm client command; its environment is the service's minus secrets (it needs SLURM_CONF)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not SECRET_NAME_RE.search(k)}
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ExecutorError(f"{argv[0]} not found: the Slurm client tools are not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CapacityError(f"{argv[0]} did not answer within {timeout:.0f}s") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def batch_script(job_id: str, attempt: int, run_dir: Path, command: list[str], modules: tuple[str, ...]) -> str:
    """The batch script: load the job's environment, run the command, record how it ended.

    The command runs in the background and the script waits for it, so a SIGTERM from ``scancel``
    or the time limit is passed on at once and the script still writes ``exit_status`` (the exit
    code as a shell shows it: 143 for SIGTERM). Nothing secret is in here: Slurm keeps a copy.
    """
    rd = shlex.quote(str(run_dir))
    envf = shlex.quote(str(env_file(run_dir, attempt)))
    lines = [
        "#!/bin/bash",
        f"# w2s job {job_id}, attempt {attempt}: written by executors/slurm.py",
        f"run_dir={rd}",
        f"if [ -f {envf} ]; then . {envf}; rm -f {envf}; fi  # the job's environment (0600, has secrets)",
        "export SLURM_EXPORT_ENV=ALL",
        *(["# module loads from the workspace's Slurm settings", *modules] if modules else []),
        f'echo "[w2s] attempt {attempt} started $(date -u "+%Y-%m-%d %H:%M:%S") UTC on $(hostname)'
        f' (Slurm job $SLURM_JOB_ID)"',
        f"{shlex.join(command)} </dev/null &",
        "child=$!",
        "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT HUP USR1 USR2",
        "while :; do",
        '  wait "$child"; code=$?',
        '  kill -0 "$child" 2>/dev/null || break  # a trapped signal interrupts wait: wait again',
        "done",
        'wait "$child" 2>/dev/null; again=$?',
        'if [ "$again" -ge 0 ] && [ "$again" -le 255 ] && [ "$again" != 127 ]; then code=$again; fi',
        "sig=null",
        'if [ "$code" -gt 128 ] && [ "$code" -lt 160 ]; then sig=$((code - 128)); fi',
        'tmp="$run_dir/.exit_status.$SLURM_JOB_ID.tmp"',
        f'printf \'{{"attempt": {attempt}, "exit_code": %d, "signal": %s, "finished": %s, '
        f'"slurm_job_id": "%s"}}\\n\' "$code" "$sig" "$(date +%s.%N)" "$SLURM_JOB_ID" > "$tmp"',
        'mv -f "$tmp" "$run_dir/exit_status"',
        f'echo "[w2s] attempt {attempt} exited with code $code $(date -u "+%Y-%m-%d %H:%M:%S") UTC"',
        'exit "$code"',
        "",
    ]
    return "\n".join(lines)


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """``export NAME=value`` lines, created 0600 (never readable by others, even for a moment)."""
    body = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items())
                   if _ENV_NAME_RE.match(name) and not _NODE_OWNED.match(name) and "\x00" not in value)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class SlurmExecutor(Executor):
    name = "slurm"
    supports_gpus = True  # --gres=gpu:N; unverified here (the test cluster has no GPUs)
    allocates_gpus = True  # the cluster picks the GPUs, not this machine's inventory

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: dict[str, QueueEntry] = {}
        self._queue_time = 0.0
        self._positions: dict[str, int] = {}

    # -- the queue -------------------------------------------------------------------------
    def _listing(self, force: bool = False) -> dict[str, QueueEntry]:
        """This user's jobs Slurm lists now (one ``squeue`` per ``SQUEUE_TTL_S`` for all polls).

        Raises CapacityError when squeue cannot answer (controller down): a poll then says "unknown
        for now", never "lost", so a restarting controller does not fail running jobs.
        """
        with self._lock:
            if not force and time.monotonic() - self._queue_time < SQUEUE_TTL_S:
                return self._queue
            proc = _run(["squeue", "-h", "-u", _user(), "-o", "%i|%T|%r|%P|%j|%k"])
            if proc.returncode != 0:
                raise CapacityError(f"squeue failed: {_one_line(proc.stderr or proc.stdout)}")
            queue: dict[str, QueueEntry] = {}
            pending_partitions: set[str] = set()
            for line in proc.stdout.splitlines():
                parts = line.split("|", 5)
                if len(parts) == 6:
                    entry = QueueEntry(*parts)
                    queue[entry.job_id] = entry
                    if entry.state == "PENDING" and entry.name.startswith("w2s-"):
                        pending_partitions.add(entry.partition)
            self._positions = self._queue_positions(pending_partitions) if pending_partitions else {}
            self._queue, self._queue_time = queue, time.monotonic()
            return queue

    @staticmethod
    def _queue_positions(partitions: set[str]) -> dict[str, int]:
        """Place of every pending job in its partition's queue, everyone's jobs, by priority."""
        proc = _run(["squeue", "-h", "-t", "PENDING", "-p", ",".join(sorted(partitions)), "--sort=-p,i",
                     "-o", "%i|%P"])
        positions: dict[str, int] = {}
        seen: dict[str, int] = {}
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                job_id, _, partition = line.partition("|")
                seen[partition] = seen.get(partition, 0) + 1
                positions[job_id] = seen[partition]
        return positions

    def _forget_listing(self) -> None:
        with self._lock:
            self._queue_time = 0.0

    @staticmethod
    def _show_job(slurm_id: str) -> dict[str, str] | None:
        """``scontrol show job`` as a dict (None when Slurm no longer knows the id)."""
        proc = _run(["scontrol", "show", "job", "-o", slurm_id])
        if proc.returncode != 0:
            if "Invalid job id" in (proc.stderr + proc.stdout):
                return None
            raise CapacityError(f"scontrol failed: {_one_line(proc.stderr or proc.stdout)}")
        fields: dict[str, str] = {}
        for key in ("JobState", "ExitCode", "Reason", "JobName", "TimeLimit", "RunTime"):
            match = re.search(rf"(?:^|\s){key}=(\S*)", proc.stdout)
            if match:
                fields[key] = match.group(1)
        return fields or None

    # -- submit ----------------------------------------------------------------------------
    def submit(self, job: Job, command: list[str], env: dict[str, str]) -> Handle:
        settings = load_settings()
        run_dir = Path(job["run_dir"])
        attempt = int(job["attempt"])
        job_id = str(job["id"])
        for stale in ("exit_status", "slurm.json"):
            path = run_dir / stale
            if path.exists():
                path.replace(run_dir / f"{stale}.prev")
        script = run_dir / f"slurm_batch.a{attempt}.sh"
        script.write_text(batch_script(job_id, attempt, run_dir, command, settings.modules), encoding="utf-8")
        write_env_file(env_file(run_dir, attempt), env)
        name = job_name(job_id, attempt)
        cwd = str((_read_json(run_dir / "command.json") or {}).get("cwd") or paths().root)
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--comment={job_comment(job_id)}",
                f"--output={run_dir / 'stdout.log'}", "--open-mode=append", f"--chdir={cwd}",
                "--export=ALL", "--no-requeue", *self._resources(job, settings), str(script)]
        try:
            proc = _run(argv, env=sbatch_env())
        except BaseException:
            env_file(run_dir, attempt).unlink(missing_ok=True)
            raise
        if proc.returncode != 0:
            env_file(run_dir, attempt).unlink(missing_ok=True)
            message = _one_line(proc.stderr or proc.stdout) or f"sbatch exited with {proc.returncode}"
            if any(t.lower() in message.lower() for t in _TRANSIENT):
                raise CapacityError(message)
            raise ExecutorError(message)
        slurm_id = proc.stdout.strip().split(";")[0]
        if not slurm_id.isdigit():
            raise ExecutorError(f"sbatch answered {proc.stdout.strip()!r}, not a job id")
        self._forget_listing()
        handle: SlurmHandle = {"attempt": attempt, "launched": time.time(), "slurm_job_id": slurm_id, "name": name}
        atomic_write_json(run_dir / "slurm.json", {**handle, "sbatch": argv})
        return handle

    @staticmethod
    def _resources(job: Job, settings: SlurmSettings) -> list[str]:
        options = settings.sbatch_options()
        gpus = int(job.get("gpus_requested") or 0)
        if gpus:
            options.append(f"--gres=gpu:{gpus}")
        return options

    # -- poll ------------------------------------------------------------------------------
    def poll(self, job: Job, handle: Handle) -> PollResult:
        run_dir = Path(job["run_dir"])
        h = cast(SlurmHandle, handle)
        attempt = int(h.get("attempt") or job.get("attempt") or 0)
        slurm_id = str(h.get("slurm_job_id") or "")
        if not slurm_id:
            return PollResult("lost", reason="the handle holds no Slurm job id")
        status = self._exit_status(run_dir, attempt)
        if status is not None:
            return self._exited(run_dir, attempt, slurm_id, status)
        try:
            entry = self._listing().get(slurm_id)
            if entry is None:  # left the queue (or a listing older than the submit): ask for the job itself
                shown = self._show_job(slurm_id)
            else:
                shown = None
        except CapacityError as exc:
            return PollResult("running", reason=f"Slurm did not answer ({exc}); state unknown for now")
        if entry is not None:
            return PollResult("running", reason=self._describe(entry))
        status = self._exit_status(run_dir, attempt)  # written between the two looks
        if status is not None:
            return self._exited(run_dir, attempt, slurm_id, status)
        if shown is not None and shown.get("JobState") in ACTIVE:
            return PollResult("running", reason=f"Slurm: {shown['JobState'].lower()}")
        env_file(run_dir, attempt).unlink(missing_ok=True)
        if shown is not None:
            state = shown.get("JobState", "?")
            code, sig = self._exit_code(shown)
            how = f"Slurm job {slurm_id} ended {state} (ExitCode {shown.get('ExitCode', '?')}) without " \
                  f"recording an exit status"
            if state == "COMPLETED" and code == 0:
                return PollResult("exited", 0, None, "")
            return PollResult("exited", code if code else None, sig, how)
        return PollResult("lost", reason=f"Slurm no longer knows job {slurm_id} and it recorded no exit status")

    @staticmethod
    def _exit_status(run_dir: Path, attempt: int) -> dict[str, Any] | None:
        status = _read_json(run_dir / "exit_status")
        return status if status and status.get("attempt") == attempt else None

    def _exited(self, run_dir: Path, attempt: int, slurm_id: str, status: dict[str, Any]) -> PollResult:
        env_file(run_dir, attempt).unlink(missing_ok=True)
        code = status.get("exit_code")
        reason = str(status.get("error") or "")
        if code not in (0, None) and not reason:  # say why Slurm ended it (time limit, cancel), if it did
            try:
                shown = self._show_job(slurm_id) or {}
            except (CapacityError, ExecutorError):
                shown = {}
            state = shown.get("JobState", "")
            if state in ("TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "DEADLINE"):
                reason = f"Slurm job {slurm_id} ended {state} (exit code {code})"
                if state == "TIMEOUT":
                    reason += f"; time limit {shown.get('TimeLimit', '?')}"
        return PollResult("exited", code, status.get("signal"), reason)

    @staticmethod
    def _exit_code(shown: dict[str, str]) -> tuple[int | None, int | None]:
        """(exit code as a shell shows it, signal) from scontrol's ``ExitCode=<code>:<signal>``."""
        match = re.match(r"^(\d+):(\d+)$", shown.get("ExitCode", ""))
        if not match:
            return None, None
        code, sig = int(match.group(1)), int(match.group(2))
        return (128 + sig, sig) if sig else (code, None)

    def _describe(self, entry: QueueEntry) -> str:
        if entry.state != "PENDING":
            return "" if entry.state == "RUNNING" else f"Slurm: {entry.state.lower()}"
        text = f"pending in Slurm: {entry.reason or 'waiting'}"
        position = self._positions.get(entry.job_id)
        if position:
            text += f", {_ordinal(position)} in the {entry.partition} queue"
        return text

    # -- adopt, cancel, logs ---------------------------------------------------------------
    def adopt(self, job: Job, handle: Handle | None = None) -> SlurmHandle | None:
        """The attempt's handle if Slurm has (or had) it: from ``slurm.json``, else by name + comment."""
        run_dir = Path(job["run_dir"])
        attempt = int((handle or {}).get("attempt") or job.get("attempt") or 0)
        name = job_name(str(job["id"]), attempt)
        base: SlurmHandle = {"attempt": attempt, "launched": float((handle or {}).get("launched") or time.time()),
                             "name": name}
        recorded = _read_json(run_dir / "slurm.json")
        if recorded and recorded.get("attempt") == attempt and str(recorded.get("slurm_job_id", "")).isdigit():
            return {**base, "slurm_job_id": str(recorded["slurm_job_id"])}
        status = self._exit_status(run_dir, attempt)
        if status and str(status.get("slurm_job_id", "")).isdigit():
            return {**base, "slurm_job_id": str(status["slurm_job_id"])}
        proc = _run(["squeue", "-h", "-u", _user(), "--states=all", "-n", name, "-o", "%i|%k"])
        if proc.returncode != 0:
            raise CapacityError(f"squeue failed: {_one_line(proc.stderr or proc.stdout)}")
        comment = job_comment(str(job["id"]))
        for line in proc.stdout.splitlines():
            slurm_id, _, found = line.partition("|")
            if found == comment and slurm_id.isdigit():
                return {**base, "slurm_job_id": slurm_id}
        return None

    def _mine(self, job: Job, slurm_id: str) -> QueueEntry | None:
        """The queue entry of ``slurm_id`` if it still is this job's attempt (name and comment agree)."""
        entry = self._listing(force=True).get(slurm_id)
        attempt = int(job.get("attempt") or 0)
        if entry is None or entry.name != job_name(str(job["id"]), attempt) or entry.comment != job_comment(str(job["id"])):
            return None
        return entry

    def cancel(self, job: Job, handle: Handle, grace: float = 10.0) -> bool:
        """SIGTERM to the batch job (script and command), ``scancel`` after ``grace``; pending: ``scancel``."""
        slurm_id = str(cast(SlurmHandle, handle).get("slurm_job_id") or "")
        if not slurm_id:
            return False
        entry = self._mine(job, slurm_id)
        if entry is None:
            return False
        run_dir = Path(job["run_dir"])
        attempt = int(job.get("attempt") or 0)
        if entry.state == "PENDING":
            _run(["scancel", slurm_id])
            self._forget_listing()
            env_file(run_dir, attempt).unlink(missing_ok=True)
            shown = self._show_job(slurm_id) or {}
            if shown.get("JobState") == "CANCELLED" and self._exit_status(run_dir, attempt) is None:
                atomic_write_json(run_dir / "exit_status", {
                    "attempt": attempt, "exit_code": None, "signal": None, "finished": time.time(),
                    "slurm_job_id": slurm_id, "error": "cancelled while pending in Slurm (never ran)"})
            return True
        _run(["scancel", "--full", "--signal=TERM", slurm_id])
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self._exit_status(run_dir, attempt) is not None or self._mine(job, slurm_id) is None:
                break
            time.sleep(0.2)
        if self._mine(job, slurm_id) is not None:
            _run(["scancel", slurm_id])  # Slurm's own TERM, then KILL after KillWait
        self._forget_listing()
        return True

    def logs(self, job: Job, offset: int = 0, max_bytes: int = MAX_LOG_CHUNK) -> tuple[str, int]:
        """The batch job's ``--output`` is the run folder's ``stdout.log`` (a shared filesystem)."""
        return read_log_file(Path(job["run_dir"]) / "stdout.log", offset, max_bytes)


@dataclass(frozen=True)
class SlurmCheck:
    ok: bool
    detail: str


def check_cluster() -> SlurmCheck:
    """Does ``sbatch`` answer and ``sinfo`` list a partition? (for ``w2s doctor``)."""
    try:
        version = _run(["sbatch", "--version"], timeout=10)
        if version.returncode != 0:
            return SlurmCheck(False, f"sbatch --version failed: {_one_line(version.stderr)}")
        info = _run(["sinfo", "-h", "-o", "%P %a %D %t"], timeout=10)
    except (ExecutorError, CapacityError) as exc:
        return SlurmCheck(False, str(exc))
    if info.returncode != 0:
        return SlurmCheck(False, f"{version.stdout.strip()}; sinfo failed: {_one_line(info.stderr or info.stdout)}")
    rows = []
    for line in info.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            partition, avail, nodes, state = parts
            rows.append(f"{partition} ({avail}, {nodes} node{'' if nodes == '1' else 's'} {state})")
    try:
        settings = load_settings()
        where = f"; jobs go to partition {settings.partition}" if settings.partition else ""
    except Exception as exc:  # a bad settings file is reported, not raised
        where = f"; settings: {exc}"
    return SlurmCheck(bool(rows), f"{version.stdout.strip()}; partitions: {', '.join(rows) or 'none'}{where}")
