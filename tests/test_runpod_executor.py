"""The runpod executor through the real scheduler, the real ``runpod`` SDK and boto3, against local
stand-ins (``tests.runpod_stand_ins``): moto for S3, a RunPod API stand-in whose pods are containers on
the local Docker engine running the real bootstrap. Each test ends with no pod billing, no secret in any
request the stand-in recorded, in any pod or in the bucket, and no label file in the bucket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from core.common.config import RunConfig
from core.control.jobs import cancel_job, get_job, retry_job
from core.control.scheduler import Scheduler
from core.control.submit import submit_idea_runs
from core.data.demo import generate_all
from core.run.resolve import prepare_config
from core.sandbox.runpod_settings import workspace_tag
from tests.conftest import REPO, drive_scheduler, make_dataset, run_cli, wait_until
from tests.tiny_w2s import fake_baselines, tiny_config

pytest.register_assert_rewrite("tests.runpod_stand_ins")  # its checks are asserts: rewritten though imported here
from tests.runpod_stand_ins import GPU_TYPES, World  # noqa: E402

pytest_plugins = ["tests.docker_engine", "tests.runpod_stand_ins"]

TINY = {"weak_model": "demo-weak", "strong_model": "demo-strong", "epochs": 1, "batch_size": 8, "max_ctx": 64,
        "lr": 0.001}
INSTANT = '''
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    experiment.log("instant: predicting")
    print("instant: a line on stdout", flush=True)
    return {"test_predictions": {r["id"]: 0.5 for r in data.test}}
'''
SLEEPER = '''
import time
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    experiment.log("sleeper: started")
    for step in range({seconds}):
        experiment.report(step / {seconds}, f"sleeping {{step}}")
        time.sleep(1)
    return {{"test_predictions": {{r["id"]: 0.5 for r in data.test}}}}
'''


def _idea(ws: Path, name: str, body: str) -> None:
    folder = ws / "ideas" / name
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(textwrap.dedent(body))


def _tiny(world: World, ideas: dict[str, str], seeds: list[int]) -> RunConfig:
    make_dataset(world.ws)
    cfg = prepare_config(tiny_config())
    fake_baselines(world.ws, cfg, seeds)
    for name, body in ideas.items():
        _idea(world.ws, name, body)
    return cfg


def _log(job: dict[str, Any]) -> str:
    return Path(job["run_dir"], "stdout.log").read_text(encoding="utf-8", errors="replace")


def _result(job: dict[str, Any]) -> dict[str, Any]:
    return json.loads(Path(job["run_dir"], "result.json").read_text())


def _referee_rows(ws: Path, idea: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in ws.glob(f"cache_results/*_{idea}/*/seed_*.json")]


def test_a_demo_math_seed_runs_on_a_pod_and_the_referee_scores_it_here(world: World) -> None:
    generate_all(world.ws, sizes={"train_label": 16, "train_unlabel": 16, "test": 40}, datasets=("demo-math",))
    cfg = prepare_config(RunConfig.from_dict({"data_dir": "data/demo-math", **TINY}))
    fake_baselines(world.ws, cfg, [42])
    (job,) = submit_idea_runs("vanilla_w2s", cfg, [42], source="cli", executor="runpod")
    (done,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.1), [job["id"]], timeout=300)
    log = _log(done)
    assert done["state"] == "succeeded", log[-3000:]
    assert "running idea vanilla_w2s in the sandbox (runpod, isolated)" in log
    assert "loaded demo-strong" in log and "epoch 1/1: mean loss" in log  # the pod's progress, relayed
    rows = _referee_rows(world.ws, "vanilla_w2s")
    assert len(rows) == 1 and rows[0]["w2s_source"] == "referee"
    (pod,) = world.fake.created()
    assert pod["name"] == f"w2s-{workspace_tag()}-{job['id']}-a1" and pod["gpu_type"] == GPU_TYPES[0]
    assert sorted(pod["env"]) == ["PYTHONPATH", "PYTHONUNBUFFERED", "W2S_POD_PLAN_URL"]
    assert pod["docker_args"] == f"{sys.executable} -m core.sandbox.pod_bootstrap"
    cost = json.loads(Path(done["run_dir"], "cost.json").read_text())
    assert cost["usd"] > 0 and [p["id"] for p in cost["pods"]] == [pod["id"]] and cost["pods"][0]["ended"]
    from core.app.jobs import show_job

    assert show_job(job["id"])["cost_usd"] == pytest.approx(cost["usd"], abs=1e-4)
    keys = sorted(k.rsplit("/", 2)[-2] + "/" + k.rsplit("/", 1)[-1] for k in world.objects())  # kept: W2S_RUNPOD_KEEP_S3
    assert "in/plan.json" in keys and "out/predictions.json" in keys and "out/status.json" in keys, keys
    world.assert_clean()  # and the label scan above saw the staged inputs and the ideas, label-free


def test_no_capacity_anywhere_is_a_transient_failure_the_scheduler_retries(world: World) -> None:
    cfg = _tiny(world, {"instant": INSTANT}, [42])
    world.fake.no_capacity = set(GPU_TYPES)  # every type full (and no time to wait: W2S_RUNPOD_CAPACITY_WAIT=0)
    (job,) = submit_idea_runs("instant", cfg, [42], source="cli", executor="runpod", max_retries=1)
    (first,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.1), [job["id"]], until=["retrying"], timeout=60)
    log = _log(first)
    assert "no pod after 0 s: NVIDIA GeForce RTX 4090: no capacity; NVIDIA A40: no capacity" in log, log[-2000:]
    assert _result(first)["transient"] is True and world.fake.created() == []
    assert cancel_job(job["id"])["state"] == "cancelled"
    world.assert_clean()


def test_w2s_run_here_falls_through_to_the_next_gpu_type_and_records_the_cost(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _tiny(world, {"instant": INSTANT}, [42])
    world.fake.no_capacity = {GPU_TYPES[0]}
    monkeypatch.chdir(world.ws)
    code = run_cli("run", "--idea", "instant", "--seeds", "42", "--executor", "runpod", "--local",
                   "--data-dir", "data/tiny", "--weak-model", "demo-weak", "--strong-model", "demo-strong",
                   "--epochs", "1", "--batch-size", "8", "--lr", "0.001", "--max-ctx", "64")
    assert code == 0, capsys.readouterr().out[-3000:]
    (pod,) = world.fake.created()
    assert pod["gpu_type"] == GPU_TYPES[1] and "-run-" in pod["name"]  # a run without a job
    (cost,) = world.ws.glob("runs/**/cost.json")
    assert f"skipped {GPU_TYPES[0]}: no capacity" in (cost.parent / "stdout.log").read_text()
    assert [p["id"] for p in json.loads(cost.read_text())["pods"]] == [pod["id"]]
    rows = _referee_rows(world.ws, "instant")
    assert len(rows) == 1 and rows[0]["w2s_source"] == "referee"
    world.assert_clean()


def test_a_pod_that_dies_mid_run_fails_its_job_with_the_reason(world: World) -> None:
    cfg = _tiny(world, {"sleeper": SLEEPER.format(seconds=120)}, [42])
    (job,) = submit_idea_runs("sleeper", cfg, [42], source="cli", executor="runpod")
    sched = Scheduler(gpus=[], poll_interval=0.1)

    def started() -> bool:
        sched.tick()
        current = get_job(job["id"]) or {}
        return bool(current.get("run_dir")) and "sleeper: started" in _log(current)

    wait_until(started, 120, what="the idea running on its pod (its log line relayed)")
    (pod,) = world.fake.created()
    world.fake.kill(pod["id"])
    (done,) = drive_scheduler(sched, [job["id"]], timeout=60)
    assert done["state"] == "failed"
    error = _result(done)["error"]
    assert f"the pod {pod['id']} stopped (EXITED) before its run finished" in error, error
    assert _referee_rows(world.ws, "sleeper") == []
    world.assert_clean()


def test_cancel_terminates_the_pod(world: World) -> None:
    cfg = _tiny(world, {"sleeper": SLEEPER.format(seconds=120)}, [42])
    (job,) = submit_idea_runs("sleeper", cfg, [42], source="cli", executor="runpod")
    sched = Scheduler(gpus=[], poll_interval=0.1)

    def running() -> bool:
        sched.tick()
        return _pod_running(world, job["id"])

    wait_until(running, 120, what="the idea running on its pod")
    cancelled = cancel_job(job["id"], grace=3)
    assert cancelled["state"] == "cancelled"
    assert world.fake.live() == []
    assert "stopped by a signal" in Path(cancelled["run_dir"], "result.json").read_text()
    (pod,) = world.fake.created()
    assert json.loads(Path(cancelled["run_dir"], "cost.json").read_text())["pods"][0]["ended"]
    assert world.fake.pods[pod["id"]]["terminated"] is not None
    world.assert_clean()


def test_a_pod_that_never_starts_is_terminated_after_the_start_timeout(world: World,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W2S_RUNPOD_START_TIMEOUT", "4")
    cfg = _tiny(world, {"instant": INSTANT}, [42])
    world.fake.never_start = True
    (job,) = submit_idea_runs("instant", cfg, [42], source="cli", executor="runpod")
    (done,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.1), [job["id"]], timeout=60)
    assert done["state"] == "failed"
    (pod,) = world.fake.created()
    assert f"the pod {pod['id']} did not start within 4 s" in _result(done)["error"]
    billed = world.fake.pods[pod["id"]]["terminated"] - pod["created"]
    assert 4 <= billed < 15, billed  # terminated soon after the timeout: no pod left billing
    world.assert_clean()


def test_an_s3_upload_failure_is_one_clear_line_and_nothing_is_lost(world: World) -> None:
    cfg = _tiny(world, {"instant": INSTANT}, [42])
    world.proxy.fail("PUT", "/in/")  # the trusted side cannot upload the run's inputs
    (job,) = submit_idea_runs("instant", cfg, [42], source="cli", executor="runpod")
    sched = Scheduler(gpus=[], poll_interval=0.1)
    (failed,) = drive_scheduler(sched, [job["id"]], timeout=120)
    error = _result(failed)["error"]
    assert failed["state"] == "failed" and "the run's inputs could not be uploaded, no pod was started" in error
    assert "SlowDown (HTTP 503)" in error and f"s3://{world.bucket}/w2s/" in error, error
    assert world.fake.created() == [] and world.objects() == {}
    # the bucket heals; the pod's first two tries to upload its predictions still fail: it retries
    world.proxy.clear()
    world.proxy.fail("PUT", "predictions.json", times=2)
    retry_job(job["id"])
    (done,) = drive_scheduler(sched, [job["id"]], timeout=120)
    assert done["state"] == "succeeded", _log(done)[-3000:]
    assert len(world.proxy.failed("predictions.json")) == 2
    assert "instant: a line on stdout" in _log(done)  # the command's own output on the pod reaches the job log
    rows = _referee_rows(world.ws, "instant")
    assert len(rows) == 1 and rows[0]["w2s_source"] == "referee"
    world.assert_clean()


def _pod_running(world: World, job_id: str) -> bool:
    job = get_job(job_id) or {}
    return bool(job.get("run_dir")) and Path(job["run_dir"], "stdout.log").exists() and "sleeper: started" in _log(job)


def test_a_killed_service_is_replaced_and_its_pods_adopted_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _tiny(world, {"sleeper": SLEEPER.format(seconds=25)}, [42, 43])
    jobs = submit_idea_runs("sleeper", cfg, [42, 43], source="cli", executor="runpod")
    ids = [j["id"] for j in jobs]
    code = ("import threading\nfrom core.control.scheduler import Scheduler\n"
            "Scheduler(gpus=[], poll_interval=0.1).run(threading.Event())\n")
    with open(world.ws / "scheduler.log", "wb") as out:
        first = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        wait_until(lambda: all(_pod_running(world, i) for i in ids), 120, what="both ideas running on their pods")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # a pod this workspace left behind with no live job (its job process died with a crash)
    ghost_dir = world.ws / "runs" / "ghost"
    ghost_dir.mkdir(parents=True)
    (ghost_dir / "stdout.log").write_text("")
    orphan = world.fake.add_pod(f"w2s-{workspace_tag()}-ghost-a1")
    from core.sandbox.runpod_pods import write_record

    write_record({"id": orphan, "name": f"w2s-{workspace_tag()}-ghost-a1", "job": "ghost", "attempt": "1",
                  "run_dir": str(ghost_dir), "owner": f"{first.pid}:1.000", "gpu_type": "NVIDIA A40",
                  "cost_per_hr": 0.44, "created": time.time() - 60, "ended": None, "prefix": ""})
    sched = Scheduler(gpus=[], poll_interval=0.1)
    sched.tick()  # re-attaches both jobs and terminates the orphan while the two pods run on
    assert [get_job(i)["state"] for i in ids] == ["running", "running"]
    live = sorted(p["name"] for p in world.fake.live())
    assert live == sorted(f"w2s-{workspace_tag()}-{i}-a1" for i in ids), live
    assert f"runpod: pod {orphan} (w2s-{workspace_tag()}-ghost-a1) of job ghost had no live job: terminated" in \
        (ghost_dir / "stdout.log").read_text()
    done = drive_scheduler(sched, ids, timeout=180)
    assert [j["state"] for j in done] == ["succeeded", "succeeded"], [j["history"] for j in done]
    assert [j["attempt"] for j in done] == [1, 1]
    for j in done:
        assert _log(j).count("attempt 1 started") == 1
    created = [p["name"] for p in world.fake.created() if p["id"] != orphan]
    assert sorted(created) == sorted(f"w2s-{workspace_tag()}-{i}-a1" for i in ids)  # one pod each, never two
    rows = _referee_rows(world.ws, "sleeper")
    assert sorted(r["seed"] for r in rows) == [42, 43] and all(r["w2s_source"] == "referee" for r in rows)
    world.assert_clean()
