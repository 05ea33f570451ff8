"""The docker executor through the real scheduler and a real engine: a demo-math seed ends
referee-scored with its idea in a container; a cancel removes the container and records the exit;
a scheduler killed with SIGKILL while two docker jobs run is replaced by one that adopts them (no
orphan container, no second launch, both finish)."""

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
from core.control.jobs import cancel_job, get_job
from core.control.scheduler import Scheduler
from core.control.submit import submit_idea_runs
from core.data.demo import generate_all
from core.run.resolve import prepare_config
from core.sandbox.docker import list_containers
from tests.conftest import REPO, drive_scheduler, make_dataset, wait_until
from tests.tiny_w2s import fake_baselines, tiny_config

pytest_plugins = ["tests.docker_engine"]  # the engine, image and workspace fixtures

TINY = {"weak_model": "demo-weak", "strong_model": "demo-strong", "epochs": 1, "batch_size": 8, "max_ctx": 64,
        "lr": 0.001}


def _idea(ws: Path, name: str, body: str) -> None:
    folder = ws / "ideas" / name
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(textwrap.dedent(body))


SLEEPER = '''
import os, time
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    experiment.log("sleeper: started")
    go = os.path.join(os.path.dirname(__file__), "go")  # the host creates it in the (read-only) idea folder
    deadline = time.time() + {seconds}
    while time.time() < deadline and not os.path.exists(go):
        time.sleep(0.2)
    return {{"test_predictions": {{r["id"]: 0.5 for r in data.test}}}}
'''


def _containers(client: Any, ws: Path, job: str | None = None) -> list[Any]:
    return list_containers(client, str(ws.resolve()), job)


def _running_container(client: Any, ws: Path, job: str) -> Any:
    found = [c for c in _containers(client, ws, job) if c.status == "running"]
    return found[0] if found else None


def test_a_demo_math_seed_ends_referee_scored_with_its_idea_in_a_container(docker_ws: Path, docker_client: Any) -> None:
    generate_all(docker_ws, sizes={"train_label": 16, "train_unlabel": 16, "test": 40}, datasets=("demo-math",))
    cfg = prepare_config(RunConfig.from_dict({"data_dir": "data/demo-math", **TINY}))
    fake_baselines(docker_ws, cfg, [42])
    from tests.docker_engine import container_creations  # after pytest_plugins registered (and rewrote) it

    since = time.time()
    (job,) = submit_idea_runs("vanilla_w2s", cfg, [42], source="cli", executor="docker")
    (done,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.1), [job["id"]], timeout=300)
    log = Path(done["run_dir"], "stdout.log").read_text()
    assert done["state"] == "succeeded", log[-3000:]
    assert "running idea vanilla_w2s in the sandbox (docker, isolated)" in log
    rows = list((docker_ws / "cache_results").glob("demo-math_vanilla_w2s/*/seed_42.json"))
    assert len(rows) == 1 and json.loads(rows[0].read_text())["w2s_source"] == "referee"
    created = container_creations(docker_client, since, str(docker_ws.resolve()))
    assert [e["Actor"]["Attributes"]["name"] for e in created] == [f"w2s-{job['id']}-a1"]
    assert created[0]["Actor"]["Attributes"]["w2s.job"] == job["id"]
    assert _containers(docker_client, docker_ws) == []


def test_cancel_stops_the_container_and_records_the_exit(docker_ws: Path, docker_client: Any) -> None:
    make_dataset(docker_ws)
    cfg = prepare_config(tiny_config())
    fake_baselines(docker_ws, cfg, [42])
    _idea(docker_ws, "sleeper", SLEEPER.format(seconds=300))
    (job,) = submit_idea_runs("sleeper", cfg, [42], source="cli", executor="docker")
    sched = Scheduler(gpus=[], poll_interval=0.1)

    def container() -> Any:
        sched.tick()
        return _running_container(docker_client, docker_ws, job["id"])

    wait_until(container, 120, what="the idea's container running")
    cancelled = cancel_job(job["id"], grace=3)
    assert cancelled["state"] == "cancelled" and cancelled["exit_code"] is not None
    assert _containers(docker_client, docker_ws, job["id"]) == []
    assert "stopped by a signal" in Path(cancelled["run_dir"], "result.json").read_text()


