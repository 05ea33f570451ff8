"""The control service (``w2s serve``): one per workspace, owning the scheduler and the HTTP side.

Single instance per workspace through an exclusive ``flock`` on ``.w2s/service.lock`` held for
the service's lifetime (the kernel drops it if the process dies, so a crash never leaves a stale
lock). ``.w2s/service.json`` {pid, host, port, url, ...} says where to reach it; readers trust it
only while that pid is alive with the recorded start time.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from core.atomic import atomic_write_json
from core.errors import UserError
from core.workspace import paths

log = logging.getLogger("w2s.service")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def service_file() -> Path:
    return paths().state / "service.json"


def lock_file() -> Path:
    return paths().state / "service.lock"


def log_file() -> Path:
    return paths().state / "service.log"


def _alive(pid: int, ctime: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return ctime is None or abs(proc.create_time() - ctime) < 0.05
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def service_info() -> dict[str, Any] | None:
    """The running service's service.json, or None when no live service wrote it."""
    try:
        info = json.loads(service_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    return info if _alive(info["pid"], info.get("create_time")) else None


def service_url() -> str | None:
    """Base URL of this workspace's service (None when none runs or it serves no HTTP)."""
    info = service_info()
    return info.get("url") if info else None


def is_service_running() -> bool:
    return service_info() is not None


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def start_service_detached(
    port: int | None = None, host: str = DEFAULT_HOST, dashboard: bool = False, timeout: float = 120.0,
    web: bool = True,
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
    argv = [sys.executable, "-m", "core.service", "--host", host, "--port", str(port)]
    if dashboard:
        argv.append("--dashboard")
    if not web:
        argv.append("--no-web")
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


def stop_service(timeout: float = 20.0) -> bool:
    """SIGTERM the running service and wait for it; False when none was running. Jobs keep running."""
    info = service_info()
    if not info:
        return False
    os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(info["pid"], info.get("create_time")):
            return True
        time.sleep(0.05)
    raise UserError(f"the service (pid {info['pid']}) did not stop within {timeout:.0f}s")


class ServiceLock:
    """The per-workspace single-instance lock (non-blocking)."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def acquire(self) -> bool:
        lock_file().parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _load_app(dashboard: bool) -> Any | None:
    """The Flask app from ``web.app`` when that module exists; None serves the scheduler only."""
    try:
        module = importlib.import_module("web.app")
    except ModuleNotFoundError as exc:
        if exc.name in ("web", "web.app"):
            return None
        raise
    create_app = getattr(module, "create_app", None)
    return create_app(dashboard=dashboard) if create_app else None


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, dashboard: bool = False,
          stop: threading.Event | None = None, web: bool = True) -> int:
    """Run the service in this process until SIGTERM/SIGINT (or ``stop`` is set)."""
    from core.scheduler import Scheduler

    lock = ServiceLock()
    if not lock.acquire():
        info = service_info()
        where = f" (pid {info['pid']}, {info.get('url') or 'no HTTP'})" if info else ""
        raise UserError(f"a w2s service is already running for this workspace{where}")
    stop = stop or threading.Event()
    server = None
    try:
        app = _load_app(dashboard) if web else None
        url = None
        if app is not None:
            from waitress import create_server

            try:
                server = create_server(app, host=host, port=port, threads=8)
            except OSError as exc:
                raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
            port = int(getattr(server, "effective_port", port))
            url = f"http://{host}:{port}"
        me = psutil.Process()
        atomic_write_json(service_file(), {
            "pid": me.pid, "create_time": me.create_time(), "host": host, "port": port, "url": url,
            "dashboard": dashboard, "started": time.time(),
        })
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, lambda *_: stop.set())
        if server is not None:
            threading.Thread(target=server.run, name="w2s-http", daemon=True).start()
        scheduler = Scheduler(service_url=url)
        sched = threading.Thread(target=scheduler.run, args=(stop,), name="w2s-scheduler", daemon=True)
        sched.start()
        log.info("w2s service up: pid %s, %s", me.pid, url or "scheduler only (no web app)")
        no_http = "no HTTP (--no-web)" if not web else "no HTTP (web app not installed)"
        print(f"w2s service running (pid {me.pid}) at {url or no_http}", flush=True)
        while not stop.wait(0.5):
            pass
        sched.join(timeout=30)
        return 0
    finally:
        if server is not None:
            server.close()
        try:
            info = json.loads(service_file().read_text(encoding="utf-8"))
            if info.get("pid") == os.getpid():
                service_file().unlink()
        except (OSError, ValueError):
            pass
        lock.release()


def main(argv: list[str] | None = None) -> int:
    """``python -m core.service``: what ``start_service_detached`` runs (lighter than the full CLI)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.service")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--dashboard", action="store_true")
    parser.add_argument("--no-web", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return serve(host=args.host, port=args.port, dashboard=args.dashboard, web=not args.no_web)
    except UserError as exc:
        print(f"w2s: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
