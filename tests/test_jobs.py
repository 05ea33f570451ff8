"""Jobs API and ``w2s jobs`` verbs: submission, secrets, cancel/retry rules, logs."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.control import jobs as J
from core.control.jobs import (
    JobError,
    cancel_job,
    get_job,
    list_jobs,
    read_log,
    resolve_job_id,
    retry_job,
    submit_job,
)
from core.control.scheduler import Scheduler
from core.control.store import Store
from tests.conftest import drive_scheduler as drive
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": []}, "non-empty list"),
        ({"command": "echo hi"}, "non-empty list"),
        ({"command": ["true"], "executor": "nowhere"}, "unknown executor"),
        ({"command": ["true"], "gpus": -1}, "gpus"),
        ({"command": ["true"], "max_retries": -2}, "max_retries"),
    ],
)
def test_submit_rejects_bad_input(workspace, kwargs, message):
    with pytest.raises(ValueError, match=message):
        submit_job("test", **kwargs)
    assert list_jobs() == []


def test_submit_writes_run_folder_and_compact_record(workspace):
    job = submit_job("run", ["echo", "hi"], name="demo", meta={"idea": "x"}, gpus=0)
    run_dir = workspace / "runs" / job["id"]
    assert job["state"] == "queued" and job["run_dir"] == str(run_dir)
    assert json.loads((run_dir / "command.json").read_text())["command"] == ["echo", "hi"]
    assert (run_dir / "stdout.log").exists()
    for key in ("id", "kind", "name", "state", "executor", "gpus", "created", "started", "finished",
                "exit_code", "history", "run_dir", "meta", "progress"):
        assert key in job
    assert job["history"][0]["reason"] == "submitted"
    assert "command" not in job and "env" not in job


def test_secrets_reach_the_job_and_nowhere_else(workspace):
    secret = "fake-secret-value-for-test-123"
    digest = hashlib.sha256(secret.encode()).hexdigest()  # the command itself must not hold the secret
    script = (
        f'test "$(printf %s "$ANTHROPIC_API_KEY" | sha256sum | cut -d" " -f1)" = {digest} && echo key-ok; '
        'test -n "$W2S_RUN_TOKEN" && echo token-ok; echo "job=$W2S_JOB_ID ws=$W2S_WORKSPACE plain=$PLAIN"'
    )
    job = submit_job("agent", ["bash", "-c", script], env={"ANTHROPIC_API_KEY": secret, "PLAIN": "v1"})
    (done,) = drive(Scheduler(gpus=[], poll_interval=0.05), [job["id"]])
    assert done["state"] == "succeeded", done
    log, _ = read_log(job["id"])
    assert "key-ok" in log and "token-ok" in log
    assert f"job={job['id']} ws={workspace} plain=v1" in log
    assert json.loads((workspace / "runs" / job["id"] / "env.json").read_text()) == {"PLAIN": "v1"}
    for path in workspace.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret leaked into {path}"
            assert b"w2s-run-" not in path.read_bytes(), f"raw run token leaked into {path}"
    tokens = Store().table("tokens").all()
    assert len(tokens) == 1 and tokens[0]["run_id"] == job["id"] and tokens[0]["token_hash"] == ""


def test_cancel_and_retry_rules(workspace):
    job = submit_job("test", ["true"])
    cancelled = cancel_job(job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["finished"]
    with pytest.raises(JobError, match="already cancelled"):
        cancel_job(job["id"])
    again = retry_job(job["id"])
    assert again["state"] == "queued" and again["finished"] is None
    with pytest.raises(JobError, match="only failed or cancelled"):
        retry_job(job["id"])
    states = [h["state"] for h in get_job(job["id"])["history"]]
    assert states == ["queued", "cancelled", "queued"]
    with pytest.raises(JobError):
        cancel_job("nope")


def test_read_log_offsets_never_split_a_character(workspace):
    job = submit_job("test", ["true"])
    log = workspace / "runs" / job["id"] / "stdout.log"
    log.write_bytes("héllo\n".encode()[:2])  # "h" + first byte of "é"
    text, offset = read_log(job["id"])
    assert (text, offset) == ("h", 1)
    log.write_bytes("héllo\n".encode())
    text, offset = read_log(job["id"], offset)
    assert (text, offset) == ("éllo\n", 7)
    assert read_log(job["id"], offset) == ("", 7)


def test_list_limit_and_prefix_resolution(workspace):
    ids = [submit_job("test", ["true"], name=f"j{i}")["id"] for i in range(4)]
    cancel_job(ids[0])
    cancel_job(ids[1])
    newest = list_jobs(limit=3)
    assert [j["id"] for j in newest] == [ids[3], ids[2], ids[1]]
    assert {j["id"] for j in list_jobs(active_only=True)} == {ids[2], ids[3]}
    assert resolve_job_id(ids[2][:8]) == ids[2]
    with pytest.raises(JobError, match="no job"):
        resolve_job_id("zzzz")


def test_jobs_cli(workspace, capsys):
    job = submit_job("test", ["echo", "hello from the job"], name="cli-demo")
    assert run_cli("jobs", "list") == 0
    assert job["id"] in capsys.readouterr().out
    assert run_cli("jobs", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "cli-demo"
    assert run_cli("jobs", "show", job["id"][:6]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == job["id"]
    drive(Scheduler(gpus=[], poll_interval=0.05), [job["id"]])
    assert run_cli("jobs", "logs", job["id"], "-f") == 0
    assert "hello from the job" in capsys.readouterr().out
    assert run_cli("jobs", "cancel", job["id"]) == 1
    assert "already succeeded" in capsys.readouterr().err
    assert run_cli("jobs", "show", "doesnotexist") == 1
    err = capsys.readouterr().err
    assert err.startswith("w2s: error: no job") and err.count("\n") == 1
    assert run_cli("jobs", "retry", job["id"]) == 1


def test_jobs_submit_cli(workspace, capsys):
    assert run_cli("jobs", "submit", "--name", "hello", "--gpus", "0", "--", "echo", "--flag", "x") == 0
    out = capsys.readouterr().out
    assert "queued" in out and "no service running" in out
    (job,) = list_jobs()
    assert job["name"] == "hello" and job["kind"] == "command"
    assert J.job_command(job) == ["echo", "--flag", "x"]
    assert run_cli("jobs", "submit") == 1
    assert run_cli("jobs", "submit", "--gpus", "-1", "--", "true") == 1
    assert "gpus" in capsys.readouterr().err
