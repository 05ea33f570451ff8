"""What a week-long agent needs, through the real ``anthropic`` SDK against the Messages API stand-in:
a new agent's first listing, wrap-up turns after its evaluations run out, compaction when the
prompt outgrows the window (the stand-in refuses it as the API does), prompt caching with exact
costs, one turn to wait for a long job, image tool results, and the research log."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.agent.budgets import WRAP_UP_TURNS, Budgets
from core.agent.client import ModelCaller, RetryPolicy, make_client
from core.agent.loop import AgentLoop, AgentSpec
from core.agent.prices import Price
from core.agent.transcript import iter_events, replay
from core.control import findings
from core.control.jobs import get_job, submit_job
from core.control.scheduler import Scheduler
from core.control.store import Store
from tests.conftest import wait_until
from tests.fakes.anthropic_server import FakeAnthropic, text, tool_results, tool_use, turn
from tests.fakes.token_model import TokenModel, count_tokens

KEY = "sk-long-runs"
PRICE = Price(input=3.0, output=15.0)


def make_loop(ws: Path, url: str, budgets: Budgets | None = None, context_tokens: int = 200_000,
              updates: list | None = None, stop_check=None) -> tuple[AgentLoop, AgentSpec]:
    spec = AgentSpec(agent_id="a1", job_id="j1", idea_name="agent_a1", direction="long research",
                     budgets=budgets or Budgets(max_usd=5.0, max_turns=300, max_wall_s=3600, max_evals=3),
                     model="claude-test", max_tokens=512, run_dir=ws / "runs" / "j1",
                     folder=ws / "ideas" / "agent_a1", context_tokens=context_tokens)
    caller = ModelCaller(make_client(api_key=KEY, base_url=url), spec.model, spec.max_tokens,
                         RetryPolicy(base_s=0.01, cap_s=0.05), seed=0)
    sink = updates if updates is not None else []
    return AgentLoop(spec, caller, on_update=sink.append, price=PRICE, stop_check=stop_check), spec


@pytest.fixture
def fake():
    servers: list[FakeAnthropic] = []

    def start(script, **kw) -> FakeAnthropic:
        server = FakeAnthropic(script, api_key=KEY, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def scheduler(workspace: Path):
    """A real scheduler ticking in a thread (local executor, real processes)."""
    stop = threading.Event()
    sched = Scheduler(gpus=[], limits={"local": 2}, poll_interval=0.05)
    thread = threading.Thread(target=sched.run, args=(stop,), daemon=True)
    thread.start()
    yield sched
    stop.set()
    thread.join(timeout=10)


def events(spec: AgentSpec) -> list[dict[str, Any]]:
    return list(iter_events(spec.transcript_path))


def results_by_id(spec: AgentSpec) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in events(spec) if e["type"] == "tool_result"}


def without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_cache_control(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------ item 7
def test_list_files_works_on_a_new_agent(workspace: Path, fake) -> None:
    server = fake([turn(tool_use("l1", "list_files", {})), turn(tool_use("l2", "list_files", {"path": "./"})),
                   turn(tool_use("w1", "write_file", {"path": "a.txt", "content": "x"}),
                        tool_use("l3", "list_files", {})),
                   turn(tool_use("f", "finish", {"summary": "listed"}))])
    loop, spec = make_loop(workspace, server.url)
    assert not spec.folder.exists()
    assert loop.run() == "finished"
    res = results_by_id(spec)
    for call in ("l1", "l2"):
        assert not res[call]["is_error"] and "no files yet" in res[call]["content"], res[call]
    assert not res["l3"]["is_error"] and "a.txt" in res["l3"]["content"]


def test_out_of_evaluations_leaves_turns_to_share_and_finish(workspace: Path, fake) -> None:
    budgets = Budgets(max_usd=5.0, max_turns=50, max_wall_s=600, max_evals=0)
    server = fake([
        turn(tool_use("e1", "evaluate", {"dataset": "demo-math", "predictions_file": "p.json"})),
        turn(tool_use("s1", "share_finding", {"title": "Nothing scored", "summary": "no evaluations were left"})),
        turn(tool_use("f1", "finish", {"summary": "shared what I had"})),
    ])
    updates: list[dict] = []
    loop, spec = make_loop(workspace, server.url, budgets, updates=updates)
    assert loop.run() == "finished"  # the message was true: the agent shared and finished
    res = results_by_id(spec)
    assert res["e1"]["is_error"] and f"{WRAP_UP_TURNS} more turns" in res["e1"]["content"]
    assert not res["s1"]["is_error"]
    assert [f["title"] for f in findings.list_findings(Store())] == ["Nothing scored"]
    wrap = [e for e in events(spec) if e["type"] == "wrap_up"]
    assert len(wrap) == 1 and wrap[0]["turn"] == 1 and wrap[0]["reason"].startswith("max_evals")
    # the research log is written when the run stops, and its path reaches the agents table
    report = (spec.run_dir / "report.md").read_text()
    assert "Research log" in report and "Nothing scored" in report and "shared what I had" in report
    assert updates[-1]["report_path"] == str(spec.run_dir / "report.md")
    shown = events(spec)[-2]  # the log is in the transcript too (the dashboard, TUI and CLI show it)
    assert shown["type"] == "report" and shown["text"] == report and events(spec)[-1]["type"] == "stop"
    facts = json.loads((spec.run_dir / "report.json").read_text())
    assert facts["turns"] == 3 and facts["state"] == "finished" and facts["tools"]["evaluate"] == 1

    # an agent that ignores the message is stopped after exactly WRAP_UP_TURNS more turns
    def stubborn(i: int, req: dict) -> dict:
        if i == 0:
            return turn(tool_use("e", "evaluate", {"dataset": "demo-math", "predictions_file": "p.json"}))
        return turn(tool_use(f"l{i}", "list_files", {}))

    server2 = fake(stubborn)
    loop2, spec2 = make_loop(workspace / "b", server2.url, budgets)
    reason = loop2.run()
    assert reason.startswith("max_evals") and len(server2.requests) == 1 + WRAP_UP_TURNS
    assert replay(spec2.transcript_path).wrap_up is not None


# ------------------------------------------------------------------------------------------ item 1
NOTES = "plan: sweep the confidence threshold; seeds 1-3 each"
BIG = "".join(f"line {i}: " + "abcdefghij" * 7 + "\n" for i in range(60))  # ~5 KB, ~1.3k tokens a read


def long_script(n_turns: int):
    def script(i: int, req: dict) -> dict:
        if i == 0:
            return turn(text("Taking notes first."),
                        tool_use("n0", "write_file", {"path": "NOTES.md", "content": NOTES}),
                        tool_use("b0", "write_file", {"path": "big.txt", "content": BIG}), input_tokens=None)
        if i >= n_turns:
            return turn(tool_use(f"f{i}", "finish", {"summary": f"{i} turns"}), input_tokens=None)
        return turn(text(f"Step {i}: reading again."), tool_use(f"r{i}", "read_file", {"path": "big.txt"}),
                    input_tokens=None)
    return script


def test_an_episode_longer_than_the_window_compacts_and_finishes(workspace: Path, fake) -> None:
    window = 30_000
    server = fake(long_script(80), tokens=TokenModel(context_window=window, min_cache_tokens=1024))
    loop, spec = make_loop(workspace, server.url)  # the loop believes in a 200k window: the API corrects it
    assert loop.run() == "finished"
    statuses = [s for _, s in server.responses]
    assert statuses.count(400) >= 1  # the prompt outgrew the stand-in's window at least once...
    assert loop.window == window  # ...and the loop took the window from the API's message
    # every turn was answered exactly once, in order: compaction never replays or skips a turn
    assert [i for i, s in server.responses if s == 200] == list(range(81))
    comp = [e for e in events(spec) if e["type"] == "compact"]
    assert len(comp) >= 2 and comp[0]["reason"].startswith("HTTP 400: prompt is too long")
    assert any("of 30000 tokens" in c["reason"] for c in comp[1:])  # later ones come before the limit
    assert [c["dropped_turns"] for c in comp] == sorted(c["dropped_turns"] for c in comp)
    # the note carries the agent's NOTES.md and the turns it folded; no request was over the window
    last = server.requests[-1]
    first_texts = [b["text"] for b in last["messages"][0]["content"]]
    note = first_texts[1]
    folded = int(note.split("the first ")[1].split(" turns")[0])
    assert NOTES in note and f"turn {folded}: Step {folded - 1}: reading again. [read_file(" in note
    assert "older lines left out" in note and "long research" in first_texts[0]  # the note stays bounded
    ok = [r for r, (_, s) in zip(server.requests, server.responses, strict=True) if s == 200]
    assert max(count_tokens(r) for r in ok) <= window
    # the transcript is exact: replay rebuilds what the loop last sent, without the cache marks
    rep = replay(spec.transcript_path)
    assert rep.compactions == len(comp)
    assert rep.messages[:-2] == without_cache_control(last["messages"])[:len(rep.messages) - 2]
    assert without_cache_control(last["messages"]) == rep.messages[: len(last["messages"])]
    # costs are exact, cache reads and writes priced: the transcript's total is the sum of what the
    # stand-in billed, and most input was read from the cache
    billed = sum(PRICE.cost(u) for u in server.usages)
    assert rep.cost_usd == pytest.approx(billed, rel=1e-6)
    assert events(spec)[-1]["usage"]["cost_usd"] == pytest.approx(billed, abs=1e-6)
    reads = sum(u["cache_read_input_tokens"] for u in server.usages)
    fresh = sum(u["input_tokens"] + u["cache_creation_input_tokens"] for u in server.usages)
    assert reads > 2 * fresh, (reads, fresh)
    assert rep.tokens["cache_read_input_tokens"] == reads


def test_a_resumed_run_sends_the_compacted_conversation(workspace: Path, fake) -> None:
    server = fake(long_script(30), tokens=TokenModel(context_window=12_000))
    loop, spec = make_loop(workspace, server.url)
    assert loop.run() == "finished"
    lines = spec.transcript_path.read_text().splitlines(keepends=True)
    comp = [i for i, line in enumerate(lines) if '"type": "compact"' in line]
    cut = next(i for i, line in enumerate(lines) if i > comp[-1] and '"type": "assistant"' in line)
    lost_turn = json.loads(lines[cut])["turn"]
    spec.transcript_path.write_text("".join(lines[:cut]))  # a crash after the last compaction's call
    original = next(r for r, (i, s) in zip(server.requests, server.responses, strict=True)
                    if i == lost_turn - 1 and s == 200)
    n = len(server.requests)
    loop2, _ = make_loop(workspace, server.url)
    assert loop2.run() == "finished"
    resent = server.requests[n]
    assert resent["messages"] == original["messages"]  # the same compacted conversation, marks and all
    assert resent["messages"][0]["content"][1]["text"].startswith("[context compacted: the first")


# ------------------------------------------------------------------------------------------ item 2
class SimClock:
    """Time for the wait tool: each poll stands for ``step`` seconds (and takes a few real ms)."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        time.sleep(0.05)
        self.now += self.step


