"""The Flask application: the JSON API and referee always, the HTML dashboard when asked.

``w2s serve`` hands :func:`create_app` to a real WSGI server (waitress). The app binds nothing
itself; the workspace is fixed when it is created (``W2S_WORKSPACE`` or the current directory).
"""

from __future__ import annotations

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


def create_app(dashboard: bool = False) -> Flask:
    """Build the service app for the current workspace; ``dashboard`` adds the HTML pages."""
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
    ws = paths()
    app.config["W2S_ROOT"] = ws.root
    app.extensions["w2s_store"] = Store(ws.state)
    ensure_operator_token(ws.state)
    app.register_blueprint(api)
    if dashboard:
        from web.pages import pages

        app.register_blueprint(pages)

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
