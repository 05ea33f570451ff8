"""Baseline producers (trusted side: they read ``labeled_data/``).

- ``weak_artifacts``: the weak model trained on ``train_label``; its soft labels for every
  ``train_unlabel`` row (with the row ``ids``, so consumers align by id), weak test accuracy and the
  accuracy of its hard labels on ``train_unlabel``.
- ``train_ceiling``: the strong model trained on the ground truth of ``train_unlabel``.

Both are written to the results cache in the reference archive's format, one file per seed, and are
reused when present. Both train with the *pinned* spec of the dataset and model pair
(``core.results.pins``), never with the idea's own hyperparameters, loss or parameters:

- a pinned seed gets its weak artifacts and its ceiling (they enter the baseline means);
- an idea seed outside the pin gets weak artifacts only, trained with the pinned hyperparameters
  (the idea needs that seed's weak labels), marked ``pinned: false`` and never counted in a mean;
  no ceiling is built for it;
- a size-capped (smoke) config builds under keys that carry its sizes, never under a full key.

``build_pinned`` (``w2s baselines build``) builds the missing pinned seeds of a pair.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.common.errors import UserError
from core.common.workspace import paths
from core.data.datasets import LABEL_FREE_DROP, Split, load_split
from core.results.cache import (
    SIZE_FIELDS,
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    ceiling_key,
    read_result,
    result_dir,
    result_path,
    weak_artifacts_key,
    write_result,
)
from core.results.pins import Pin, resolve_pin

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]
SOURCE = "local run"


def baseline_pin(cfg: RunConfig) -> Pin:
    """The pin of ``cfg``'s dataset and model pair."""
    return resolve_pin(cfg.dataset, cfg.weak_model, cfg.strong_model)


def baseline_config(cfg: RunConfig) -> RunConfig:
    """What the producers train with for ``cfg``'s seed: the pinned spec (cross-entropy, no idea
    parameters), whatever lr/epochs/batch size/loss the idea asked for. Idempotent."""
    return baseline_pin(cfg).config(cfg)


