"""The one way to run an idea: every front end (CLI, TUI, web API, agent tools) submits through here.

Each seed becomes one ``idea_run`` job whose command is ``python -m core.app.seed_job`` with the
*resolved* configuration (demo model pair on demo data or without CUDA, the strong model's
recommended hyperparameters), so a job records the same config whoever launched it. The idea's own
``DEFAULTS`` are added by the runner when it loads the idea: resolving them here would mean
importing idea code, which is untrusted, into the process that submits.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.common.config import RunConfig, validate_run_config
from core.common.errors import UserError
from core.common.job_types import DEFAULT_EVAL_BUDGET, IDEA_RUN_KIND, Job
from core.common.workspace import paths
from core.control.gpu import visible_gpus
from core.control.jobs import submit_job
from core.control.store import Store
from core.run.ideas import check_name, find_idea
from core.run.resolve import prepare_config

MAX_SEEDS = 100
SUBMIT_SOURCES = ("cli", "tui", "api", "agent")


def parse_seeds(text: str | None, fallback: int | None = None) -> list[int]:
    """``42,43,44``, ``42-44`` or ``42 43``; None or blank gives ``[fallback]`` when one is given.

    A repeated seed is an error (it would run, and be cached, twice), as is a reversed range.
    """
    if text is None or not str(text).strip():
        if fallback is not None:
            return [int(fallback)]
        raise UserError("seeds: give at least one seed, e.g. 42,43,44")
    seeds: list[int] = []
    for part in re.split(r"[,\s]+", str(text).strip()):
        if not part:
            continue
        span = re.fullmatch(r"(-?\d+)-(-?\d+)", part)
        if span:
            lo, hi = int(span.group(1)), int(span.group(2))
            if hi < lo:
                raise UserError(f"seeds: range {part!r} runs backwards")
            if hi - lo + 1 > MAX_SEEDS:
                raise UserError(f"seeds: range {part!r} has more than {MAX_SEEDS} seeds")
            seeds.extend(range(lo, hi + 1))
            continue
        try:
            seeds.append(int(part))
        except ValueError:
            raise UserError(f"seeds: {part!r} is not a whole number (expected e.g. 42,43,44 or 42-44)") from None
    if not seeds:
        raise UserError("seeds: give at least one seed, e.g. 42,43,44")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserError(f"seeds: {', '.join(map(str, repeated))} listed twice")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"seeds: at most {MAX_SEEDS} seeds at once")
    return seeds


def runner_command(idea: str, cfg: RunConfig, run_dir: Path | None = None) -> list[str]:
    """The trusted runner for one seed of ``idea``; the job system runs it, or ``w2s run --local``."""
    cmd = [sys.executable, "-m", "core.app.seed_job", "--idea", idea, "--config-json", cfg.to_json()]
    return cmd + (["--run-dir", str(run_dir)] if run_dir else [])


def resolve_run_config(cfg: RunConfig, cuda: bool | None = None) -> RunConfig:
    """The configuration a job records and runs with (see the module docstring); idempotent."""
    if cuda is None:
        cuda = bool(visible_gpus())
    return prepare_config(cfg, None, cuda=cuda)


def check_dataset(cfg: RunConfig) -> Path:
    """The dataset folder a run reads: it must be a prepared, label-free dataset with ``test.jsonl``."""
    folder = Path(cfg.data_dir).expanduser()
    folder = folder if folder.is_absolute() else paths().root / folder
    if not (folder / "test.jsonl").is_file():
        raise UserError(f"{folder}: no test.jsonl (is the data dir a prepared dataset folder?)")
    return folder


def submit_idea_runs(
    idea: str,
    cfg: RunConfig,
    seeds: Sequence[int],
    *,
    source: str,
    executor: str | None = None,
    gpus: int | None = None,
    env: Mapping[str, str] | None = None,
    eval_budget: int = DEFAULT_EVAL_BUDGET,
    max_retries: int = 0,
    meta: Mapping[str, Any] | None = None,
    name: str | None = None,
    store: Store | None = None,
) -> list[Job]:
    """Queue one ``idea_run`` job per seed; returns the jobs in seed order.

    ``gpus`` is per job (default: one when this machine has a GPU, else none); ``meta`` adds keys
    (an agent's id and tool call) to what every job records: idea, dataset, seed, config, source.
    """
    if source not in SUBMIT_SOURCES:
        raise ValueError(f"source must be one of {SUBMIT_SOURCES}, not {source!r}")
    check_name(idea)
    find_idea(idea)
    if not seeds:
        raise UserError("seeds: give at least one seed, e.g. 42,43,44")
    if len(set(seeds)) != len(seeds):
        raise UserError("seeds: a seed is listed twice")
    cfg = validate_run_config(cfg)  # types, ranges, a prepared dataset under data/: before anything is queued
    check_dataset(cfg)
    if gpus is None:
        gpus = 1 if visible_gpus() else 0
    base = resolve_run_config(cfg, cuda=gpus > 0 if gpus is not None else None)
    jobs: list[Job] = []
    for seed in seeds:
        seeded = base.replace(seed=int(seed))
        job_meta = {"idea": idea, "dataset": seeded.dataset, "seed": int(seed), "config": seeded.to_dict(),
                    "source": source, **dict(meta or {})}
        jobs.append(submit_job(
            IDEA_RUN_KIND,
            runner_command(idea, seeded),
            name=name or f"{idea} {seeded.dataset} seed {seed}",
            executor=executor,
            env=env,
            gpus=gpus,
            max_retries=max_retries,
            eval_budget=eval_budget,
            meta=job_meta,
            store=store,
        ))
    return jobs
