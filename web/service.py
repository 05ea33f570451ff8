"""The control service (``w2s serve``): the core scheduler and the Flask app, composed in one process.

This is a front-end module on purpose: core only *discovers* a running service
(``core.control.service``); deciding to start one, and putting the web app beside the scheduler,
happens here. One service per workspace through an exclusive ``flock`` on ``.w2s/service.lock``
held for the service's lifetime (the kernel drops it if the process dies, so a crash never leaves
a stale lock).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time

import psutil

from core.common.atomic import atomic_write_json
from core.common.errors import UserError
from core.control.service import DEFAULT_HOST, DEFAULT_PORT, lock_file, service_file, service_info

log = logging.getLogger("w2s.service")
EXPOSE_ENV = "W2S_EXPOSE"  # "1": the operator passed --expose (carried to a detached service)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine (``localhost``, 127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_notice(host: str, port: int, allowed: list[str]) -> str:
    """What ``--expose`` makes reachable, said once at start-up (the operator asked for it)."""
    names = ", ".join(["localhost", "127.0.0.1", "[::1]", *([] if host in ("0.0.0.0", "::") else [host]),
                       *allowed])
    return (f"w2s: exposed on {host}:{port}: anyone who can reach this address can read the API "
            "(jobs, job logs, results, leaderboard, findings) without a token; launch, cancel, retry, "
            "budgets and the forum's writes need the operator token or a run token. Requests are "
            f"accepted only when their Host header is one of: {names} (add more with --allow-host).")


def check_exposure(host: str, expose: bool) -> None:
    """A non-loopback bind only with an explicit ``--expose``: the API has open GETs."""
    if not is_loopback(host) and not expose:
        raise UserError(f"--host {host} would serve the API beyond this machine (job logs and results can "
                        "be read without a token); add --expose to do it on purpose, or keep --host 127.0.0.1")


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


def check_executor(name: str | None) -> str:
    """The service's default executor: a registered one whose sandbox works here (for docker: the
    engine answers and the image is there), else one line saying why not."""
    from core.sandbox.select import executor_problem
    from executors import executor_names

    name = (name or "local").strip()
    if name not in executor_names():
        raise UserError(f"--executor: unknown executor {name!r} (known: {', '.join(executor_names())})")
    problem = executor_problem(name)
    if problem:
        raise UserError(f"--executor {name}: {problem}")
    return name


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, dashboard: bool = False,
          stop: threading.Event | None = None, web: bool = True, expose: bool = False,
          allow_hosts: list[str] | None = None, executor: str | None = None) -> int:
    """Run the service in this process until SIGTERM/SIGINT (or ``stop`` is set).

    A host other than a loopback address needs ``expose`` (``--expose``); ``allow_hosts`` are the
    extra names the ``Host`` header may carry (DNS-rebinding protection, see ``web.app``). ``executor``
    (``--executor``) is where jobs run when their submitter names none (``service.json`` carries it)."""
    from core.control.scheduler import Scheduler

    executor = check_executor(executor)

    expose = expose or os.environ.get(EXPOSE_ENV) == "1"
    if web:
        check_exposure(host, expose)
    from web.app import env_allowed_hosts

    allowed = [*(allow_hosts or []), *env_allowed_hosts()]
    lock = ServiceLock()
    if not lock.acquire():
        info = service_info()
        where = f" (pid {info['pid']}, {info.get('url') or 'no HTTP'})" if info else ""
        raise UserError(f"a w2s service is already running for this workspace{where}")
    stop = stop or threading.Event()
    server = None
    try:
        url = None
        if web:
            from waitress import create_server

            from web.app import allow_hosts as allow
            from web.app import create_app

            app = create_app(dashboard=dashboard, allowed_hosts=[host, *allowed])
            try:
                server = create_server(app, host=host, port=port, threads=8)
            except OSError as exc:
                raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
            port = int(getattr(server, "effective_port", port))
            allow(app, port=port)
            url = f"http://{host}:{port}"
            if not is_loopback(host):
                print(exposure_notice(host, port, allowed), flush=True)
        me = psutil.Process()
        atomic_write_json(service_file(), {
            "pid": me.pid, "create_time": me.create_time(), "host": host, "port": port, "url": url,
            "dashboard": dashboard, "started": time.time(), "executor": executor,
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
        print(f"w2s service running (pid {me.pid}) at {url or 'no HTTP (--no-web)'}; default executor {executor}",
              flush=True)
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
    """``python -m web.service``: what ``web.launcher.start_service_detached`` runs (lighter than the full CLI)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m web.service", allow_abbrev=False)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--dashboard", action="store_true")
    parser.add_argument("--no-web", action="store_true")
    parser.add_argument("--expose", action="store_true")
    parser.add_argument("--allow-host", action="append", default=[])
    parser.add_argument("--executor", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return serve(host=args.host, port=args.port, dashboard=args.dashboard, web=not args.no_web,
                     expose=args.expose, allow_hosts=args.allow_host, executor=args.executor)
    except UserError as exc:
        print(f"w2s: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
