"""The RunPod pieces that need no Docker engine: settings (one line naming the bad field), the pod plan
(what travels, what the pod runs), pod creation against the API stand-in (price and cap checks, the
GPU-type order), the attach process against moto (relay, outputs, heartbeat timeout), the executor's
refusal of agents and ``w2s doctor``'s line. Pods of the stand-in here never start (no engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.common.errors import UserError
from core.sandbox.base import Mount, SandboxSpec, SandboxUnavailable
from core.sandbox.pod_plan import POD_WORKDIR, build_plan
from core.sandbox.runpod_pods import PodCapacityError, create_pod, read_record
from core.sandbox.runpod_settings import load_settings, workspace_tag
from tests.conftest import REPO, run_cli, wait_until
from tests.fakes.runpod_api import FakeRunPod

KEY = "rpa_unit_" + os.urandom(8).hex()


@dataclass
class Cloud:
    fake: FakeRunPod
    s3: Any
    bucket: str


@pytest.fixture
def cloud(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """moto (S3) and the RunPod stand-in without an engine, and the settings pointing at them."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTEST0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-secret")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
    s3.create_bucket(Bucket="w2s-unit")
    fake = FakeRunPod(None, KEY, tmp_path / "requests.jsonl").start()
    for key, value in {"RUNPOD_API_KEY": KEY, "RUNPOD_API_BASE_URL": fake.url, "W2S_S3_BUCKET": "w2s-unit",
                       "W2S_S3_ENDPOINT_URL": f"http://{host}:{port}", "W2S_RUNPOD_IMAGE": "w2s:unit",
                       "W2S_RUNPOD_CAPACITY_WAIT": "0", "W2S_RUNPOD_POLL": "0.2",
                       "W2S_RUNPOD_POD_POLL": "0.5"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield Cloud(fake, s3, "w2s-unit")
    finally:
        fake.stop()
        moto.stop()


# -- settings ---------------------------------------------------------------------------------------
def test_settings_defaults_env_and_file_and_one_line_errors(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("W2S_RUNPOD_", "W2S_S3_"))] + ["RUNPOD_API_KEY"]:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.cloud_type == "SECURE" and settings.max_price == 1.0 and settings.job_max_pods == 1
    assert [m.split(" ")[0] for m in settings.missing()] == ["RUNPOD_API_KEY", "W2S_S3_BUCKET", "W2S_RUNPOD_IMAGE"]
    (workspace / ".w2s").mkdir()
    (workspace / ".w2s" / "settings.toml").write_text(
        '[runpod]\nbucket = "lab-bucket"\ngpu_types = ["NVIDIA A40"]\nmax_price = 0.5\ncloud_type = "community"\n')
    monkeypatch.setenv("W2S_RUNPOD_MAX_PRICE", "0.7")
    settings = load_settings()
    assert (settings.bucket, settings.gpu_types, settings.max_price, settings.cloud_type) == \
        ("lab-bucket", ("NVIDIA A40",), 0.7, "COMMUNITY")
    assert "api_key" not in repr(settings)  # the key never lands in a log line by repr
    monkeypatch.setenv("W2S_RUNPOD_MAX_PODS", "many")
    with pytest.raises(UserError, match=r"^W2S_RUNPOD_MAX_PODS: expected a number >= 0, got 'many'$"):
        load_settings()
    monkeypatch.delenv("W2S_RUNPOD_MAX_PODS")
    (workspace / ".w2s" / "settings.toml").write_text('[runpod]\nbuckett = "x"\n')
    with pytest.raises(UserError, match=r"settings.toml: runpod.buckett: unknown setting"):
        load_settings()


