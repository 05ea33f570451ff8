"""A secret in the service's environment reaches only the jobs that were given it."""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from core.control import jobs as J
from core.control.scheduler import Scheduler

DUMP = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('ANTHROPIC_API_KEY', 'W2S_JOB_ID')}))"


def wait_finished(job_id: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = J.get_job(job_id)
        if job and job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {J.get_job(job_id)}")


def test_service_secrets_do_not_leak_into_jobs(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-service-secret")
    plain = J.submit_job("shell", [sys.executable, "-c", DUMP], name="plain")
    given = J.submit_job("shell", [sys.executable, "-c", DUMP], name="given",
                         env={"ANTHROPIC_API_KEY": "sk-for-this-job"})
    stop = threading.Event()
    sched = Scheduler(service_url=None)
    thread = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    thread.start()
    try:
        outputs = {}
        for job in (plain, given):
            done = wait_finished(job["id"])
            assert done["state"] == "succeeded", done
            text, _ = J.read_log(job["id"])
            line = next(ln for ln in text.splitlines() if ln.startswith("{"))
            outputs[job["name"]] = json.loads(line)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert outputs["plain"]["ANTHROPIC_API_KEY"] is None
    assert outputs["given"]["ANTHROPIC_API_KEY"] == "sk-for-this-job"
    assert outputs["plain"]["W2S_JOB_ID"] == plain["id"]
