"""The shell tool: bash in the agent's folder, with secrets scrubbed, a timeout and an output cap.

The secret test lives here too, because jobs the agent launches must hide the same variables.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from core.agent.tools.context import ToolContext, ToolError, cap
from core.common.workspace import paths

SHELL_TIMEOUT_DEFAULT = 120
SHELL_TIMEOUT_MAX = 900
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
SECRET_PREFIXES = ("ANTHROPIC_", "AWS_", "RUNPOD_", "OPENAI_", "HF_TOKEN", "WANDB_API")


def is_secret(name: str) -> bool:
    """Whether an environment variable's name looks like it holds a secret."""
    return bool(SECRET_NAME.search(name)) or name.startswith(SECRET_PREFIXES)


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment minus anything that looks like a secret."""
    env = {k: v for k, v in os.environ.items() if not is_secret(k)}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_shell(ctx: ToolContext, command: str, timeout_s: int = SHELL_TIMEOUT_DEFAULT) -> str:
    if not isinstance(command, str) or not command.strip():
        raise ToolError("command is required")
    if "labeled_data" in command:
        raise ToolError("refused: labels live on the referee's side; read only data/ and your own folder")
    timeout = max(1, min(int(timeout_s), SHELL_TIMEOUT_MAX))
    ctx.folder.mkdir(parents=True, exist_ok=True)
    env = scrubbed_env({"W2S_DATA": str(paths().data), **ctx.extra_env})
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ctx.folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, _ = proc.communicate()
        status = f"killed after {timeout}s timeout"
    except BaseException:  # the loop is being stopped: leave no shell behind
        _kill_group(proc.pid)
        raise
    text = out.decode("utf-8", errors="replace")
    return cap(f"[{status}]\n{text}")
