"""The JSON API: read-only views of the state, the referee, the forum, and operator mutations.

Who may do what:
- ``GET`` endpoints need no token (the service binds to 127.0.0.1 by default), except the
  referee's audit log (operator: all runs; a run token: its own run).
- ``POST /api/evaluate`` and ``POST /api/submit`` need a run token (``Authorization: Bearer``);
  they score the idea and dataset the token is bound to, and refuse (403) a body naming others.
- Findings share/comment/vote accept the operator token or a run token (agents post as
  ``run:<id>``; one vote per voter).
- Launching, cancelling and retrying jobs and agents need the operator token
  (``.w2s/operator_token``); a run token is refused (403): jobs cannot create jobs or set budgets.

No value from a request becomes a path without matching a strict pattern first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, current_app, jsonify, request

from core.app import agents as app_agents
from core.app import jobs as app_jobs
from core.app import views
from core.common.config import ConfigError, RunConfig, validate_run_config
from core.common.errors import UserError
from core.common.job_types import DEFAULT_EVAL_BUDGET
from core.control import findings
from core.control.jobs import MAX_EVAL_BUDGET
from core.control.operator_token import check_operator_token
from core.control.storage import StoreError
from core.referee import service as referee

api = Blueprint("api", __name__, url_prefix="/api")

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TRANSCRIPT_CHUNK = 256 * 1024
LOG_CHUNK = 256 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@api.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return jsonify({"error": exc.message}), exc.status


@api.errorhandler(referee.RefereeError)
def _referee_error(exc: referee.RefereeError):
    return jsonify({"error": exc.message}), exc.status


@api.errorhandler(StoreError)
def _store_error(exc: StoreError):
    """A damaged store that could not be restored: the service is unavailable, not the request wrong."""
    return jsonify({"error": str(exc)}), 503


@api.errorhandler(app_jobs.NoSuchJob)
def _no_job(exc: app_jobs.NoSuchJob):
    return jsonify({"error": str(exc)}), 404


@api.errorhandler(app_jobs.JobRefused)
def _job_refused(exc: app_jobs.JobRefused):
    return jsonify({"error": str(exc)}), 409


@api.errorhandler(findings.FindingError)
def _finding_error(exc: findings.FindingError):
    return jsonify({"error": str(exc)}), 400


@api.errorhandler(findings.FindingNotFound)
def _finding_missing(exc: findings.FindingNotFound):
    return jsonify({"error": str(exc.args[0] if exc.args else exc)}), 404


# --------------------------------------------------------------------------------------------- helpers


def store() -> Any:
    return current_app.extensions["w2s_store"]


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_operator() -> None:
    """Mutations (launch, cancel, retry, agents) are operator actions: a run token is refused with
    403 (jobs cannot create jobs or set budgets), anything else with 401."""
    token = bearer()
    if check_operator_token(token, Path(store().root)):
        return
    from core.control.tokens import resolve_token

    if token and resolve_token(store(), token):
        raise ApiError(403, "a run token cannot launch, cancel or retry jobs or agents: that is an operator action")
    raise ApiError(401, "operator token required: 'Authorization: Bearer <.w2s/operator_token>'")


def actor() -> str:
    """Who is acting: ``operator`` or ``run:<run id>``; 401 for anything else."""
    token = bearer()
    if not token:
        raise ApiError(401, "a token is required: the operator token or a run token")
    if check_operator_token(token, Path(store().root)):
        return "operator"
    from core.control.tokens import resolve_token

    record = resolve_token(store(), token)
    if not record:
        raise ApiError(401, "invalid token")
    return f"run:{record.get('run_id')}"


def body() -> dict[str, Any]:
    """The JSON object body (orjson: the referee parses large prediction lists)."""
    raw = request.get_data(cache=False)
    if not raw:
        raise ApiError(400, "expected a JSON object body")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def checked_id(value: str, what: str) -> str:
    if not ID_RE.match(value or ""):
        raise ApiError(404, f"no {what} {value[:64]!r}")
    return value


MAX_QUERY_INT = 2**62


def int_arg(name: str, default: int = 0) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query '{name}': expected an integer") from None
    if value < 0:
        raise ApiError(400, f"query '{name}': must be >= 0")
    if value > MAX_QUERY_INT:  # a file offset past 2**62 overflows seek(): a 400, not a 500
        raise ApiError(400, f"query '{name}': must be <= {MAX_QUERY_INT}")
    return value


def dataset_arg() -> str | None:
    dataset = request.args.get("dataset") or None
    if dataset is not None and not referee.DATASET_RE.match(dataset):
        raise ApiError(400, "query 'dataset': expected a dataset name")
    return dataset


# --------------------------------------------------------------------------------------------- state


@api.get("/health")
def health():
    return jsonify({"status": "ok", "service": "w2s", "dashboard": bool(current_app.config["W2S_DASHBOARD"])})


@api.get("/leaderboard")
def leaderboard():
    dataset = dataset_arg()
    return jsonify({"dataset": dataset, **views.leaderboard(dataset)})


@api.get("/jobs")
def jobs():
    """Unfinished jobs plus the newest finished ones, ``limit`` in all (default 200; 0 = every job)."""
    limit = int_arg("limit", 200)
    return jsonify({"jobs": app_jobs.list_jobs(store(), limit=limit or None)})


@api.get("/jobs/<job_id>")
def job(job_id: str):
    found = app_jobs.get_job(checked_id(job_id, "job"), store())
    if not found:
        raise ApiError(404, f"no job {job_id!r}")
    return jsonify(found)


@api.get("/jobs/<job_id>/log")
def job_log(job_id: str):
    text, offset = app_jobs.read_log(checked_id(job_id, "job"), int_arg("offset"), LOG_CHUNK, store())
    return jsonify({"job_id": job_id, "text": text, "offset": offset})


@api.get("/agents")
def agents():
    return jsonify({"agents": app_agents.list_agents(store())})


def agent_doc(agent_id: str) -> dict[str, Any]:
    doc = app_agents.get_agent(checked_id(agent_id, "agent"), store())
    if not doc:
        raise ApiError(404, f"no agent {agent_id!r}")
    return doc


@api.get("/agents/<agent_id>")
def agent(agent_id: str):
    return jsonify(agent_doc(agent_id))


@api.get("/agents/<agent_id>/transcript")
def agent_transcript(agent_id: str):
    """Whole transcript lines from byte ``offset``; poll again from the returned ``offset``."""
    doc = agent_doc(agent_id)
    entries, offset = app_agents.read_transcript(doc, int_arg("offset"), TRANSCRIPT_CHUNK)
    return jsonify({"agent_id": agent_id, "entries": entries, "offset": offset, "state": doc.get("state")})


@api.get("/gpu")
def gpu():
    try:
        gpus = views.gpus(store())
    except Exception as exc:  # noqa: BLE001 - a broken driver is shown, not a 500
        return jsonify({"gpus": [], "error": str(exc)[:300]})
    return jsonify({"gpus": gpus})


@api.get("/evaluations")
def evaluations():
    """The referee's audit log: time, status, n and what the run was told. The operator sees every
    run's (``?run=ID`` filters); a run token sees only its own run's calls."""
    who = actor()
    run = request.args.get("run")
    if run is not None:
        checked_id(run, "run")
    if who != "operator":
        run = who[4:]
    docs = store().table("evaluations").search(lambda d: run is None or d.get("run_id") == run)
    docs.sort(key=lambda d: str(d.get("time", "")), reverse=True)
    return jsonify({"evaluations": docs[: int_arg("limit", 200) or 200]})


# --------------------------------------------------------------------------------------------- referee


@api.post("/evaluate")
def evaluate():
    token = bearer()
    record = referee.authenticate(store(), token)  # 401 before the body is even parsed
    data = body()
    result = referee.evaluate(
        store(),
        token,
        data.get("dataset"),
        data.get("predictions"),
        data.get("ids"),
        data.get("split", "test"),
        record=record,
        idea=data.get("idea"),
    )
    return jsonify(result)


@api.post("/submit")
def submit():
    """A run's one final submission: scored on the public part and the private holdout.

    Idea and dataset are the run token's (bound when the scheduler issued it); a body naming
    another idea or dataset is refused (403), so no run can write another idea's result.
    """
    token = bearer()
    record = referee.authenticate(store(), token)
    data = body()
    predictions, ids = data.get("predictions"), data.get("ids")
    if data.get("split", "test") != "test":
        raise ApiError(400, "field 'split': only 'test' is scored")
    idea, dataset = referee.check_scope(store(), record, idea=data.get("idea"), dataset=data.get("dataset"),
                                        final=True)
    if not isinstance(dataset, str) or not referee.DATASET_RE.match(dataset):
        raise ApiError(400, "this run's dataset is not a dataset name")
    layout = referee.holdout.layout(dataset)
    if layout is None:
        raise ApiError(400, f"no dataset {dataset!r} on this server")
    if ids is None:
        ids = list(layout.ids)
    if not isinstance(ids, list) or not isinstance(predictions, list) or len(ids) != len(predictions):
        raise ApiError(400, "fields 'ids'/'predictions': expected two lists of the same length")
    if len(set(map(str, ids))) != len(ids):
        raise ApiError(400, "field 'ids': repeated ids")
    by_id = dict(zip(map(str, ids), predictions, strict=True))
    result = referee.final_score(store(), str(record.get("run_id")), dataset, by_id, idea=idea)
    keep = ("idea_name", "public_acc", "private_acc", "n_public", "n_private", "pgr", "pgr_public",
            "pgr_reason", "hyperparam_config_key", "seed")
    return jsonify({k: result.get(k) for k in keep})


# --------------------------------------------------------------------------------------------- findings


@api.get("/findings")
def list_findings():
    sort = request.args.get("sort", "score")
    if sort not in ("score", "recent"):
        raise ApiError(400, "query 'sort': expected 'score' or 'recent'")
    query = request.args.get("q", "")
    docs = findings.search(store(), query, sort) if query else findings.list_findings(store(), sort)
    return jsonify({"findings": docs})


@api.get("/findings/<finding_id>")
def get_finding(finding_id: str):
    return jsonify(findings.get(store(), finding_id))


@api.post("/findings")
def share_finding():
    who = actor()
    data = body()
    run = data.get("run", data.get("run_id"))
    if run in (None, "") and who.startswith("run:"):
        run = who[4:]
    doc = findings.share(
        store(),
        title=data.get("title"),
        summary=data.get("summary"),
        metrics=data.get("metrics"),
        config=data.get("config"),
        run=run,
        author=who,
    )
    return jsonify(doc), 201


@api.post("/findings/<finding_id>/comments")
def comment_finding(finding_id: str):
    who = actor()
    data = body()
    return jsonify(findings.comment(store(), finding_id, who, data.get("text"))), 201


@api.post("/findings/<finding_id>/vote")
def vote_finding(finding_id: str):
    who = actor()
    data = body()
    return jsonify(findings.vote(store(), finding_id, who, data.get("value", 1)))


# --------------------------------------------------------------------------------------------- jobs


@api.post("/jobs")
def launch_job():
    """Launch one seed of an idea: ``{"idea", "config": {RunConfig fields}, "name"?, "gpus"?,
    "eval_budget"?, "max_retries"?}`` -> the job (operator only)."""
    require_operator()
    data = body()
    idea = data.get("idea")
    if not isinstance(idea, str):
        raise ApiError(400, "field 'idea': expected an idea name")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ApiError(400, "field 'config': expected an object of RunConfig fields")
    try:  # unknown keys refused, types and ranges checked, data_dir a prepared dataset under data/
        cfg = validate_run_config(RunConfig.from_dict(config, strict=True))
    except ConfigError as exc:
        raise ApiError(400, f"field 'config.{exc.field}': {exc.message}") from None
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"field 'config': {exc}") from None
    numbers: dict[str, int | None] = {"gpus": None}  # no "gpus": one when the box has any, like every front end
    for name, default, top in (("gpus", None, 16), ("eval_budget", DEFAULT_EVAL_BUDGET, MAX_EVAL_BUDGET),
                               ("max_retries", 0, 10)):
        value = data.get(name, default)
        if value is None and default is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise ApiError(400, f"field '{name}': expected an integer 0..{top}")
        numbers[name] = value
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 120):
        raise ApiError(400, "field 'name': expected text up to 120 characters")
    try:
        jobs = app_jobs.submit_idea_runs(
            idea, cfg, [cfg.seed], source="api", name=data.get("name") or None, gpus=numbers["gpus"],
            max_retries=int(numbers["max_retries"] or 0),
            eval_budget=int(numbers.get("eval_budget", DEFAULT_EVAL_BUDGET) or 0), store=store(),
        )
    except (UserError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None
    job_doc = jobs[0]
    return jsonify(job_doc), 201


@api.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    require_operator()
    return jsonify(app_jobs.cancel_job(checked_id(job_id, "job"), store()))  # 404 unknown, 409 finished


@api.post("/jobs/<job_id>/retry")
def retry(job_id: str):
    require_operator()
    return jsonify(app_jobs.retry_job(checked_id(job_id, "job"), store()))  # 409 unless failed or cancelled


# --------------------------------------------------------------------------------------------- agents


@api.post("/agents")
def launch_agent():
    """Start a research agent: ``{"direction": text | "idea_md": N, "budget_usd"?, "max_turns"?,
    "max_evals"?, "max_wall_s"?}`` (operator only; the Anthropic key comes from the service's
    environment, never from the request)."""
    require_operator()
    data = body()

    kwargs: dict[str, Any] = {}
    for name, kind in (("budget_usd", float), ("max_turns", int), ("max_evals", int), ("max_wall_s", float)):
        if name in data:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ApiError(400, f"field '{name}': expected a positive number")
            kwargs[name] = kind(value)
    direction, idea_md = data.get("direction"), data.get("idea_md")
    if direction is not None and (not isinstance(direction, str) or len(direction) > 4000):
        raise ApiError(400, "field 'direction': expected text up to 4000 characters")
    if idea_md is not None and (isinstance(idea_md, bool) or not isinstance(idea_md, int)):
        raise ApiError(400, "field 'idea_md': expected a direction number from Idea.md")
    try:
        doc = app_agents.launch_agent(direction, idea_md=idea_md, store=store(), **kwargs)
    except UserError as exc:
        raise ApiError(400, str(exc)) from None
    return jsonify(doc), 201


@api.post("/agents/<agent_id>/stop")
def stop_agent(agent_id: str):
    require_operator()
    agent_doc(agent_id)
    try:
        return jsonify(app_agents.stop_agent(agent_id, store()))
    except UserError as exc:
        raise ApiError(409, str(exc)) from None
