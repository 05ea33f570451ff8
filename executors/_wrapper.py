"""The small process that runs one job attempt and records how it ended, service or no service.

Started by the local executor in a new session; it forks once more so it is not the service's
child (no zombies there, nothing ties it to the service's lifetime), starts the job in its own
process group, writes ``pids.json``, waits, reaps whatever the job left behind in its group, and
writes ``exit_status``. Usage: ``python -m executors._wrapper RUN_DIR ATTEMPT``.

The job's group leader is a small recorder (``--record``): it starts the command, waits and writes
``job_exit`` (the command's own status) before it exits. So a wrapper that is killed while the job
carries on does not turn a job that finished normally into a lost one: the executor reads
``job_exit`` when the wrapper left no ``exit_status``. The recorder outlives SIGTERM/SIGINT/SIGHUP
(they reach the command, in the same group, directly) so it can record how the command ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

LEFTOVER_GRACE_S = 3.0


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _create_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _reap_group(pgid: int) -> None:
    """The job's leader is gone; stop any children it left running in its group (no orphans)."""
    if not _group_alive(pgid):
        return
    for sig, wait in ((signal.SIGTERM, LEFTOVER_GRACE_S), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.05)


JOB_EXIT = "job_exit"


def _status_of(code: int) -> tuple[int, int | None]:
    """(exit code as a shell shows it, signal or None) from ``Popen.returncode``."""
    sig_num = -code if code < 0 else None
    return (128 + sig_num if sig_num else code), sig_num


def _die_with_recorder(recorder: int) -> Callable[[], None]:
    """In the command's process, before exec: a SIGKILL of the recorder (the job's pid, what a user
    kills) kills the command too, so killing a job never leaves its work running unrecorded."""

    def arm() -> None:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != recorder:  # the recorder died before the line above took effect
            os._exit(137)

    return arm


def record(run_dir: Path, attempt: int, command: list[str]) -> int:
    """The job's group leader: run ``command``, write ``job_exit``, exit with the command's code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # a Python handler: the command gets the default again
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, close_fds=True,
                                 preexec_fn=_die_with_recorder(os.getpid()))
    except OSError as exc:
        print(f"[w2s] could not start the command: {exc}", flush=True)
        _write_json(run_dir / JOB_EXIT, {"attempt": attempt, "exit_code": 127, "signal": None,
                                        "error": f"could not start the command: {exc}", "finished": time.time()})
        return 127
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
    exit_code, sig_num = _status_of(code)
    _write_json(run_dir / JOB_EXIT, {"attempt": attempt, "exit_code": exit_code, "signal": sig_num,
                                    "finished": time.time()})
    return exit_code


def read_job_exit(run_dir: Path, attempt: int) -> dict | None:
    try:
        data = json.loads((run_dir / JOB_EXIT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("attempt") == attempt else None


def run(run_dir: Path, attempt: int) -> int:
    spec = json.loads((run_dir / "command.json").read_text(encoding="utf-8"))
    command = [sys.executable, "-m", "executors._wrapper", "--record", str(run_dir), str(attempt), "--",
               *(str(part) for part in spec["command"])]
    cwd = spec.get("cwd") or None
    me = os.getpid()
    base = {"attempt": attempt, "wrapper_pid": me, "wrapper_ctime": _create_time(me)}
    with open(run_dir / "stdout.log", "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        log.write(f"[w2s] attempt {attempt} started {stamp} UTC\n".encode())
        try:
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=cwd, process_group=0, close_fds=True,
            )
        except OSError as exc:
            log.write(f"[w2s] could not start the command: {exc}\n".encode())
            _write_json(run_dir / "pids.json", {**base, "pid": None, "pgid": None, "ctime": None})
            _write_json(run_dir / "exit_status", {
                "attempt": attempt, "exit_code": 127, "signal": None,
                "error": f"could not start the command: {exc}", "finished": time.time(),
            })
            return 127
        pgid = child.pid

        def forward(signum: int, _frame: object) -> None:  # someone signalled the wrapper: pass it on
            try:
                os.killpg(pgid, signum)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        _write_json(run_dir / "pids.json", {**base, "pid": child.pid, "pgid": pgid, "ctime": _create_time(child.pid)})
        code = child.wait()
        _reap_group(pgid)
        exit_code, sig_num = _status_of(code)
        recorded = read_job_exit(run_dir, attempt)  # the command's own status, not the recorder's
        if recorded is not None:
            exit_code, sig_num = int(recorded.get("exit_code") or 0), recorded.get("signal")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        log.write(f"[w2s] attempt {attempt} exited with code {exit_code} {stamp} UTC\n".encode())
    status: dict = {"attempt": attempt, "exit_code": exit_code, "signal": sig_num, "finished": time.time()}
    if recorded is not None and recorded.get("error"):
        status["error"] = recorded["error"]
    _write_json(run_dir / "exit_status", status)
    return exit_code


def main(argv: list[str]) -> int:
    if argv[:1] == ["--record"]:  # the job's group leader (see the module docstring)
        return record(Path(argv[1]), int(argv[2]), argv[4:])
    run_dir, attempt = Path(argv[0]), int(argv[1])
    if os.fork() > 0:  # the launcher's child exits at once; the grandchild carries on, adopted by init
        os._exit(0)
    try:
        return run(run_dir, attempt)
    except BaseException as exc:  # leave a trace; the executor reports the job as lost
        try:
            with open(run_dir / "wrapper.err", "a", encoding="utf-8") as fh:
                fh.write(f"{type(exc).__name__}: {exc}\n")
        except OSError:
            pass
        return 1


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
