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


# -- item 5: exit status truth --------------------------------------------------------------------
def _start(command: list[str]) -> dict:
    from core.control.jobs import get_job, submit_job
    from core.control.scheduler import Scheduler

    job = submit_job("test", command)
    sched = Scheduler(gpus=[], poll_interval=0.05)

    def ready():
        sched.tick()
        j = get_job(job["id"])
        return j["state"] == "running" and (j.get("handle") or {}).get("pid") and j

    return wait_until(ready)


def _marked(tag: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-1:] == [tag]]


def test_cancel_kills_what_the_job_started_in_its_own_session(workspace: Path):
    """A child in a new session (still the job's child) and an orphan in a new session (re-parented
    to init) both die with the job; the cancelled job's exit_code is what exit_status recorded."""
    import json

    from core.control.jobs import cancel_job

    script = "setsid sleep 4545.5 & (setsid sleep 4546.5 &); sleep 120"
    job = _start(["bash", "-c", script])
    try:
        wait_until(lambda: len(_marked("4545.5")) == 1 and len(_marked("4546.5")) == 1, what="both escapees")
        escapees = _marked("4545.5") + _marked("4546.5")
        assert all(os.getsid(p.pid) != os.getsid(job["handle"]["pid"]) for p in escapees)
        done = cancel_job(job["id"], grace=2)
        _, alive = psutil.wait_procs(escapees, timeout=5)
        assert not alive, f"survived cancel: {alive}"
        status = json.loads((Path(job["run_dir"]) / "exit_status").read_text())
        assert done["state"] == "cancelled" and done["exit_code"] == status["exit_code"] == 143
        assert status["signal"] == 15
    finally:
        for proc in _marked("4545.5") + _marked("4546.5"):
            proc.kill()


def test_a_stranger_with_a_similar_command_survives_cancel(workspace: Path):
    from core.control.jobs import cancel_job

    stranger = subprocess.Popen(["sleep", "4547.5"], start_new_session=True,
                                env={**os.environ, "W2S_JOB_ID": "some-other-job"})
    try:
        job = _start(["bash", "-c", "sleep 120"])
        assert cancel_job(job["id"], grace=2)["state"] == "cancelled"
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


IDEA_EXITS_EARLY = '''
import os

def run_experiment(cfg):
    os._exit(0)  # "success", with nothing written
'''


def test_an_idea_that_exits_0_without_predictions_fails_the_seed(workspace: Path, capsys):
    """``os._exit(0)`` inside the idea: the seed job exits non-zero with one line, nothing is cached."""
    import json

    from core.app import seed_job
    from core.results.cache import result_key, result_path
    from core.run.resolve import prepare_config
    from core.sandbox.select import default_sandbox
    from tests.conftest import make_dataset
    from tests.tiny_w2s import fake_baselines, tiny_config

    try:
        default_sandbox()
    except Exception as exc:  # no sandbox here at all: nothing to run the idea in
        pytest.skip(f"no sandbox: {exc}")
    make_dataset(workspace, "quits")
    cfg = prepare_config(tiny_config("quits"))
    fake_baselines(workspace, cfg, [42], weak_acc=0.5, strong_acc=0.9)
    (workspace / "ideas" / "quitter").mkdir(parents=True)
    (workspace / "ideas" / "quitter" / "run.py").write_text(IDEA_EXITS_EARLY)
    run_dir = workspace / "runs" / "quit-1"
    code = seed_job.main(["--idea", "quitter", "--config-json", cfg.to_json(), "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "no predictions" in err and "Traceback" not in err
    summary = json.loads((run_dir / "result.json").read_text())
    assert summary["ok"] is False and summary["state"] == "failed" and "no predictions" in summary["error"]
    assert not result_path("quits", "quitter", result_key(cfg), 42).exists()


def test_a_seed_without_a_scored_result_is_not_a_success():
    from core.app.seed_job import check_outcome
    from core.common.errors import UserError
    from tests.tiny_w2s import tiny_config

    cfg = tiny_config("x")
    for result, message in ((None, "produced no result"), ({"scored": False}, "was not scored"),
                            ({"scored": True, "public_acc": None, "w2s_source": "referee"}, "no scored accuracy")):
        with pytest.raises(UserError, match=message):
            check_outcome("idea", cfg, result)
    check_outcome("idea", cfg, {"scored": True, "public_acc": 0.7, "w2s_source": "referee"})
    check_outcome("idea", cfg.replace(test_size=5), {"scored": False, "note": "smoke"})  # never scored


def test_killing_the_jobs_pid_kills_its_command(workspace: Path):
    """The job's pid is the recorder that leads its group; a ``kill -9`` of it (what a user or a
    test does to kill a job hard) takes the command down with it instead of leaving it running
    unrecorded, so a later retry never runs beside an orphan of the first attempt."""
    import signal

    job = _start(["sleep", "4547.5"])

    def command_only() -> list[psutil.Process]:  # the recorder's own argv ends with the command's
        return [p for p in _marked("4547.5") if p.info["cmdline"] == ["sleep", "4547.5"]]

    try:
        wait_until(lambda: len(command_only()) == 1, what="the job's command")
        command = command_only()[0]
        os.kill(int(job["handle"]["pid"]), signal.SIGKILL)
        _, alive = psutil.wait_procs([command], timeout=10)
        assert not alive, "the command outlived its killed job"
    finally:
        for proc in _marked("4547.5"):
            proc.kill()
