"""Issue 20 items 5 and 6, as faults: exit status truth (real wrapper and job processes) and web
hardening (a real waitress server and a real detached ``w2s serve`` spoken to over HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from core.control import service as discovery
from tests.conftest import REPO, run_cli, wait_until
from web.app import create_app
from web.server import serve_in_thread


# -- item 6: web hardening ------------------------------------------------------------------------
def _get(url: str, host: str) -> httpx.Response:
    return httpx.get(url, headers={"Host": host}, timeout=30)


def test_a_forged_host_header_is_refused_before_any_view(workspace: Path):
    """DNS rebinding: the browser sends the attacker's name in Host; the service answers 400."""
    app = create_app(allowed_hosts=["lab-box.internal"])
    server = serve_in_thread(app)
    try:
        url = server.url + "/api/jobs"
        port = int(server.url.rsplit(":", 1)[1])
        for host in ("evil.example", f"evil.example:{port}", f"attacker.test:{port}", "127.0.0.1.evil.example",
                     "", "[::1", f"localhost:{port}x", "0.0.0.0"):
            resp = _get(url, host)
            assert resp.status_code == 400, (host, resp.status_code)
            assert "is not this service" in resp.json()["error"]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost", "LOCALHOST",
                     f"lab-box.internal:{port}"):
            assert _get(url, host).status_code == 200, host
        assert httpx.get(url, timeout=30).status_code == 200  # what a normal client sends
    finally:
        server.stop()


def test_the_port_is_checked_once_the_service_knows_it(workspace: Path):
    from web.app import allow_hosts

    app = create_app()
    allow_hosts(app, port=8123)
    client = app.test_client()
    assert client.get("/api/jobs").status_code == 200  # the test client sends Host: localhost
    assert client.get("/api/jobs", headers={"Host": "localhost:8123"}).status_code == 200
    assert client.get("/api/jobs", headers={"Host": "localhost:9999"}).status_code == 400


def test_a_public_bind_needs_expose_and_says_what_is_reachable(service_workspace: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch):
    assert run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--detach") == 1
    err = capsys.readouterr().err
    assert "--expose" in err and "Traceback" not in err and err.count("\n") == 1
    assert run_cli("serve", "--host", "10.1.2.3", "--port", "0") == 1
    assert not discovery.is_service_running()
    direct = subprocess.run([sys.executable, "-m", "web.service", "--host", "0.0.0.0", "--port", "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert direct.returncode == 1 and "--expose" in direct.stderr

    monkeypatch.delenv("W2S_EXPOSE", raising=False)  # the CLI sets these for the detached child
    monkeypatch.delenv("W2S_ALLOWED_HOSTS", raising=False)
    assert run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--detach", "--expose",
                   "--allow-host", "box.lan") == 0
    out = capsys.readouterr().out
    assert "exposed on 0.0.0.0" in out and "operator token" in out and "box.lan" in out
    port = discovery.service_info()["port"]
    base = f"http://127.0.0.1:{port}/api/jobs"
    assert _get(base, f"box.lan:{port}").status_code == 200
    assert _get(base, f"127.0.0.1:{port}").status_code == 200
    assert _get(base, f"rebind.attacker.example:{port}").status_code == 400
    assert "exposed on 0.0.0.0" in discovery.log_file().read_text()
