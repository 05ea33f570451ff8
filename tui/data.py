"""Headless adapter between the TUI and ``core``: every blocking call the panes need, in one place.

The TUI only calls these from thread workers. Each part of core is imported lazily: while a part is
missing (others build it in parallel) the matching pane shows "not available yet" instead of crashing.
Nothing here imports Textual, so it can be benchmarked and tested on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from core.common.errors import UserError
from core.common.workspace import paths

REPO_ROOT = Path(__file__).resolve().parent.parent
NO_SERVICE_ENV = "W2S_TUI_NO_SERVICE"


def optional_module(name: str) -> ModuleType | None:
    """Import ``name`` or return None when that part of core has not landed yet."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def _missing(name: str) -> str:
    return f"{name} not available yet"


@dataclass
class Feed:
    """One poll of one data source: the items, or why there are none."""

    available: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def as_dict(obj: Any) -> dict[str, Any]:
    """Dataclasses, named tuples and plain objects all become dicts for the panes."""
    if isinstance(obj, dict):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


# ---------------------------------------------------------------- jobs


_STORES: dict[Path, Any] = {}


def shared_store() -> Any:
    """One Store per workspace for the TUI's polls: it keeps parsed tables and re-reads only on change."""
    store_mod = optional_module("core.control.store")
    if store_mod is None:
        return None
    root = paths().state
    if root not in _STORES:
        _STORES[root] = store_mod.Store(root)
    return _STORES[root]


