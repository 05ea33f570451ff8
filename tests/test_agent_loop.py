"""The agent loop through the real ``anthropic`` SDK against the local fake Messages API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.agent.budgets import Budgets
from core.agent.client import ModelCaller, RetryPolicy, make_client
from core.agent.loop import STATE_WAITING, AgentLoop, AgentSpec
from core.agent.prices import Price
from core.agent.tools import TOOLS_BY_NAME, tool_names, tool_schemas
from core.agent.transcript import iter_events, replay
from tests.fakes.anthropic_server import FakeAnthropic, text, tool_use, turn

KEY = "sk-test-key"
PRICE = Price(input=3.0, output=15.0)  # $ per MTok: 1000 in + 100 out = $0.0045 a turn


def make_loop(ws: Path, url: str, budgets: Budgets | None = None, key: str = KEY, updates=None):
    spec = AgentSpec(
        agent_id="a1",
        job_id="j1",
        idea_name="agent_a1",
        direction="try confidence reweighting",
        budgets=budgets or Budgets(max_usd=1.0, max_turns=20, max_wall_s=600, max_evals=3),
        model="claude-test",
        max_tokens=512,
        run_dir=ws / "runs" / "j1",
        folder=ws / "ideas" / "agent_a1",
    )
    caller = ModelCaller(make_client(api_key=key, base_url=url), spec.model, spec.max_tokens,
                         RetryPolicy(base_s=0.01, cap_s=0.05), seed=0)
    sink = updates if updates is not None else []
    return AgentLoop(spec, caller, on_update=sink.append, price=PRICE), spec


def events(spec: AgentSpec) -> list[dict]:
    return list(iter_events(spec.transcript_path))


THINKING = {"type": "thinking", "thinking": "plan: write, read, edit", "signature": "sig-abc"}
SCRIPT = [
    turn(THINKING, text("I will write a note."),
         tool_use("t1", "write_file", {"path": "notes.md", "content": "hello\n"})),
    turn(tool_use("t2", "read_file", {"path": "notes.md"}), tool_use("t3", "read_file", {"path": "../../x"})),
    turn(tool_use("t4", "edit_file", {"path": "notes.md", "old_text": "hello", "new_text": "bye"})),
    turn(tool_use("t5", "finish", {"summary": "wrote and edited a note"})),
]


@pytest.fixture
def fake():
    servers = []

    def start(script, **kw):
        server = FakeAnthropic(script, api_key=KEY, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def test_tools_rate_limits_costs_and_finish(workspace: Path, fake) -> None:
    server = fake(SCRIPT, errors={1: [(429, {"retry-after-ms": "10"})], 2: [(529, {})]})
    updates: list[dict] = []
    loop, spec = make_loop(workspace, server.url, updates=updates)
    reason = loop.run()
    assert reason == "finished"
    assert (spec.folder / "notes.md").read_text() == "bye\n"
    evs = events(spec)
    kinds = [e["type"] for e in evs]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assistants = [e for e in evs if e["type"] == "assistant"]
    assert [a["turn"] for a in assistants] == [1, 2, 3, 4]
    assert all(a["cost_usd"] == pytest.approx(0.0045) for a in assistants)
    assert assistants[-1]["total_cost_usd"] == pytest.approx(0.018)
    results = {e["id"]: e for e in evs if e["type"] == "tool_result"}
    calls = [e["id"] for e in evs if e["type"] == "tool_call"]
    assert calls == ["t1", "t2", "t3", "t4", "t5"] and set(results) == set(calls)
    assert results["t3"]["is_error"] and "outside your folder" in results["t3"]["content"]
    assert "hello" in results["t2"]["content"] and not results["t2"]["is_error"]
    retries = [e for e in evs if e["type"] == "api_retry"]
    assert [r["kind"] for r in retries] == ["rate_limited", "rate_limited"]
    states = [e["state"] for e in evs if e["type"] == "state"]
    assert states.count(STATE_WAITING) == 2 and states[-1] == "running"
    assert [s for _, s in server.responses] == [200, 429, 200, 529, 200, 200]
    assert any(u.get("state") == STATE_WAITING for u in updates)
    final = updates[-1]
    assert final["state"] == "finished" and final["summary"] == "wrote and edited a note"
    assert final["usage"]["turns"] == 4 and final["cost_usd"] == pytest.approx(0.018)
    # the tool results the model saw came back as tool_result blocks in order
    last = server.requests[-1]["messages"][-1]["content"]
    assert [b["tool_use_id"] for b in last] == ["t4"]
    # thinking blocks go back verbatim; cache breakpoints sit on the system prompt and the newest block only
    req = server.requests[-1]
    assert req["messages"][1]["content"][0] == THINKING
    assert req["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert last[-1]["cache_control"] == {"type": "ephemeral"}
    # ... and on the message that was newest one turn ago (the last stable turn), nowhere else
    marked = [i for i, m in enumerate(req["messages"]) if "cache_control" in json.dumps(m)]
    assert marked == [len(req["messages"]) - 3, len(req["messages"]) - 1]
    assert req["messages"][-3]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in spec.transcript_path.read_text()
    # the model is offered exactly the tools the loop can dispatch, as declared once
    assert [t["name"] for t in req["tools"]] == tool_names() and set(tool_names()) == set(TOOLS_BY_NAME)
    assert req["tools"] == tool_schemas()


def test_usd_budget_stops_cleanly(workspace: Path, fake) -> None:
    def script(i, req):
        return turn(tool_use(f"c{i}", "list_files", {}), input_tokens=100_000, output_tokens=1000)

    server = fake(script)
    budgets = Budgets(max_usd=0.5, max_turns=50, max_wall_s=600, max_evals=1)
    loop, spec = make_loop(workspace, server.url, budgets)
    reason = loop.run()
    assert reason.startswith("budget_usd")
    stop = events(spec)[-1]
    assert stop["type"] == "stop" and stop["state"] == "stopped"
    # $0.315 a turn: the second turn crosses $0.50 and its tool calls are not run
    assert len(server.requests) == 2
    assert [e["id"] for e in events(spec) if e["type"] == "tool_result"] == ["c0"]
    assert replay(spec.transcript_path).cost_usd == pytest.approx(0.63)


def test_turn_budget_and_nudges(workspace: Path, fake) -> None:
    server = fake([turn(text("thinking..."))])
    budgets = Budgets(max_usd=5, max_turns=10, max_wall_s=600, max_evals=1)
    loop, spec = make_loop(workspace, server.url, budgets)
    assert loop.run().startswith("no_tool_use")
    assert len(server.requests) == 3  # two nudges, then stop
    server2 = fake(lambda i, r: turn(tool_use(f"x{i}", "list_files", {})))
    loop2, spec2 = make_loop(workspace / "b", server2.url, Budgets(max_usd=5, max_turns=3, max_wall_s=600))
    assert loop2.run().startswith("max_turns")
    assert len(server2.requests) == 3
    server3 = fake([turn()])  # an empty reply must not be sent back as an empty message
    loop3, _ = make_loop(workspace / "c", server3.url)
    assert loop3.run().startswith("no_tool_use")
    assert all(m["content"] for m in server3.requests[-1]["messages"])


def test_bad_key_fails_fast(workspace: Path, fake) -> None:
    server = fake(SCRIPT)
    loop, spec = make_loop(workspace, server.url, key="sk-wrong")
    reason = loop.run()
    assert "ANTHROPIC_API_KEY" in reason and "401" in reason
    assert len(server.requests) == 1
    assert events(spec)[-1]["state"] == "failed"


def test_rate_limit_retries_are_capped(workspace: Path, fake) -> None:
    server = fake(SCRIPT, errors={0: [(429, {"retry-after-ms": "1"})] * 50})
    loop, spec = make_loop(workspace, server.url)
    loop.caller.policy = RetryPolicy(base_s=0.001, cap_s=0.01, max_rate_limit_retries=3)
    reason = loop.run()
    assert reason.startswith("api: rate_limited: gave up after 3 retries")
    assert len(server.requests) == 4


def test_resume_records_the_interrupted_call_and_reruns_nothing(workspace: Path, fake) -> None:
    script = [
        turn(tool_use("s1", "run_shell", {"command": "echo one >> runs.log"})),
        turn(tool_use("s2", "run_shell", {"command": "echo two >> runs.log"}),
             tool_use("s3", "run_shell", {"command": "echo three >> runs.log"}),
             tool_use("s3b", "run_shell", {"command": "echo four >> runs.log"})),
        turn(tool_use("s4", "finish", {"summary": "done"})),
    ]
    server = fake(script)
    loop, spec = make_loop(workspace, server.url)
    assert loop.run() == "finished"
    log = spec.folder / "runs.log"
    assert log.read_text().split() == ["one", "two", "three", "four"]
    # simulate a crash while s3 was running: cut the transcript after s3's tool_call (plus a torn line)
    lines = spec.transcript_path.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"tool_call"' in line and '"s3"' in line)
    spec.transcript_path.write_text("".join(lines[: cut + 1]) + '{"type": "assistant", "tur')
    rep = replay(spec.transcript_path)
    assert [c["id"] for c in rep.pending_calls] == ["s3", "s3b"] and set(rep.open_results) == {"s2"}
    assert [c["id"] for c in rep.interrupted_calls] == ["s3"]
    n_before = len(server.requests)
    loop2, _ = make_loop(workspace, server.url)
    assert loop2.run() == "finished"
    # nothing ran twice: s3 (in flight) is recorded as interrupted, s3b (after it) as not run
    assert log.read_text().split() == ["one", "two", "three", "four"]
    assert len(server.requests) == n_before + 1  # one new model call (turn 3)
    evs = events(spec)
    assert sum(1 for e in evs if e["type"] == "tool_result" and e["id"] == "s2") == 1
    s3 = [e for e in evs if e["type"] == "tool_result" and e["id"] == "s3"]
    assert len(s3) == 1 and s3[0]["interrupted"] and s3[0]["is_error"]
    assert "not run again" in s3[0]["content"]
    s3b = [e for e in evs if e["type"] == "tool_result" and e["id"] == "s3b"]
    assert len(s3b) == 1 and s3b[0]["skipped"] and "not run" in s3b[0]["content"]
    assert any(e["type"] == "resume" and e["interrupted_calls"] == ["s3"] for e in evs)
    # the resumed request carried the earlier turns exactly, and told the model what was interrupted
    msgs = server.requests[-1]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user"]
    assert json.dumps(msgs[2]["content"]).count("tool_result") == 1
    answers = {b["tool_use_id"]: b for b in msgs[4]["content"]}
    assert answers["s3"]["is_error"] and "interrupted" in answers["s3"]["content"]
    # a crash before any call of the turn began: its calls are still run (nothing can be half done)
    lines = spec.transcript_path.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if '"tool_call"' in line and '"s2"' in line)
    spec.transcript_path.write_text("".join(lines[:first]))
    loop3, _ = make_loop(workspace, server.url)
    assert loop3.run() == "finished"
    assert log.read_text().split() == ["one", "two", "three", "four", "two", "three", "four"]


def test_big_tool_result_truncated_with_pointer(workspace: Path, fake) -> None:
    script = [
        turn(tool_use("b1", "run_shell", {"command": "python -c \"print('x' * 9000)\""})),
        turn(tool_use("b2", "finish", {"summary": "ok"})),
    ]
    server = fake(script)
    loop, spec = make_loop(workspace, server.url)
    assert loop.run() == "finished"
    res = next(e for e in events(spec) if e["type"] == "tool_result" and e["id"] == "b1")
    assert res["truncated"] and res["full_path"] == "tool_outputs/b1.txt"
    full = (spec.run_dir / res["full_path"]).read_text()
    assert full.count("x") >= 9000 and len(res["content"]) < len(full)
    sent = server.requests[1]["messages"][-1]["content"][0]["content"]
    assert sent == full  # the model saw the whole output; the transcript keeps a pointer
    assert replay(spec.transcript_path).messages[-2]["content"][0]["content"] == full
