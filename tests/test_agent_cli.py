"""``w2s agent`` verbs and the launcher process: queueing, secrets, stop, resume, transcript, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.agent.launcher import launch_agent, list_agents, resume_agent
from core.agent.transcript import iter_events
from core.common.errors import UserError
from core.control.jobs import get_job, secrets_path, transition
from tests.conftest import REPO, run_cli
from tests.fakes.anthropic_server import FakeAnthropic, tool_use, turn

KEY = "sk-cli-test-key"


def test_launch_queues_a_job_without_leaking_the_key(workspace: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    agent = launch_agent(idea_md=2, budget_usd=1.5, max_turns=7, max_evals=4)
    assert agent["state"] == "queued"
    assert agent["direction"].startswith("Unsupervised elicitation by sampling")
    assert agent["budgets"] == {"max_usd": 1.5, "max_turns": 7, "max_wall_s": 14400.0, "max_evals": 4}
    job = get_job(agent["job_id"])
    assert job["kind"] == "agent" and job["eval_budget"] == 4 and job["meta"]["agent_id"] == agent["id"]
    run_dir = Path(job["run_dir"])
    command = json.loads((run_dir / "command.json").read_text())["command"]
    assert command[-2:] == ["--agent-id", agent["id"]] and KEY not in json.dumps(command)
    assert KEY not in (run_dir / "env.json").read_text()
    state_files = [p for p in (workspace / ".w2s").rglob("*") if p.is_file() and "job_secrets" not in p.parts]
    assert state_files and not any(KEY in p.read_text(errors="replace") for p in state_files)
    assert stat.S_IMODE(secrets_path(job["id"]).stat().st_mode) == 0o600
    assert agent["transcript_path"] == str(run_dir / "transcript.jsonl")

    assert run_cli("agent", "list") == 0
    out = capsys.readouterr().out
    assert agent["id"] in out and "queued" in out and "$0.000/$1.50" in out
    with pytest.raises(UserError, match="exactly one"):
        launch_agent("x", idea_md=1)
    with pytest.raises(UserError, match="1..10"):
        launch_agent(idea_md=11)
    assert run_cli("agent", "launch", "--direction", "x", "--budget-usd", "0") == 1
    assert "budgets" in capsys.readouterr().err
    assert run_cli("agent", "launch", "--direction", "x", "--executor", "nope") == 1
    assert "not queued" in capsys.readouterr().err and len(list_agents()) == 1

    assert run_cli("agent", "stop", agent["id"][:5]) == 0
    stopped = next(a for a in list_agents() if a["id"] == agent["id"])
    assert stopped["state"] == "stopped" and get_job(agent["job_id"])["state"] == "cancelled"
    assert not secrets_path(job["id"]).exists()
    assert run_cli("agent", "stop", "nope") == 1
    picked = launch_agent("4. W2S combined with elicitation")  # the TUI's picker
    assert picked["direction"].startswith("W2S combined with elicitation\n\nUse the weak labels")
    assert run_cli("agent", "transcript", agent["id"]) == 0  # no transcript yet: prints nothing


def test_resume_rehands_the_key_and_needs_it(workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    agent = launch_agent("d")
    with pytest.raises(UserError, match="only a failed or cancelled"):
        resume_agent(agent["id"])
    transition(agent["job_id"], "failed", "killed", store=None)
    secrets_path(agent["job_id"]).unlink()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        resume_agent(agent["id"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    doc = resume_agent(agent["id"])
    assert doc["state"] == "queued" and get_job(agent["job_id"])["state"] == "queued"
    assert json.loads(secrets_path(agent["job_id"]).read_text()) == {"ANTHROPIC_API_KEY": KEY}


def test_launcher_process_stops_cleanly_on_sigterm(workspace: Path, monkeypatch, capsys) -> None:
    fake = FakeAnthropic(lambda i, r: turn(tool_use(f"s{i}", "list_files", {})), api_key=KEY, hold={2})
    fake.start()
    try:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        agent = launch_agent("d")
        env = {**os.environ, "ANTHROPIC_BASE_URL": fake.url, "W2S_JOB_ID": agent["job_id"]}
        proc = subprocess.Popen([sys.executable, "-m", "core.agent.launcher", "--agent-id", agent["id"]],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        assert fake.held.wait(timeout=180), "launcher never reached turn 3"
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        fake.stop()
    assert proc.returncode == 0, out
    assert "stopped by user" in out
    evs = list(iter_events(Path(agent["transcript_path"])))
    assert evs[-1]["type"] == "stop" and evs[-1]["reason"] == "stopped by user"
    doc = next(a for a in list_agents() if a["id"] == agent["id"])
    assert doc["state"] == "stopped" and doc["usage"]["turns"] == 2
    assert run_cli("agent", "transcript", agent["id"], "-f") == 0  # ends: the transcript has its stop
    printed = capsys.readouterr().out
    assert "-> list_files" in printed and "stop (stopped): stopped by user" in printed


def test_launch_refuses_without_a_sandbox_unless_the_operator_says_so(workspace: Path, monkeypatch,
                                                                        capsys) -> None:
    from core.agent.launcher import run_agent

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("W2S_BWRAP", "/nonexistent/bwrap")  # no working sandbox here
    monkeypatch.setenv("W2S_LANDLOCK", "0")  # nor the Landlock fallback
    monkeypatch.delenv("W2S_UNSAFE_NO_SANDBOX", raising=False)
    with pytest.raises(UserError) as err:
        launch_agent("d")
    message = str(err.value)
    assert "\n" not in message and "--unsafe-no-sandbox" in message and "W2S_UNSAFE_NO_SANDBOX=1" in message
    assert "bwrap" in message and list_agents() == []
    assert run_cli("agent", "launch", "--direction", "d") == 1
    assert "--unsafe-no-sandbox" in capsys.readouterr().err and list_agents() == []
    # the explicit operator flag: queued, and labelled unverified everywhere it is listed
    monkeypatch.setattr("cli.agent_cmd.ensure_service", lambda: None)
    assert run_cli("agent", "launch", "--direction", "d", "--unsafe-no-sandbox") == 0
    assert "unverified (not isolated)" in capsys.readouterr().out
    (doc,) = list_agents()
    assert doc["sandbox"] == "none" and doc["verified"] is False and doc["unsafe_no_sandbox"] is True
    assert run_cli("agent", "list") == 0 and "unverified (not isolated)" in capsys.readouterr().out
    # the service's environment variable does the same for the web API and the TUI
    monkeypatch.setenv("W2S_UNSAFE_NO_SANDBOX", "1")
    assert launch_agent("e")["verified"] is False
    # an agent launched with a sandbox never runs without one, whatever its job's environment says
    monkeypatch.delenv("W2S_BWRAP")
    safe = launch_agent("f")
    assert safe["sandbox"] == "bwrap" and safe["verified"] is True
    monkeypatch.setenv("W2S_BWRAP", "/nonexistent/bwrap")
    code, reason = run_agent(safe["id"])
    assert code == 1 and "--unsafe-no-sandbox" in reason
    assert next(a for a in list_agents() if a["id"] == safe["id"])["state"] == "failed"