def load_jobs(limit: int = 200) -> Feed:
    """The newest ``limit`` jobs (plus every unfinished one), newest first, and counts by state.

    Reads the store's hot part and its newest archive segment only (``Table.recent``), so a refresh
    costs the same at 10k jobs as at 10; finished jobs are counted, not copied.
    """
    jobs_mod = optional_module("core.control.jobs")
    if jobs_mod is None:
        return Feed(False, note=_missing("core.control.jobs (job queue)"))
    try:
        table = shared_store().table("jobs")
        active = [as_dict(j) for j in table.hot()]
        total = len(table)
        recent = [as_dict(j) for j in table.recent(limit)] if hasattr(table, "recent") else table.all()
    except Exception as exc:  # a broken store must not take the UI down
        return Feed(False, note=f"jobs unreadable: {exc}")
    def newest_first(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(docs, key=lambda j: (_sort_time(j.get("created")), str(j.get("id", ""))), reverse=True)

    active_ids = {str(j.get("id")) for j in active}
    finished = [j for j in newest_first(recent) if str(j.get("id")) not in active_ids]
    jobs = newest_first(active + finished[: max(limit - len(active), 0)])
    counts: dict[str, int] = {}
    for job in jobs:
        state = str(job.get("state", "?"))
        counts[state] = counts.get(state, 0) + 1
    if total > len(jobs):  # every unfinished job is shown, so the rest finished
        counts["older, finished"] = total - len(jobs)
    return Feed(True, jobs, total=total, extra={"counts": counts})


def _sort_time(value: Any) -> float:
    from tui.format import to_epoch

    t = to_epoch(value)
    return t if t is not None else 0.0


def cancel_job(job_id: str) -> dict[str, Any]:
    jobs_mod = _require("core.control.jobs", "cancelling jobs")
    return as_dict(jobs_mod.cancel_job(job_id))


def retry_job(job_id: str) -> dict[str, Any]:
    jobs_mod = _require("core.control.jobs", "retrying jobs")
    return as_dict(jobs_mod.retry_job(job_id))


def log_path(job_id: str) -> Path:
    return paths().runs / job_id / "stdout.log"


def read_log_bytes(job_id: str, offset: int, max_bytes: int = 1 << 20) -> tuple[bytes, int]:
    """New bytes of a job's log from ``offset``; the run folder is the source of truth for local jobs.

    At most ``max_bytes`` per call (the reading thread lets the UI thread run between reads); when the
    file is more than that ahead, it jumps to the last ``max_bytes`` (the pane keeps only the end).
    """
    path = log_path(job_id)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:  # truncated or replaced: start over
                offset = 0
            if size - offset > max_bytes:  # far behind: skip to the tail, the pane keeps only the end
                offset = size - max_bytes
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:
        jobs_mod = optional_module("core.control.jobs")
        if jobs_mod is None or not hasattr(jobs_mod, "read_log"):
            return b"", offset
        try:
            text, new_offset = jobs_mod.read_log(job_id, offset)
        except Exception:
            return b"", offset
        return text.encode("utf-8", "replace"), int(new_offset)
    return data, offset + len(data)


# ---------------------------------------------------------------- agents


def load_agents() -> Feed:
    """Agents newest first, through ``core.agent.list_agents`` (it shows the job's fate for an agent
    whose job died under it). Skipped entirely while the workspace has no agents table yet."""
    if importlib.util.find_spec("core.agent") is None:
        return Feed(False, note=_missing("core.agent (research agents)"))
    if not (paths().state / "agents.json").exists():
        return Feed(True, [], total=0)
    try:
        agent_mod = importlib.import_module("core.agent")
        agents = [as_dict(a) for a in agent_mod.list_agents(store=shared_store())]
    except Exception as exc:
        return Feed(False, note=f"agents unreadable: {exc}")
    return Feed(True, agents, total=len(agents))


def transcript_path(agent: dict[str, Any]) -> Path | None:
    raw = agent.get("transcript_path")
    if raw:
        p = Path(raw)
        return p if p.is_absolute() else paths().root / p
    job_id = agent.get("job_id")
    return paths().runs / str(job_id) / "transcript.jsonl" if job_id else None


def read_jsonl(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSONL records appended since ``offset`` (a half-written last line waits for next time)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = {"type": "unparsed", "text": line.decode("utf-8", "replace")}
        events.append(obj if isinstance(obj, dict) else {"type": "unparsed", "text": str(obj)})
    return events, offset + end + 1


def stop_agent(agent_id: str) -> Any:
    agent_mod = _require("core.agent", "stopping agents")
    fn = getattr(agent_mod, "stop_agent", None)
    if fn is None:
        raise UserError("core.agent has no stop_agent() yet")
    return fn(agent_id)


def api_key_problem() -> str | None:
    """The agent needs ANTHROPIC_API_KEY in the environment; say so before anything is submitted."""
    if not os.environ.get("ANTHROPIC_API_KEY"):
        return "ANTHROPIC_API_KEY is not set: export it in the shell that runs w2s-tui to launch agents"
    return None


def launch_agent(direction: str, executor: str, budgets: dict[str, Any], start_service: bool = True) -> Any:
    problem = api_key_problem()
    if problem:
        raise UserError(problem)
    agent_mod = _require("core.agent", "launching agents")
    fn = getattr(agent_mod, "launch_agent", None)
    if fn is None:
        raise UserError("core.agent has no launch_agent() yet")
    kwargs = {k: v for k, v in budgets.items() if v is not None}
    doc = fn(direction=direction, executor=executor, **kwargs)
    if start_service:
        ensure_service()
    return doc


def idea_directions() -> list[tuple[str, str]]:
    """``(title, direction)`` per ``## N. Title`` section of Idea.md (the workspace's copy first, else
    the packaged menu), as ``w2s agent launch --idea-md N`` sends it."""
    from core.run.idea_md import directions

    return directions()

# ---------------------------------------------------------------- GPUs


def load_gpus() -> Feed:
    gpu_mod = optional_module("core.control.gpu")
    if gpu_mod is None:
        return Feed(False, note=_missing("core.control.gpu (GPU probe)"))
    try:
        devices = [as_dict(g) for g in gpu_mod.probe()]
    except Exception as exc:
        return Feed(False, note=f"GPU probe failed: {exc}")
    return Feed(True, devices, total=len(devices))


# ---------------------------------------------------------------- leaderboard


def ensure_demo_cache() -> bool:
    mod = optional_module("core.results.archive")
    if mod is None or not hasattr(mod, "ensure_demo_cache"):
        return False
    try:
        return bool(mod.ensure_demo_cache())
    except Exception:
        return False


def load_leaderboard() -> Feed:
    """Every leaderboard row (all datasets) plus the baselines lines when core offers them."""
    lb = optional_module("core.results.leaderboard")
    if lb is None:
        return Feed(False, note=_missing("core.results.leaderboard"))
    try:
        rows = [as_dict(r) for r in lb.leaderboard_rows()]
    except Exception as exc:
        return Feed(False, note=f"leaderboard unreadable: {exc}")
    baselines: list[dict[str, Any]] = []
    fn = getattr(lb, "baseline_rows", None) or getattr(lb, "leaderboard_baselines", None)
    if fn is not None:
        try:
            baselines = [as_dict(b) for b in fn()]
        except Exception:
            baselines = []
    datasets = sorted({str(r.get("dataset")) for r in rows} | {str(b.get("dataset")) for b in baselines})
    return Feed(True, rows, total=len(rows), extra={"baselines": baselines, "datasets": datasets})


# ---------------------------------------------------------------- service


def service_status() -> dict[str, Any]:
    svc = optional_module("core.control.service")
    if svc is None:
        return {"available": False, "running": False, "url": None, "note": _missing("core.control.service")}
    try:
        running = bool(svc.is_service_running())
        url = svc.service_url() if running else None
    except Exception as exc:
        return {"available": True, "running": False, "url": None, "note": f"service check failed: {exc}"}
    return {"available": True, "running": running, "url": url, "note": ""}


def ensure_service() -> dict[str, Any]:
    """Attach to the control service, starting it detached when none runs (jobs outlive the TUI)."""
    status = service_status()
    if status["running"] or not status["available"] or os.environ.get(NO_SERVICE_ENV):
        return status
    from web.launcher import start_service_detached

    try:
        start_service_detached()
    except Exception as exc:
        status["note"] = f"could not start the control service: {exc}"
        return status
    return service_status()


def dashboard_url() -> str | None:
    status = service_status()
    return status["url"] if status["running"] else None


# ---------------------------------------------------------------- launching runs


def list_ideas() -> list[str]:
    mod = optional_module("core.run.ideas")
    if mod is not None and hasattr(mod, "list_ideas"):
        try:
            out = []
            for item in mod.list_ideas():
                out.append(item if isinstance(item, str) else str(as_dict(item).get("name", item)))
            return sorted(set(out))
        except Exception:
            pass
    names = set()
    for base in (REPO_ROOT / "ideas", paths().ideas):
        if base.is_dir():
            names |= {p.parent.name for p in base.glob("*/run.py") if p.parent.name != "TEMPLATE"}
    return sorted(names)


def list_datasets() -> list[str]:
    """Label-free datasets present in the workspace (``data/<name>/``)."""
    base = paths().data
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def parse_seeds(text: str) -> list[int]:
    """``42,43`` or ``42-44`` or ``42 43`` (the one parser every front end uses)."""
    from core.control.submit import parse_seeds as parse

    return parse(text)

def parse_run_options(text: str) -> Any:
    """RunConfig flags typed in the launch dialog (``--epochs 1 --train-size 64``), same parser as ``w2s run``."""
    from core.common.config import add_run_config_arguments, run_config_from_args

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # argparse would exit the TUI
            raise UserError(f"options: {message}")

    parser = _Parser(prog="options", add_help=False)
    add_run_config_arguments(parser)
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UserError(f"options: {exc}") from None
    ns, unknown = parser.parse_known_args(tokens)
    try:
        return run_config_from_args(ns, unknown)
    except ValueError as exc:
        raise UserError(f"options: {exc}") from None




def submit_runs(idea: str, dataset: str, seeds: list[int], executor: str, options: str = "") -> list[str]:
    """One ``idea_run`` job per seed through the one submit path (``core.control.submit``), exactly
    as ``w2s run`` submits them; the control service schedules them."""
    from core.control.submit import submit_idea_runs

    if not idea:
        raise UserError("idea: choose an idea")
    if not dataset:
        raise UserError("dataset: choose a dataset")
    base = parse_run_options(options).replace(data_dir=f"data/{dataset}")
    jobs = submit_idea_runs(idea, base, seeds, source="tui", executor=executor)
    return [str(job["id"]) for job in jobs]


def executors() -> list[str]:
    mod = optional_module("executors")
    names: list[str] = []
    for attr in ("executor_names", "available_executors", "list_executors"):
        fn = getattr(mod, attr, None) if mod is not None else None
        if fn is not None:
            try:
                names = [str(n) for n in fn()]
                break
            except Exception:
                names = []
    if not names and mod is not None:
        registry = getattr(mod, "EXECUTORS", None) or getattr(mod, "REGISTRY", None)
        if isinstance(registry, dict):
            names = [str(k) for k in registry]
    return names or ["local"]


def _require(name: str, what: str) -> ModuleType:
    mod = optional_module(name)
    if mod is None:
        raise UserError(f"{what} needs {name}, which is not available yet")
    return mod
