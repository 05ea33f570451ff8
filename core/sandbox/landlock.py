"""The fallback local sandbox: Landlock, for hosts where user namespaces (and so bwrap) are disabled.

Landlock (Linux >= 5.13, no privileges, no daemon) lets a process give up access to every path
but an allow-list, for itself and all it starts later; ``_landlock_exec`` applies it in the child
before the command runs. The allow-list mirrors :class:`~core.sandbox.bwrap.BwrapSandbox`: the
system base, the Python installation and venv, ``/proc`` and a few devices, read-only; the spec's
mounts (writable ones read-write); and a private temp dir, created per run and removed when the
process object goes away. Handled rights follow the kernel's ABI: TCP bind/connect are denied
(ABI >= 4) unless ``spec.network``; signals and abstract unix sockets are scoped to the sandbox
(ABI >= 6); capabilities are dropped, so a root host gets no root powers inside.

What it cannot do, compared with bwrap (why bwrap is preferred whenever it works):

- hide paths: a path outside the allow-list still exists (``stat`` and ``chdir`` work), it just
  cannot be opened, listed or written; ``/proc`` shows the host's processes (no pid namespace),
  though another process's ``environ``, ``fd`` or ``mem`` is denied by Landlock's ptrace rule;
- bind a source at another path: a mount whose target differs from its source is refused, except
  an *empty* source directory, which means "hide the target": its contents are left out of the
  allow-list (the names inside stay listable, the files cannot be read), and new files cannot be
  created directly in the folders on the way to it;
- keep names private: every folder on the spec's ``PYTHONPATH`` is listable (Python's importer
  lists it; Landlock's listing right covers everything beneath), so file *names* under the
  workspace root can be listed there, never their contents;
- give a private ``/tmp``: a spec value ``/tmp`` (cwd, ``HOME``, ``TMPDIR``) is pointed at the
  private temp dir instead, the one change made to ``spec.env``;
- restrict UDP or pathname unix sockets, or hide the sizes and times of files (``stat``).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import IO, Any

from core.sandbox import _landlock_exec as ll
from core.sandbox.base import Sandbox, SandboxSpec, SandboxUnavailable
from core.sandbox.bwrap import SYSTEM_DIRS, SYSTEM_ETC, python_mounts

LANDLOCK_ENV = "W2S_LANDLOCK"  # "0": never fall back to Landlock (the operator wants namespaces or nothing)
LAUNCHER = Path(ll.__file__).resolve()
POLICY_FILE = ".w2s-landlock-policy.json"
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
READ_ONLY = ll.FS_EXECUTE | ll.FS_READ_FILE | ll.FS_READ_DIR
DEVICE = ll.FS_READ_FILE | ll.FS_WRITE_FILE | ll.FS_IOCTL_DEV
NO_DEVICE_NODES = ~(ll.FS_MAKE_CHAR | ll.FS_MAKE_BLOCK)  # never mknod, even in a writable folder


def landlock_disabled() -> bool:
    return os.environ.get(LANDLOCK_ENV, "").strip().lower() in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def kernel_abi() -> int | str:
    """The kernel's Landlock ABI version, or one line saying why there is none."""
    if not sys.platform.startswith("linux"):
        return "Landlock is Linux only"
    try:
        return ll.abi_version()
    except OSError as exc:
        if exc.errno == 38:  # ENOSYS
            return "this kernel has no Landlock (needs Linux >= 5.13 built with CONFIG_SECURITY_LANDLOCK)"
        if exc.errno == 95:  # EOPNOTSUPP
            return "Landlock is disabled at boot: add `landlock` to the kernel's lsm= parameter"
        return f"Landlock is not usable here: {exc}"


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def _hide(rules: list[tuple[str, int]], hidden: Path) -> list[tuple[str, int]]:
    """Take ``hidden`` out of the allow-list: a rule on one of its ancestors is replaced by rules on
    that ancestor's other entries along the way (Landlock rights are inherited and cannot be
    revoked beneath, so the ancestors keep only READ_DIR: names, not contents)."""
    out: list[tuple[str, int]] = []
    for path, access in rules:
        real = _real(path)
        if real not in hidden.parents or not access & ~ll.FS_READ_DIR or not real.is_dir():
            out.append((path, access))
            continue
        out.append((str(real), access & ll.FS_READ_DIR))
        here = real
        for part in hidden.relative_to(real).parts:
            for entry in os.scandir(here):
                if entry.name != part and not entry.is_symlink():  # a link would allow its target
                    out.append((entry.path, access))
            here = here / part
    return out


def _is_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not any(path.iterdir())
    except OSError:
        return False


