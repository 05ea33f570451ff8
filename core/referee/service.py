"""The referee: scores a run's test predictions for its run token, within its budget, and logs it.

Rules (the contract the API documents):

- Only the ``test`` split is scored; any other split is refused (400).
- Predictions come either as a list covering every row of ``test`` in file order
  (``data/<ds>/test.jsonl``), or as ``ids`` + ``predictions`` for any distinct test rows in any
  order, as long as at least ``MIN_SCORED_ROWS`` (100, or all if fewer) public rows are among
  them. Wrong length, unknown or repeated ids are refused (400) with counts and ids only, never a
  label. Invalid calls cost no budget.
- The private holdout (``core.data.holdout``) is scored for nobody during a run: its predictions are
  accepted and ignored (``n_holdout_ignored`` says how many), and the numbers cover public rows.
- Accuracy is returned rounded to ``ACCURACY_STEP`` (0.01); PGR is computed from that rounded
  value, so it leaks nothing finer. Per-subset accuracy (same rounding) is shown only for subsets
  with at least ``MIN_SUBSET_ROWS`` public rows. Label counts are never returned. One call
  therefore reveals at most a few bits; flipping one prediction per call reveals at most one label
  per call, and the budget (default 20 per run) caps the calls: 429 once it is spent.
- A run token is bound to its run's idea and dataset (``core.control.tokens``); a call naming another
  dataset or idea is refused (403) and one naming none is scored as the token's.
- The budget is the run token's ``budget``; charges are counted per pool (the run id, or the agent's
  pool every run of one agent shares) in the ``evaluations``
  table by ``core.referee.ledger`` (group commit: the charge and its audit record are one durable
  write, made before the answer is sent). A retried job keeps its run id, so its budget is not
  refilled. A call is scored first and charged last, so refused calls (400, 429) cost nothing.
- PGR is measured against the fixed baselines (``core.results.pgr``) of the run's own configuration
  when its job records one (``meta.config``, as ``core.run.runner.prepare_config`` runs it); otherwise
  of the dataset's default ``RunConfig`` (the reference archive's keys), failing that of the config
  a default run trains with here (the demo models on ``demo-*`` datasets). The answer names the
  baseline keys and models used; ``pgr`` is null with a ``pgr_reason`` when none are cached.
- Every authenticated call, accepted or not, is stored in the ``evaluations`` table
  (run_id, time, status, n, and the numbers the run was shown or the error).
- ``final_score`` scores a run once on both parts and writes its leaderboard result
  (``w2s_source: "referee"``) with the public and the private accuracy; the private one counts.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.common.config import RunConfig
from core.common.workspace import paths
from core.control.storage import FileLock
from core.data import holdout
from core.referee.access import (
    authenticate,
    baselines_for,
    budget_of,
    check_scope,
    run_config,
    run_id_of,
    run_job,
)
from core.referee.errors import RefereeError
from core.referee.gold import Gold, classes_of, gold_for, positions_of, score_public
from core.referee.ledger import Entry, ledger_for
from core.results.cache import (
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    result_key,
    write_result,
)
from core.results.leaderboard import REFEREE_SOURCE
from core.results.pgr import Baselines, compute_pgr
from core.results.scoring import score_predictions

ACCURACY_STEP = 0.01
MIN_SUBSET_ROWS = 30
MIN_SCORED_ROWS = 100
SOURCE = REFEREE_SOURCE  # what w2s_source says on a seed result the referee wrote
SCORED_SPLIT = "test"
DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
IDEA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def quantize(value: float | None, step: float = ACCURACY_STEP) -> float | None:
    """Round to the nearest multiple of ``step`` (what callers are allowed to see)."""
    if value is None:
        return None
    decimals = max(0, -int(math.floor(math.log10(step))))
    return round(round(value / step) * step, decimals)


# ---------------------------------------------------------------------------------------------
# validating a submission


def _check_dataset(dataset: Any) -> Gold:
    if not isinstance(dataset, str) or not DATASET_RE.match(dataset):
        raise RefereeError(400, "field 'dataset': expected a dataset name such as 'demo-math'")
    gold = gold_for(dataset)
    if gold is None:
        raise RefereeError(400, f"field 'dataset': no dataset {dataset!r} on this server")
    return gold


def _check_split(split: Any) -> None:
    if split != SCORED_SPLIT:
        raise RefereeError(400, f"field 'split': only 'test' is scored (got {split!r})")


def min_public_rows(layout: holdout.HoldoutLayout) -> int:
    """Fewest public rows one call must score: small calls would read out labels too directly."""
    return min(MIN_SCORED_ROWS, len(layout.public))


def public_view(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What a run may see of a score: rounded accuracy, prediction counts, big subsets only."""
    per_subset = {}
    for name, block in (metrics.get("per_subset") or {}).items():
        if name and block.get("total", 0) >= MIN_SUBSET_ROWS:
            per_subset[name] = {"accuracy": quantize(block.get("accuracy")), "n": block.get("total")}
    return {
        "accuracy": quantize(metrics.get("accuracy")),
        "n_scored": metrics.get("total"),
        "pred_distribution": metrics.get("pred_distribution"),
        "per_subset": per_subset,
    }


