"""Tokens and USD per agent-hour on the scripted stand-in episode, with prompt caching and context
compaction off and on.

    uv run python bench/agent_episode.py [--window 40000] [--model claude-sonnet-4-6] [--only after]

Each configuration runs ``tests/agent_episode.py`` (202 turns, six real idea runs, two long waits,
three referee evaluations, two plots) as a real agent job under a real ``w2s serve`` in a fresh
temporary workspace, against the Messages API stand-in (``tests/fakes``) that counts tokens, serves
the prompt cache (5-minute entries on the episode's simulated clock) and bills like the API:

- ``before``: no cache breakpoints, no compaction, and a stand-in with no context limit (with one,
  this run dies at its first overflow: the issue's starting point);
- ``cache``: prompt caching only, still no limit;
- ``after``: caching and compaction, the stand-in refusing prompts over ``--window`` tokens.

Agent-hours are the episode's simulated clock: 60 s per turn, plus 30 minutes for each wait (the
GPU run it stands for). USD uses the price table (``core/agent/prices.py``) for ``--model``.
Prints one JSON line per configuration, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS: dict[str, dict[str, Any]] = {
    "before": {"cache": False, "compact": False, "limit": False},
    "cache": {"cache": True, "compact": False, "limit": False},
    "after": {"cache": True, "compact": True, "limit": True},
}
KEY = "sk-bench-episode"


def run_config(name: str, window: int, model: str) -> dict[str, Any]:
    from core.agent.launcher import FINAL_STATES, launch_agent, list_agents
    from core.agent.prices import price_for
    from core.common.job_types import TERMINAL_STATES
    from core.control.jobs import get_job
    from tests.agent_episode import Episode, prepare
    from tests.fakes.anthropic_server import FakeAnthropic
    from tests.fakes.token_model import TokenModel
    from web import launcher

    conf = CONFIGS[name]
    with tempfile.TemporaryDirectory(prefix=f"w2s-bench-agent-{name}-", ignore_cleanup_errors=True) as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        env = {"W2S_WORKSPACE": str(ws), "W2S_LOCAL_CONCURRENCY": "4", "W2S_SCHED_POLL": "0.2",
               "ANTHROPIC_API_KEY": KEY, "W2S_AGENT_PROMPT_CACHE": "1" if conf["cache"] else "0",
               "W2S_AGENT_COMPACT": "1" if conf["compact"] else "0", "HF_HUB_OFFLINE": "1"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        episode = Episode()
        fake = FakeAnthropic(episode, api_key=KEY, tokens=TokenModel(
            context_window=window if conf["limit"] else None, caching=True, clock=lambda: episode.clock))
        fake.start()
        os.environ["ANTHROPIC_BASE_URL"] = fake.url
        started = time.monotonic()
        try:
            prepare(ws)
            launcher.start_service_detached(port=0, timeout=180)
            agent = launch_agent("Probe constant predictions as a floor.", budget_usd=100.0, max_turns=400,
                                 max_evals=5, max_wall_s=7200, model=model)
            final = None
            while final is None:
                time.sleep(0.5)
                final = next((a for a in list_agents() if a["id"] == agent["id"] and a["state"] in FINAL_STATES),
                             None)
                if time.monotonic() - started > 1800:
                    raise TimeoutError(f"{name}: the agent did not end in 30 minutes")
            deadline = time.monotonic() + 60  # let its job end before the service goes
            while (get_job(agent["job_id"]) or {}).get("state") not in TERMINAL_STATES and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            fake.stop()
            try:
                launcher.stop_service(timeout=20)
            except Exception as exc:  # noqa: BLE001 - report, and restore the environment anyway
                print(f"{name}: stopping the service: {exc}", file=sys.stderr)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            os.environ.pop("ANTHROPIC_BASE_URL", None)
    price = price_for(model)
    usages = fake.usages
    total = {k: sum(int(u.get(k, 0)) for u in usages) for k in
             ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")}
    prompt = total["input_tokens"] + total["cache_read_input_tokens"] + total["cache_creation_input_tokens"]
    usd = sum(price.cost(u) for u in usages)
    hours = episode.agent_hours
    return {
        "config": name, "model": model, "window": window if conf["limit"] else None, "state": final["state"],
        "stop_reason": final.get("stop_reason"), "turns": len(usages), "agent_hours": round(hours, 2),
        "overflows": [s for _, s in fake.responses].count(400), "compactions": final.get("compactions", 0),
        **total, "prompt_tokens": prompt, "cache_read_share": round(total["cache_read_input_tokens"] / max(1, prompt), 3),
        "max_prompt_tokens": max((u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
                                  for u in usages), default=0),
        "usd": round(usd, 4), "usd_recorded": final.get("cost_usd"),
        "prompt_tokens_per_agent_hour": round(prompt / hours), "usd_per_agent_hour": round(usd / hours, 4),
        "wall_s": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=40_000, help="the stand-in's context window for 'after'")
    parser.add_argument("--model", default="claude-sonnet-4-6")
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append")
    args = parser.parse_args()
    rows = []
    for name in args.only or list(CONFIGS):
        row = run_config(name, args.window, args.model)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| config | state | turns | agent-h | prompt tokens | cache reads | cache writes | uncached in | out | "
          "USD | prompt tok / agent-h | USD / agent-h | max prompt |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['config']} | {r['state']} | {r['turns']} | {r['agent_hours']} | {r['prompt_tokens']:,} | "
              f"{r['cache_read_input_tokens']:,} | {r['cache_creation_input_tokens']:,} | {r['input_tokens']:,} | "
              f"{r['output_tokens']:,} | {r['usd']:.2f} | {r['prompt_tokens_per_agent_hour']:,} | "
              f"{r['usd_per_agent_hour']:.3f} | {r['max_prompt_tokens']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
