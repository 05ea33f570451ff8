"""Performance gap recovered against *fixed* baselines.

The weak and ceiling accuracies are means over every cached seed of the baseline producers
(``weak_artifacts`` and ``train_ceiling``) with the same dataset and hyperparameters, as in the
reference. Using fixed means rather than the per-seed pair keeps one noisy ceiling seed from
swinging a single run's PGR, and lets rows whose stored ``pgr`` is null be recomputed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from core.common.config import RunConfig
from core.results.cache import (
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    cache_root,
    ceiling_key,
    list_keys,
    model_slug,
    parse_key,
    training_suffix_of,
)

# Field that holds a producer's test accuracy; ceiling files from some writers say strong_gt_acc.
_ACC_FIELDS = {WEAK_ARTIFACTS: ("weak_acc",), TRAIN_CEILING: ("strong_acc", "strong_gt_acc")}
_ACC_MEMO: dict[Path, tuple[tuple, list[float]]] = {}


@dataclass(frozen=True)
class Baselines:
    """The fixed baselines one PGR was computed against, with how many seeds each mean covers."""

    weak_acc: float | None
    n_weak: int
    strong_acc: float | None
    n_strong: int
    weak_key: str | None
    strong_key: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in sorted(folder.glob("seed_*.json")):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((f.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _load_json(path: Path) -> Any:
    """orjson for speed; the stdlib parser as fallback because it accepts NaN, which orjson does not."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except ValueError:
            return None


def producer_accuracies(dataset: str, producer: str, key: str, root: Path | None = None) -> list[float]:
    """Test accuracy of every cached seed of a baseline producer (memoised on file stats, because
    weak-artifact files carry megabytes of soft labels)."""
    folder = cache_root(root) / f"{dataset}_{producer}" / key
    if not folder.is_dir():
        return []
    signature = _signature(folder)
    memo = _ACC_MEMO.get(folder)
    if memo is not None and memo[0] == signature:
        return list(memo[1])
    accs: list[float] = []
    for name, _, _ in signature:
        data = _load_json(folder / name)
        if not isinstance(data, dict):
            continue
        for field in _ACC_FIELDS[producer]:
            value = data.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
                accs.append(float(value))
                break
    _ACC_MEMO[folder] = (signature, accs)
    return list(accs)


def _weak_key(dataset: str, training: str, weak_slug: str | None, root: Path | None) -> str | None:
    """The weak-artifacts key; for an idea without a weak model, the only weak-artifacts key with
    the same training hyperparameters that has seeds (None when there are none or several)."""
    if weak_slug:
        return f"{weak_slug}_{training}"
    candidates = []
    for key in list_keys(dataset, WEAK_ARTIFACTS, root):
        parts = parse_key(key)
        if parts and parts.training == training and producer_accuracies(dataset, WEAK_ARTIFACTS, key, root):
            candidates.append(key)
    return candidates[0] if len(candidates) == 1 else None


def _baselines(dataset: str, weak_key: str | None, strong_key: str | None, root: Path | None) -> Baselines:
    weak = producer_accuracies(dataset, WEAK_ARTIFACTS, weak_key, root) if weak_key else []
    strong = producer_accuracies(dataset, TRAIN_CEILING, strong_key, root) if strong_key else []
    return Baselines(
        weak_acc=math.fsum(weak) / len(weak) if weak else None,
        n_weak=len(weak),
        strong_acc=math.fsum(strong) / len(strong) if strong else None,
        n_strong=len(strong),
        weak_key=weak_key,
        strong_key=strong_key,
    )


def fixed_baselines(dataset: str, cfg: RunConfig, root: Path | None = None) -> Baselines:
    """Baselines for a run with these hyperparameters (missing ones have acc None, n 0)."""
    training = training_suffix_of(cfg)
    weak_slug = model_slug(cfg.weak_model) if cfg.weak_model else None
    return _baselines(dataset, _weak_key(dataset, training, weak_slug, root), ceiling_key(cfg), root)


def split_models(
    dataset: str,
    key: str,
    root: Path | None = None,
    strong_model: str | None = None,
    weak_model: str | None = None,
) -> tuple[str, str | None] | None:
    """(strong slug, weak slug or None) of an idea key.

    Model slugs hold ``_``, so the split needs a hint: the strong model recorded in the seed
    files, else a ceiling key with the same training part already in the cache, else the weak
    model recorded in the seed files. None when nothing fits.
    """
    parts = parse_key(key)
    if parts is None:
        return None
    models = parts.models
    strong_slugs: list[str] = []
    if strong_model:
        strong_slugs.append(model_slug(strong_model))
    for ck in list_keys(dataset, TRAIN_CEILING, root):
        cp = parse_key(ck)
        if cp and cp.training == parts.training and cp.models not in strong_slugs:
            strong_slugs.append(cp.models)
    for slug in strong_slugs:
        if models == slug:
            return slug, None
        if models.startswith(slug + "_"):
            return slug, models[len(slug) + 1 :]
    if weak_model:
        weak = model_slug(weak_model)
        if models.endswith("_" + weak) and len(models) > len(weak) + 1:
            return models[: -len(weak) - 1], weak
    return None


def baselines_for_key(
    dataset: str,
    key: str,
    root: Path | None = None,
    strong_model: str | None = None,
    weak_model: str | None = None,
) -> Baselines:
    """Fixed baselines for an idea key: its weak part maps to the weak-artifacts key and its
    strong part to the ceiling key, both with the idea key's ``e.._lr.._bs.._sch..`` part."""
    parts = parse_key(key)
    split = split_models(dataset, key, root, strong_model, weak_model)
    if parts is None or split is None:
        return Baselines(None, 0, None, 0, None, None)
    strong, weak = split
    weak_key = _weak_key(dataset, parts.training, weak, root)
    return _baselines(dataset, weak_key, f"{strong}_{parts.training}", root)


def compute_pgr(transfer_acc: float | None, baselines: Baselines) -> tuple[float | None, str | None]:
    """(PGR, None), or (None, reason) when it cannot be computed. Never raises."""
    if transfer_acc is None:
        return None, "no transfer accuracy"
    if baselines.weak_acc is None:
        where = baselines.weak_key or "an unknown key"
        return None, f"no weak baseline (no cached weak_artifacts seeds for {where})"
    if baselines.strong_acc is None:
        where = baselines.strong_key or "an unknown key"
        return None, f"no ceiling baseline (no cached train_ceiling seeds for {where})"
    gap = baselines.strong_acc - baselines.weak_acc
    if gap <= 0:
        return None, (
            f"ceiling {baselines.strong_acc:.4f} <= weak {baselines.weak_acc:.4f}: no gap to recover"
        )
    return (float(transfer_acc) - baselines.weak_acc) / gap, None


def pgr_fields(transfer_acc: float | None, baselines: Baselines) -> dict[str, Any]:
    """What a result file records about its PGR: the value or the reason it is n/a, and the
    baselines used with their seed counts (names follow the reference's ``fixed_*_baseline``)."""
    pgr, reason = compute_pgr(transfer_acc, baselines)
    return {
        "pgr": pgr,
        "pgr_reason": reason,
        "fixed_weak_baseline": baselines.weak_acc,
        "fixed_strong_baseline": baselines.strong_acc,
        "baselines": baselines.to_dict(),
    }
