"""``w2s serve`` as a real background process: single instance, stop, and the acceptance test
"service killed and restarted while 3 jobs run -> all finish, none launched twice, no orphan"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from core.control import service as discovery
from core.control.jobs import get_job, submit_job
from tests.conftest import REPO, run_cli, wait_until
from web import launcher as service


@pytest.fixture
def service_env() -> dict[str, str]:
    return {"W2S_SCHED_POLL": "0.1", "W2S_LOCAL_CONCURRENCY": "3"}


def test_single_instance_web_and_stop(running_service, workspace, capsys):
    url = running_service
    assert url.startswith("http://127.0.0.1:")
    assert discovery.service_url() == url and discovery.is_service_running()
    assert httpx.get(url + "/", timeout=30).status_code < 500
    assert service.start_service_detached(port=0) == url  # idempotent for the TUI
    assert run_cli("serve", "--detach", "--port", "0") == 1
    assert "already running" in capsys.readouterr().err
    second = subprocess.run([sys.executable, "-m", "web.service", "--no-web"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and "already running" in second.stderr
    assert run_cli("serve", "--status") == 0
    assert run_cli("serve", "--stop") == 0
    assert not discovery.is_service_running()
    assert not (workspace / ".w2s" / "service.json").exists()
    assert run_cli("serve", "--stop") == 1
    assert run_cli("serve", "--port", "70000") == 1


def test_jobs_survive_a_killed_service_and_finish_once(service_workspace):
    ws = service_workspace
    service.start_service_detached(web=False)
    script = 'echo "$W2S_JOB_ID" >> "$W2S_WORKSPACE/launches"; sleep {s}; echo done'
    ids = [submit_job("test", ["bash", "-c", script.format(s=s)])["id"] for s in (0.5, 4, 5)]

    def all_running():
        jobs = [get_job(i) for i in ids]
        return all(j["state"] == "running" and (j.get("handle") or {}).get("pid") for j in jobs) and jobs

    jobs = wait_until(all_running, 120, what="all three jobs running")
    pids = [p for j in jobs for p in (j["handle"]["pid"], j["handle"]["wrapper_pid"])]
    old = discovery.service_info()
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(old["pid"]) or psutil.Process(old["pid"]).status() == "zombie",
               120, what="the killed service to exit")
    assert psutil.pid_exists(jobs[2]["handle"]["pid"]), "a job died with the service"

    service.start_service_detached(web=False)
    assert discovery.service_info()["pid"] != old["pid"]
    done = wait_until(lambda: all(get_job(i)["state"] in ("succeeded", "failed") for i in ids)
                      and [get_job(i) for i in ids], 120, what="the jobs to finish")
    assert [j["state"] for j in done] == ["succeeded"] * 3, [j["history"] for j in done]
    launches = (ws / "launches").read_text().split()
    assert sorted(launches) == sorted(ids), "a job was launched twice or not at all"
    for j in done:
        assert j["attempt"] == 1 and "done" in Path(j["run_dir"], "stdout.log").read_text()
    leftovers = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not leftovers, f"orphan processes: {leftovers}"
    assert service.stop_service()