def _record(store: Any, doc: dict[str, Any], budget: int | None = None) -> Entry:
    """Write one audit record through the ledger (charging it when ``budget`` is given)."""
    return ledger_for(store).write(Entry(doc, budget))


# ---------------------------------------------------------------------------------------------
# the two entry points


def evaluate(
    store: Any,
    token: str | None,
    dataset: Any,
    predictions: Any,
    ids: Any = None,
    split: Any = SCORED_SPLIT,
    *,
    record: dict[str, Any] | None = None,
    idea: Any = None,
) -> dict[str, Any]:
    """Score one call of a run on the public part of ``test``; see the module docstring.

    ``record`` is the already resolved token record (the API resolves it before parsing the body).
    ``dataset`` may be None (the token's); ``idea``, when a request names one, must be the token's.
    """
    record = record or authenticate(store, token)
    run_id = run_id_of(record)
    pool = str(record.get("pool") or run_id)
    budget, _ = budget_of(record)
    budget = int(budget or 0)
    started = time.perf_counter()
    base_doc = {"kind": "evaluate", "run_id": run_id, "pool": pool, "time": now_iso(),
                "dataset": str(dataset)[:64], "n": _length(predictions)}
    try:
        _, dataset = check_scope(store, record, idea=idea, dataset=dataset)  # the token's, never another
        base_doc["dataset"] = str(dataset)[:64]
        _check_split(split)
        gold = _check_dataset(dataset)
        pos = positions_of(gold, predictions, ids)
        classes = classes_of(predictions)
        n_public = int(gold.public_mask[pos].sum())
        need = min_public_rows(gold.layout)
        if n_public < need or not n_public:
            raise RefereeError(
                400,
                f"field 'ids': a call must cover at least {need} public test rows, got {n_public} "
                "(holdout rows are never scored)",
            )
        metrics = score_public(gold, pos, classes)
    except RefereeError as exc:
        _record(store, {**base_doc, "status": exc.status, "error": exc.message})
        raise
    view = public_view(metrics)
    baselines, used_cfg = baselines_for(dataset, run_config(store, run_id, dataset))
    pgr, reason = compute_pgr(view["accuracy"], baselines)
    result = {
        "dataset": dataset,
        "split": SCORED_SPLIT,
        **view,
        "accuracy_step": ACCURACY_STEP,
        "n_submitted": int(len(pos)),
        "n_holdout_ignored": int(len(pos)) - n_public,
        "pgr": None if pgr is None else round(pgr, 4),
        "pgr_reason": reason,
        "weak_acc": baselines.weak_acc,
        "strong_acc": baselines.strong_acc,
        "baseline_keys": {"weak": baselines.weak_key, "strong": baselines.strong_key},
        "baseline_models": {"weak": used_cfg.weak_model, "strong": used_cfg.strong_model},
        "run_id": run_id,
        "budget": budget,
    }
    doc = {**base_doc, "status": 200,
           "result": {k: result[k] for k in ("accuracy", "pgr", "n_scored", "per_subset")}}
    entry = _record(store, doc, budget=budget)
    if not entry.granted:
        shared = f" (shared pool {pool})" if pool != run_id else ""
        raise RefereeError(
            429,
            f"evaluation budget spent: run {run_id} has used all {budget} of its evaluations{shared} "
            "(the budget is set per launch)",
        )
    result["budget_left"] = max(0, budget - entry.charged_after)
    result["evaluation_id"] = entry.doc_id
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def final_submission(store: Any, run_id: str) -> dict[str, Any] | None:
    """The run's final (leaderboard) submission, if it made one."""
    found = store.table("evaluations").search(
        lambda d: d.get("kind") == "final" and d.get("run_id") == run_id and d.get("status") == 200
    )
    return found[0] if found else None


