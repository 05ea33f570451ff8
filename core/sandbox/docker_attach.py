"""The host-side process that stands for one sandbox container: ``python -m core.sandbox.docker_attach``.

Why a process: :meth:`core.sandbox.base.Sandbox.popen` promises a ``subprocess.Popen`` that callers
wait on, read and kill like any child. This small process starts the container that
:class:`~core.sandbox.docker.DockerSandbox` created, relays its stdout and stderr to its own (the job
log, or the caller's pipes), waits, and exits with the container's exit code. It then removes the
container and gives the writable folders back to the operator.

- SIGTERM/SIGINT (a stop, a cancel): the container is stopped (SIGTERM inside, SIGKILL after
  ``--grace`` seconds) and removed; exit code 143.
- The trusted process that started it dies (its parent changes): the same, so a killed runner never
  leaves a container running.
- The container was killed by the kernel's OOM killer: ``error.json`` in ``--out`` says so in one
  line (the runner reports that message), and the exit code is 137.

Only the standard library and the Docker SDK are imported: this runs once per sandboxed command.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ERROR_FILE = "error.json"  # the same name core.run.sandboxed_idea writes on failure
START_FAILED = 127
STOPPED = 143
OOM_KILLED = 137


def restore_owner(paths: list[str], uid: int, gid: int) -> None:
    """Give ``paths`` and everything under them to ``uid:gid`` again, never following a link (the
    container could have left links pointing anywhere on the host)."""
    for top in paths:
        try:
            os.lchown(top, uid, gid)
        except OSError:
            continue
        for root, dirs, files in os.walk(top, followlinks=False):
            for name in dirs + files:
                try:
                    os.lchown(os.path.join(root, name), uid, gid)
                except OSError:
                    pass


def _write_error(out: str | None, message: str) -> None:
    """One-line ``error.json`` for the runner, replacing whatever the container left under that name."""
    if not out:
        return
    target = Path(out) / ERROR_FILE
    tmp = Path(out) / f".{ERROR_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps({"error": message}), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass


def _human(limit: int | None) -> str:
    if not limit:
        return "no limit"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size:
            return f"{limit / size:g} {unit}"
    return f"{limit} bytes"


class Attached:
    """One container, from start to removal."""

    def __init__(self, container_id: str, args: argparse.Namespace) -> None:
        import docker  # type: ignore[import-untyped]

        self.args = args
        self.api = docker.from_env(timeout=120).api
        self.stream_api = docker.from_env(timeout=None).api  # a silent container must not time the stream out
        self.id = container_id
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()

    def stop(self) -> None:
        """Stop the container once (grace, then kill); the main thread's wait then returns."""
        with self.lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        try:
            self.api.stop(self.id, timeout=max(0, int(self.args.grace)))
        except Exception:  # noqa: BLE001 - already gone, or the engine went away: removal still follows
            pass

    def _relay(self, stream: Any) -> None:
        """Copy the container's stdout/stderr to ours as they come."""
        try:
            self._copy(stream, sys.stdout.buffer, sys.stderr.buffer)
        except Exception as exc:  # noqa: BLE001 - the engine closed the stream; the wait still decides
            print(f"[w2s] container output stream ended early: {exc}", file=sys.stderr, flush=True)

    @staticmethod
    def _copy(stream: Any, out: Any, err: Any) -> None:
        for chunk_out, chunk_err in stream:
            try:
                if chunk_out:
                    out.write(chunk_out)
                    out.flush()
                if chunk_err:
                    err.write(chunk_err)
                    err.flush()
            except (BrokenPipeError, ValueError):  # the reader went away: keep waiting, stop writing
                out = err = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the process

    def _watch_parent(self, parent: int) -> None:
        while not self.done.wait(0.5):
            if os.getppid() != parent:  # the trusted process died: nothing will read or clean up
                self.stop()
                return

    def run(self) -> int:
        parent = os.getppid()
        threading.Thread(target=self._watch_parent, args=(parent,), daemon=True).start()
        try:  # attached before the start (as `docker start -a`): no output is missed, however short the run
            stream = self.stream_api.attach(self.id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
            relay = threading.Thread(target=self._relay, args=(stream,), daemon=True)
            relay.start()
            if self.stopping.is_set():  # stopped before it started: it never runs
                return STOPPED
            self.api.start(self.id)
        except Exception as exc:  # noqa: BLE001 - a bad image or command: one line, then clean up
            print(f"[w2s] the container did not start: {exc}", file=sys.stderr, flush=True)
            _write_error(self.args.out, f"the sandbox container did not start: {str(exc)[:300]}")
            return START_FAILED
        status = self.api.wait(self.id)
        relay.join(timeout=5)
        state: dict[str, Any] = self.api.inspect_container(self.id).get("State") or {}
        code = int(status.get("StatusCode", state.get("ExitCode", 1)))
        if state.get("OOMKilled"):
            limit = (self.api.inspect_container(self.id).get("HostConfig") or {}).get("Memory")
            message = f"killed: out of memory (limit {_human(limit)})"
            print(f"[w2s] {message}", file=sys.stderr, flush=True)
            _write_error(self.args.out, message)
            return OOM_KILLED
        if self.stopping.is_set():
            return STOPPED
        return code

    def cleanup(self) -> None:
        self.done.set()
        for _ in range(3):
            try:
                self.api.remove_container(self.id, force=True)
                break
            except Exception as exc:  # noqa: BLE001
                if "No such container" in str(exc) or "404" in str(exc):
                    break
                time.sleep(0.2)
        if self.args.restore:
            spec = json.loads(self.args.restore)
            restore_owner(list(spec["paths"]), int(spec["uid"]), int(spec["gid"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.sandbox.docker_attach", allow_abbrev=False)
    parser.add_argument("container")
    parser.add_argument("--out", default=None, help="the output folder (error.json on OOM)")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds between SIGTERM and SIGKILL on stop")
    parser.add_argument("--restore", default=None, help='{"uid", "gid", "paths"}: owner to give back afterwards')
    args = parser.parse_args(argv)
    attached = Attached(args.container, args)

    def on_signal(signum: int, _frame: object) -> None:
        threading.Thread(target=attached.stop, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        return attached.run()
    finally:
        attached.cleanup()


if __name__ == "__main__":
    sys.exit(main())
