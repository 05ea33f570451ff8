"""Scheduler on real processes: concurrency limits, no head-of-line blocking, transient-only retries,
GPU assignment, at-most-once launch, and reconciliation after a service crash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from core.control import jobs as J
from core.control.jobs import get_job, submit_job
from core.control.scheduler import Scheduler
from core.control.store import Store
from executors import CapacityError, Executor, PollResult, register_executor, unregister_executor
from executors.local import LocalExecutor
from tests.conftest import drive_scheduler as drive
from tests.conftest import wait_until

TIMED = 'date +%s.%N > "$W2S_RUN_DIR/t0"; sleep {s}; date +%s.%N > "$W2S_RUN_DIR/t1"'


def interval(job: dict) -> tuple[float, float]:
    run = Path(job["run_dir"])
    return float((run / "t0").read_text()), float((run / "t1").read_text())


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def test_twenty_jobs_at_concurrency_two(workspace):
    ids = [submit_job("test", ["bash", "-c", TIMED.format(s=0.4)])["id"] for _ in range(20)]
    jobs = drive(Scheduler(gpus=[], limits={"local": 2}, poll_interval=0.05), ids)
    assert all(j["state"] == "succeeded" and j["attempt"] == 1 for j in jobs)
    assert max_overlap([interval(j) for j in jobs]) == 2
    for j in jobs:
        assert [h["state"] for h in j["history"]] == ["queued", "starting", "running", "succeeded"]


def test_a_job_in_retry_delay_does_not_hold_back_the_rest(workspace):
    flaky = submit_job(
        "test", ["bash", "-c", 'if [ -f "$W2S_RUN_DIR/once" ]; then exit 0; fi; touch "$W2S_RUN_DIR/once"; exit 75'],
        max_retries=1,
    )
    others = [submit_job("test", ["bash", "-c", "sleep 0.1"])["id"] for _ in range(5)]
    sched = Scheduler(gpus=[], limits={"local": 1}, poll_interval=0.05, backoff_base=3600)
    jobs = drive(sched, others)
    assert all(j["state"] == "succeeded" for j in jobs)
    waiting = get_job(flaky["id"])
    assert waiting["state"] == "retrying" and waiting["retry_at"] > time.time() + 500
    assert "transient" in waiting["history"][-1]["reason"]
    Store().table("jobs").update(flaky["id"], {"retry_at": time.time()})  # the delay is over
    (done,) = drive(sched, [flaky["id"]])
    assert done["state"] == "succeeded" and done["attempt"] == 2
    assert J.read_log(flaky["id"])[0].count("started") == 2


def test_only_transient_failures_are_retried(workspace):
    hard = submit_job("test", ["bash", "-c", "exit 3"], max_retries=3)
    marked = submit_job(
        "test", ["bash", "-c", 'echo \'{"transient": true}\' > "$W2S_RUN_DIR/result.json"; exit 1'],
        max_retries=1,
    )
    sched = Scheduler(gpus=[], poll_interval=0.05, backoff_base=0.01)
    hard_done, marked_done = drive(sched, [hard["id"], marked["id"]])
    assert hard_done["state"] == "failed" and hard_done["attempt"] == 1 and hard_done["exit_code"] == 3
    assert marked_done["state"] == "failed" and marked_done["attempt"] == 2  # retried once, then gave up
    assert "retrying" in [h["state"] for h in marked_done["history"]]


def test_whole_gpu_assignment_without_blocking(workspace):
    env_dump = 'echo "cuda=$CUDA_VISIBLE_DEVICES" > "$W2S_RUN_DIR/cuda"; ' + TIMED
    a = submit_job("test", ["bash", "-c", env_dump.format(s=1.0)], gpus=1)["id"]
    b = submit_job("test", ["bash", "-c", env_dump.format(s=1.0)], gpus=1)["id"]
    both = submit_job("test", ["bash", "-c", env_dump.format(s=0.1)], gpus=2)["id"]
    cpu = submit_job("test", ["bash", "-c", TIMED.format(s=0.1)])["id"]
    too_many = submit_job("test", ["true"], gpus=3)["id"]
    sched = Scheduler(gpus=[0, 1], limits={"local": 4}, poll_interval=0.05)
    sched.tick()
    assert get_job(both)["state"] == "queued"  # both GPUs are taken
    assert get_job(cpu)["state"] == "running"  # ...which does not hold back a CPU job submitted later
    assert sorted(get_job(a)["gpus"] + get_job(b)["gpus"]) == [0, 1]
    jobs = drive(sched, [a, b, both, cpu, too_many])
    assert [j["state"] for j in jobs] == ["succeeded"] * 4 + ["failed"]
    assert "this machine has 2" in jobs[4]["history"][-1]["reason"]
    cuda = {j["id"]: (Path(j["run_dir"]) / "cuda").read_text().strip() for j in jobs[:3]}
    assert sorted([cuda[a], cuda[b]]) == ["cuda=0", "cuda=1"] and cuda[both] == "cuda=0,1"
    assert interval(jobs[2])[0] >= max(interval(jobs[0])[1], interval(jobs[1])[1]) - 0.05


def test_two_schedulers_never_launch_a_job_twice(workspace):
    ids = [submit_job("test", ["bash", "-c", "sleep 0.2"])["id"] for _ in range(6)]
    scheds = [Scheduler(gpus=[], limits={"local": 6}, poll_interval=0.01) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,)) for s in scheds]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(get_job(i)["state"] != "succeeded" for i in ids):
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    for i in ids:
        job = get_job(i)
        assert job["state"] == "succeeded" and job["attempt"] == 1
        assert J.read_log(i)[0].count("attempt 1 started") == 1


def test_reconcile_after_a_crash(workspace):
    store = Store()
    table = store.table("jobs")
    claimed = submit_job("test", ["true"])["id"]  # claimed, but the executor was never called
    J.transition(claimed, "starting", "claimed", store=store, attempt=1, launching=False)
    lost = submit_job("test", ["true"])["id"]  # "running", but its wrapper is long gone
    J.transition(lost, "starting", "claimed", store=store, attempt=1)
    J.transition(lost, "running", "started", store=store, handle={
        "attempt": 1, "wrapper_pid": 999_999_999, "wrapper_ctime": 1.0, "pid": None, "pgid": None})
    finished = submit_job("test", ["true"])["id"]  # ended while the service was down
    J.transition(finished, "starting", "claimed", store=store, attempt=1)
    J.transition(finished, "running", "started", store=store, handle={
        "attempt": 1, "wrapper_pid": 999_999_999, "wrapper_ctime": 1.0, "pid": None, "pgid": None})
    Path(table.get(finished)["run_dir"], "exit_status").write_text('{"attempt": 1, "exit_code": 0}')

    sched = Scheduler(gpus=[], poll_interval=0.05)
    sched.reconcile()
    assert get_job(claimed)["state"] == "starting"  # may belong to a live scheduler: wait and see
    table.update(claimed, lambda job: job["history"][-1].update(time=time.time() - 60))
    sched.reconcile()
    assert get_job(claimed)["state"] == "queued"
    assert get_job(lost)["state"] == "failed"
    assert "without recording an exit status" in get_job(lost)["history"][-1]["reason"]
    assert get_job(finished)["state"] == "succeeded"
    (requeued,) = drive(sched, [claimed])
    assert requeued["state"] == "succeeded"


class NoCapacityTwice(LocalExecutor):
    """A local executor whose first two launches hit "no capacity" (like a cloud with no GPUs)."""

    name = "nocap"
    refusals = 0

    def submit(self, job, command, env):
        if NoCapacityTwice.refusals < 2:
            NoCapacityTwice.refusals += 1
            raise CapacityError("no GPUs available right now")
        return super().submit(job, command, env)


def test_capacity_errors_are_retried_with_backoff(workspace):
    register_executor("nocap", NoCapacityTwice)
    try:
        job = submit_job("test", ["true"], executor="nocap")  # max_retries=0: capacity is not the job's fault
        (done,) = drive(Scheduler(gpus=[], limits={"nocap": 1}, poll_interval=0.05, backoff_base=0.01), [job["id"]])
    finally:
        unregister_executor("nocap")
    assert done["state"] == "succeeded" and done["attempt"] == 3
    reasons = [h["reason"] for h in done["history"] if h["state"] == "retrying"]
    assert len(reasons) == 2 and all("no capacity" in r for r in reasons)


def test_progress_is_read_into_the_job(workspace):
    script = 'echo \'{"progress": 0.5, "message": "epoch 1/2"}\' > "$W2S_RUN_DIR/progress.json"; sleep 30'
    job = submit_job("test", ["bash", "-c", script])
    sched = Scheduler(gpus=[], poll_interval=0.05)
    current = wait_until(lambda: (sched.tick(), get_job(job["id"]))[1].get("progress") == 0.5 and get_job(job["id"]),
                         what="progress 0.5")
    assert current["progress"] == 0.5 and current["progress_message"] == "epoch 1/2"
    assert J.cancel_job(job["id"], grace=2)["state"] == "cancelled"


def test_a_launch_the_service_did_not_see_finish_is_adopted_not_repeated(workspace):
    job = submit_job("test", ["bash", "-c", 'echo launched >> "$W2S_RUN_DIR/launches"; sleep 30'])
    sched = Scheduler(gpus=[], poll_interval=0.05)
    running = wait_until(lambda: (sched.tick(), get_job(job["id"]))[1]["state"] == "running"
                         and (get_job(job["id"])["handle"] or {}).get("pid") and get_job(job["id"]))
    # the service died between calling the executor and recording the handle
    Store().table("jobs").update(job["id"], lambda j: j.update(
        state="starting", handle=None, launching=True,
        history=[*j["history"], {"state": "starting", "time": time.time() - 3600, "reason": "claimed"}]))
    Scheduler(gpus=[], poll_interval=0.05).reconcile()  # a fresh service: LocalExecutor.adopt finds the attempt
    adopted = get_job(job["id"])
    assert adopted["state"] == "running" and adopted["history"][-1]["reason"] == "re-attached after service restart"
    assert adopted["handle"]["pid"] == running["handle"]["pid"] and adopted["attempt"] == 1
    launches = Path(job["run_dir"]) / "launches"  # the command writes it a moment after its pid is known
    wait_until(launches.exists, what="the command's first line")
    Scheduler(gpus=[], poll_interval=0.05).tick()  # another pass must not launch it again
    time.sleep(0.5)
    assert launches.read_text() == "launched\n"
    assert J.cancel_job(job["id"], grace=2)["state"] == "cancelled"


class SubmitOnly(Executor):
    """Runs nothing: an adapter that implements only the two required methods (no adopt, no cancel)."""

    name = "submit-only"

    def submit(self, job, command, env):
        return {"attempt": job["attempt"], "launched": time.time()}

    def poll(self, job, handle):
        return PollResult("running")


def test_without_adopt_a_launch_in_doubt_is_failed_not_repeated(workspace):
    register_executor("submit-only", SubmitOnly)
    try:
        job = submit_job("test", ["true"], executor="submit-only")
        J.transition(job["id"], "starting", "claimed", store=Store(), attempt=1, launching=True)
        Store().table("jobs").update(job["id"], lambda j: j["history"][-1].update(time=time.time() - 3600))
        Scheduler(gpus=[], poll_interval=0.05).reconcile()
    finally:
        unregister_executor("submit-only")
    failed = get_job(job["id"])
    assert failed["state"] == "failed" and "not relaunched" in failed["history"][-1]["reason"]
