"""The executor interface: capabilities derive from what an adapter implements, and the job functions
honour them (cancel refused, logs served by the executor, GPUs only where an executor gives them)."""

from __future__ import annotations

import time

import pytest

from core.control import jobs as J
from core.control.store import Store
from executors import (
    Executor,
    ExecutorError,
    PollResult,
    get_executor,
    register_executor,
    unregister_executor,
)


class SubmitOnly(Executor):
    """Implements only the required methods: it can neither cancel, adopt nor serve logs."""

    name = "submit-only"

    def submit(self, job, command, env):
        return {"attempt": job["attempt"], "launched": time.time()}

    def poll(self, job, handle):
        return PollResult("running")


class Cancelling(SubmitOnly):
    name = "cancelling"

    def cancel(self, job, handle, grace=10.0):
        return True


class LogServing(SubmitOnly):
    """Serves logs from somewhere other than the run folder (as a remote executor would)."""

    name = "log-serving"
    supports_gpus = True

    def logs(self, job, offset=0, max_bytes=1000):
        text = f"remote log of {job['id']}\n"[offset:offset + max_bytes]
        return text, offset + len(text)


def test_capabilities_are_derived_from_the_methods_implemented():
    assert SubmitOnly.capabilities.as_dict() == {
        "can_cancel": False, "can_adopt": False, "streams_logs": False, "supports_gpus": False}
    assert Cancelling.capabilities.can_cancel and not Cancelling.capabilities.streams_logs
    assert LogServing.capabilities.streams_logs and LogServing.capabilities.supports_gpus
    assert not LogServing.capabilities.can_cancel  # inherited from SubmitOnly, which does not cancel


def test_a_capability_flag_cannot_be_set_by_hand():
    with pytest.raises(TypeError, match="can_cancel is derived"):
        type("Liar", (SubmitOnly,), {"can_cancel": True})
    with pytest.raises(TypeError, match="capabilities is derived"):
        type("Liar", (SubmitOnly,), {"capabilities": Cancelling.capabilities})


def test_the_optional_methods_refuse_clearly_when_not_implemented():
    executor, job = SubmitOnly(), {"id": "j", "run_dir": ".", "attempt": 1}
    assert executor.adopt(job, None) is None  # nothing to re-attach to
    with pytest.raises(ExecutorError, match="cannot cancel"):
        executor.cancel(job, {"attempt": 1})
    with pytest.raises(ExecutorError, match="does not stream logs"):
        executor.logs(job, 0)


@pytest.fixture
def test_executors():
    for cls in (SubmitOnly, Cancelling, LogServing):
        register_executor(cls.name, cls)
    yield
    for cls in (SubmitOnly, Cancelling, LogServing):
        unregister_executor(cls.name)


def _running(job_id: str) -> None:
    store = Store()
    J.transition(job_id, "starting", "claimed", store=store, attempt=1)
    J.transition(job_id, "running", "started", store=store, handle={"attempt": 1, "launched": time.time()})


def test_cancel_is_refused_when_the_executor_cannot_cancel(workspace, test_executors):
    queued = J.submit_job("test", ["true"], executor="submit-only")
    assert J.cancel_job(queued["id"])["state"] == "cancelled"  # never started: no executor needed
    job = J.submit_job("test", ["true"], executor="submit-only")
    _running(job["id"])
    with pytest.raises(J.JobError, match="submit-only executor, which cannot cancel"):
        J.cancel_job(job["id"])
    after = J.get_job(job["id"])
    assert after["state"] == "running" and not after["cancel_requested"]
    other = J.submit_job("test", ["true"], executor="cancelling")
    _running(other["id"])
    assert J.cancel_job(other["id"])["state"] == "cancelled"


def test_read_log_is_served_by_the_jobs_executor(workspace, test_executors):
    job = J.submit_job("test", ["true"], executor="log-serving")
    text, offset = J.read_log(job["id"])
    assert text == f"remote log of {job['id']}\n" and offset == len(text)
    assert J.read_log(job["id"], offset) == ("", offset)
    silent = J.submit_job("test", ["true"], executor="submit-only")
    with pytest.raises(J.JobError, match="does not serve logs"):
        J.read_log(silent["id"])


def test_gpus_only_from_an_executor_that_gives_them(workspace, test_executors):
    with pytest.raises(ValueError, match="cannot give a job GPUs"):
        J.submit_job("test", ["true"], executor="submit-only", gpus=1)
    assert J.submit_job("test", ["true"], executor="submit-only")["gpus_requested"] == 0
    assert J.submit_job("test", ["true"], executor="log-serving", gpus=1)["gpus_requested"] == 1


def test_registry_builds_each_executor_once(test_executors):
    first = get_executor("cancelling")
    assert isinstance(first, Cancelling) and get_executor("cancelling") is first
    unregister_executor("cancelling")
    with pytest.raises(ValueError, match="unknown executor 'cancelling'"):
        get_executor("cancelling")
