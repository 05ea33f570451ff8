"""``w2s serve``: run the control service (scheduler + HTTP API) for this workspace."""

from __future__ import annotations

import argparse
import logging

from core.common.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the control service (scheduler, API, --dashboard pages)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1); any other than loopback needs --expose")
    serve.add_argument("--expose", action="store_true",
                       help="allow a non-loopback --host (0.0.0.0 etc.): the API's reads need no token")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="a name clients use in the Host header besides localhost/127.0.0.1/[::1] "
                            "and the bound address (repeatable)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000; 0 = any free port)")
    serve.add_argument("--dashboard", action="store_true", help="also serve the HTML dashboard")
    serve.add_argument("--no-web", action="store_true", help="scheduler only, no HTTP API")
    serve.add_argument("--detach", action="store_true", help="start in the background and return")
    serve.add_argument("--stop", action="store_true", help="stop the running service (jobs keep running)")
    serve.add_argument("--status", action="store_true", help="say whether a service runs, and where")
    serve.add_argument("--executor", default=None, metavar="NAME",
                       help="where jobs run when their submitter names none (local, docker, ...; default local)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.control import service as discovery
    from web import launcher, service

    if args.port is not None and not 0 <= args.port <= 65535:
        raise UserError(f"--port: {args.port} is not a port number (0-65535)")
    if args.stop:
        if launcher.stop_service():
            print("w2s service stopped (jobs keep running)")
            return 0
        print("no w2s service is running for this workspace")
        return 1
    if args.status:
        info = discovery.service_info()
        if not info:
            print("no w2s service is running for this workspace")
            return 1
        print(f"w2s service running (pid {info['pid']}) at {info.get('url') or 'no HTTP'}; "
              f"default executor {info.get('executor') or 'local'}")
        return 0
    import os

    from web.app import ALLOWED_HOSTS_ENV

    if not args.no_web:
        service.check_exposure(args.host, args.expose)
    service.check_executor(args.executor)
    for name in args.allow_host:
        if not name.strip() or "," in name or "/" in name:
            raise UserError(f"--allow-host: {name!r} is not a host name")
    if args.detach:
        if args.expose:  # the detached service inherits these (this process exits right after)
            os.environ[service.EXPOSE_ENV] = "1"
        if args.allow_host:
            os.environ[ALLOWED_HOSTS_ENV] = ",".join(args.allow_host)
        info = discovery.service_info()
        if info:
            raise UserError(f"a w2s service is already running for this workspace (pid {info['pid']}, "
                            f"{info.get('url') or 'no HTTP'})")
        url = launcher.start_service_detached(port=args.port, host=args.host, dashboard=args.dashboard,
                                             web=not args.no_web, executor=args.executor)
        info = discovery.service_info() or {}
        print(f"w2s service started in the background (pid {info.get('pid')}) at {url or 'no HTTP'}")
        print(f"log: {discovery.log_file()}; stop with `w2s serve --stop`")
        if url and not service.is_loopback(args.host):
            print(service.exposure_notice(args.host, int(info.get("port") or 0), args.allow_host))
        _print_operator_token()
        return 0
    if not args.no_web:
        _print_operator_token()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    port = discovery.DEFAULT_PORT if args.port is None else args.port
    return service.serve(host=args.host, port=port, dashboard=args.dashboard, web=not args.no_web,
                         expose=args.expose, allow_hosts=args.allow_host, executor=args.executor)


def _print_operator_token() -> None:
    """Show the operator token (needed for launch/cancel over HTTP) on a terminal only.

    Piped or redirected output (a log file) gets the token's path instead, so the secret never
    lands in a log.
    """
    import sys

    from core.control.operator_token import ensure_operator_token, token_path

    token = ensure_operator_token()
    if sys.stdout.isatty():
        print(f"operator token: {token}  (also in {token_path()}, mode 0600)", flush=True)
    else:
        print(f"operator token: in {token_path()} (mode 0600)", flush=True)
