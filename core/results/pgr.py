"""Performance gap recovered against *pinned* baselines.

The weak and ceiling accuracies are means over the pinned seeds of the baseline producers
(``weak_artifacts`` and ``train_ceiling``), built with the pinned hyperparameters of the dataset and
model pair (``core.results.pins``), whatever the idea trained with. Seeds outside the pin (weak
artifacts built for an idea seed that is not pinned) and files a size-capped build left under a
full-size key are never counted. Fixed means rather than the per-seed pair keep one noisy ceiling
seed from swinging a single run's PGR, and let rows whose stored ``pgr`` is null be recomputed.
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
    SIZE_FIELDS,
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    cache_root,
    list_keys,
    model_slug,
    parse_key,
)
from core.results.pins import DEMO_PAIR, REFERENCE_PAIR, Pin, explicit_pins, resolve_pin

# Field that holds a producer's test accuracy; ceiling files from some writers say strong_gt_acc.
_ACC_FIELDS = {WEAK_ARTIFACTS: ("weak_acc",), TRAIN_CEILING: ("strong_acc", "strong_gt_acc")}
_ACC_MEMO: dict[Path, tuple[tuple, list[tuple[int, float]]]] = {}


@dataclass(frozen=True)
class Baselines:
    """The fixed baselines one PGR was computed against, with how many seeds each mean covers and
    the pin (spec + seeds) they come from."""

    weak_acc: float | None
    n_weak: int
    strong_acc: float | None
    n_strong: int
    weak_key: str | None
    strong_key: str | None
    pin: dict[str, Any] | None = None
    n_pinned: int = 0

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


def _size_capped_file(data: dict[str, Any]) -> bool:
    config = data.get("config")
    return isinstance(config, dict) and any(config.get(f) is not None for f in SIZE_FIELDS)


def _seed_of(name: str) -> int | None:
    try:
        return int(name[len("seed_") : -len(".json")])
    except ValueError:
        return None


def producer_seed_accuracies(dataset: str, producer: str, key: str, root: Path | None = None) -> list[tuple[int, float]]:
    """(seed, test accuracy) of every cached seed of a baseline producer key (memoised on file
    stats, because weak-artifact files carry megabytes of soft labels). Under a full-size key, a
    file whose config is size-capped (an older smoke build) is skipped."""
    folder = cache_root(root) / f"{dataset}_{producer}" / key
    if not folder.is_dir():
        return []
    signature = _signature(folder)
    memo = _ACC_MEMO.get(folder)
    if memo is not None and memo[0] == signature:
        return list(memo[1])
    full_key = not (parse_key(key) and parse_key(key).size_capped)  # type: ignore[union-attr]
    accs: list[tuple[int, float]] = []
    for name, _, _ in signature:
        seed = _seed_of(name)
        data = _load_json(folder / name)
        if seed is None or not isinstance(data, dict) or (full_key and _size_capped_file(data)):
            continue
        for field in _ACC_FIELDS[producer]:
            value = data.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
                accs.append((seed, float(value)))
                break
    _ACC_MEMO[folder] = (signature, accs)
    return list(accs)


def producer_accuracies(
    dataset: str, producer: str, key: str, root: Path | None = None, seeds: tuple[int, ...] | None = None
) -> list[float]:
    """Test accuracies of a producer key's cached seeds; only ``seeds`` when given (the pin's)."""
    return [acc for seed, acc in producer_seed_accuracies(dataset, producer, key, root)
            if seeds is None or seed in seeds]


def _size_suffix(sizes: dict[str, int]) -> str:
    return "".join(f"_{name}{sizes[name]}" for name in sorted(sizes))


def pinned_keys(pin: Pin, weak_slug: str | None, strong_slug: str, sizes: dict[str, int]) -> tuple[str | None, str]:
    """(weak-artifacts key, ceiling key) of a pin for a pair's slugs, with a smoke run's sizes."""
    suffix = _size_suffix(sizes)
    weak = weak_slug or pin.weak_slug
    return (f"{weak}_{pin.training}{suffix}" if weak else None), f"{strong_slug}_{pin.training}{suffix}"


def _baselines(dataset: str, pin: Pin, weak_slug: str | None, strong_slug: str, sizes: dict[str, int],
               root: Path | None) -> Baselines:
    weak_key, strong_key = pinned_keys(pin, weak_slug, strong_slug, sizes)
    weak = producer_accuracies(dataset, WEAK_ARTIFACTS, weak_key, root, pin.seeds) if weak_key else []
    strong = producer_accuracies(dataset, TRAIN_CEILING, strong_key, root, pin.seeds)
    return Baselines(
        weak_acc=math.fsum(weak) / len(weak) if weak else None,
        n_weak=len(weak),
        strong_acc=math.fsum(strong) / len(strong) if strong else None,
        n_strong=len(strong),
        weak_key=weak_key,
        strong_key=strong_key,
        pin=pin.to_dict(),
        n_pinned=len(pin.seeds),
    )


def fixed_baselines(dataset: str, cfg: RunConfig, root: Path | None = None) -> Baselines:
    """The pinned baselines of a run's dataset and model pair (missing ones have acc None, n 0).
    Only the models and the sizes of ``cfg`` matter: its lr, epochs, batch size, loss and idea
    parameters never change the baselines."""
    pin = resolve_pin(dataset, cfg.weak_model, cfg.strong_model, root)
    weak_slug = model_slug(cfg.weak_model) if cfg.weak_model else None
    sizes = {f: getattr(cfg, f) for f in SIZE_FIELDS if getattr(cfg, f) is not None}
    return _baselines(dataset, pin, weak_slug, model_slug(cfg.strong_model), sizes, root)


def _strong_slugs(dataset: str, root: Path | None, strong_model: str | None) -> list[str]:
    """Strong-model slugs an idea key may start with, longest first: the hint from its seed files,
    the ceilings in the cache, the pinned and the default strong models."""
    slugs = {model_slug(strong_model)} if strong_model else set()
    for ck in list_keys(dataset, TRAIN_CEILING, root):
        cp = parse_key(ck)
        if cp:
            slugs.add(cp.models)
    slugs.update(p.strong_slug for p in explicit_pins(dataset, root))
    slugs.update(model_slug(m) for m in (DEMO_PAIR[1], REFERENCE_PAIR[1]))
    return sorted(slugs, key=lambda s: (-len(s), s))


def split_models(
    dataset: str,
    key: str,
    root: Path | None = None,
    strong_model: str | None = None,
    weak_model: str | None = None,
) -> tuple[str, str | None] | None:
    """(strong slug, weak slug or None) of an idea key.

    Model slugs hold ``_``, so the split needs a hint: the strong model recorded in the seed files,
    a ceiling or pin of the dataset, the default strong models, else the weak model recorded in the
    seed files. None when nothing fits.
    """
    parts = parse_key(key)
    if parts is None:
        return None
    models = parts.models
    if strong_model:
        slug = model_slug(strong_model)
        if models == slug:
            return slug, None
        if models.startswith(slug + "_"):
            return slug, models[len(slug) + 1 :]
    if weak_model:
        weak = model_slug(weak_model)
        if models.endswith("_" + weak) and len(models) > len(weak) + 1:
            return models[: -len(weak) - 1], weak
    for slug in _strong_slugs(dataset, root, None):
        if models == slug:
            return slug, None
        if models.startswith(slug + "_"):
            return slug, models[len(slug) + 1 :]
    return None


def baselines_for_key(
    dataset: str,
    key: str,
    root: Path | None = None,
    strong_model: str | None = None,
    weak_model: str | None = None,
) -> Baselines:
    """Pinned baselines for an idea key: its model pair picks the pin; its training part is
    ignored (the idea's own hyperparameters never change its baselines); its sizes pick a smoke
    build's keys."""
    parts = parse_key(key)
    split = split_models(dataset, key, root, strong_model, weak_model)
    if parts is None or split is None:
        return Baselines(None, 0, None, 0, None, None)
    strong, weak = split
    pin = resolve_pin(dataset, weak, strong, root)
    return _baselines(dataset, pin, weak, strong, parts.sizes, root)


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
