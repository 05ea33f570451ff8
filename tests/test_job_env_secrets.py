"""A secret in the service's environment reaches only the jobs that were given it."""

from __future__ import annotations

import json
import sys

import pytest

from core.control import jobs as J
from core.control.scheduler import Scheduler
from tests.conftest import drive_scheduler

DUMP = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('ANTHROPIC_API_KEY', 'W2S_JOB_ID')}))"


def test_service_secrets_do_not_leak_into_jobs(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-service-secret")
    plain = J.submit_job("shell", [sys.executable, "-c", DUMP], name="plain")
    given = J.submit_job("shell", [sys.executable, "-c", DUMP], name="given",
                         env={"ANTHROPIC_API_KEY": "sk-for-this-job"})
    done = drive_scheduler(Scheduler(service_url=None), [plain["id"], given["id"]], timeout=60)
    outputs = {}
    for job in done:
        assert job["state"] == "succeeded", job
        text, _ = J.read_log(job["id"])
        line = next(ln for ln in text.splitlines() if ln.startswith("{"))
        outputs[job["name"]] = json.loads(line)
    assert outputs["plain"]["ANTHROPIC_API_KEY"] is None
    assert outputs["given"]["ANTHROPIC_API_KEY"] == "sk-for-this-job"
    assert outputs["plain"]["W2S_JOB_ID"] == plain["id"]
