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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.common.workspace import paths
from core.control.storage import FileLock
from core.data import holdout
from core.data.datasets import load_split
from core.referee.ledger import Entry, ledger_for
from core.results.cache import (
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    result_key,
    write_result,
)
from core.results.leaderboard import REFEREE_SOURCE
from core.results.pgr import Baselines, compute_pgr, fixed_baselines
from core.results.scoring import score_predictions, to_class

ACCURACY_STEP = 0.01
MIN_SUBSET_ROWS = 30
MIN_SCORED_ROWS = 100
SOURCE = REFEREE_SOURCE  # what w2s_source says on a seed result the referee wrote
SCORED_SPLIT = "test"
DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
IDEA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_BASELINE_TTL_S = 5.0
_baseline_memo: dict[tuple[str, str], tuple[float, Baselines, RunConfig]] = {}
_config_memo: dict[tuple[int, str, str], tuple[float, RunConfig | None]] = {}


class RefereeError(Exception):
    """A refused call: ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def quantize(value: float | None, step: float = ACCURACY_STEP) -> float | None:
    """Round to the nearest multiple of ``step`` (what callers are allowed to see)."""
    if value is None:
        return None
    decimals = max(0, -int(math.floor(math.log10(step))))
    return round(round(value / step) * step, decimals)


# ---------------------------------------------------------------------------------------------
# tokens and runs


def authenticate(store: Any, token: str | None) -> dict[str, Any]:
    """The run token's record, or RefereeError(401). Never says whether a token once existed."""
    from core.control.tokens import resolve_token

    if not token:
        raise RefereeError(401, "missing run token: send 'Authorization: Bearer <W2S_RUN_TOKEN>'")
    record = resolve_token(store, token)
    if not record:
        raise RefereeError(401, "invalid run token")
    return record


def _run_id(record: Mapping[str, Any]) -> str:
    return str(record.get("run_id") or record.get("id") or "unknown")


def token_scope(store: Any, record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(idea, dataset) a token is bound to, as the scheduler issued it from the job's meta (None: not
    bound). A record from before tokens carried a scope falls back to its job's recorded meta."""
    if "idea" in record or "dataset" in record:
        idea, dataset = record.get("idea"), record.get("dataset")
    else:
        meta = (run_job(store, _run_id(record)) or {}).get("meta") or {}
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
    run_id = _run_id(record)
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


# ---------------------------------------------------------------------------------------------
# ground truth as vectors (trusted side), for scoring many calls fast


@dataclass(frozen=True)
class Gold:
    """The labelled ``test`` split of one dataset as arrays aligned with ``layout.ids``."""

    layout: holdout.HoldoutLayout
    index: dict[str, int]
    labels: np.ndarray
    subset_codes: np.ndarray
    subset_names: tuple[str, ...]
    public_mask: np.ndarray


_GOLD: dict[tuple[str, str, int, int], Gold] = {}


def gold_for(dataset: str) -> Gold | None:
    """Cached per file version; None when the dataset has no labelled test split here."""
    path = paths().labeled_data / dataset / "test.jsonl"
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (dataset, str(path), st.st_mtime_ns, st.st_size)
    gold = _GOLD.get(key)
    if gold is not None:
        return gold
    split = load_split(path)
    ids = tuple(split.ids)
    public, private = holdout.split_rows(dataset, split.rows)
    layout = holdout.HoldoutLayout(dataset, ids, frozenset(public), frozenset(private))
    names = sorted({str(r.get("subset", "")) for r in split.rows})
    code = {n: i for i, n in enumerate(names)}
    gold = Gold(
        layout=layout,
        index={rid: i for i, rid in enumerate(ids)},
        labels=np.asarray(split.labels(), dtype=np.int8),
        subset_codes=np.asarray([code[str(r.get("subset", ""))] for r in split.rows], dtype=np.int32),
        subset_names=tuple(names),
        public_mask=np.asarray([rid in layout.public for rid in ids], dtype=bool),
    )
    if len(_GOLD) > 16:
        _GOLD.clear()
    _GOLD[key] = gold
    return gold


def classes_of(predictions: list[Any]) -> np.ndarray:
    """Predictions as classes 0/1 (same rules as ``core.results.scoring.to_class``), vectorised when they
    are all numbers or bools; RefereeError(400) naming the first bad index otherwise."""
    try:
        values = np.asarray(predictions)
    except (ValueError, TypeError):  # ragged nesting
        values = np.asarray([], dtype=object)
    if values.ndim == 1 and len(values) == len(predictions) and values.dtype.kind in "fiub":
        values = values.astype(np.float64, copy=False)
        if np.all((values >= 0.0) & (values <= 1.0)):  # NaN fails both comparisons
            return (values > 0.5).astype(np.int8)
    out = np.empty(len(predictions), dtype=np.int8)
    for i, value in enumerate(predictions):
        try:
            out[i] = to_class(value)
        except (ValueError, TypeError) as exc:
            raise RefereeError(400, f"field 'predictions[{i}]': {exc}") from None
    return out


def positions_of(gold: Gold, predictions: Any, ids: Any) -> np.ndarray:
    """Row positions the predictions refer to; RefereeError(400) for anything but distinct test ids."""
    if not isinstance(predictions, list):
        raise RefereeError(400, "field 'predictions': expected a list")
    n = len(gold.layout.ids)
    if ids is None:
        if len(predictions) != n:
            raise RefereeError(
                400,
                f"field 'predictions': expected {n} predictions (one per row of test, in file order), "
                f"got {len(predictions)}; or send 'ids' with the predictions",
            )
        return np.arange(n)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise RefereeError(400, "field 'ids': expected a list of row id strings")
    if len(ids) != len(predictions):
        raise RefereeError(
            400, f"fields 'ids'/'predictions': {len(ids)} ids for {len(predictions)} predictions"
        )
    pos = np.empty(len(ids), dtype=np.int64)
    for k, rid in enumerate(ids):
        i = gold.index.get(rid)
        if i is None:
            raise RefereeError(400, f"field 'ids': {rid[:40]!r} is not a row of test")
        pos[k] = i
    if len(np.unique(pos)) != len(pos):
        seen: set[str] = set()
        for rid in ids:  # name the first id that repeats
            if rid in seen:
                raise RefereeError(400, f"field 'ids': id {rid[:40]!r} appears twice")
            seen.add(rid)
    return pos


def score_public(gold: Gold, pos: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """Exact metrics over the public rows among ``pos`` (shape of ``core.results.metrics.compute_metrics``,
    without label counts)."""
    keep = gold.public_mask[pos]
    pos, classes = pos[keep], classes[keep]
    correct = classes == gold.labels[pos]
    total = int(len(pos))
    codes = gold.subset_codes[pos]
    n_sub = np.bincount(codes, minlength=len(gold.subset_names))
    c_sub = np.bincount(codes, weights=correct, minlength=len(gold.subset_names))
    ones = int(classes.sum())
    return {
        "accuracy": float(correct.sum()) / total if total else None,
        "correct": int(correct.sum()),
        "total": total,
        "pred_distribution": {k: v for k, v in (("0", total - ones), ("1", ones)) if v},
        "per_subset": {
            name: {"accuracy": float(c_sub[i]) / int(n_sub[i]), "total": int(n_sub[i])}
            for i, name in enumerate(gold.subset_names)
            if n_sub[i]
        },
    }


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
    run_id = _run_id(record)
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
