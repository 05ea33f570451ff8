"""Default local concurrency follows the cores and the jobs' declared threads: on a 2-core machine
one CPU training runs at a time (two took 22 min each instead of 1.5 min alone), light jobs still
start beside it, and an explicit cap or pinned torch threads are the operator's call."""

from __future__ import annotations

import sys
import time

import pytest

from core.common.job_types import IDEA_RUN_KIND
from core.control import cpu_budget
from core.control import jobs as J
from core.control.scheduler import Scheduler
from tests.conftest import drive_scheduler

SLEEP = [sys.executable, "-c", "import time; time.sleep(1.5)"]


def states(ids: list[str]) -> list[str]:
    return [str(J.get_job(i)["state"]) for i in ids]


@pytest.fixture
def two_cores(workspace, monkeypatch):
    monkeypatch.setenv("W2S_LOCAL_CPUS", "2")
    for name in ("W2S_LOCAL_CONCURRENCY", "W2S_TORCH_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    return workspace


def test_one_cpu_training_at_a_time_and_light_jobs_beside_it(two_cores):
    trainings = [J.submit_job(IDEA_RUN_KIND, SLEEP, name=f"t{i}", executor="local")["id"] for i in range(2)]
    light = J.submit_job("command", SLEEP, name="light", executor="local")["id"]
    sched = Scheduler(gpus=[], poll_interval=0.05)
    assert sched.cpus == 2 and sched.limits["local"] >= 2
    sched.tick()
    assert states(trainings)[0] in ("starting", "running") and states(trainings)[1] == "queued"
    assert states([light])[0] in ("starting", "running")  # 0 threads: not held back by the training
    overlap, deadline = False, time.monotonic() + 60
    while not all(s == "succeeded" for s in states([*trainings, light])):
        assert time.monotonic() < deadline, states([*trainings, light])
        sched.tick()
        now = states(trainings)
        overlap = overlap or now.count("running") + now.count("starting") == 2
        time.sleep(0.05)
    assert not overlap
    assert all(s == "succeeded" for s in states([*trainings, light]))


def test_declared_and_pinned_threads_and_the_explicit_cap(two_cores, monkeypatch):
    assert cpu_budget.job_threads({"kind": IDEA_RUN_KIND}, 2) == 2
    assert cpu_budget.job_threads({"kind": IDEA_RUN_KIND, "gpus_requested": 1}, 2) == 0
    assert cpu_budget.job_threads({"kind": "command", "meta": {"threads": 1}}, 2) == 1
    assert cpu_budget.job_threads({"kind": IDEA_RUN_KIND}, 2, env={"W2S_TORCH_THREADS": "1"}) == 1
    assert cpu_budget.fits({"kind": IDEA_RUN_KIND}, [], 2)  # alone it always starts, however many threads
    assert not cpu_budget.fits({"kind": IDEA_RUN_KIND}, [{"kind": IDEA_RUN_KIND, "executor": "local"}], 2)
    assert cpu_budget.fits({"kind": IDEA_RUN_KIND, "executor": "slurm"}, [{"kind": IDEA_RUN_KIND}], 2)
    monkeypatch.setenv("W2S_TORCH_THREADS", "1")  # pinned to one thread each: two fit on two cores
    ids = [J.submit_job(IDEA_RUN_KIND, SLEEP, executor="local")["id"] for _ in range(2)]
    sched = Scheduler(gpus=[], poll_interval=0.05)
    sched.tick()
    assert all(s in ("starting", "running") for s in states(ids))
    drive_scheduler(sched, ids)
    monkeypatch.delenv("W2S_TORCH_THREADS")
    assert Scheduler(gpus=[], limits={"local": 3}).cpus is None  # an explicit cap: the operator's choice
    monkeypatch.setenv("W2S_LOCAL_CONCURRENCY", "3")
    assert Scheduler(gpus=[]).cpus is None
