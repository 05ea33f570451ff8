"""Read-only views every front end shows: the leaderboard (with the referee's columns), baselines,
ideas, datasets, executors and their capabilities, GPUs, Idea.md directions, the control service.

One function per view, so the dashboard, the TUI and the CLI cannot disagree about what a row
holds (the referee's public/private accuracy used to be merged in by the web API alone).
"""

from __future__ import annotations

from typing import Any

from core.common.workspace import paths
from core.control import service
from core.control.gpu import no_gpu_reason, probe
from core.control.store import Store
from core.results import leaderboard as lb
from core.results.archive import ensure_demo_cache
from core.run import idea_md, ideas
from executors import executor_names, get_executor

__all__ = [
    "baseline_rows",
    "ensure_demo_cache",
    "evaluations_charged",
    "executors",
    "gpus",
    "idea_directions",
    "leaderboard",
    "leaderboard_rows",
    "list_datasets",
    "list_ideas",
    "no_gpu_reason",
    "result_datasets",
    "service_status",
]


def leaderboard_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """Leaderboard rows; a row with referee-scored seeds also carries their mean ``public_acc`` and
    ``private_acc``. ``rank`` is the place among its dataset's ranked rows (1 = best PGR), None for a
    row shown apart (imported, unverified, size-capped): every front end numbers rows the same way."""
    rows = lb.leaderboard_rows(dataset)
    places: dict[str, int] = {}
    for row in rows:
        if lb.REFEREE_SOURCE in str(row.get("source", "")).split("+"):
            row.update(lb.referee_accuracies(row["dataset"], row["idea"], row["key"]))
        if row.get("ranked") and row.get("pgr_mean") is not None:
            places[row["dataset"]] = places.get(row["dataset"], 0) + 1
            row["rank"] = places[row["dataset"]]
        else:
            row["rank"] = None
    return rows


def baseline_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """The fixed baselines PGR is measured against: one entry per (dataset, producer, key)."""
    return lb.baseline_rows(dataset)


def leaderboard(dataset: str | None = None) -> dict[str, Any]:
    """``{"rows": [...], "baselines": [...]}``: what ``w2s leaderboard --json`` and the API return."""
    return {"rows": leaderboard_rows(dataset), "baselines": baseline_rows(dataset)}


def result_datasets() -> list[str]:
    """Datasets that have cached results (the leaderboard's dataset filter)."""
    return sorted({ds for ds, _ in lb.groups()})


def list_ideas() -> list[str]:
    """Idea names, packaged and workspace ones (a workspace idea overrides a packaged one)."""
    return [info.name for info in ideas.list_ideas()]


def list_datasets() -> list[str]:
    """Label-free datasets present in the workspace (``data/<name>/``): what a run may read."""
    base = paths().data
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def executors() -> list[dict[str, Any]]:
    """Every registered executor with its capability flags, e.g. ``{"name": "local", "can_cancel": True}``;
    the default one (``w2s serve --executor``, else local) first, so a launch dialog preselects it."""
    from core.control.service import default_executor

    default = default_executor()
    names = sorted(executor_names(), key=lambda name: name != default)
    return [{"name": name, **get_executor(name).capabilities.as_dict()} for name in names]


def gpus(store: Store | None = None) -> list[dict[str, Any]]:
    """Every NVIDIA GPU with its live numbers and the job holding it; empty without one
    (:func:`no_gpu_reason` says why)."""
    return [g.to_dict() for g in probe(store)]


def idea_directions() -> list[tuple[str, str]]:
    """``(title, direction)`` per ``## N. Title`` section of Idea.md (the workspace's copy first)."""
    return idea_md.directions()


def evaluations_charged(agent_ids: list[str], store: Store | None = None) -> dict[str, int]:
    """Referee evaluations charged to each agent's budget pool (its own calls and its runs'): the
    number the budget is enforced on, which the agent's own count can lag behind."""
    from core.control.store import default_store
    from core.control.tokens import agent_pool
    from core.referee.ledger import ledger_for

    ledger = ledger_for(store or default_store())
    return {agent_id: ledger.charged(agent_pool(agent_id)) for agent_id in agent_ids}


def service_status() -> dict[str, Any]:
    """Is a control service running here, and where: ``{"running": bool, "url": str | None,
    "dashboard": bool, "pid": int | None}`` (``dashboard``: it serves the HTML pages, not only the API)."""
    info = service.service_info()
    if not info:
        return {"running": False, "url": None, "dashboard": False, "pid": None}
    return {"running": True, "url": info.get("url"), "dashboard": bool(info.get("dashboard")) and bool(info.get("url")),
            "pid": info.get("pid")}
