"""The Slurm executor against a real one-node Slurm (``.ci/services/slurm.sh``: slurmctld + slurmd + munge).

A demo-math seed runs as a batch job and ends referee-scored with its idea sandboxed on the node; a
running job is cancelled (gone from the queue, exit recorded); a service killed while a Slurm job runs
is restarted and re-attaches to it (one batch job, one launch); a launch in doubt is adopted by job
name; a pending job's reason and queue position reach the job's progress message. Under ``CI=true`` a
missing cluster fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.common.config import RunConfig
from core.common.errors import UserError
from core.control import jobs as J
from core.control import service as discovery
from core.control.scheduler import Scheduler
from core.control.store import Store
from core.control.submit import submit_idea_runs
from core.data.demo import generate_all
from core.run.resolve import prepare_config
from executors import get_executor
from executors.slurm import SlurmExecutor, check_cluster, env_file, job_comment, job_name, sbatch_env
from executors.slurm_settings import load_settings
from tests.conftest import drive_scheduler, in_ci, run_cli, wait_until
from tests.tiny_w2s import fake_baselines
from web import launcher

SECRET = "sk-slurm-test-secret-7d1e"
RUN_CFG = {"weak_model": "demo-weak", "strong_model": "demo-strong", "epochs": 1, "batch_size": 8,
           "max_ctx": 64, "lr": 0.001}
PROBE_IDEA = '''
from pathlib import Path
from core.run import experiment


def run_experiment(cfg):
    """Reaches for the labels first (the sandbox must refuse), then trains like TEMPLATE."""
    for path in ("labeled_data/demo-math/test.jsonl", {labels!r}):
        try:
            Path(path).read_text()
            experiment.log("probe: read the labels")
        except OSError as exc:
            experiment.log(f"probe: labels unreachable ({{type(exc).__name__}})")
    data = experiment.load_label_free(cfg)
    weak_p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    return experiment.transfer(cfg, data, data.train, weak_p1)
'''


def _slurm(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    """The local cluster's partition and CPUs per node; fail under CI (skip elsewhere) without one."""
    missing = [t for t in ("sbatch", "squeue", "scancel", "scontrol", "sinfo") if shutil.which(t) is None]
    problem = f"Slurm client tools missing ({', '.join(missing)})" if missing else ""
    rows: list[list[str]] = []
    if not problem:
        info = _slurm("sinfo", "-h", "-o", "%P|%c|%t")
        rows = [line.split("|") for line in info.stdout.split() if line.count("|") == 2]
        if info.returncode != 0:
            problem = f"sinfo failed: {info.stderr.strip()}"
        elif not any(r[2] in ("idle", "mix", "alloc") for r in rows):
            problem = f"no usable Slurm node (sinfo: {info.stdout.strip() or 'nothing'})"
    if problem:
        message = f"{problem}; start the one-node cluster with .ci/services/slurm.sh"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    default = next((r for r in rows if r[0].endswith("*")), rows[0])
    return {"partition": default[0].rstrip("*"), "cpus": int(default[1])}


