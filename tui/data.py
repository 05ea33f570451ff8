"""Headless adapter between the TUI and the application layer (``core.app``).

The panes call these from thread workers (which is why ``core.app`` is imported inside each function:
the first frame does not wait for the store, the agent launcher or psutil to load); each turns one ``core.app`` call into a :class:`Feed`
(the items, or why there are none) so a broken store or GPU driver shows a note instead of taking
the UI down. Nothing here imports Textual, so it can be benchmarked and tested on its own.
"""

from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.config import RunConfig, add_run_config_arguments, run_config_from_args
from core.common.errors import UserError
from core.common.files import tail_jsonl
from core.common.workspace import paths

NO_SERVICE_ENV = "W2S_TUI_NO_SERVICE"


@dataclass
class Feed:
    """One poll of one data source: the items, or why there are none."""

    available: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- jobs


def load_jobs(limit: int = 200) -> Feed:
    """The newest ``limit`` jobs (plus every unfinished one), newest first, and counts by state."""
    from core.app import jobs as app_jobs

    try:
        feed = app_jobs.jobs_feed(limit)
    except Exception as exc:  # a broken store must not take the UI down
        return Feed(False, note=f"jobs unreadable: {exc}")
    return Feed(True, [dict(j) for j in feed.jobs], total=feed.total, extra={"counts": feed.counts})


def cancel_job(job_id: str) -> dict[str, Any]:
    from core.app import jobs as app_jobs

    return dict(app_jobs.cancel_job(job_id))


def retry_job(job_id: str) -> dict[str, Any]:
    from core.app import jobs as app_jobs

    return dict(app_jobs.retry_job(job_id))


def read_log_bytes(job_id: str, offset: int, max_bytes: int = 1 << 20) -> tuple[bytes, int]:
    """New bytes of a job's log from ``offset`` (at most ``max_bytes``; far behind, it skips to the end)."""
    from core.app import jobs as app_jobs

    return app_jobs.read_log_bytes(job_id, offset, max_bytes)


# ---------------------------------------------------------------- agents


def load_agents() -> Feed:
    """Agents newest first, reconciled with their jobs. Skipped while the workspace has no agents yet."""
    from core.app import agents as app_agents
    from core.app import jobs as app_jobs

    if not (paths().state / "agents.json").exists():
        return Feed(True, [], total=0)
    from core.app import views

    try:
        agents = app_agents.list_agents(store=app_jobs.shared_store())
    except Exception as exc:
        return Feed(False, note=f"agents unreadable: {exc}")
    try:
        charged = views.evaluations_charged([str(a.get("id")) for a in agents], store=app_jobs.shared_store())
    except Exception:  # the referee's ledger unreadable: the agents' own counts still show
        charged = {}
    agents = [{**a, "evals_charged": charged[str(a.get("id"))]} if str(a.get("id")) in charged else a
              for a in agents]
    return Feed(True, agents, total=len(agents))


def transcript_path(agent: dict[str, Any]) -> Path | None:
    """The agent's transcript once it exists (inside ``runs/``); None until then."""
    from core.app import agents as app_agents

    return app_agents.transcript_file(agent)


