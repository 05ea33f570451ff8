"""Acceptance: a scripted agent, driven through the real SDK against the fake Messages API, runs as
a job under a real ``w2s serve``: it copies TEMPLATE, edits it, runs it (in the sandbox)
on demo-math, reaches for labels (refused), evaluates through the referee, shares a finding and is
stopped by its USD budget — after a ``kill -9`` midway and a resume that repeats no finished call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.agent.launcher import FINAL_STATES, launch_agent, list_agents, resume_agent
from core.agent.transcript import iter_events
from core.common.config import RunConfig
from core.control.jobs import get_job, list_jobs
from core.data.demo import generate_all
from core.run.resolve import prepare_config
from tests.conftest import REPO, run_cli, wait_until
from tests.fakes.anthropic_server import FakeAnthropic, text, tool_results, tool_use, turn
from tests.tiny_w2s import fake_baselines

KEY = "sk-acceptance-key"
RUN_CFG = {"weak_model": "demo-weak", "strong_model": "demo-strong", "epochs": 1, "batch_size": 8,
           "max_ctx": 64, "lr": 0.001}
LOG_LINE = '''    experiment.log("agent edit: confidence-weighted transfer")
    return experiment.transfer(cfg, data, rows, targets, sample_weights=weights)'''
RETURN_LINE = "    return experiment.transfer(cfg, data, rows, targets, sample_weights=weights)"


def _job_id(request: dict, turn_index: int | None = None) -> str:
    """The idea job's id, from the last tool results or from those answering turn ``turn_index``."""
    if turn_index is None:
        texts = tool_results(request).values()
    else:
        msg = request["messages"][2 * turn_index + 2]
        texts = [str(b.get("content")) for b in msg["content"] if b.get("type") == "tool_result"]
    found = re.findall(r"job ([0-9a-f]{8})", " ".join(texts))
    return found[0] if found else "missing"


def script(i: int, req: dict) -> dict:
    """The agent's turns. Each turn costs $0.0045 at Sonnet prices; the last one $0.30."""
    if i == 0:
        return turn(text("Reading direction 3, then starting from TEMPLATE."),
                    tool_use("c0a", "read_idea_md", {"number": 3}), tool_use("c0b", "start_from_template"))
    if i == 1:
        edit = {"path": "run.py", "old_text": RETURN_LINE, "new_text": LOG_LINE}
        return turn(tool_use("c1", "edit_file", edit))
    if i == 2:
        run = {"seeds": [42], "data_dir": "data/demo-math", "config": RUN_CFG}
        return turn(tool_use("c2", "run_idea", run))
    if i == 3:
        return turn(tool_use("c3", "job_status", {"job_id": _job_id(req), "wait_s": 600}))
    if i == 4:
        return turn(text("Peeking at the labels would be cheating; checking that it is refused."),
                    tool_use("c4a", "read_file", {"path": "../../labeled_data/demo-math/test.jsonl"}),
                    tool_use("c4b", "list_files", {}))
    if i == 5:
        ask = {"dataset": "demo-math", "job_id": _job_id(req, 3)}  # the run's own sandboxed predictions
        return turn(tool_use("c5", "evaluate", ask))
    if i == 6:
        return turn(tool_use("c6", "share_finding", {
            "title": "Confidence-weighted soft labels on demo-math",
            "summary": "One seed (42), one epoch: see metrics. Too small to conclude anything.",
            "metrics": {"seeds": 1}, "config": {"epochs": 1}}))
    return turn(text("More work..."), tool_use(f"c{i}", "leaderboard", {}),
                input_tokens=100_000, output_tokens=0)


@pytest.fixture
def service_env() -> dict[str, str]:
    return {"W2S_LOCAL_CONCURRENCY": "2", "W2S_CANCEL_GRACE": "2"}


