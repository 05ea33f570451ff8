"""Acceptance for long unattended runs: a scripted 200+ turn episode (``tests/agent_episode.py``)
through the real SDK against the Messages API stand-in, run as a job under a real ``w2s serve``.
It runs seeds and a variant in parallel, waits for them in one turn each, overflows the stand-in's
context window and compacts, gets image tool results, evaluates through the referee, shares a
finding and finishes within its budgets, with a transcript and a cost that are exact."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from core.agent.launcher import FINAL_STATES, launch_agent, list_agents
from core.agent.prices import price_for
from core.agent.transcript import iter_events, replay
from core.control.jobs import get_job, list_jobs
from tests.agent_episode import TOTAL_TURNS, Episode, prepare
from tests.conftest import wait_until
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.token_model import TokenModel

KEY = "sk-episode-key"
MODEL = "claude-sonnet-4-6"
WINDOW = 40_000


@pytest.fixture
def service_env() -> dict[str, str]:
    return {"W2S_LOCAL_CONCURRENCY": "4", "W2S_SCHED_POLL": "0.2", "W2S_CANCEL_GRACE": "2"}


def overlap(a: dict, b: dict) -> bool:
    def span(job: dict) -> tuple[float, float]:
        times = {h["state"]: h["time"] for h in job["history"]}
        return times["running"], times[job["state"]]

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def test_a_week_long_agent_in_two_hundred_turns(workspace: Path, monkeypatch, running_service) -> None:
    prepare(workspace)
    episode = Episode()
    tokens = TokenModel(context_window=WINDOW, clock=lambda: episode.clock)
    fake = FakeAnthropic(episode, api_key=KEY, tokens=tokens)
    fake.start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    try:
        agent = launch_agent("Probe constant predictions as a floor.", budget_usd=10.0, max_turns=260,
                             max_evals=5, max_wall_s=3600, model=MODEL)
        final = wait_until(lambda: next((a for a in list_agents() if a["id"] == agent["id"]
                                         and a["state"] in FINAL_STATES), None), 900, 0.5, "the agent to end")
    finally:
        fake.stop()
    transcript = Path(agent["transcript_path"])
    evs = list(iter_events(transcript))
    assert final["state"] == "finished", (final.get("stop_reason"), [e for e in evs if e["type"] == "stop"])

    # 200+ turns, every one answered once and in order; every call has exactly one result
    assistants = [e for e in evs if e["type"] == "assistant"]
    assert len(assistants) == TOTAL_TURNS >= 200
    assert [a["turn"] for a in assistants] == list(range(1, TOTAL_TURNS + 1))
    assert [i for i, s in fake.responses if s == 200] == list(range(TOTAL_TURNS))
    calls = [e["id"] for e in evs if e["type"] == "tool_call"]
    results = {e["id"]: e for e in evs if e["type"] == "tool_result"}
    assert len(calls) == len(set(calls)) and set(calls) == set(results)
    errors = {k: v["content"][:200] for k, v in results.items() if v["is_error"]}
    assert not errors, errors

    # parallel runs: four in flight from one turn, overlapping in time; all six succeeded
    runs = sorted((j for j in list_jobs() if j["kind"] == "idea_run"), key=lambda j: j["created"])
    assert len(runs) == 6 and all(j["state"] == "succeeded" for j in runs), [(j["id"], j["state"]) for j in runs]
    first_four = runs[:4]
    assert sum(overlap(a, b) for k, a in enumerate(first_four) for b in first_four[k + 1:]) >= 1
    # long waits cost one turn each: the 4 s variant and the second batch (2 s) each answered one call
    waits = [e for e in evs if e["type"] == "tool_call" and e["name"] == "wait"]
    assert len(waits) == 2
    for w in waits:
        res = results[w["id"]]
        assert res["content"].count("succeeded") == len(w["input"].get("job_ids") or first_four), res["content"]
        assert res["seconds"] >= 1.5 and "still in flight" not in res["content"]
    assert "validation" in results["c5_0"]["content"]  # job_status shows what run.py returned

    # context overflow: the stand-in refused a prompt as the API does; the loop compacted and went on
    assert [s for _, s in fake.responses].count(400) >= 1
    comp = [e for e in evs if e["type"] == "compact"]
    assert comp and comp[0]["reason"].startswith("HTTP 400: prompt is too long")
    assert len(comp) >= 3

    # image tool results: the subsets chart and the loss curves went to the model as PNG blocks
    images = [b for r in fake.requests for m in r["messages"][-1:] for b in m["content"]
              if isinstance(m["content"], list) and b.get("type") == "tool_result" and isinstance(b["content"], list)]
    kinds = {b["tool_use_id"]: [c["type"] for c in b["content"]] for b in images}
    assert kinds.get("c8a") == ["text", "image"] and kinds.get("c8b") == ["text", "image"]
    png = base64.b64decode(next(b for b in images if b["tool_use_id"] == "c8b")["content"][1]["source"]["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and results["c8b"]["images"] == ["tool_outputs/c8b_0.png"]

    # referee evaluations, within budget; the finding is linked to the runs behind it
    evals = [e for e in evs if e["type"] == "tool_result" and e.get("evaluation")]
    assert len(evals) == 3 and final["usage"]["evals"] == 3
    assert all('"accuracy"' in e["content"] for e in evals)
    from core.control import findings
    from core.control.store import Store

    (shared,) = findings.list_findings(Store())
    assert set(shared["config"]["runs"].split(",")) == {j["id"] for j in runs}
    assert shared["run"] == agent["job_id"]

    # the cost is exact: what the stand-in billed, priced by the table (cache reads and writes too)
    price = price_for(MODEL)
    billed = sum(price.cost(u) for u in fake.usages)
    assert final["cost_usd"] == pytest.approx(billed, abs=1e-6) and billed < 10.0
    assert sum(a["cost_usd"] for a in assistants) == pytest.approx(billed, abs=1e-5)
    rep = replay(transcript)
    assert rep.cost_usd == pytest.approx(billed, abs=1e-5) and rep.turns == TOTAL_TURNS
    reads = sum(u["cache_read_input_tokens"] for u in fake.usages)
    assert reads > sum(u["input_tokens"] + u["cache_creation_input_tokens"] for u in fake.usages)

    # the research log: in the run folder and linked from the agents table
    report = Path(final["report_path"]).read_text()
    assert "## Runs" in report and all(j["id"] in report for j in runs)
    assert re.search(r"Cost: \$\d+\.\d{4}", report) and f"{TOTAL_TURNS} turns" in report
    facts = json.loads((Path(final["report_path"]).parent / "report.json").read_text())
    assert len(facts["evaluations"]) == 3 and facts["compactions"] == len(comp)
    wait_until(lambda: get_job(agent["job_id"])["state"] == "succeeded", 60, 0.2, "the agent's job to end")
