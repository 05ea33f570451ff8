"""The control service as the TUI sees it: the one it starts serves the dashboard, ``o`` tells the
truth about an API-only service, and ``w2s-tui --port`` picks where a started service listens."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import pilot_wait_until
from tui import data
from tui.app import W2SApp, main
from web import launcher

pytestmark = pytest.mark.timeout(300)


def _messages(app: W2SApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_o_says_when_the_running_service_has_no_dashboard_and_the_tui_started_one_has(service_workspace):
    # a service started by hand without --dashboard: `o` must not hand out a URL that answers 404
    url = launcher.start_service_detached(port=0, timeout=180)
    assert url and httpx.get(url + "/").status_code == 404
    app = W2SApp(start_service=False, poll_interval=None, demo_cache=False)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await pilot_wait_until(pilot, lambda: "startup" in app.polls, 30)
        await pilot.press("o")
        await pilot.pause(0.2)
        said = _messages(app)
        assert any("API only" in m and "--dashboard" in m for m in said), said
        assert not any(m.startswith("Dashboard:") for m in said)
    assert launcher.stop_service()

    # the service the TUI starts (as `w2s-tui` does on first use) serves the pages
    status = data.ensure_service(port=0)
    assert status["running"] and status["dashboard"], status
    page = httpx.get(status["url"] + "/", follow_redirects=True)
    assert page.status_code == 200 and "PGR leaderboard" in page.text
    app = W2SApp(start_service=False, poll_interval=None, demo_cache=False)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await pilot_wait_until(pilot, lambda: "startup" in app.polls, 30)
        await pilot.press("o")
        await pilot.pause(0.2)
        assert f"Dashboard: {status['url']}/ (copied to the clipboard)" in _messages(app)


def test_tui_port_flag_is_checked_in_one_line(workspace, capsys):
    assert main(["--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "w2s-tui: error: --port: 70000 is not a port number (0-65535)"
