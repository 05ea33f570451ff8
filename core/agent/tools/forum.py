"""Forum tools: share a finding, read the findings shared so far, read Idea.md's research directions.

A finding goes through the service with the run token when there is one, so the service (not the
agent) names its author.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.agent.tools.context import ToolContext, ToolError, cap
from core.agent.tools.jobs import own_job
from core.control import findings
from core.control.store import Store
from core.run.idea_md import idea_md_path, idea_md_sections

SHARE_TIMEOUT_S = 60
FINDING_KEYS = ("id", "title", "summary", "metrics", "author", "votes", "run", "created")


def share_finding(
    ctx: ToolContext,
    title: str,
    summary: str,
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    job_ids: list[str] | None = None,
    job_id: str | None = None,
) -> str:
    """Post to the forum through the service with the run token (the service names the author
    ``run:<job id>`` and links the finding to the agent's own run, the one a run token may link);
    without a service, write it directly as ``agent:<id>``. The runs that back the finding
    (``job_ids``, checked to be this agent's) are recorded in its config as ``runs``."""
    if not str(title).strip() or not str(summary).strip():
        raise ToolError("title and summary are required")
    backing = [own_job(ctx, str(j))["id"] for j in [*(job_ids or []), *([job_id] if job_id else [])]]
    config = dict(config or {})
    if backing:
        config["runs"] = ",".join(dict.fromkeys(backing))
    payload = {"title": str(title)[: findings.MAX_TITLE], "summary": str(summary)[: findings.MAX_SUMMARY],
               "metrics": metrics or {}, "config": config, "run": ctx.run_dir.name}
    if ctx.service_url and ctx.run_token:
        try:
            resp = httpx.post(ctx.service_url.rstrip("/") + "/api/findings", json=payload,
                              headers={"Authorization": f"Bearer {ctx.run_token}"}, timeout=SHARE_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise ToolError(f"forum unreachable: {exc}") from None
        if resp.status_code not in (200, 201):
            raise ToolError(f"forum answered HTTP {resp.status_code}: {resp.text[:1000]}")
        doc = resp.json()
    else:
        try:
            doc = findings.share(Store(), **payload, author=f"agent:{ctx.agent_id}")
        except ValueError as exc:
            raise ToolError(str(exc)) from None
    runs = f" (backed by runs {config['runs']})" if backing else ""
    return f"shared finding {doc.get('id')}: {title}{runs}"


def list_findings(ctx: ToolContext, query: str | None = None, limit: int = 20) -> str:
    store = Store()
    rows = findings.search(store, query) if query else findings.list_findings(store)
    rows = rows[: max(1, min(int(limit), 100))]
    out = [{k: r.get(k) for k in FINDING_KEYS if k in r} for r in rows]
    return cap(json.dumps(out, default=str, indent=0)) if out else "(no findings yet)"


def read_idea_md(ctx: ToolContext, number: int | None = None) -> str:
    path = idea_md_path()
    if not path.is_file():
        raise ToolError("Idea.md is missing")
    text = path.read_text(encoding="utf-8")
    if number is None:
        return cap(text)
    sections = idea_md_sections(text)
    if not 1 <= int(number) <= len(sections):
        raise ToolError(f"Idea.md has directions 1..{len(sections)}")
    title, body = sections[int(number) - 1]
    return f"{number}. {title}\n\n{body}"