def test_a_thirty_minute_job_costs_one_turn(workspace: Path, fake, scheduler) -> None:
    job = submit_job("idea_run", ["bash", "-c", "sleep 2; echo done"], meta={"agent_id": "a1", "seed": 1})
    server = fake([turn(tool_use("w1", "wait", {"timeout_s": 7200})),
                   turn(tool_use("f1", "finish", {"summary": "waited"}))])
    loop, spec = make_loop(workspace, server.url)
    clock = SimClock(step=60.0)  # each poll of the store stands for a minute of a long GPU run
    loop.ctx.clock, loop.ctx.sleep, loop.ctx.poll_s = clock, clock.sleep, 60.0
    assert loop.run() == "finished"
    assert len(server.requests) == 2  # one turn to wait, one to finish: no model call in between
    res = results_by_id(spec)["w1"]
    assert f"job {job['id']}: succeeded" in res["content"], res["content"]
    waited = float(res["content"].split("waited ")[1].split("s")[0])
    assert waited >= 1800, res["content"]  # over half an hour of (simulated) job time in one call
    assert [e["turn"] for e in events(spec) if e["type"] == "assistant"] == [1, 2]


def test_wait_wakes_on_a_finding_and_on_stop(workspace: Path, fake) -> None:
    def post() -> None:
        time.sleep(0.5)
        findings.share(Store(), title="Another agent's result", summary="it works", author="run:other")

    threading.Thread(target=post, daemon=True).start()
    server = fake([turn(tool_use("w1", "wait", {"timeout_s": 60})), turn(tool_use("f", "finish", {"summary": "ok"}))])
    loop, spec = make_loop(workspace, server.url)
    loop.ctx.poll_s = 0.1
    started = time.monotonic()
    assert loop.run() == "finished"
    assert time.monotonic() - started < 30
    assert "new finding" in results_by_id(spec)["w1"]["content"] and "Another agent's result" in \
        results_by_id(spec)["w1"]["content"]

    flag = {"stop": False}
    threading.Timer(0.5, lambda: flag.update(stop=True)).start()
    server2 = fake([turn(tool_use("w2", "wait", {"timeout_s": 600, "findings": True}))])
    loop2, spec2 = make_loop(workspace / "b", server2.url, stop_check=lambda: flag["stop"])
    loop2.ctx.poll_s = 0.1
    started = time.monotonic()
    assert loop2.run() == "stopped by user"
    assert time.monotonic() - started < 30


