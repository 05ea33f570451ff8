"""``w2s agent``: launch research agents as jobs, list them, stop or resume them, read transcripts."""

from __future__ import annotations

import argparse
import json
import time

from core.app.agents import (
    DEFAULT_EVALS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TURNS,
    DEFAULT_USD,
    DEFAULT_WALL_S,
    FINAL_STATES,
    UNVERIFIED_LABEL,
    find_agent,
    format_event,
    get_agent,
    launch_agent,
    list_agents,
    read_transcript,
    resume_agent,
    stop_agent,
)
from web.launcher import ensure_service


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="research agents: launch, list, stop, resume, transcript")
    verbs = agent.add_subparsers(dest="agent_verb", metavar="ACTION")
    agent.set_defaults(func=_list)

    launch = verbs.add_parser("launch", help="queue a Claude research agent (needs ANTHROPIC_API_KEY)")
    what = launch.add_mutually_exclusive_group(required=True)
    what.add_argument("--direction", help="the research direction, in words")
    what.add_argument("--idea-md", type=int, metavar="N", help="use direction N of Idea.md")
    launch.add_argument("--budget-usd", type=float, default=DEFAULT_USD, help=f"default {DEFAULT_USD}")
    launch.add_argument("--max-turns", type=int, default=DEFAULT_TURNS, help=f"default {DEFAULT_TURNS}")
    launch.add_argument("--max-evals", type=int, default=DEFAULT_EVALS, help=f"default {DEFAULT_EVALS}")
    launch.add_argument("--max-hours", type=float, default=DEFAULT_WALL_S / 3600,
                        help=f"wall-time budget, default {DEFAULT_WALL_S / 3600:g}")
    launch.add_argument("--executor", default=None,
                        help="where the agent's job runs (default: the service's --executor, else local)")
    launch.add_argument("--model", default=None,
                        help="Claude model (default: W2S_AGENT_MODEL, else the built-in default)")
    launch.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    launch.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="debugging only: run the agent's shell unisolated when no sandbox works here "
                             "(its results are unverified and never ranked)")
    launch.set_defaults(func=_launch)

    lst = verbs.add_parser("list", help="agents, newest first")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    stop = verbs.add_parser("stop", help="stop an agent cleanly (its job is cancelled)")
    stop.add_argument("id")
    stop.set_defaults(func=_stop)

    resume = verbs.add_parser("resume", help="re-queue a crashed agent; it resumes from its transcript")
    resume.add_argument("id")
    resume.set_defaults(func=_resume)

    tr = verbs.add_parser("transcript", help="print an agent's transcript")
    tr.add_argument("id")
    tr.add_argument("-f", "--follow", action="store_true", help="keep printing until the agent ends")
    tr.add_argument("--json", action="store_true", help="raw JSONL events")
    tr.set_defaults(func=_transcript)


def _launch(args: argparse.Namespace, unknown: list[str]) -> int:
    doc = launch_agent(
        args.direction,
        idea_md=args.idea_md,
        budget_usd=args.budget_usd,
        max_turns=args.max_turns,
        max_evals=args.max_evals,
        max_wall_s=args.max_hours * 3600,
        executor=args.executor,
        model=args.model,
        max_tokens=args.max_tokens,
        unsafe_no_sandbox=args.unsafe_no_sandbox,
    )
    ensure_service()  # queued jobs start only under `w2s serve`
    print(f"agent {doc['id']} queued as job {doc['job_id']} (idea folder ideas/{doc['idea']}/)")
    if doc.get("verified") is False:
        print(f"warning: no sandbox: the agent's shell runs unisolated; results {UNVERIFIED_LABEL}")
    print(f"follow it: w2s agent transcript {doc['id']} -f")
    return 0


def _list(args: argparse.Namespace, unknown: list[str]) -> int:
    agents = list_agents()
    if getattr(args, "json", False):
        print(json.dumps(agents, indent=2, default=str))
        return 0
    if not agents:
        print("no agents")
        return 0
    for a in agents:
        usage = a.get("usage") or {}
        budgets = a.get("budgets") or {}
        direction = (a.get("direction") or "").splitlines()[0][:50]
        print(
            f"{a['id']}  job {a.get('job_id') or '-':<8}  {a.get('state'):<22}  "
            f"${float(a.get('cost_usd') or 0):.3f}/${float(budgets.get('max_usd') or 0):.2f}  "
            f"turns {usage.get('turns', 0)}/{budgets.get('max_turns', '?')}  "
            f"evals {usage.get('evals', 0)}/{budgets.get('max_evals', '?')}  {direction}"
            + (f"  [{a['stop_reason']}]" if a.get("stop_reason") else "")
            + (f"  [{UNVERIFIED_LABEL}]" if a.get("verified") is False else "")
        )
    return 0


def _stop(args: argparse.Namespace, unknown: list[str]) -> int:
    doc = stop_agent(args.id)
    print(f"agent {doc['id']}: stop requested (state {doc.get('state')})")
    return 0


def _resume(args: argparse.Namespace, unknown: list[str]) -> int:
    doc = resume_agent(args.id)
    ensure_service()
    print(f"agent {doc['id']}: re-queued as job {doc['job_id']}; it resumes from its transcript")
    return 0


def _transcript(args: argparse.Namespace, unknown: list[str]) -> int:
    agent = find_agent(args.id)
    offset = 0
    while True:
        events, offset = read_transcript(agent, offset, include_unparsed=False)
        for ev in events:
            print(json.dumps(ev, default=str) if args.json else format_event(ev), flush=True)
        if not args.follow:
            return 0
        if any(ev.get("type") == "stop" for ev in events):
            return 0
        current = get_agent(agent["id"]) or agent
        if current.get("state") in FINAL_STATES and not events:
            return 0
        agent = current
        time.sleep(0.5)
