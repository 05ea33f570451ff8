"""The research log: a short report of one agent's run, written beside its transcript when it stops.

Everything in it comes from the transcript (what the agent did, what the referee answered, what it
cost) and the job store (how each run ended), never from the agent's own claims, except its final
summary, quoted as such. ``runs/<job>/report.md`` is for people; the same facts as JSON
(``report.json``) are what the front ends show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.agent.transcript import TRANSCRIPT_NAME, iter_events
from core.common.atomic import atomic_write_json, atomic_write_text
from core.control.jobs import list_jobs

REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def _answer(content: str) -> dict[str, Any]:
    try:
        data = json.loads(content.split("\n(evaluations left")[0])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def collect(run_dir: Path, agent_id: str, ending: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's facts, from the transcript and the store; ``ending`` (state, reason, summary,
    usage) stands for the stop event when the loop writes the report just before recording it."""
    calls: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {"agent_id": agent_id, "job_id": run_dir.name, "evaluations": [], "findings": [],
                             "compactions": 0, "turns": 0, "cost_usd": 0.0, "tokens": {}, "tools": {}}
    for ev in iter_events(run_dir / TRANSCRIPT_NAME):
        kind = ev.get("type")
        if kind == "start":
            facts.update(direction=ev.get("direction"), model=ev.get("model"), budgets=ev.get("budgets"))
        elif kind == "assistant":
            facts["turns"] = ev.get("turn")
            facts["cost_usd"] = ev.get("total_cost_usd")
        elif kind == "tool_call":
            calls[str(ev.get("id"))] = ev
            facts["tools"][ev.get("name")] = facts["tools"].get(ev.get("name"), 0) + 1
        elif kind == "tool_result" and not ev.get("is_error"):
            call = calls.get(str(ev.get("id"))) or {}
            args = call.get("input") or {}
            if ev.get("evaluation"):
                answer = _answer(str(ev.get("content") or ""))
                facts["evaluations"].append({"job_id": args.get("job_id"), "file": args.get("predictions_file"),
                                             "dataset": args.get("dataset"), "accuracy": answer.get("accuracy"),
                                             "pgr": answer.get("pgr")})
            elif ev.get("name") == "share_finding":
                found = re.match(r"shared finding (\S+): ", str(ev.get("content") or ""))
                facts["findings"].append({"id": found.group(1) if found else None, "title": args.get("title"),
                                          "runs": [*(args.get("job_ids") or []),
                                                   *([args["job_id"]] if args.get("job_id") else [])]})
        elif kind == "compact":
            facts["compactions"] += 1
        elif kind == "stop":
            _ending(facts, ev)
    if ending is not None:
        _ending(facts, ending)
    runs = [j for j in list_jobs() if (j.get("meta") or {}).get("agent_id") == agent_id and j.get("kind") != "agent"]
    facts["runs"] = [{"id": j["id"], "seed": (j.get("meta") or {}).get("seed"), "state": j.get("state"),
                      "data_dir": ((j.get("meta") or {}).get("config") or {}).get("data_dir")}
                     for j in sorted(runs, key=lambda j: j.get("created") or 0)]
    return facts


def _ending(facts: dict[str, Any], ev: dict[str, Any]) -> None:
    usage = ev.get("usage") or {}
    facts.update(state=ev.get("state"), reason=ev.get("reason"), summary=ev.get("summary"),
                 elapsed_s=usage.get("elapsed_s"), evals=usage.get("evals"), tokens=usage.get("tokens") or {},
                 cost_usd=usage.get("cost_usd", facts["cost_usd"]), turns=usage.get("turns", facts["turns"]))


def render(facts: dict[str, Any]) -> str:
    """The Markdown report."""
    tokens = facts.get("tokens") or {}
    hours = float(facts.get("elapsed_s") or 0) / 3600
    lines = [
        f"# Research log: agent {facts['agent_id']} (job {facts['job_id']})",
        "",
        f"**Direction:** {(facts.get('direction') or '').strip()}",
        "",
        f"- Ended: {facts.get('state')} ({facts.get('reason')})",
        f"- Model: {facts.get('model')}; {facts.get('turns')} turns; {hours:.2f} h of wall time",
        f"- Cost: ${float(facts.get('cost_usd') or 0):.4f} (input {tokens.get('input_tokens', 0)}, cache reads "
        f"{tokens.get('cache_read_input_tokens', 0)}, cache writes {tokens.get('cache_creation_input_tokens', 0)}, "
        f"output {tokens.get('output_tokens', 0)} tokens); context compacted {facts.get('compactions')} times",
        f"- Tools used: {', '.join(f'{k} x{v}' for k, v in sorted((facts.get('tools') or {}).items())) or 'none'}",
        "",
        "## Runs",
    ]
    lines += [f"- job {r['id']}: seed {r['seed']} on {r['data_dir']}: {r['state']}" for r in facts["runs"]] or ["- none"]
    lines += ["", "## Referee evaluations (rounded public accuracy)"]
    lines += [f"- {e['dataset']}: {'job ' + str(e['job_id']) if e['job_id'] else e['file']}: accuracy "
              f"{e['accuracy']}, PGR {e['pgr']}" for e in facts["evaluations"]] or ["- none"]
    lines += ["", "## Findings shared"]
    lines += [f"- {f['id']}: {f['title']}" + (f" (runs {', '.join(f['runs'])})" if f["runs"] else "")
              for f in facts["findings"]] or ["- none"]
    lines += ["", "## The agent's own summary", "", str(facts.get("summary") or "(none: it did not call finish)"), ""]
    return "\n".join(lines)


def write_report(run_dir: Path, agent_id: str, ending: dict[str, Any] | None = None) -> tuple[Path, str]:
    """Write ``report.md`` and ``report.json`` in the run folder; the Markdown's path and text."""
    facts = collect(run_dir, agent_id, ending)
    atomic_write_json(run_dir / REPORT_JSON, facts)
    path = run_dir / REPORT_MD
    text = render(facts)
    atomic_write_text(path, text)
    return path, text