# ------------------------------------------------------------------------------------------ item 5
def png_size(block: dict) -> tuple[int, int]:
    data = base64.b64decode(block["source"]["data"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_returns_an_image_block(workspace: Path, fake, scheduler) -> None:
    job = submit_job("idea_run", ["bash", "-c", "for l in 0.9 0.7 0.55 0.5 0.42; do echo \"epoch: mean loss $l\"; done"],
                     meta={"agent_id": "a1", "seed": 1})
    wait_until(lambda: get_job(job["id"])["state"] == "succeeded", 60, 0.1, "the job")
    server = fake([turn(tool_use("p1", "plot", {"kind": "curve", "job_ids": [job["id"]]})),
                   turn(tool_use("p2", "plot", {"kind": "subsets"})),
                   turn(tool_use("f", "finish", {"summary": "looked"}))])
    loop, spec = make_loop(workspace, server.url)
    assert loop.run() == "finished"
    block = next(b for b in server.requests[1]["messages"][-1]["content"] if b["tool_use_id"] == "p1")
    kinds = [c["type"] for c in block["content"]]
    assert kinds == ["text", "image"] and not block["is_error"]
    assert png_size(block["content"][1]) == (480, 300)
    assert "5 points, last: 0.9, 0.7, 0.55, 0.5, 0.42" in block["content"][0]["text"]
    res = results_by_id(spec)
    assert res["p1"]["images"] == ["tool_outputs/p1_0.png"]
    assert res["p2"]["is_error"] and "no evaluations" in res["p2"]["content"]
    # replay hands back the very same image block
    rebuilt = replay(spec.transcript_path).messages[2]["content"][0]
    assert rebuilt == without_cache_control(block)
    assert tool_results(server.requests[1])["p1"].startswith("loss by log line")
