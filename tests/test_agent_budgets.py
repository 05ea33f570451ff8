"""Prices, budgets, retry policy and the loop's wall-time and stop checks."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import pytest

from core.agent import client as agent_client
from core.agent.budgets import Budgets, Usage, exhausted
from core.agent.client import ModelCaller, RetriesExhausted, RetryPolicy, make_client
from core.agent.loop import AgentLoop, AgentSpec
from core.agent.prices import PRICES, Price, add_usage, load_prices, price_for
from core.agent.transcript import iter_events
from tests.fakes.anthropic_server import FakeAnthropic, tool_use, turn


def test_prices_and_overrides(workspace: Path) -> None:
    sonnet = price_for("claude-sonnet-4-5-20250929", PRICES)
    assert sonnet == PRICES["claude-sonnet-4-5"]
    assert sonnet.cost({"input_tokens": 1_000_000, "output_tokens": 1_000_000}) == pytest.approx(18.0)
    cached = sonnet.cost({"cache_creation_input_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000})
    assert cached == pytest.approx(3.75 + 0.3)
    dearest = max(p.output for p in PRICES.values())
    assert price_for("some-unknown-model", PRICES).output == dearest  # never under-count
    (workspace / ".w2s").mkdir()
    (workspace / ".w2s" / "agent_prices.json").write_text(json.dumps({"my-model": {"input": 1, "output": 2}}))
    assert price_for("my-model", load_prices()) == Price(1.0, 2.0)
    assert add_usage({"input_tokens": 5}, {"input_tokens": 2, "output_tokens": 3})["output_tokens"] == 3


def test_budget_checks() -> None:
    b = Budgets(max_usd=1.0, max_turns=3, max_wall_s=10, max_evals=2)
    assert exhausted(b, Usage()) is None
    assert exhausted(b, Usage(cost_usd=1.0)).startswith("budget_usd")
    assert exhausted(b, Usage(turns=3)).startswith("max_turns")
    assert exhausted(b, Usage(elapsed_s=11)).startswith("max_wall")
    assert Budgets.from_dict(b.to_dict()) == b
    with pytest.raises(ValueError):
        Budgets(max_usd=0)


def test_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=8.0)
    rng = random.Random(1)
    waits = [agent_client.backoff_s(policy, n, None, rng) for n in range(10)]
    assert all(0 < w <= 8.0 for w in waits) and max(waits) > 4.0
    assert agent_client.backoff_s(policy, 0, 3.0, rng) == pytest.approx(3.0, rel=0.11)
    assert agent_client.backoff_s(policy, 0, 500.0, rng) == 8.0


def test_network_errors_are_retried_with_a_cap() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: connections are refused
    waits: list[tuple[str, int]] = []
    caller = ModelCaller(make_client(api_key="k", base_url=f"http://127.0.0.1:{port}"), "m", 10,
                         RetryPolicy(base_s=0.001, cap_s=0.002, max_network_retries=2),
                         on_wait=lambda kind, s, n, e: waits.append((kind, n)))
    with pytest.raises(RetriesExhausted, match="network"):
        caller.create("sys", [{"role": "user", "content": "hi"}], [])
    assert waits == [("network", 1), ("network", 2)]


def test_missing_key_is_named(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(agent_client.FatalAPIError, match="ANTHROPIC_API_KEY"):
        make_client()


def _loop(ws: Path, url: str, budgets: Budgets, **kw) -> tuple[AgentLoop, AgentSpec]:
    spec = AgentSpec("a", "j", "agent_a", "d", budgets, "claude-sonnet-5-5", 64, ws / "runs" / "j",
                     ws / "ideas" / "agent_a")
    caller = ModelCaller(make_client(api_key="k", base_url=url), spec.model, 64, RetryPolicy(base_s=0.001))
    return AgentLoop(spec, caller, **kw), spec


def test_wall_budget_and_user_stop(workspace: Path) -> None:
    fake = FakeAnthropic(lambda i, r: turn(tool_use(f"w{i}", "list_files", {})), api_key="k")
    fake.start()
    try:
        ticks = iter(range(0, 100_000, 10))
        loop, spec = _loop(workspace, fake.url, Budgets(max_wall_s=300), clock=lambda: float(next(ticks)))
        assert loop.run().startswith("max_wall")
        assert 1 <= len(fake.requests) <= 10
        asked = {"n": 0}

        def stop_after_two() -> bool:
            asked["n"] += 1
            return asked["n"] > 2

        loop2, spec2 = _loop(workspace / "b", fake.url, Budgets(), stop_check=stop_after_two)
        assert loop2.run() == "stopped by user"
        assert list(iter_events(spec2.transcript_path))[-1]["state"] == "stopped"
    finally:
        fake.stop()
