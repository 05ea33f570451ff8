"""The Flask application: the JSON API and referee always, the HTML dashboard when asked.

``w2s serve`` hands :func:`create_app` to a real WSGI server (waitress). The app binds nothing
itself; the workspace is fixed when it is created (``W2S_WORKSPACE`` or the current directory).

Every request's ``Host`` header must name this service: a loopback name (``localhost``,
``127.0.0.1``, ``[::1]``), the address it is bound to, or a name the operator allowed
(``w2s serve --allow-host``); with the port the server listens on, once it is known. Anything else
gets 400 before any view runs: a page on another site that rebinds its DNS name to 127.0.0.1
would otherwise read the open GETs (job logs included) from the victim's browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from flask import Flask, Response, jsonify, request

from core.common.workspace import paths
from core.control.operator_token import ensure_operator_token
from core.control.store import Store

MAX_REQUEST_BYTES = 16 * 1024 * 1024
HERE = Path(__file__).resolve().parent

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_HOSTS_ENV = "W2S_ALLOWED_HOSTS"  # comma-separated extra names (``--allow-host``) for a detached service


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case name without brackets, port or None); None when malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = value.partition(":") if value.count(":") <= 1 else (value, "", "")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        return name, int(port_text)
    return name, None


def env_allowed_hosts() -> list[str]:
    return [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]


def allow_hosts(app: Flask, names: Iterable[str] = (), port: int | None = None) -> None:
    """Accept ``names`` too (the bound address, ``--allow-host``); fix the port once it is bound."""
    allowed: set[str] = app.config["W2S_ALLOWED_HOSTS"]
    for name in names:
        parsed = split_host(name)
        if parsed and parsed[0] not in ("0.0.0.0", "::", ""):
            allowed.add(parsed[0])
    if port is not None:
        app.config["W2S_PORT"] = port


def create_app(dashboard: bool = False, allowed_hosts: Iterable[str] = ()) -> Flask:
    """Build the service app for the current workspace; ``dashboard`` adds the HTML pages;
    ``allowed_hosts`` adds names the ``Host`` header may carry besides the loopback ones."""
    from web.api import api

    app = Flask(
        __name__,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static") if dashboard else None,
        static_url_path="/static",
    )
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["W2S_DASHBOARD"] = dashboard
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["W2S_ALLOWED_HOSTS"] = set(LOOPBACK_NAMES)
    app.config["W2S_PORT"] = None
    allow_hosts(app, [*allowed_hosts, *env_allowed_hosts()])
    ws = paths()
    app.config["W2S_ROOT"] = ws.root
    app.extensions["w2s_store"] = Store(ws.state)
    ensure_operator_token(ws.state)
    app.register_blueprint(api)
    if dashboard:
        from web.pages import pages

        app.register_blueprint(pages)

    @app.before_request
    def _check_host():
        parsed = split_host(request.headers.get("Host", ""))
        port = app.config["W2S_PORT"]
        if parsed is None or parsed[0] not in app.config["W2S_ALLOWED_HOSTS"] or (
            port is not None and parsed[1] is not None and parsed[1] != port
        ):
            shown = request.headers.get("Host", "")[:100]
            return _json_error(400, f"Host {shown!r} is not this service; use http://127.0.0.1:{port or 'PORT'}/ "
                                    "(or a name given to w2s serve --allow-host)")
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        for name, value in _SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def _json_error(status: int, message: str):
        if dashboard and not request.path.startswith("/api/"):
            return Response(f"{status}: {message}\n", status=status, mimetype="text/plain")
        return jsonify({"error": message}), status

    @app.errorhandler(400)
    def _bad_request(_exc):
        return _json_error(400, "bad request")

    @app.errorhandler(404)
    def _not_found(_exc):
        return _json_error(404, f"not found: {request.path[:200]}")

    @app.errorhandler(405)
    def _bad_method(_exc):
        return _json_error(405, f"{request.method} is not allowed on {request.path[:200]}")

    @app.errorhandler(413)
    def _too_large(_exc):
        return _json_error(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")

    @app.errorhandler(500)
    def _internal(_exc):
        return _json_error(500, "internal error (see the service log)")

    return app