def test_a_killed_scheduler_is_replaced_and_its_docker_jobs_adopted_once(docker_ws: Path, docker_client: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # two at once (the sleeper idea uses no CPU: the default one-CPU-training-at-a-time budget is off)
    monkeypatch.setenv("W2S_LOCAL_CONCURRENCY", "2")
    monkeypatch.setenv("W2S_DOCKER_CONCURRENCY", "2")
    make_dataset(docker_ws)
    cfg = prepare_config(tiny_config())
    fake_baselines(docker_ws, cfg, [42, 43])
    _idea(docker_ws, "sleeper", SLEEPER.format(seconds=120))
    since = time.time()
    jobs = submit_idea_runs("sleeper", cfg, [42, 43], source="cli", executor="docker")
    ids = [j["id"] for j in jobs]
    code = ("import threading\nfrom core.control.scheduler import Scheduler\n"
            "Scheduler(gpus=[], poll_interval=0.1).run(threading.Event())\n")
    with open(docker_ws / "scheduler.log", "wb") as out:
        first = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        wait_until(lambda: all(_running_container(docker_client, docker_ws, i) for i in ids), 120,
                   what="both jobs' containers running")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # a container whose creator is gone (a runner killed before it could clean up): an orphan
    orphan = docker_client.containers.run(
        _image(), ["sleep", "300"], detach=True, network_mode="none",
        name=f"w2s-orphan-{os.getpid()}",
        labels={"w2s.sandbox": "docker", "w2s.workspace": str(docker_ws.resolve()), "w2s.job": "gone",
                "w2s.owner": f"{first.pid}:1.000"})
    pids = [int(get_job(i)["handle"]["pid"]) for i in ids]
    assert all(_pid_alive(p) for p in pids), "a job died with its scheduler"

    sched = Scheduler(gpus=[], poll_interval=0.1)
    sched.tick()  # re-attaches both (and sweeps the orphan) while they still run
    assert [get_job(i)["state"] for i in ids] == ["running", "running"]
    left = {c.name: c.status for c in _containers(docker_client, docker_ws)}
    assert left == {f"w2s-{i}-a1": "running" for i in ids}, left  # orphan gone, running ones left alone
    (docker_ws / "ideas" / "sleeper" / "go").touch()  # now let both ideas finish
    done = drive_scheduler(sched, ids, timeout=180)
    assert [j["state"] for j in done] == ["succeeded", "succeeded"], [j["history"] for j in done]
    assert [j["attempt"] for j in done] == [1, 1]
    for j in done:
        assert Path(j["run_dir"], "stdout.log").read_text().count("attempt 1 started") == 1
    from tests.docker_engine import container_creations

    created = container_creations(docker_client, since, str(docker_ws.resolve()))
    names = sorted(e["Actor"]["Attributes"]["name"] for e in created)
    assert names == sorted([f"w2s-{i}-a1" for i in ids] + [orphan.name]), names  # one launch each
    assert _containers(docker_client, docker_ws) == []  # the orphan was swept, the jobs cleaned up


def _image() -> str:
    from core.sandbox.docker_config import DockerSettings

    return DockerSettings.from_env().image


def _pid_alive(pid: int) -> bool:
    from core.common.process import process_alive

    return process_alive(pid)


def test_the_services_default_executor_is_what_submitters_get(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``w2s serve --executor docker`` records its default in service.json: a job submitted without an
    executor (CLI, API, TUI's first choice) runs there; inside a job, the job's own executor wins."""
    import psutil

    from core.app.views import executors
    from core.control.jobs import submit_job
    from core.control.service import default_executor, service_file
    from tests.conftest import run_cli

    assert default_executor() == "local" and submit_job("t", ["true"])["executor"] == "local"
    me = psutil.Process()
    service_file().parent.mkdir(parents=True, exist_ok=True)
    service_file().write_text(json.dumps({"pid": me.pid, "create_time": me.create_time(), "url": None,
                                          "executor": "docker"}))
    assert default_executor() == "docker"
    assert submit_job("t", ["true"])["executor"] == "docker"
    assert executors()[0]["name"] == "docker"  # what a launch dialog preselects
    monkeypatch.setenv("W2S_EXECUTOR", "local")  # a local job submitting its own runs
    assert submit_job("t", ["true"])["executor"] == "local"
    service_file().unlink()
    assert run_cli("serve", "--executor", "nope", "--no-web") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--executor: unknown executor 'nope'" in err


def test_w2s_run_with_the_docker_executor_and_no_service(docker_ws: Path, docker_client: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Without a service the seed's trusted process runs here and its idea in a container."""
    from tests.conftest import run_cli

    make_dataset(docker_ws)
    cfg = prepare_config(tiny_config())
    fake_baselines(docker_ws, cfg, [42])
    _idea(docker_ws, "quick", SLEEPER.format(seconds=0))
    assert os.environ.get("W2S_SANDBOX") is None
    code = run_cli("run", "--idea", "quick", "--executor", "docker", "--json", "--data-dir", "data/tiny",
                   "--weak-model", "demo-weak", "--strong-model", "demo-strong", "--epochs", "1",
                   "--batch-size", "8", "--max-ctx", "64", "--lr", "0.001")
    (run,) = json.loads(capsys.readouterr().out)
    log = Path(run["log"]).read_text()
    assert code == 0 and run["state"] == "succeeded", log[-2000:]
    assert "running idea quick in the sandbox (docker, isolated)" in log
    assert os.environ.get("W2S_SANDBOX") is None  # this process's environment is left as it was
    assert _containers(docker_client, docker_ws) == []