def policy(spec: SandboxSpec, private: Path, abi: int) -> dict[str, Any]:
    """What ``_landlock_exec`` applies: rules, handled rights for this ABI, the command and its env."""
    writable = ll.fs_rights(abi) & NO_DEVICE_NODES
    rules: list[tuple[str, int]] = [(p, READ_ONLY) for p in (*SYSTEM_DIRS, *SYSTEM_ETC)]
    rules += [(str(m.source), READ_ONLY) for m in python_mounts()]
    rules.append(("/proc", ll.FS_READ_FILE | ll.FS_READ_DIR))
    rules += [(dev, DEVICE) for dev in (*DEVICES, *sorted(glob.glob("/dev/nvidia*")))]
    hidden: list[Path] = []
    for mount in spec.mounts:
        if mount.target is not None and _real(mount.target) != _real(mount.source):
            if not _is_empty_dir(mount.source):
                raise SandboxUnavailable(
                    f"the landlock sandbox cannot show {mount.source} at {mount.target} (Landlock only "
                    "restricts paths, it cannot bind one elsewhere); bind it at its own path or use bwrap"
                )
            hidden.append(_real(mount.target))
            continue
        rules.append((str(mount.source), writable if mount.writable else READ_ONLY))
    # Python lists every sys.path folder to import from it; the mounts inside come with their own rules
    for entry in spec.env.get("PYTHONPATH", "").split(os.pathsep):
        if entry and os.path.isdir(entry):
            rules.append((entry, ll.FS_READ_DIR))
    rules.append((str(private), writable))
    for target in hidden:
        rules = _hide(rules, target)
    network = 0 if spec.network or abi < 4 else ll.NET_BIND_TCP | ll.NET_CONNECT_TCP
    scoped = ll.SCOPE_ABSTRACT_UNIX_SOCKET | ll.SCOPE_SIGNAL if abi >= 6 else 0
    env = {key: str(private) if value == "/tmp" else value for key, value in spec.env.items()}
    return {
        "abi": abi, "handled_fs": ll.fs_rights(abi), "handled_net": network, "scoped": scoped,
        "rules": rules, "command": list(spec.command), "env": env,
        "cwd": str(private) if spec.cwd == Path("/tmp") else str(spec.cwd),
    }


class LandlockSandbox(Sandbox):
    """Used only when bwrap does not work: weaker (see the module docstring), but no code outside
    the allow-list can be read, nothing outside the writable mounts written, no TCP opened."""

    name = "landlock"
    isolated = True

    def problem(self) -> str | None:
        if landlock_disabled():
            return f"landlock: turned off by {LANDLOCK_ENV}=0"
        abi = kernel_abi()
        if isinstance(abi, str):
            return f"landlock: {abi}"
        return _probe()

    @property
    def abi(self) -> int:
        abi = kernel_abi()
        if isinstance(abi, str):
            raise SandboxUnavailable(abi)
        return abi

    def limits(self) -> str:
        """What this kernel's ABI leaves unrestricted, for ``w2s doctor``."""
        gaps = []
        if self.abi < 4:
            gaps.append("TCP not restricted (ABI < 4)")
        if self.abi < 6:
            gaps.append("signals and abstract sockets not scoped (ABI < 6)")
        return "; ".join(gaps)

    def argv(self, spec: SandboxSpec) -> list[str]:
        """Writes the policy into a fresh private temp dir (the command's /tmp) and returns the
        launcher's command line; :meth:`popen` removes the dir when the process object goes away."""
        private = Path(tempfile.mkdtemp(prefix="w2s-landlock-"))
        try:
            data = policy(spec, private, self.abi)
            path = private / POLICY_FILE
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
        except BaseException:
            shutil.rmtree(private, ignore_errors=True)
            raise
        # -I: nothing from the environment or the working directory steers the launcher; -S: stdlib only
        return [sys.executable, "-I", "-S", str(LAUNCHER), str(path)]

    def host_env(self, spec: SandboxSpec) -> dict[str, str]:
        return {}  # the launcher needs nothing; the command's environment travels in the policy file

    def launch(self, spec: SandboxSpec, stdout: int | IO[Any] | None, stderr: int | IO[Any] | None,
               stdin: int | IO[Any] | None) -> subprocess.Popen[bytes]:
        argv = self.argv(spec)
        private = str(Path(argv[-1]).parent)
        try:
            proc = subprocess.Popen(argv, env=self.host_env(spec), stdin=stdin, stdout=stdout, stderr=stderr,
                                    start_new_session=True, close_fds=True)
        except BaseException:
            shutil.rmtree(private, ignore_errors=True)
            raise
        weakref.finalize(proc, shutil.rmtree, private, True)
        return proc


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """Run ``true`` under a full ruleset once per process: a seccomp filter or an old libc can still
    refuse what the ABI query allowed."""
    try:
        proc = LandlockSandbox().launch(SandboxSpec(["/bin/true"], env={"PATH": "/usr/bin:/bin"}), None,
                                        subprocess.PIPE, subprocess.DEVNULL)
    except (OSError, SandboxUnavailable) as exc:
        return f"landlock: the launcher did not start: {exc}"
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "landlock: the probe did not finish in 30 s"
    if proc.returncode != 0:
        why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return f"landlock: the probe failed ({why[0]})"
    return None


__all__ = ["LANDLOCK_ENV", "LandlockSandbox", "kernel_abi", "landlock_disabled", "policy"]