def test_agent_end_to_end_with_kill_and_resume(workspace: Path, monkeypatch, running_service) -> None:
    sizes = {"train_label": 16, "train_unlabel": 16, "test": 40}
    generate_all(workspace, sizes=sizes, datasets=("demo-math",))
    cfg = prepare_config(RunConfig.from_dict({"data_dir": "data/demo-math", **RUN_CFG}))
    fake_baselines(workspace, cfg, [42])
    fake = FakeAnthropic(script, api_key=KEY, errors={2: [(429, {"retry-after-ms": "50"})], 5: [(529, {})]},
                         hold={5})
    fake.start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("W2S_AGENT_BACKOFF_BASE_S", "0.05")
    try:
        agent = launch_agent("Reweight weak labels by confidence.", budget_usd=0.1, max_evals=3, max_turns=20,
                             model="claude-sonnet-4-6")
        job_id = agent["job_id"]
        assert KEY not in json.dumps(get_job(job_id)) and KEY not in (Path(get_job(job_id)["run_dir"])
                                                                      / "command.json").read_text()
        assert KEY not in (Path(get_job(job_id)["run_dir"]) / "env.json").read_text()

        # the agent reaches turn 5 (after its run finished) and is held there: kill it hard
        assert fake.held.wait(timeout=600), "agent never reached the evaluate turn"
        job = get_job(job_id)
        os.kill(int(job["handle"]["pid"]), signal.SIGKILL)
        wait_until(lambda: get_job(job_id)["state"] == "failed", 60, 0.25, "the killed agent job to fail")
        fake.release()
        transcript = Path(agent["transcript_path"])
        before = [e for e in iter_events(transcript) if e["type"] == "tool_result"]
        assert {e["id"] for e in before} == {"c0a", "c0b", "c1", "c2", "c3", "c4a", "c4b"}

        resume_agent(agent["id"])
        final = wait_until(lambda: next((a for a in list_agents() if a["id"] == agent["id"]
                                         and a["state"] in FINAL_STATES), None), 600, 0.25, "the agent to stop")
    finally:
        fake.stop()

    assert final["state"] == "stopped" and final["stop_reason"].startswith("budget_usd"), final["stop_reason"]
    evs = list(iter_events(transcript))
    calls = [e["id"] for e in evs if e["type"] == "tool_call"]
    results = [e["id"] for e in evs if e["type"] == "tool_result"]
    assert len(calls) == len(set(calls)) and sorted(calls) == sorted(results)  # nothing ran twice
    assert set(calls) == {"c0a", "c0b", "c1", "c2", "c3", "c4a", "c4b", "c5", "c6"}  # c7: over budget
    by_id = {e["id"]: e for e in evs if e["type"] == "tool_result"}
    assert not any(by_id[c]["is_error"] for c in ("c0a", "c0b", "c1", "c2", "c3", "c4b", "c5", "c6")), by_id
    assert by_id["c4a"]["is_error"] and "refused" in by_id["c4a"]["content"]
    assert "succeeded" in by_id["c3"]["content"]
    assert '"accuracy"' in by_id["c5"]["content"] and by_id["c5"]["evaluation"]
    assert '"pgr": null' not in by_id["c5"]["content"], by_id["c5"]["content"]  # the run's own baselines
    assert [e["type"] for e in evs].count("resume") == 1
    assert {r["kind"] for r in evs if r["type"] == "api_retry"} == {"rate_limited"}
    assert sum(1 for e in evs if e["type"] == "api_retry") == 2
    assistants = [e for e in evs if e["type"] == "assistant"]
    assert [a["turn"] for a in assistants] == list(range(1, 9))
    assert all(a["cost_usd"] > 0 and a["usage"]["input_tokens"] > 0 for a in assistants)
    assert assistants[-1]["total_cost_usd"] == pytest.approx(7 * 0.0045 + 0.3)
    assert evs[-1]["type"] == "stop" and final["cost_usd"] == pytest.approx(0.3315)

    idea_jobs = [j for j in list_jobs() if j["kind"] == "idea_run"]
    assert len(idea_jobs) == 1 and idea_jobs[0]["meta"]["agent_id"] == agent["id"]
    assert idea_jobs[0]["state"] == "succeeded"
    assert KEY not in (Path(idea_jobs[0]["run_dir"]) / "stdout.log").read_text()
    assert list((workspace / "cache_results").glob(f"demo-math_{agent['idea']}/*/seed_42.json"))

    from core.control import findings
    from core.control.store import Store

    shared = findings.list_findings(Store())
    assert [(f["author"], f["run"]) for f in shared] == [(f"run:{job_id}", job_id)]
    evaluations = Store().table("evaluations").all()
    assert len(evaluations) >= 1

    # the CLI views of the same agent
    assert run_cli("agent", "list") == 0
    assert run_cli("agent", "transcript", agent["id"]) == 0


def test_launch_without_key_starts_nothing(workspace: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert run_cli("agent", "launch", "--direction", "x") == 1
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (workspace / "runs").exists() and not (workspace / ".w2s" / "service.json").exists()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "cli.main", "agent", "launch", "--direction", "x"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "ANTHROPIC_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert list_agents() == []