def read_jsonl(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete transcript records appended since ``offset`` (a half-written last line waits)."""
    return tail_jsonl(path, offset)


def stop_agent(agent_id: str) -> dict[str, Any]:
    from core.app import agents as app_agents

    return app_agents.stop_agent(agent_id)


def api_key_problem() -> str | None:
    """The agent needs ANTHROPIC_API_KEY in the environment; say so before anything is submitted."""
    from core.app import agents as app_agents

    if not app_agents.has_api_key():
        return f"{app_agents.API_KEY_ENV} is not set: export it in the shell that runs w2s-tui to launch agents"
    return None


def launch_agent(direction: str, executor: str, budgets: dict[str, Any], start_service: bool = True) -> Any:
    from core.app import agents as app_agents

    problem = api_key_problem()
    if problem:
        raise UserError(problem)
    kwargs = {k: v for k, v in budgets.items() if v is not None}
    doc = app_agents.launch_agent(direction=direction, executor=executor, **kwargs)
    if start_service:
        ensure_service()
    return doc


def idea_directions() -> list[tuple[str, str]]:
    """``(title, direction)`` per ``## N. Title`` section of Idea.md, as ``w2s agent launch --idea-md N``."""
    from core.app import views

    return views.idea_directions()


# ---------------------------------------------------------------- GPUs


def load_gpus() -> Feed:
    from core.app import views

    try:
        devices = views.gpus()
    except Exception as exc:
        return Feed(False, note=f"GPU probe failed: {exc}")
    # the same reason `w2s gpu` prints (the NVML library missing, or no device), never a guess
    return Feed(True, devices, total=len(devices), note="" if devices else views.no_gpu_reason())


# ---------------------------------------------------------------- leaderboard


def ensure_demo_cache() -> bool:
    from core.app import views

    try:
        return bool(views.ensure_demo_cache())
    except Exception:
        return False


def load_leaderboard() -> Feed:
    """Every leaderboard row (all datasets, with the referee's columns) plus the baselines."""
    from core.app import views

    try:
        rows = views.leaderboard_rows()
        baselines = views.baseline_rows()
    except Exception as exc:
        return Feed(False, note=f"leaderboard unreadable: {exc}")
    datasets = sorted({str(r.get("dataset")) for r in rows} | {str(b.get("dataset")) for b in baselines})
    return Feed(True, rows, total=len(rows), extra={"baselines": baselines, "datasets": datasets})


# ---------------------------------------------------------------- service


def service_status() -> dict[str, Any]:
    from core.app import views

    try:
        status = views.service_status()
    except Exception as exc:
        return {"available": True, "running": False, "url": None, "note": f"service check failed: {exc}"}
    return {"available": True, **status, "note": ""}


def ensure_service(port: int | None = None) -> dict[str, Any]:
    """Attach to the control service, starting it detached when none runs (jobs outlive the TUI).

    A service the TUI starts serves the dashboard too (``o`` shows its URL), on ``port`` (None: 8000
    when free, else any free port)."""
    status = service_status()
    if status["running"] or os.environ.get(NO_SERVICE_ENV):
        return status
    from web.launcher import start_service_detached

    try:
        start_service_detached(port=port, dashboard=True)
    except Exception as exc:
        status["note"] = f"could not start the control service: {exc}"
        return status
    return service_status()


# ---------------------------------------------------------------- launching runs


def list_ideas() -> list[str]:
    from core.app import views

    return views.list_ideas()


def list_datasets() -> list[str]:
    """Label-free datasets present in the workspace (``data/<name>/``)."""
    from core.app import views

    return views.list_datasets()


def executors() -> list[str]:
    """Executor names for the launch dialogs."""
    from core.app import views

    return [str(e["name"]) for e in views.executors()] or ["local"]


def parse_seeds(text: str) -> list[int]:
    """``42,43``, ``42-44`` or ``42 43``: the one parser every front end uses."""
    from core.app import jobs as app_jobs

    return app_jobs.parse_seeds(text)


RERUN_FLAG = "--rerun"  # in the dialog's options: run seeds that are cached again (as `w2s run --rerun`)


def option_tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UserError(f"options: {exc}") from None


def parse_run_options(text: str, idea: str | None = None) -> RunConfig:
    """RunConfig flags typed in the launch dialog (``--epochs 1 --train-size 64``), same parser as ``w2s run``:
    no prefix matching, and with ``idea`` a flag that is neither a RunConfig field nor a parameter of the
    idea is refused with the closest valid one (``--epoch`` -> ``--epochs``)."""

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # argparse would exit the TUI
            raise UserError(f"options: {message}")

    parser = _Parser(prog="options", add_help=False, allow_abbrev=False)
    add_run_config_arguments(parser)
    tokens = [t for t in option_tokens(text) if t != RERUN_FLAG]
    ns, unknown = parser.parse_known_args(tokens)
    try:
        cfg = run_config_from_args(ns, unknown)
    except ValueError as exc:
        raise UserError(f"options: {exc}") from None
    if idea:
        from core.app.run_checks import check_parameters

        try:
            check_parameters(idea, cfg.extra)
        except UserError as exc:
            raise UserError(f"options: {exc}") from None
    return cfg


def submit_runs(idea: str, dataset: str, seeds: list[int], executor: str, options: str = "") -> list[str]:
    """One ``idea_run`` job per seed through the one submit path, exactly as ``w2s run`` submits
    them; the control service schedules them."""
    from core.app import jobs as app_jobs

    if not idea:
        raise UserError("idea: choose an idea")
    if not dataset:
        raise UserError("dataset: choose a dataset")
    base = parse_run_options(options, idea).replace(data_dir=f"data/{dataset}")
    if RERUN_FLAG not in option_tokens(options):
        from core.app.run_checks import cached_seeds

        app_jobs.check_dataset(base)
        cached = cached_seeds(idea, app_jobs.resolve_run_config(base), seeds)
        if cached:
            listed = ",".join(map(str, sorted(cached)))
            raise UserError(f"seeds: {listed} already cached for {idea} on {dataset} with these settings "
                            f"(the leaderboard has them); nothing submitted. Add {RERUN_FLAG} to the options "
                            "to run them again and replace their results, or pick other seeds")
    jobs = app_jobs.submit_idea_runs(idea, base, seeds, source="tui", executor=executor)
    return [str(job["id"]) for job in jobs]
