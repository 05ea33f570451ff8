"""Local executor on real processes: cancel kills the whole job tree and nothing else, the job is
detached from the service, and a job's leftover children are reaped when it ends."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil

from core.control.jobs import cancel_job, get_job, read_log, submit_job
from core.control.scheduler import Scheduler
from executors import get_executor
from executors.local import LocalExecutor
from tests.conftest import drive_scheduler, wait_until


def start(command: list[str]) -> dict:
    job = submit_job("test", command)
    sched = Scheduler(gpus=[], poll_interval=0.05)

    def ready():
        sched.tick()  # launches, then polls until the wrapper has reported the job's pids
        j = get_job(job["id"])
        return j["state"] == "running" and (j.get("handle") or {}).get("pid") and j

    return wait_until(ready)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_cancel_kills_the_whole_tree_and_nothing_else(workspace):
    decoy = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        job = start(["bash", "-c", "sleep 120 & bash -c 'sleep 121' & python3 -c 'import time; time.sleep(122)' & wait"])
        handle = job["handle"]
        procs = wait_until(lambda: len(t := tree(handle["pid"])) >= 4 and t)
        wrapper = psutil.Process(handle["wrapper_pid"])
        assert wrapper.ppid() != os.getpid(), "the wrapper must not be the service's child"
        assert os.getpgid(handle["pid"]) == handle["pgid"] != os.getpgid(0)

        done = cancel_job(job["id"], grace=3)
        assert done["state"] == "cancelled"
        gone, alive = psutil.wait_procs(procs, timeout=5)
        assert not alive, f"job processes survived: {alive}"
        assert decoy.poll() is None, "cancel killed a process that was not the job's"
        status = wait_until(lambda: (Path(job["run_dir"]) / "exit_status").exists()
                          and json.loads((Path(job["run_dir"]) / "exit_status").read_text()))
        assert status["signal"] == 15 and status["exit_code"] == 143
        assert [h["state"] for h in get_job(job["id"])["history"]][-1] == "cancelled"
    finally:
        decoy.kill()
        decoy.wait()


def test_cancel_refuses_a_group_that_is_not_the_jobs(workspace):
    decoy = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        fake_job = {"id": "not-this", "run_dir": str(workspace), "attempt": 1}
        # a recycled pid: right number, wrong start time, and no W2S_JOB_ID in its environment
        handle = {"pid": decoy.pid, "pgid": decoy.pid, "ctime": 1.0, "wrapper_pid": None, "attempt": 1}
        assert get_executor("local").cancel(fake_job, handle, grace=1) is False
        time.sleep(0.2)
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()


def test_children_left_behind_are_reaped_when_the_job_ends(workspace):
    job = submit_job("test", ["bash", "-c", 'sleep 120 & echo $! > "$W2S_RUN_DIR/child.pid"; exit 0'])
    (done,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.05), [job["id"]])
    assert done["state"] == "succeeded"
    child = int((Path(job["run_dir"]) / "child.pid").read_text())
    assert wait_until(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie", 10)


def test_poll_reports_a_lost_job(workspace):
    job = {"id": "x", "run_dir": str(workspace), "attempt": 1}
    handle = {"attempt": 1, "wrapper_pid": 999_999_999, "wrapper_ctime": 1.0, "pid": None, "pgid": None}
    result = get_executor("local").poll(job, handle)
    assert result.status == "lost" and "without recording" in result.reason


def test_capabilities_follow_what_the_local_executor_implements():
    caps = LocalExecutor.capabilities.as_dict()
    assert caps == {"can_cancel": True, "can_adopt": True, "streams_logs": True, "supports_gpus": True}
    assert get_executor("local").capabilities is LocalExecutor.capabilities


def test_logs_are_read_through_the_executor(workspace):
    job = submit_job("test", ["bash", "-c", "printf 'one\\ntwo\\n'"])
    (done,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.05), [job["id"]])
    text, offset = get_executor("local").logs(done, 0)
    assert "one\ntwo\n" in text and offset == (Path(done["run_dir"]) / "stdout.log").stat().st_size
    assert read_log(job["id"]) == (text, offset)
    head, cut = get_executor("local").logs(done, 0, max_bytes=3)
    assert (head, cut) == (text[:3], 3)
    assert get_executor("local").logs(done, offset) == ("", offset)


def test_cancel_escalates_to_sigkill_after_the_grace_period(workspace):
    job = start(["bash", "-c", "trap '' TERM; sleep 120 & wait; sleep 120"])
    procs = wait_until(lambda: len(t := tree(job["handle"]["pid"])) >= 2 and t)
    t0 = time.monotonic()
    assert cancel_job(job["id"], grace=1)["state"] == "cancelled"
    assert time.monotonic() - t0 >= 1.0
    gone, alive = psutil.wait_procs(procs, timeout=5)
    assert not alive


def test_a_killed_wrapper_does_not_fail_a_job_that_finished_normally(workspace):
    """The job's group leader records the command's status (``job_exit``); that stands."""
    job = start(["bash", "-c", "sleep 1.5; exit 0"])
    os.kill(job["handle"]["wrapper_pid"], 9)
    sched = Scheduler(gpus=[], poll_interval=0.05)
    sched.tick()
    assert get_job(job["id"])["state"] == "running"  # the job itself still runs
    done = wait_until(lambda: (sched.tick(), get_job(job["id"]))[1]["state"] not in ("running", "starting")
                      and get_job(job["id"]))
    assert done["state"] == "succeeded" and done["exit_code"] == 0
    assert not (Path(job["run_dir"]) / "exit_status").exists()


def test_a_job_whose_status_nobody_recorded_is_reported_not_hidden(workspace):
    job = start(["bash", "-c", "sleep 120"])
    os.kill(job["handle"]["wrapper_pid"], 9)
    os.killpg(job["handle"]["pgid"], 9)  # the recorder too: nobody is left to say how it ended
    sched = Scheduler(gpus=[], poll_interval=0.05)
    done = wait_until(lambda: (sched.tick(), get_job(job["id"]))[1]["state"] == "failed" and get_job(job["id"]))
    assert "without recording an exit status" in done["history"][-1]["reason"]