def _labeled_split(dataset: str, split: str) -> Split:
    path = paths().labeled_data / dataset / f"{split}.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: missing; baselines need the labeled dataset (trusted side)")
    try:
        loaded = load_split(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not loaded.has_labels:
        raise UserError(f"{path}: some rows have no label")
    return loaded


def data_fingerprint(dataset: str) -> str:
    """sha256 of the labeled splits: a cached baseline built from other data must not be reused."""
    digest = hashlib.sha256()
    for split in ("train_label", "train_unlabel", "test"):
        path = paths().labeled_data / dataset / f"{split}.jsonl"
        digest.update(split.encode())
        if path.is_file():
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def _reusable(cached: dict[str, Any] | None, dataset: str, log: LogFn | None, cfg: RunConfig | None = None) -> bool:
    """Cached, built from the same data (files without a fingerprint, e.g. imported, are trusted)
    and on the same sizes (an older smoke build under a full-size key is rebuilt)."""
    if cached is None:
        return False
    recorded = cached.get("config")
    config: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    if cfg is not None and any(config.get(f) != getattr(cfg, f) for f in SIZE_FIELDS):
        if log:
            log(f"{dataset}: cached {cached.get('idea_name')} seed {cached.get('seed')} was built on other sizes; rebuilding")
        return False
    stored = cached.get("data_fingerprint")
    if stored is None or stored == data_fingerprint(dataset):
        return True
    if log:
        log(f"{dataset}: labeled data changed since {cached.get('idea_name')} seed {cached.get('seed')} was cached; rebuilding")
    return False


def _rows_without_labels(split: Split, limit: int | None = None) -> list[dict[str, Any]]:
    rows = split.rows if limit is None else split.rows[:limit]
    return [{k: v for k, v in r.items() if k not in LABEL_FREE_DROP} for r in rows]


def _score(dataset: str, split: str, rows: list[dict[str, Any]], probs: np.ndarray) -> dict[str, Any]:
    from core.results.scoring import score_predictions

    preds = {r["id"]: float(p) for r, p in zip(rows, probs, strict=True)}
    return score_predictions(dataset, preds, split=split, ids=[r["id"] for r in rows])


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def build_weak_artifacts(
    cfg: RunConfig, progress: ProgressFn | None = None, log: LogFn | None = None
) -> dict[str, Any]:
    """Train the weak model on train_label; label train_unlabel; score test. Returns the result."""
    from core.engine import resolve_model, train_and_predict

    cfg = baseline_config(cfg)
    if not cfg.weak_model:
        raise UserError("weak artifacts need a weak model (--weak-model)")
    ds = cfg.dataset
    train = _labeled_split(ds, "train_label")
    unlabel = _labeled_split(ds, "train_unlabel")
    test = _labeled_split(ds, "test")
    unlabel_rows = _rows_without_labels(unlabel, cfg.train_size)
    test_rows = _rows_without_labels(test, cfg.test_size)
    start = time.time()
    probs = train_and_predict(
        cfg.weak_model,
        train.fmt,
        _rows_without_labels(train),
        np.asarray(train.labels(), dtype=np.float64),
        {"train_unlabel": unlabel_rows, "test": test_rows},
        cfg,
        progress=progress,
        log=log,
    )
    elapsed = time.time() - start
    p_unlabel = np.asarray(probs["train_unlabel"], dtype=np.float64)
    test_eval = _score(ds, "test", test_rows, probs["test"])
    unlabel_eval = _score(ds, "train_unlabel", unlabel_rows, p_unlabel)
    key = weak_artifacts_key(cfg)
    return {
        "weak_model": cfg.weak_model,
        "weak_acc": test_eval["accuracy"],
        "soft_labels": [[float(1.0 - p), float(p)] for p in p_unlabel],
        "ids": [r["id"] for r in unlabel_rows],
        "hard_label_acc": unlabel_eval["accuracy"],
        "dataset_name": ds,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        # passes over train_label really made (the registry may give a model several per epoch)
        "train_passes": resolve_model(cfg.weak_model).training_epochs(cfg),
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "scheduler": cfg.lr_schedule,
        "training_time": elapsed,
        "config": cfg.to_dict(),
        "detailed_eval": {
            "weak": {"final_eval": test_eval},
            "train_unlabel_hard_labels": {"final_eval": unlabel_eval},
        },
        "cached_at": _stamp(),
        "idea_name": WEAK_ARTIFACTS,
        "hyperparam_config_key": key,
        "data_fingerprint": data_fingerprint(ds),
        "w2s_source": SOURCE,
    }


def build_ceiling(cfg: RunConfig, progress: ProgressFn | None = None, log: LogFn | None = None) -> dict[str, Any]:
    """Train the strong model on the ground truth of train_unlabel; score test. Returns the result."""
    from core.engine import train_and_predict

    cfg = baseline_config(cfg)
    ds = cfg.dataset
    unlabel = _labeled_split(ds, "train_unlabel")
    test = _labeled_split(ds, "test")
    limit = cfg.train_size
    train_rows = _rows_without_labels(unlabel, limit)
    targets = np.asarray(unlabel.labels()[: len(train_rows)], dtype=np.float64)
    test_rows = _rows_without_labels(test, cfg.test_size)
    start = time.time()
    probs = train_and_predict(
        cfg.strong_model, unlabel.fmt, train_rows, targets, {"test": test_rows}, cfg, progress=progress, log=log
    )
    elapsed = time.time() - start
    test_eval = _score(ds, "test", test_rows, probs["test"])
    return {
        "idea_name": TRAIN_CEILING,
        "strong_model": cfg.strong_model,
        "weak_model": None,
        "strong_acc": test_eval["accuracy"],
        "training_time": elapsed,
        "config": cfg.to_dict(),
        "detailed_eval": {"ceiling": {"final_eval": test_eval}},
        "cached_at": _stamp(),
        "seed": cfg.seed,
        "hyperparam_config_key": ceiling_key(cfg),
        "dataset_name": ds,
        "data_fingerprint": data_fingerprint(ds),
        "w2s_source": SOURCE,
    }


def _ensure(
    producer: str, key: str, build: Callable[..., dict[str, Any]], cfg: RunConfig,
    progress: ProgressFn | None, log: LogFn | None,
) -> tuple[dict[str, Any], Path, bool]:
    """Reuse the cached ``producer`` result for ``cfg.seed`` when it fits the data, else build it."""
    cached = read_result(cfg.dataset, producer, key, cfg.seed)
    if cached is not None and _reusable(cached, cfg.dataset, log, cfg):
        return cached, result_path(cfg.dataset, producer, key, cfg.seed), False
    result = {**build(cfg, progress, log), "pinned": cfg.seed in baseline_pin(cfg).seeds}
    return result, write_result(cfg.dataset, producer, key, cfg.seed, result), True


def ensure_weak_artifacts(
    cfg: RunConfig, progress: ProgressFn | None = None, log: LogFn | None = None
) -> tuple[dict[str, Any], Path, bool]:
    """The weak artifacts for ``cfg.seed`` under the pinned spec, built first when missing (also for
    a seed outside the pin: the idea trains on them, the baseline mean never counts them).
    -> (result, path, built)."""
    bcfg = baseline_config(cfg)
    return _ensure(WEAK_ARTIFACTS, weak_artifacts_key(bcfg), build_weak_artifacts, bcfg, progress, log)


def ensure_ceiling(
    cfg: RunConfig, progress: ProgressFn | None = None, log: LogFn | None = None
) -> tuple[dict[str, Any], Path, bool]:
    """The ceiling for ``cfg.seed`` under the pinned spec, built first when missing. A seed outside
    the pin builds nothing: the result is a placeholder whose ``strong_acc`` is None and whose path
    is the pinned key's folder. -> (result, path, built)."""
    bcfg = baseline_config(cfg)
    pin = baseline_pin(cfg)
    key = ceiling_key(bcfg)
    if cfg.seed not in pin.seeds:
        note = (f"seed {cfg.seed} is not a pinned seed ({pin.describe()}): no ceiling is built for it; "
                "PGR uses the mean over the pinned seeds")
        if log:
            log(note)
        placeholder: dict[str, Any] = {"idea_name": TRAIN_CEILING, "strong_model": bcfg.strong_model, "strong_acc": None,
                       "seed": cfg.seed, "pinned": False, "note": note, "hyperparam_config_key": key,
                       "detailed_eval": {}}
        return placeholder, result_dir(cfg.dataset, TRAIN_CEILING, key), False
    return _ensure(TRAIN_CEILING, key, build_ceiling, bcfg, progress, log)


def missing_baselines(cfg: RunConfig) -> list[str]:
    """Which producers still have to run for ``cfg.seed`` under the pinned spec (absent, built from
    other data or on other sizes); never a ceiling for a seed outside the pin."""
    bcfg = baseline_config(cfg)
    out = []
    if bcfg.weak_model and not _reusable(
        read_result(cfg.dataset, WEAK_ARTIFACTS, weak_artifacts_key(bcfg), cfg.seed), cfg.dataset, None, bcfg
    ):
        out.append(WEAK_ARTIFACTS)
    if cfg.seed in baseline_pin(cfg).seeds and not _reusable(
        read_result(cfg.dataset, TRAIN_CEILING, ceiling_key(bcfg), cfg.seed), cfg.dataset, None, bcfg
    ):
        out.append(TRAIN_CEILING)
    return out


def build_pinned(
    cfg: RunConfig, seeds: list[int] | None = None, log: LogFn | None = None
) -> list[dict[str, Any]]:
    """Build the missing pinned weak artifacts and ceilings of ``cfg``'s dataset and model pair (all
    pinned seeds, or ``seeds``, which must be pinned). Trusted side: reads ``labeled_data/``.
    Returns one summary per seed and producer: seed, producer, key, built, accuracy."""
    from core.results.cache import is_size_capped

    if is_size_capped(cfg):
        raise UserError("baselines build: pinned baselines are full size; drop --train-size/--test-size")
    pin = baseline_pin(cfg)
    chosen = list(pin.seeds) if seeds is None else list(seeds)
    outside = [s for s in chosen if s not in pin.seeds]
    if outside:
        raise UserError(
            f"baselines build: seed(s) {', '.join(map(str, outside))} are not pinned for {cfg.dataset} "
            f"({pin.describe()}); pin them first with `w2s baselines pin`"
        )
    out = []
    for seed in chosen:
        scfg = cfg.replace(seed=seed)
        steps = [(WEAK_ARTIFACTS, ensure_weak_artifacts)] if pin.config(scfg).weak_model else []
        for producer, ensure in [*steps, (TRAIN_CEILING, ensure_ceiling)]:
            result, path, built = ensure(scfg, None, log)
            field = "weak_acc" if producer == WEAK_ARTIFACTS else "strong_acc"
            out.append({"seed": seed, "producer": producer, "key": path.parent.name, "built": built,
                        "accuracy": result.get(field)})
            if log:
                log(f"{cfg.dataset} seed {seed}: {producer} {'built' if built else 'cached'} "
                    f"({field} {result.get(field)})")
    return out
