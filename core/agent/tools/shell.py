"""The shell tool: bash in the agent's folder, inside the sandbox, with a timeout and an output cap.

The boundary is the sandbox's filesystem view, not a check on the command text: the shell sees its
own idea folder (read-write, the cwd), the label-free ``data/`` and the library code and Python
environment (read-only), and a private ``/tmp``. ``labeled_data/``, ``.w2s/`` (store, tokens,
secrets, operator config), ``runs/`` and the repository or workspace root do not exist in there,
however a path is spelled. It has no network, its own pid namespace (no other process, hence no
other ``/proc/*/environ``, is visible) and a minimal environment built here, so no secret of the
loop's process reaches it. A timeout, a stop or a killed loop take the whole sandbox down.

The secret-name test lives here too, because jobs the agent launches must hide the same variables.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from core.agent.tools.context import ToolContext, ToolError, cap
from core.common.workspace import paths
from core.sandbox.base import Mount, Sandbox, SandboxSpec, SandboxUnavailable
from core.sandbox.select import default_sandbox

SHELL_TIMEOUT_DEFAULT = 120
SHELL_TIMEOUT_MAX = 900
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
SECRET_PREFIXES = ("ANTHROPIC_", "AWS_", "RUNPOD_", "OPENAI_", "HF_TOKEN", "WANDB_API")
REPO = Path(__file__).resolve().parents[3]  # the checkout holding core/ and ideas/
LIBRARY_DIRS = ("core", "ideas")  # what an idea imports; never the repository root itself
# Settings copied from the loop's environment when set: they change how code runs, never who it is.
PASSTHROUGH_ENV = ("LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def is_secret(name: str) -> bool:
    """Whether an environment variable's name looks like it holds a secret."""
    return bool(SECRET_NAME.search(name)) or name.startswith(SECRET_PREFIXES)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def exposes_hidden(path: Path) -> bool:
    """Whether binding ``path`` would show the shell what it must not see: the workspace root (or
    an ancestor), or anything inside ``labeled_data/``, ``.w2s/`` or ``runs/``."""
    ws = paths()
    real = _real(path)
    hidden = (ws.labeled_data, ws.state, ws.runs)
    return _inside(_real(ws.root), real) or any(_inside(real, _real(p)) for p in hidden)


def own_folder(ctx: ToolContext) -> Path:
    """The agent's idea folder (created if need be), the one writable mount. Refused when it is a
    symlink or would expose what the shell must not reach (:func:`exposes_hidden`)."""
    if ctx.folder.is_symlink() or exposes_hidden(ctx.folder):
        raise ToolError(f"refused: ideas/{ctx.idea_name}/ is not a plain idea folder of this workspace")
    ctx.folder.mkdir(parents=True, exist_ok=True)
    return _real(ctx.folder)


def shell_mounts(folder: Path) -> list[Mount]:
    """The shell's view: library code and label-free data read-only, its own folder read-write.

    Each is bound at its own path, so the workspace paths the agent is told about stay valid for
    what is bound; the python installation and venv come from the sandbox itself. A data or model
    folder that resolves into a hidden place (a ``data`` symlink to ``labeled_data``) is left out."""
    mounts = [Mount(REPO / name) for name in LIBRARY_DIRS if (REPO / name).is_dir()]
    data = _real(paths().data)
    if data.is_dir() and not exposes_hidden(data):
        mounts.append(Mount(data))
    hub = _real(Path(os.environ.get("HF_HUB_CACHE") or Path.home() / ".cache" / "huggingface" / "hub"))
    if hub.is_dir() and not exposes_hidden(hub):  # weights only: the HF token sits one level up
        mounts.append(Mount(hub))
    mounts.append(Mount(folder, writable=True))
    return mounts


def shell_env(ctx: ToolContext, folder: Path) -> dict[str, str]:
    """The whole environment the shell gets: built here, nothing inherited, no secret."""
    root = _real(paths().root)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "W2S_WORKSPACE": str(root),
        "W2S_DATA": str(_real(paths().data)),
        "W2S_IDEA_DIR": str(folder),
    }
    env.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
    env.update({k: v for k, v in ctx.extra_env.items() if not is_secret(k)})
    return env


def shell_sandbox(ctx: ToolContext) -> Sandbox:
    """The context's sandbox, else the default one (which refuses to run unisolated unless the
    operator set W2S_UNSAFE_NO_SANDBOX=1)."""
    if ctx.sandbox is not None:
        return ctx.sandbox
    try:
        ctx.sandbox = default_sandbox()
    except SandboxUnavailable as exc:
        raise ToolError(str(exc)) from None
    return ctx.sandbox


def run_shell(ctx: ToolContext, command: str, timeout_s: int = SHELL_TIMEOUT_DEFAULT) -> str:
    if not isinstance(command, str) or not command.strip():
        raise ToolError("command is required")
    timeout = max(1, min(int(timeout_s), SHELL_TIMEOUT_MAX))
    sandbox = shell_sandbox(ctx)
    folder = own_folder(ctx)
    spec = SandboxSpec(["bash", "-c", command], mounts=shell_mounts(folder), env=shell_env(ctx, folder),
                       cwd=folder)
    try:
        proc = sandbox.popen(spec, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except SandboxUnavailable as exc:
        raise ToolError(str(exc)) from None
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        sandbox.terminate(proc)
        out, _ = proc.communicate()
        status = f"killed after {timeout}s timeout"
    except BaseException:  # the loop is being stopped: leave nothing of the shell behind
        sandbox.terminate(proc)
        raise
    finally:
        sandbox.terminate(proc)  # after an exit: releases what a container sandbox still holds
    text = out.decode("utf-8", errors="replace")
    note = "" if sandbox.isolated else "[not isolated: W2S_UNSAFE_NO_SANDBOX]\n"
    return cap(f"[{status}]\n{note}{text}")
