"""The dashboard's HTML pages: server-rendered tables that a little JavaScript keeps fresh.

Every page renders its data on the server (so it reads without JavaScript and tests can see the
rows), then ``static/dashboard.js`` polls the JSON API to update it. No Node build.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from core.app import agents as app_agents
from core.app import jobs as app_jobs
from core.app import views
from core.control import findings
from core.referee import service as referee

pages = Blueprint("pages", __name__)

NAV = (
    ("pages.leaderboard", "Leaderboard"),
    ("pages.queue", "Queue"),
    ("pages.agents", "Agents"),
    ("pages.gpu", "GPUs"),
    ("pages.findings_page", "Findings"),
)


def _store() -> Any:
    return current_app.extensions["w2s_store"]


def _render(template: str, **context: Any) -> str:
    return render_template(template, nav=NAV, active=request.endpoint, **context)


@pages.app_template_filter("num")
def num(value: Any, digits: int = 3) -> str:
    """Numbers for tables: fixed digits, an en dash for missing."""
    if value is None or isinstance(value, bool):
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


@pages.app_template_filter("when")
def when(value: Any) -> str:
    import time

    if isinstance(value, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return str(value or "–")


@pages.get("/")
def index():
    return redirect(url_for("pages.leaderboard"))


@pages.get("/leaderboard")
def leaderboard():
    dataset = request.args.get("dataset") or None
    if dataset is not None and not referee.DATASET_RE.match(dataset):
        abort(400)
    board = views.leaderboard(dataset)
    return _render("leaderboard.html", rows=board["rows"], baselines=board["baselines"],
                   datasets=views.result_datasets(), dataset=dataset)


@pages.get("/queue")
def queue():
    return _render("queue.html", jobs=app_jobs.list_jobs(_store(), limit=200), ideas=views.list_ideas(),
                   datasets=views.list_datasets())


@pages.get("/agents")
def agents():
    return _render("agents.html", agents=app_agents.list_agents(_store()))


@pages.get("/gpu")
def gpu():
    try:
        gpus = views.gpus(_store())
        reason = None if gpus else views.no_gpu_reason()
    except Exception as exc:  # noqa: BLE001 - show the problem instead of a 500
        gpus, reason = [], str(exc)[:300]
    return _render("gpu.html", gpus=gpus, reason=reason)


@pages.get("/findings")
def findings_page():
    query = request.args.get("q", "")[:200]
    docs = findings.search(_store(), query) if query else findings.list_findings(_store())
    return _render("findings.html", findings=docs, query=query)


@pages.get("/findings/<finding_id>")
def finding_page(finding_id: str):
    try:
        doc = findings.get(_store(), finding_id)
    except findings.FindingNotFound:
        abort(404)
    return _render("finding.html", f=doc)
