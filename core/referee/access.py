"""Who is calling the referee and as what: the run token's record, the (idea, dataset) it is bound to,
its budget, the run's own configuration and the fixed baselines its PGR is measured against."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.common.config import RunConfig
from core.referee.errors import RefereeError
from core.results.pgr import Baselines, fixed_baselines

_BASELINE_TTL_S = 5.0
_baseline_memo: dict[tuple[str, str], tuple[float, Baselines, RunConfig]] = {}
_config_memo: dict[tuple[int, str, str], tuple[float, RunConfig | None]] = {}


def authenticate(store: Any, token: str | None) -> dict[str, Any]:
    """The run token's record, or RefereeError(401). Never says whether a token once existed."""
    from core.control.tokens import resolve_token

    if not token:
        raise RefereeError(401, "missing run token: send 'Authorization: Bearer <W2S_RUN_TOKEN>'")
    record = resolve_token(store, token)
    if not record:
        raise RefereeError(401, "invalid run token")
    return record


def run_id_of(record: Mapping[str, Any]) -> str:
    return str(record.get("run_id") or record.get("id") or "unknown")


def token_scope(store: Any, record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(idea, dataset) a token is bound to, as the scheduler issued it from the job's meta (None: not
    bound). A record from before tokens carried a scope falls back to its job's recorded meta."""
    if "idea" in record or "dataset" in record:
        idea, dataset = record.get("idea"), record.get("dataset")
    else:
        meta = (run_job(store, run_id_of(record)) or {}).get("meta") or {}
        idea, dataset = meta.get("idea"), meta.get("dataset")
        config = meta.get("config")
        if dataset is None and isinstance(config, dict) and isinstance(config.get("data_dir"), str):
            dataset = Path(config["data_dir"].rstrip("/")).name
    return (idea if isinstance(idea, str) else None), (dataset if isinstance(dataset, str) else None)


def check_scope(
    store: Any, record: Mapping[str, Any], *, idea: Any = None, dataset: Any = None, final: bool = False
) -> tuple[str | None, Any]:
    """The (idea, dataset) a call is scored as: the token's, never the request's.

    A request naming another idea or dataset than the token's is refused (403), not silently
    re-targeted. A final submission needs a token bound to both (an idea run's own token).
    """
    bound_idea, bound_dataset = token_scope(store, record)
    run_id = run_id_of(record)
    if dataset is not None and bound_dataset is not None and dataset != bound_dataset:
        raise RefereeError(
            403, f"run {run_id}'s token is bound to dataset {bound_dataset!r}; it cannot be scored on "
            f"{str(dataset)[:64]!r} (omit 'dataset': it is taken from the token)",
        )
    if idea is not None and bound_idea is not None and idea != bound_idea:
        raise RefereeError(
            403, f"run {run_id}'s token is bound to idea {bound_idea!r}; it cannot submit for "
            f"{str(idea)[:64]!r} (omit 'idea': it is taken from the token)",
        )
    if final and (bound_idea is None or bound_dataset is None):
        raise RefereeError(
            403, f"run {run_id}'s token is not bound to an idea and a dataset; only an idea run's own token "
            "makes a final submission",
        )
    return bound_idea, (bound_dataset if bound_dataset is not None else dataset)


def budget_of(record: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(budget, left) from a token record, whichever way the store spells them."""
    budget = record.get("budget", record.get("eval_budget"))
    left = record.get("budget_left", record.get("remaining"))
    if left is None and budget is not None:
        used = record.get("used", record.get("evaluations_used"))
        if used is not None:
            left = int(budget) - int(used)
    return (None if budget is None else int(budget)), (None if left is None else max(0, int(left)))


def run_job(store: Any, run_id: str) -> dict[str, Any] | None:
    try:
        return store.table("jobs").get(run_id)
    except Exception:  # noqa: BLE001 - a missing or odd jobs table only means "config unknown"
        return None


def run_config(store: Any, run_id: str, dataset: str) -> RunConfig | None:
    """The run's own RunConfig when its job recorded one (``meta.config``), else None.
    Memoised for a few seconds: a run's config does not change while it evaluates."""
    memo_key = (id(store), run_id, dataset)
    hit = _config_memo.get(memo_key)
    if hit and time.monotonic() - hit[0] < _BASELINE_TTL_S:
        return hit[1]
    cfg = _load_run_config(store, run_id, dataset)
    if len(_config_memo) > 1024:
        _config_memo.clear()
    _config_memo[memo_key] = (time.monotonic(), cfg)
    return cfg


def _load_run_config(store: Any, run_id: str, dataset: str) -> RunConfig | None:
    job = run_job(store, run_id)
    meta = (job or {}).get("meta") or {}
    config = meta.get("config")
    if isinstance(config, str):
        import json

        try:
            config = json.loads(config)
        except ValueError:
            config = None
    if not isinstance(config, dict):
        return None
    try:
        cfg = RunConfig.from_dict(config)
    except (TypeError, ValueError):
        return None
    return cfg if cfg.dataset == dataset else cfg.replace(data_dir=f"data/{dataset}")


def _prepared(cfg: RunConfig) -> RunConfig:
    """The config a run really trains with (``core.run.runner.prepare_config``: the demo model pair on
    demo datasets or without a GPU, the model's recommended hyperparameters), so the baseline keys
    match what the runner cached."""
    try:
        from core.control.gpu import probe
        from core.run.resolve import prepare_config

        return prepare_config(cfg, cuda=bool(probe()))
    except Exception:  # noqa: BLE001 - fall back to the config as given
        return cfg


def baselines_for(dataset: str, cfg: RunConfig | None) -> tuple[Baselines, RunConfig]:
    """Fixed baselines for the run's own (prepared) config when its job recorded one; otherwise the
    dataset's default ``RunConfig`` (the reference archive's keys), else the config a default run
    trains with here (the demo models on demo datasets)."""
    memo_key = (dataset, cfg.to_json() if cfg else "")
    hit = _baseline_memo.get(memo_key)
    if hit and time.monotonic() - hit[0] < _BASELINE_TTL_S:
        return hit[1], hit[2]
    default = RunConfig(data_dir=f"data/{dataset}")
    candidates = [_prepared(cfg)] if cfg else [default, _prepared(default)]
    chosen: tuple[Baselines, RunConfig] | None = None
    for candidate in candidates:
        base = fixed_baselines(dataset, candidate)
        if chosen is None or (base.n_weak and base.n_strong):
            chosen = (base, candidate)
        if base.n_weak and base.n_strong:
            break
    assert chosen is not None
    _baseline_memo[memo_key] = (time.monotonic(), *chosen)
    return chosen
