"""GPU probe: clean "no NVIDIA GPU" here, a fake feed for tests/UIs, holder jobs by assignment."""

from __future__ import annotations

import json

from core.control import gpu
from core.control.jobs import submit_job, transition
from core.control.scheduler import Scheduler
from tests.conftest import run_cli

FAKE = [
    {"index": 0, "name": "NVIDIA H100 80GB HBM3", "util_pct": 97.0, "mem_used_mb": 61000,
     "mem_total_mb": 81559, "temp_c": 71, "power_w": 650.5, "processes": [{"pid": 123, "used_mb": 61000}]},
    {"index": 1, "name": "NVIDIA H100 80GB HBM3", "util_pct": 0.0, "mem_used_mb": 1, "mem_total_mb": 81559},
]


def test_no_gpu_is_a_clean_state(workspace, monkeypatch, capsys):
    monkeypatch.delenv(gpu.FAKE_ENV, raising=False)
    monkeypatch.setattr(gpu, "_nvml", lambda: [])  # what a CPU-only box answers
    assert gpu.probe() == []
    assert run_cli("gpu") == 0
    assert capsys.readouterr().out.startswith("no NVIDIA GPU")
    assert run_cli("gpu", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_real_probe_never_raises(workspace, monkeypatch):
    monkeypatch.delenv(gpu.FAKE_ENV, raising=False)
    found = gpu.probe()  # NVML here or not: a list either way
    assert isinstance(found, list)
    if not found:
        assert gpu.no_gpu_reason()


def test_fake_feed_and_holder_job(workspace, monkeypatch, capsys, tmp_path):
    feed = tmp_path / "gpus.json"
    feed.write_text(json.dumps(FAKE))
    monkeypatch.setenv(gpu.FAKE_ENV, str(feed))
    monkeypatch.delenv("W2S_GPUS", raising=False)
    job = submit_job("run", ["true"], gpus=1)
    transition(job["id"], "starting", "test", gpus=[1])
    transition(job["id"], "running", "test")
    found = gpu.probe()
    assert [g.index for g in found] == [0, 1] and found[0].power_w == 650.5
    assert found[1].holder_job == job["id"] and found[0].holder_job is None
    assert run_cli("gpu") == 0
    out = capsys.readouterr().out
    assert "H100" in out and job["id"] in out
    assert run_cli("gpu", "--json") == 0
    assert json.loads(capsys.readouterr().out)[1]["holder_job"] == job["id"]
    assert Scheduler().gpus == [0, 1]  # the scheduler's inventory comes from the same probe
    monkeypatch.setenv("W2S_GPUS", "1")
    assert Scheduler().gpus == [1]


def test_bad_fake_feed_is_a_user_error(workspace, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(gpu.FAKE_ENV, str(tmp_path / "missing.json"))
    assert run_cli("gpu") == 1
    assert "W2S_FAKE_GPUS" in capsys.readouterr().err


def test_bad_gpu_override_is_a_user_error(workspace, monkeypatch):
    import pytest

    from core.common.errors import UserError

    monkeypatch.setenv("W2S_GPUS", "zero")
    with pytest.raises(UserError, match="W2S_GPUS"):
        Scheduler()
