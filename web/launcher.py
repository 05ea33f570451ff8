"""Start, find or stop this workspace's control service process (no Flask here: the TUI imports it).

Front ends decide when a service should run; core only discovers one. The service itself is
``python -m web.service``, started detached so jobs and agents outlive the TUI or the shell.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from core.common.errors import UserError
from core.common.process import process_alive
from core.common.workspace import paths
from core.control.service import DEFAULT_HOST, DEFAULT_PORT, log_file, service_info


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def start_service_detached(
    port: int | None = None, host: str = DEFAULT_HOST, dashboard: bool = False, timeout: float = 120.0,
    web: bool = True, executor: str | None = None,
) -> str | None:
    """Start ``w2s serve`` in the background unless one runs; return its URL (None: no HTTP side).

    ``port=None`` means 8000 when free, else any free port. Raises UserError when it does not come up.
    """
    info = service_info()
    if info:
        return info.get("url")
    if port is None:
        port = DEFAULT_PORT if _port_free(host, DEFAULT_PORT) else 0
    state = paths().state
    state.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "web.service", "--host", host, "--port", str(port)]
    if dashboard:
        argv.append("--dashboard")
    if not web:
        argv.append("--no-web")
    if executor:
        argv += ["--executor", executor]
    env = dict(os.environ)
    env["W2S_WORKSPACE"] = str(paths().root)
    with open(log_file(), "ab") as out:
        proc = subprocess.Popen(
            argv, cwd=str(paths().root), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = service_info()
        if info and info.get("pid") == proc.pid:
            return info.get("url")
        code = proc.poll()
        if code is not None:
            info = service_info()  # lost a race with another starter: use theirs
            if info:
                return info.get("url")
            raise UserError(f"w2s serve exited with code {code}; see {log_file()}")
        time.sleep(0.05)
    raise UserError(f"w2s serve did not come up within {timeout:.0f}s; see {log_file()}")


def ensure_service(**kwargs: object) -> str | None:
    """Attach to the running service, or start one detached (what the TUI and ``w2s agent`` do)."""
    info = service_info()
    if info:
        return info.get("url")
    return start_service_detached(**kwargs)  # type: ignore[arg-type]


def stop_service(timeout: float = 20.0) -> bool:
    """SIGTERM the running service and wait for it; False when none was running. Jobs keep running."""
    info = service_info()
    if not info:
        return False
    os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(info["pid"], info.get("create_time")):
            return True
        time.sleep(0.05)
    raise UserError(f"the service (pid {info['pid']}) did not stop within {timeout:.0f}s")
