"""The sandbox interface: what untrusted code may see, and the one call that runs it there.

A :class:`SandboxSpec` is an allow-list. Inside, the filesystem holds only the system's read-only
base (``/usr``, ``/lib``, the Python installation), the mounts the spec names (each read-only
unless it says otherwise) and a private ``/tmp``; every other path, ``labeled_data/`` and ``.w2s/``
included, does not exist. The environment is exactly ``spec.env`` (nothing inherited, so no
secret can leak in by accident), there is no network unless asked, and the processes cannot see
or signal anything outside (own pid namespace).
"""

from __future__ import annotations

import os
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

UNVERIFIED_LABEL = "unverified (not isolated)"


class SandboxUnavailable(RuntimeError):
    """This sandbox cannot run here (no bwrap, user namespaces disabled, ...); the message says why."""


@dataclass(frozen=True)
class Mount:
    """``source`` on the host appears at ``target`` inside (same path when ``target`` is None)."""

    source: Path
    target: Path | None = None
    writable: bool = False

    @property
    def inside(self) -> Path:
        return self.target if self.target is not None else self.source


@dataclass
class SandboxSpec:
    """Everything the sandboxed command gets; nothing else reaches it."""

    command: Sequence[str]
    mounts: Sequence[Mount] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path("/tmp")
    network: bool = False
    # the writable mount (by its path inside) where the sandbox may leave a one-line ``error.json``
    # about how the run ended (the Docker sandbox: "killed: out of memory"); None: nowhere
    out: Path | None = None


class Sandbox(ABC):
    """One way to run a :class:`SandboxSpec`. ``isolated`` is False only for the debugging mode."""

    name: ClassVar[str] = ""
    isolated: ClassVar[bool] = True

    @abstractmethod
    def problem(self) -> str | None:
        """None when this sandbox works on this machine, else one line saying why not and what to do."""

    @abstractmethod
    def argv(self, spec: SandboxSpec) -> list[str]:
        """The host command line that runs ``spec.command`` inside the sandbox."""

    def host_env(self, spec: SandboxSpec) -> dict[str, str]:
        """The environment the host-side launcher itself is started with (the sandbox may clear it)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **dict(spec.env)}

    def host_cwd(self, spec: SandboxSpec) -> str | None:
        """Where the launcher starts (a real sandbox changes directory inside with its own flag)."""
        return None

    def popen(
        self, spec: SandboxSpec, *, stdout: int | IO[Any] | None = None, stderr: int | IO[Any] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start the sandboxed command in its own session (``kill_tree`` stops all of it)."""
        problem = self.problem()
        if problem:
            raise SandboxUnavailable(problem)
        return self.launch(spec, stdout, stderr, stdin)

    def launch(self, spec: SandboxSpec, stdout: int | IO[Any] | None, stderr: int | IO[Any] | None,
               stdin: int | IO[Any] | None) -> subprocess.Popen[bytes]:
        """Start the host command (a sandbox that prepares files per run overrides this)."""
        return subprocess.Popen(
            self.argv(spec), env=self.host_env(spec), cwd=self.host_cwd(spec), stdin=stdin, stdout=stdout,
            stderr=stderr, start_new_session=True, close_fds=True,
        )

    def run(self, spec: SandboxSpec, timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run to completion, capturing output; on timeout the whole tree is killed, then it raises."""
        proc = self.popen(spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.terminate(proc)
            proc.communicate()
            raise
        finally:
            self.terminate(proc)  # nothing left once it exited; a container sandbox removes its container
        return subprocess.CompletedProcess(list(spec.command), proc.returncode, out, err)

    def terminate(self, proc: subprocess.Popen[bytes], grace: float = 0.0) -> None:
        """Stop what :meth:`popen` started and everything it started (``kill_tree``), and release what
        the run holds outside the process tree (a container sandbox removes its container even when
        the host process standing for it was already killed). Safe to call again, or after exit."""
        kill_tree(proc, grace)


def kill_tree(proc: subprocess.Popen[bytes], grace: float = 0.0, reap_timeout: float = 10.0) -> None:
    """Stop a sandbox started by :meth:`Sandbox.popen` and everything it started, and wait until
    all of it is gone.

    The launcher leads its own process group; with a pid namespace, killing the namespace's first
    process makes the kernel kill every process inside, asynchronously: so the descendants are
    collected first and waited for, and a caller never sees a survivor.
    """
    import psutil

    if proc.poll() is not None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    if grace > 0:
        try:
            os.killpg(pgid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    _, alive = psutil.wait_procs(descendants, timeout=reap_timeout)
    for survivor in alive:  # outside any namespace (the unsafe mode) or in a group of its own
        try:
            survivor.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=reap_timeout)