@pytest.fixture
def slurm_ws(workspace: Path, cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace whose Slurm jobs (found by the comment naming it) are all cancelled at the end."""
    monkeypatch.setenv("W2S_SLURM_PARTITION", cluster["partition"])
    monkeypatch.setenv("W2S_SLURM_SQUEUE_TTL", "0")
    yield workspace
    listing = _slurm("squeue", "-h", "-o", "%i|%k")
    mine = [line.split("|", 1)[0] for line in listing.stdout.splitlines() if str(workspace) in line]
    if mine:
        _slurm("scancel", *mine)


def _scheduler() -> Scheduler:
    return Scheduler(gpus=[], poll_interval=0.05)


def _queue_ids(name: str) -> list[str]:
    """Slurm job ids with this job name in any state Slurm still remembers."""
    return _slurm("squeue", "-h", "--states=all", "-n", name, "-o", "%i").stdout.split()


def _tick_until(sched: Scheduler, job_id: str, pred: Any, timeout: float = 60.0, what: str = "") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        sched.tick()
        job = J.get_job(job_id)
        return job if job and pred(job) else None

    return wait_until(check, timeout, 0.1, what)


def _state_dir() -> Path:
    config = _slurm("scontrol", "show", "config").stdout
    match = re.search(r"^StateSaveLocation\s*=\s*(\S+)", config, re.M)
    assert match, "scontrol show config names no StateSaveLocation"
    return Path(match.group(1))


# -- settings (no cluster needed) ---------------------------------------------------------------
def test_settings_come_from_the_workspace_file_and_env_override_it(workspace, monkeypatch):
    for key in ("PARTITION", "ACCOUNT", "QOS", "TIME", "CPUS", "MEM", "MODULES", "MAX_JOBS"):
        monkeypatch.delenv(f"W2S_SLURM_{key}", raising=False)
    assert load_settings().sbatch_options() == ["--cpus-per-task=1"]
    settings = workspace / ".w2s" / "settings.toml"
    settings.parent.mkdir()
    settings.write_text('[slurm]\npartition = "gpu"\naccount = "lab"\nqos = "normal"\ntime = "1-02:00:00"\n'
                        'cpus = 4\nmem = "32G"\nmodules = ["module load cuda/12.1"]\nmax_jobs = 3\n')
    got = load_settings()
    assert got.sbatch_options() == ["--cpus-per-task=4", "--partition=gpu", "--account=lab", "--qos=normal",
                                    "--time=1-02:00:00", "--mem=32G"]
    assert got.modules == ("module load cuda/12.1",) and got.max_jobs == 3
    monkeypatch.setenv("W2S_SLURM_PARTITION", "debug")
    monkeypatch.setenv("W2S_SLURM_MODULES", "module purge\nmodule load python")
    got = load_settings()
    assert got.partition == "debug" and got.modules == ("module purge", "module load python")
    assert Scheduler(gpus=[]).limits["slurm"] == 3
    monkeypatch.delenv("W2S_SLURM_PARTITION")

    for bad, field in (('time = "soon"', "slurm.time"), ('partition = "a b"', "slurm.partition"),
                       ("cpus = 0", "slurm.cpus"), ('nodes = 2', "slurm.nodes"), ("mem = 5", "slurm.mem")):
        settings.write_text(f"[slurm]\n{bad}\n")
        with pytest.raises(UserError) as err:
            load_settings()
        assert field in str(err.value) and "\n" not in str(err.value) and str(settings) in str(err.value)
    monkeypatch.setenv("W2S_SLURM_PARTITION", "gpu;rm -rf /")
    settings.write_text("")
    with pytest.raises(UserError, match="W2S_SLURM_PARTITION"):
        load_settings()


def test_bad_settings_fail_the_job_with_one_line_naming_the_field(workspace, monkeypatch):
    monkeypatch.delenv("W2S_SLURM_TIME", raising=False)
    (workspace / ".w2s").mkdir()
    (workspace / ".w2s" / "settings.toml").write_text('[slurm]\ntime = "forever"\n')
    job = J.submit_job("test", ["true"], executor="slurm")
    [done] = drive_scheduler(_scheduler(), [job["id"]], timeout=30)
    reason = done["history"][-1]["reason"]
    assert done["state"] == "failed" and "slurm.time" in reason and "forever" in reason and "\n" not in reason
    assert not env_file(Path(done["run_dir"]), 1).exists()


# -- the cluster ------------------------------------------------------------------------------
def test_demo_math_seed_via_slurm_is_referee_scored_and_sandboxed(slurm_ws):
    ws = slurm_ws
    generate_all(ws, sizes={"train_label": 16, "train_unlabel": 16, "test": 40}, datasets=("demo-math",))
    cfg = prepare_config(RunConfig.from_dict({"data_dir": "data/demo-math", **RUN_CFG}))
    fake_baselines(ws, cfg, [42])
    (ws / "ideas" / "slurm_probe").mkdir(parents=True)
    (ws / "ideas" / "slurm_probe" / "run.py").write_text(
        PROBE_IDEA.format(labels=str(ws / "labeled_data" / "demo-math" / "test.jsonl")))

    [job] = submit_idea_runs("slurm_probe", cfg, [42], source="cli", executor="slurm", gpus=0,
                             env={"W2S_TEST_API_KEY": SECRET})
    [done] = drive_scheduler(_scheduler(), [job["id"]], timeout=300, step=0.2)
    run_dir = Path(done["run_dir"])
    log = (run_dir / "stdout.log").read_text()
    assert done["state"] == "succeeded", (done["history"], log[-3000:])
    slurm_id = done["handle"]["slurm_job_id"]
    assert f"(Slurm job {slurm_id})" in log and "[w2s] attempt 1 exited with code 0" in log
    assert "in the sandbox (bwrap, isolated)" in log, log[-3000:]
    assert log.count("probe: labels unreachable") == 2 and "probe: read the labels" not in log
    [result_file] = (ws / "cache_results").glob("demo-math_slurm_probe/*/seed_42.json")
    result = json.loads(result_file.read_text())
    assert result["w2s_source"] == "referee" and result["run_id"] == job["id"]
    assert json.loads((run_dir / "exit_status").read_text())["slurm_job_id"] == slurm_id

    # secrets went to the node in a 0600 file the batch script deleted, never through Slurm
    assert not env_file(run_dir, 1).exists()
    for path in (run_dir / "slurm_batch.a1.sh", run_dir / "slurm.json", run_dir / "stdout.log"):
        assert SECRET not in path.read_text() and "W2S_RUN_TOKEN=" not in path.read_text()
    sbatch_argv = json.loads((run_dir / "slurm.json").read_text())["sbatch"]
    assert not any(SECRET in a for a in sbatch_argv)
    stored = [p for p in _state_dir().rglob(f"job.{slurm_id}/*") if p.is_file()]
    assert stored, "Slurm keeps no files for the job: the secret check below would prove nothing"
    assert all(SECRET.encode() not in p.read_bytes() for p in stored)
    [environment] = [p for p in stored if p.name == "environment"]
    names = {kv.split("=", 1)[0] for kv in environment.read_bytes().decode().split("\0") if "=" in kv}
    assert "PATH" in names and not {n for n in names if not n.startswith("SLURM_")} - set(sbatch_env())
    assert not {"W2S_RUN_TOKEN", "W2S_TEST_API_KEY", "W2S_JOB_ID"} & names


def test_cancel_a_running_slurm_job(slurm_ws):
    script = 'trap "echo got TERM; exit 143" TERM; echo ready; while :; do sleep 0.2; done'
    job = J.submit_job("test", ["bash", "-c", script], executor="slurm")
    sched = _scheduler()
    running = _tick_until(sched, job["id"], lambda j: j["state"] == "running"
                          and "ready" in (Path(j["run_dir"]) / "stdout.log").read_text(), 60, "the job to run")
    slurm_id = running["handle"]["slurm_job_id"]
    assert _slurm("squeue", "-h", "-j", slurm_id, "-o", "%T").stdout.strip() == "RUNNING"

    start = time.monotonic()
    cancelled = J.cancel_job(job["id"], grace=5)
    took = time.monotonic() - start
    assert cancelled["state"] == "cancelled" and cancelled["exit_code"] == 143, cancelled["history"]
    assert took < 10, f"cancel took {took:.1f}s"
    status = json.loads((Path(job["run_dir"]) / "exit_status").read_text())
    assert status == {**status, "attempt": 1, "exit_code": 143, "signal": 15, "slurm_job_id": slurm_id}
    wait_until(lambda: not _slurm("squeue", "-h", "-j", slurm_id).stdout.strip(), 30, what="gone from squeue")
    assert "got TERM" in (Path(job["run_dir"]) / "stdout.log").read_text()
    # a cancel of an attempt that already ended signals nothing (and never another job)
    assert get_executor("slurm").cancel(cancelled, cancelled["handle"], grace=1) is False


def test_pending_reason_and_queue_position_reach_the_job_then_it_runs(slurm_ws, cluster):
    filler = _slurm("sbatch", "--parsable", f"--cpus-per-task={cluster['cpus']}", "-o", "/dev/null",
                    f"--comment=test filler in {slurm_ws}", "--wrap", "sleep 300").stdout.strip()
    wait_until(lambda: _slurm("squeue", "-h", "-j", filler, "-o", "%T").stdout.strip() == "RUNNING", 60,
               what="the filler job to hold the node")
    job = J.submit_job("test", ["bash", "-c", "sleep 3; echo finished"], executor="slurm")
    sched = _scheduler()
    pending = _tick_until(sched, job["id"], lambda j: "Resources" in (j.get("progress_message") or ""), 60,
                          "the pending reason")
    assert pending["state"] == "running"  # to w2s it is submitted; Slurm says why it waits
    assert pending["progress_message"] == f"pending in Slurm: Resources, 1st in the {cluster['partition']} queue"
    second = J.submit_job("test", ["bash", "-c", "echo never"], executor="slurm", env={"W2S_TEST_API_KEY": SECRET})
    queued = _tick_until(sched, second["id"], lambda j: "2nd in the" in (j.get("progress_message") or ""), 60,
                         "the second job's queue position")
    cancelled = J.cancel_job(second["id"], grace=1)  # never ran: scancel, its secrets file removed
    assert cancelled["state"] == "cancelled" and cancelled["exit_code"] is None
    status = json.loads((Path(second["run_dir"]) / "exit_status").read_text())
    assert status["error"] == "cancelled while pending in Slurm (never ran)"
    assert not env_file(Path(second["run_dir"]), 1).exists()
    assert not _slurm("squeue", "-h", "-j", queued["handle"]["slurm_job_id"]).stdout.strip()
    _slurm("scancel", filler)
    started = _tick_until(sched, job["id"], lambda j: j.get("progress_message") is None, 60,
                          "the job to start and its pending note to clear")
    assert started["state"] == "running"
    [done] = drive_scheduler(sched, [job["id"]], timeout=60)
    assert done["state"] == "succeeded" and "finished" in (Path(done["run_dir"]) / "stdout.log").read_text()


@pytest.fixture
def service_env() -> dict[str, str]:
    return {"W2S_SCHED_POLL": "0.2", "W2S_SLURM_SQUEUE_TTL": "0"}


def test_a_killed_service_re_attaches_to_its_slurm_job(slurm_ws, service_workspace):
    launcher.start_service_detached(web=False)
    script = 'echo "$SLURM_JOB_ID" >> "$W2S_RUN_DIR/launches"; sleep 6; echo done'
    job = J.submit_job("test", ["bash", "-c", script], executor="slurm")
    launches = Path(job["run_dir"]) / "launches"
    wait_until(launches.exists, 120, what="the Slurm job to start")
    running = J.get_job(job["id"])
    slurm_id = running["handle"]["slurm_job_id"]

    old = discovery.service_info()
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(old["pid"]) or psutil.Process(old["pid"]).status() == "zombie",
               60, what="the killed service to exit")
    assert _slurm("squeue", "-h", "-j", slurm_id, "-o", "%T").stdout.strip() == "RUNNING"

    launcher.start_service_detached(web=False)
    done = wait_until(lambda: J.get_job(job["id"])["state"] in ("succeeded", "failed") and J.get_job(job["id"]),
                      120, what="the adopted job to finish")
    assert done["state"] == "succeeded", done["history"]
    assert done["attempt"] == 1 and done["handle"]["slurm_job_id"] == slurm_id
    assert launches.read_text().split() == [slurm_id], "the job was submitted twice"
    assert _queue_ids(job_name(job["id"], 1)) == [slurm_id]
    assert "done" in (Path(job["run_dir"]) / "stdout.log").read_text()
    assert launcher.stop_service()


def test_a_launch_in_doubt_is_adopted_by_name_not_resubmitted(slurm_ws, monkeypatch):
    job = J.submit_job("test", ["bash", "-c", "sleep 4; echo once"], executor="slurm")
    sched = _scheduler()
    running = _tick_until(sched, job["id"], lambda j: j["state"] == "running", 30, "the submit")
    slurm_id = running["handle"]["slurm_job_id"]
    # the service died between sbatch answering and anything being recorded
    (Path(job["run_dir"]) / "slurm.json").unlink()
    Store().table("jobs").update(job["id"], lambda j: j.update(
        state="starting", handle=None, launching=True,
        history=[*j["history"], {"state": "starting", "time": time.time() - 3600, "reason": "claimed"}]))
    fresh = _scheduler()
    fresh.reconcile()
    adopted = J.get_job(job["id"])
    assert adopted["state"] == "running" and adopted["history"][-1]["reason"] == "re-attached after service restart"
    assert adopted["handle"]["slurm_job_id"] == slurm_id
    [done] = drive_scheduler(fresh, [job["id"]], timeout=60)
    assert done["state"] == "succeeded" and _queue_ids(job_name(job["id"], 1)) == [slurm_id]
    assert (Path(done["run_dir"]) / "stdout.log").read_text().count("once") == 1

    # a job of another workspace with the same name is not ours to adopt
    other = {**done, "attempt": 1}
    (Path(done["run_dir"]) / "slurm.json").unlink(missing_ok=True)
    (Path(done["run_dir"]) / "exit_status").unlink()
    assert job_comment(job["id"]) in _slurm("squeue", "-h", "--states=all", "-j", slurm_id, "-o", "%k").stdout
    with monkeypatch.context() as elsewhere:
        elsewhere.setenv("W2S_WORKSPACE", str(slurm_ws / "elsewhere"))
        assert SlurmExecutor().adopt(other, None) is None
    assert SlurmExecutor().adopt(other, None) == {**other["handle"], "launched": pytest.approx(time.time(), abs=60)}
    # an id Slurm never knew is lost, not running
    assert SlurmExecutor().poll(other, {"attempt": 1, "slurm_job_id": "987654321"}).status == "lost"


def test_doctor_reports_the_cluster(cluster, workspace, capsys):
    check = check_cluster()
    assert check.ok and check.detail.startswith(("slurm-wlm ", "slurm ")), check
    assert f"{cluster['partition']}* (up, 1 node " in check.detail
    run_cli("doctor")
    assert f"ok  executor slurm: {check.detail}" in capsys.readouterr().out


def test_doctor_says_when_slurm_is_missing(workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    check = check_cluster()
    assert not check.ok and "sbatch not found" in check.detail
    run_cli("doctor")
    assert "--  executor slurm: sbatch not found" in capsys.readouterr().out