# -- the plan ----------------------------------------------------------------------------------------
def test_the_plan_sends_the_inputs_and_ideas_rewrites_paths_and_brings_one_folder_back(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.run.ideas import check_idea
    from core.run.runner import sandbox_spec

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    info, _ = check_idea("vanilla_w2s")
    inputs, out, empty = tmp_path / "inputs", tmp_path / "run" / "idea_out", tmp_path / "empty"
    for folder in (inputs, out, empty):
        folder.mkdir(parents=True)
    spec = sandbox_spec(info, inputs, out, empty)
    plan = build_plan(spec, REPO, python="/opt/w2s/.venv/bin/python", code_dir="/opt/w2s")
    assert sorted(u.source for u in plan.uploads) == sorted([inputs, (REPO / "ideas").resolve()])
    assert plan.command[:3] == ["/opt/w2s/.venv/bin/python", "-m", "core.run.sandboxed_idea"]
    idea_dir = plan.command[plan.command.index("--idea-dir") + 1]
    ideas_upload = next(u for u in plan.uploads if u.source == (REPO / "ideas").resolve())
    assert idea_dir == f"{ideas_upload.pod_path}/vanilla_w2s" and plan.command[-1] == f"{POD_WORKDIR}/out"
    assert plan.env["PYTHONPATH"] == "/opt/w2s" and plan.env["W2S_IDEA_INPUTS"].startswith(f"{POD_WORKDIR}/m")
    assert "CUDA_VISIBLE_DEVICES" not in plan.env and "/opt/w2s/.venv/bin" in plan.env["PATH"].split(":")
    assert str(tmp_path) not in json.dumps([plan.command, plan.env, plan.cwd])  # no host path reaches the pod
    shell = SandboxSpec(["bash", "-c", "ls"], [Mount(tmp_path / "idea", writable=True)], cwd=tmp_path / "idea")
    plan = build_plan(shell, REPO, python="python", code_dir="/opt/w2s")  # an agent's shell: its folder comes back
    assert plan.host_out is None and plan.writeback is not None and plan.writeback.source == tmp_path / "idea"
    assert plan.cwd == plan.writeback.pod_path and plan.uploads == [plan.writeback]
    two = SandboxSpec(["python", "-c", "1"], [Mount(tmp_path / "idea", writable=True), Mount(tmp_path / "b", writable=True),
                                              Mount(out, writable=True)], out=out)
    with pytest.raises(SandboxUnavailable, match="^runpod: a pod can bring back one writable folder"):
        build_plan(two, REPO, python="python", code_dir="/opt/w2s")


# -- creating pods -----------------------------------------------------------------------------------
def test_pods_take_the_first_affordable_type_and_stay_within_the_caps(cloud: Cloud,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W2S_RUNPOD_GPU_TYPES", "NVIDIA H100 80GB HBM3,NVIDIA GeForce RTX 4090,NVIDIA A40")
    monkeypatch.setenv("W2S_RUNPOD_MAX_PRICE", "1.0")
    said: list[str] = []
    record = create_pod(load_settings(), job="j1", attempt=1, run_dir=None, prefix="p/", env={"A": "1"},
                        docker_args="python -m x", say=said.append)
    assert record["gpu_type"] == "NVIDIA GeForce RTX 4090" and record["cost_per_hr"] == 0.69
    assert said == ["[w2s] runpod: skipped NVIDIA H100 80GB HBM3: $2.99/h is over max_price $1.00"]
    assert read_record(record["id"])["name"] == f"w2s-{workspace_tag()}-j1-a1"
    # the workspace's cap: a second job finds no room, and says so as a transient failure
    monkeypatch.setenv("W2S_RUNPOD_MAX_PODS", "1")
    with pytest.raises(PodCapacityError, match=r"already runs 1 pod\(s\) \(max_pods 1\)"):
        create_pod(load_settings(), job="j2", attempt=1, run_dir=None, prefix="p/", env={}, docker_args="x")
    # nothing affordable at all: at once, not retried
    monkeypatch.setenv("W2S_RUNPOD_MAX_PODS", "4")
    monkeypatch.setenv("W2S_RUNPOD_MAX_PRICE", "0.1")
    with pytest.raises(SandboxUnavailable, match="no GPU type can be used") as info:
        create_pod(load_settings(), job="j3", attempt=1, run_dir=None, prefix="p/", env={}, docker_args="x")
    assert not isinstance(info.value, PodCapacityError)
    # a new attempt of a job never runs beside its earlier attempt's pod
    monkeypatch.setenv("W2S_RUNPOD_MAX_PRICE", "1.0")
    second = create_pod(load_settings(), job="j1", attempt=2, run_dir=None, prefix="p/", env={}, docker_args="x")
    assert [p["name"] for p in cloud.fake.live()] == [f"w2s-{workspace_tag()}-j1-a2"]
    assert read_record(record["id"])["ended"] and not read_record(second["id"])["ended"]
    assert KEY not in cloud.fake.log_path.read_text()


# -- the attach process ------------------------------------------------------------------------------
def _put(cloud: Cloud, key: str, data: bytes | dict[str, Any]) -> None:
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=body)


def _attach(pod: str, prefix: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "core.sandbox.runpod_attach", pod, "--prefix", prefix, "--out",
                             str(out), "--created", f"{time.time():.3f}"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_the_attach_relays_progress_and_log_copies_the_outputs_and_ends_the_pod(cloud: Cloud, tmp_path: Path) -> None:
    pod = cloud.fake.add_pod(f"w2s-{workspace_tag()}-run-0a0b")
    prefix, out = "w2s/t/run-1/", tmp_path / "out"
    out.mkdir()
    proc = _attach(pod, prefix, out)
    _put(cloud, prefix + "out/status.json", {"state": "running", "beat": 1})
    _put(cloud, prefix + "out/events.jsonl", b'{"log": "first"}\n')
    _put(cloud, prefix + "out/log", b"hello from the pod\n")
    wait_until(lambda: (out / "events.jsonl").exists(), 30, what="the first events relayed")
    _put(cloud, prefix + "out/events.jsonl", b'{"log": "first"}\n{"progress": 0.5, "message": "half"}\n')
    _put(cloud, prefix + "out/predictions.json", {"a": 0.25})
    _put(cloud, prefix + "out/status.json", {"state": "exited", "beat": 2, "code": 0, "outputs": ["predictions.json"]})
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode() == "hello from the pod\n"
    assert (out / "events.jsonl").read_text() == '{"log": "first"}\n{"progress": 0.5, "message": "half"}\n'
    assert json.loads((out / "predictions.json").read_text()) == {"a": 0.25}
    assert cloud.fake.live() == []  # terminated at the end
    assert cloud.s3.list_objects_v2(Bucket=cloud.bucket, Prefix=prefix).get("KeyCount") == 0  # prefix deleted


def test_a_pod_that_stops_reporting_is_terminated(cloud: Cloud, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W2S_RUNPOD_HEARTBEAT_TIMEOUT", "2")
    pod = cloud.fake.add_pod(f"w2s-{workspace_tag()}-run-0c0d")
    prefix, out = "w2s/t/run-2/", tmp_path / "out"
    out.mkdir()
    proc = _attach(pod, prefix, out)
    _put(cloud, prefix + "out/status.json", {"state": "running", "beat": 1})  # one beat, then silence
    _, stderr = proc.communicate(timeout=40)
    assert proc.returncode == 1
    message = json.loads((out / "error.json").read_text())["error"]
    assert message == f"the pod {pod} stopped reporting for 2 s: terminated", stderr.decode()
    assert cloud.fake.live() == []


# -- the executor and the doctor -------------------------------------------------------------------------
def test_unconfigured_runpod_refuses_jobs_and_the_doctor_says_what_is_missing(
        workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from executors import ExecutorError, get_executor

    for name in ("RUNPOD_API_KEY", "W2S_S3_BUCKET", "W2S_RUNPOD_IMAGE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ExecutorError, match="^runpod: not configured: set RUNPOD_API_KEY"):
        get_executor("runpod").submit({"id": "a1", "kind": "agent", "attempt": 1, "run_dir": str(workspace)}, [], {})
    run_cli("doctor")
    line = next(x for x in capsys.readouterr().out.splitlines() if "executor runpod" in x)
    assert line.startswith("--  executor runpod: not configured: set RUNPOD_API_KEY (environment only), "
                           "W2S_S3_BUCKET"), line


def test_the_doctor_line_when_everything_answers(cloud: Cloud, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli("doctor")
    line = next(x for x in capsys.readouterr().out.splitlines() if "executor runpod" in x)
    assert line.startswith("ok  executor runpod: works (bucket s3://w2s-unit, image w2s:unit"), line
