"""Referee tools: score test predictions through the service's referee, read the leaderboard.

An evaluation goes to the referee with the run token and counts against the loop's own
evaluation budget as well as the referee's. Asking once the budget is spent starts the wrap-up: the
agent gets ``WRAP_UP_TURNS`` more turns to share findings and finish, as the answer tells it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from core.agent.budgets import WRAP_UP_TURNS
from core.agent.tools.context import ToolContext, ToolError, ToolOutcome, resolve_inside
from core.agent.tools.jobs import own_job
from core.control.store import Store
from core.results.leaderboard import leaderboard_rows
from core.run.runner import OUT_DIR
from core.run.sandboxed_idea import PREDICTIONS_FILE

EVALUATE_TIMEOUT_S = 120
LEADERBOARD_KEYS = ("dataset", "idea", "n_seeds", "pgr_mean", "pgr_sem", "transfer_acc", "weak_acc",
                    "strong_acc", "source")


def _run_predictions(ctx: ToolContext, job_id: str) -> Path:
    """The predictions one of this agent's runs wrote in its sandbox's output folder."""
    job = own_job(ctx, job_id)
    path = Path(str(job.get("run_dir") or "")) / OUT_DIR / PREDICTIONS_FILE
    if not path.is_file() or path.is_symlink():
        raise ToolError(f"job {job_id} has no predictions yet ({job.get('state')}); wait for it with job_status")
    return path


def _load_predictions(ctx: ToolContext, predictions_file: str | None, job_id: str | None
                      ) -> tuple[list[str], list[float]]:
    if predictions_file:
        target = resolve_inside(ctx, predictions_file, must_exist=True)
    elif job_id:
        target = _run_predictions(ctx, job_id)
        predictions_file = f"job {job_id}'s predictions"
    else:
        raise ToolError("give job_id (score that run's predictions) or predictions_file (a file in your folder)")
    if not target.is_file():
        raise ToolError(f"{predictions_file}: not a file")
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"{predictions_file}: not JSON ({exc})") from None
    if isinstance(data, dict) and "test_predictions" in data:
        data = data["test_predictions"]
    if isinstance(data, dict) and "ids" in data and "predictions" in data:
        return [str(i) for i in data["ids"]], list(data["predictions"])
    if isinstance(data, dict):
        return [str(k) for k in data], list(data.values())
    raise ToolError(f"{predictions_file}: expected {{id: P(class 1)}} or {{ids: [...], predictions: [...]}}")


def _measure_against(ctx: ToolContext, job_id: str) -> None:
    """The referee measures PGR against the baselines of the token's own job config
    (``meta.config``); point it at the config of the run that made these predictions."""
    config = (own_job(ctx, job_id).get("meta") or {}).get("config")
    agent_job = ctx.run_dir.name
    if not isinstance(config, dict) or agent_job == job_id:
        return

    def apply(job: dict[str, Any]) -> None:
        job.setdefault("meta", {})["config"] = config

    Store().table("jobs").update(agent_job, apply)


def evaluate(ctx: ToolContext, dataset: str, predictions_file: str | None = None, job_id: str | None = None
             ) -> ToolOutcome:
    """Score predictions on ``test`` through the referee; spends one evaluation. The predictions are a
    run's (``job_id`` alone: what the sandboxed idea wrote) or a file in the agent's folder."""
    if ctx.usage.evals >= ctx.budgets.max_evals:
        return ToolOutcome(
            f"evaluation budget spent ({ctx.usage.evals}/{ctx.budgets.max_evals}): no more scores. You have "
            f"{WRAP_UP_TURNS} more turns: share your findings (share_finding) and call finish.",
            is_error=True,
            wrap_up=f"max_evals: {ctx.usage.evals} of {ctx.budgets.max_evals} evaluations used",
        )
    ids, preds = _load_predictions(ctx, predictions_file, job_id)
    if not ctx.service_url or not ctx.run_token:
        raise ToolError("no referee configured for this run (W2S_SERVICE_URL / W2S_RUN_TOKEN missing)")
    if job_id:
        _measure_against(ctx, job_id)
    body = {"dataset": dataset, "split": "test", "ids": ids, "predictions": preds}
    try:
        resp = httpx.post(
            ctx.service_url.rstrip("/") + "/api/evaluate",
            json=body,
            headers={"Authorization": f"Bearer {ctx.run_token}"},
            timeout=EVALUATE_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise ToolError(f"referee unreachable: {exc}") from None
    try:
        payload = resp.json()
    except ValueError:
        payload = {"text": resp.text[:2000]}
    if resp.status_code == 429:
        return ToolOutcome(
            f"referee: evaluation budget spent ({json.dumps(payload)}). You have {WRAP_UP_TURNS} more turns: "
            "share your findings (share_finding) and call finish.",
            is_error=True,
            wrap_up="max_evals: the referee's evaluation budget is spent",
        )
    if resp.status_code != 200:
        raise ToolError(f"referee answered HTTP {resp.status_code}: {json.dumps(payload)[:2000]}")
    left = ctx.budgets.max_evals - ctx.usage.evals - 1
    return ToolOutcome(json.dumps(payload, default=str) + f"\n(evaluations left in your budget: {left})",
                       evaluation=True)


def leaderboard(ctx: ToolContext, dataset: str | None = None, limit: int = 30) -> str:
    rows = leaderboard_rows(dataset or None)
    out = [{k: r.get(k) for k in LEADERBOARD_KEYS} for r in rows[: max(1, min(int(limit), 200))]]
    return json.dumps(out, default=str, indent=0) if out else "(no leaderboard rows yet)"