def _strip_labels(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Cache files are readable by runs: keep accuracies and prediction counts, drop label counts."""
    out = {k: v for k, v in metrics.items() if k not in ("label_distribution", "gold_file")}
    if "per_subset" in out:
        out["per_subset"] = {k: _strip_labels(v) for k, v in (out["per_subset"] or {}).items()}
    return out


def complete_classes(dataset: str, predictions_by_id: Any) -> tuple[holdout.HoldoutLayout, dict[str, int]]:
    """The predicted class of every test row, or RefereeError(400): unknown ids, or anything short of
    all of them (a final score is never computed on the rows an idea chose to be sure about)."""
    gold = _check_dataset(dataset)
    layout = gold.layout
    if not isinstance(predictions_by_id, Mapping):
        raise RefereeError(400, "predictions: expected a mapping of row id to prediction")
    keys = [str(k) for k in predictions_by_id]
    values = list(predictions_by_id.values())
    positions_of(gold, values, keys)  # 400 for unknown ids
    if len(keys) != len(layout.ids):
        raise RefereeError(
            400, f"predictions: a final submission must cover all {len(layout.ids)} test rows "
            f"({len(layout.ids) - len(keys)} missing)"
        )
    return layout, dict(zip(keys, classes_of(values).tolist(), strict=True))


def final_score(
    store: Any,
    run_id: str,
    dataset: str,
    predictions_by_id: Mapping[str, Any],
    *,
    idea: str | None = None,
    cfg: RunConfig | None = None,
    judge_calls: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Score a run's final predictions on the public part and the private holdout, once per run,
    and write its leaderboard result (``w2s_source: "referee"``); the private accuracy counts.

    ``judge_calls`` is what the trusted runner counted of the run's use of the weak-judge service
    (``core.run.judge_service``); only the runner's finaliser passes it (the HTTP route does not),
    so the row shows how much the idea leaned on a label-trained judge.

    ``idea`` and ``cfg`` default to what the run's job recorded (``meta.idea``, ``meta.config``);
    the config is taken as the runner runs it (see :func:`baselines_for`), which names the row's key.
    Raises RefereeError: 400 for a bad submission, 409 when the run already has a final score.
    """
    layout, classes = complete_classes(dataset, predictions_by_id)
    job = run_job(store, run_id) or {}
    meta = job.get("meta") or {}
    idea = idea or meta.get("idea")
    if not isinstance(idea, str) or not IDEA_RE.match(idea):
        raise RefereeError(400, "field 'idea': expected an idea name (letters, digits, '_', '.', '-')")
    if idea in (WEAK_ARTIFACTS, TRAIN_CEILING):
        raise RefereeError(400, f"field 'idea': {idea!r} is reserved for baselines")
    baselines, cfg = baselines_for(dataset, cfg or run_config(store, run_id, dataset))
    with FileLock(Path(store.root) / "referee-final.lock"):  # one final per run, even when raced
        return _final_locked(store, run_id, dataset, layout, classes, idea, cfg, baselines, judge_calls)


def _score_parts(dataset: str, layout: holdout.HoldoutLayout, classes: dict[str, int]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public part's and the private holdout's metrics for predicted classes of every test row."""
    public_ids, private_ids = layout.public_ordered, layout.private_ordered
    public = score_predictions(dataset, {i: classes[i] for i in public_ids}, SCORED_SPLIT, public_ids)
    private = (
        score_predictions(dataset, {i: classes[i] for i in private_ids}, SCORED_SPLIT, private_ids)
        if private_ids
        else {"accuracy": None, "total": 0}
    )
    return public, private


def _final_locked(
    store: Any, run_id: str, dataset: str, layout: holdout.HoldoutLayout, classes: dict[str, int],
    idea: str, cfg: RunConfig, baselines: Baselines, judge_calls: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Score both parts and write the run's result; the caller holds the finals lock."""
    if final_submission(store, run_id):
        raise RefereeError(409, f"run {run_id} already has its final score; one final submission per run")
    public, private = _score_parts(dataset, layout, classes)
    pgr, reason = compute_pgr(private["accuracy"], baselines)
    pgr_public, _ = compute_pgr(public["accuracy"], baselines)
    key = result_key(cfg)
    result = {
        "idea_name": idea,
        "weak_model": cfg.weak_model,
        "strong_model": cfg.strong_model,
        "transfer_acc": private["accuracy"],
        "public_acc": public["accuracy"],
        "private_acc": private["accuracy"],
        "n_public": public["total"],
        "n_private": private["total"],
        "pgr": pgr,
        "pgr_reason": reason,
        "pgr_public": pgr_public,
        "weak_acc": baselines.weak_acc,
        "strong_acc": baselines.strong_acc,
        "fixed_weak_baseline": baselines.weak_acc,
        "fixed_strong_baseline": baselines.strong_acc,
        "baselines": baselines.to_dict(),
        "config": cfg.to_dict(),
        "detailed_eval": {
            "strong": {"final_eval": _strip_labels(private)},
            "public": {"final_eval": _strip_labels(public)},
        },
        "seed": cfg.seed,
        "hyperparam_config_key": key,
        "dataset_name": dataset,
        "run_id": run_id,
        "cached_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "w2s_source": SOURCE,
    }
    if judge_calls:
        result["judge_calls"] = {k: int(v) for k, v in judge_calls.items()}
    path = write_result(dataset, idea, key, cfg.seed, result)
    _record(
        store,
        {"kind": "final", "run_id": run_id, "time": now_iso(), "dataset": dataset, "status": 200,
         "n": len(classes),
         "result": {k: result[k] for k in ("public_acc", "private_acc", "pgr", "pgr_public")},
         "path": str(path.relative_to(paths().root)) if path.is_relative_to(paths().root) else str(path)},
    )
    return result


def rescore(dataset: str, predictions_by_id: Mapping[str, Any]) -> dict[str, Any]:
    """Public and private accuracy of a complete set of test predictions, computed as
    :func:`final_score` computes them, with nothing recorded or written: ``w2s verify`` rescores kept
    predictions with it, and an unverified (unsandboxed) run is scored with it. RefereeError(400)
    for unknown ids or anything short of every test row."""
    layout, classes = complete_classes(dataset, predictions_by_id)
    public, private = _score_parts(dataset, layout, classes)
    return {"public_acc": public["accuracy"], "private_acc": private["accuracy"],
            "n_public": public["total"], "n_private": private["total"]}
