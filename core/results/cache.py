"""The results cache, laid out exactly like the reference archive.

``cache_results/{dataset}_{idea}/{key}/seed_{seed}.json``. Keys are built from the RunConfig so the
same hyperparameters always land in the same folder; reads never create folders.

As in the reference, a size-capped (smoke) run carries its ``train_size``/``test_size`` in the key
(``..._test_size20_train_size50``), so it can never overwrite a full-size run or full-size baselines;
full-size keys are unchanged (the reference archive's keys rebuild byte for byte).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.common.atomic import atomic_write_json
from core.common.config import LOSSES, LR_SCHEDULES, RunConfig
from core.common.workspace import paths

WEAK_ARTIFACTS = "weak_artifacts"
TRAIN_CEILING = "train_ceiling"
BASELINE_PRODUCERS = (WEAK_ARTIFACTS, TRAIN_CEILING)


def model_slug(name: str) -> str:
    """``Qwen/Qwen1.5-0.5B-Chat`` -> ``Qwen_Qwen1_5_0_5B_Chat``."""
    return name.replace("/", "_").replace("-", "_").replace(".", "_")


def _training_suffix(cfg: RunConfig) -> str:
    return f"e{cfg.epochs}_lr{cfg.lr!s}_bs{cfg.batch_size}_sch{cfg.lr_schedule}"


def _extra_suffix(extra: dict[str, Any]) -> str:
    return "".join(f"_{name}{_fmt(extra[name])}" for name in sorted(extra))


def _fmt(value: Any) -> str:
    return str(value)


SIZE_FIELDS = ("train_size", "test_size")
_SIZE_RE = re.compile(r"(?:^|_)(train_size|test_size)(-?\d+)(?=_|$)")


def size_params(cfg: RunConfig) -> dict[str, int]:
    """``train_size``/``test_size`` when set: they join the key like idea parameters (the reference's
    ``extra_params``), so a size-capped run has a key of its own."""
    return {name: getattr(cfg, name) for name in SIZE_FIELDS if getattr(cfg, name) is not None}


def is_size_capped(cfg: RunConfig) -> bool:
    """A smoke run: trained or scored on a prefix of the data. Never ranked."""
    return bool(size_params(cfg))


# Engine settings carried in ``extra`` that change speed, never results (like the
# ``gradient_checkpointing`` field): they stay out of the key, so turning them off finds the same rows.
SPEED_ONLY_EXTRAS = frozenset({"compile"})


def result_key(cfg: RunConfig, extra: dict[str, Any] | None = None, with_weak: bool = True) -> str:
    """Key of an idea run (or the ceiling when ``with_weak`` is False or there is no weak model)."""
    parts = [model_slug(cfg.strong_model)]
    if with_weak and cfg.weak_model:
        parts.append(model_slug(cfg.weak_model))
    key = "_".join(parts) + "_" + _training_suffix(cfg)
    if cfg.loss != "xent":
        key += f"_loss{cfg.loss}"
    # the config's sizes win over same-named idea parameters: a key never claims full size falsely
    given = cfg.extra if extra is None else extra
    params = {**{k: v for k, v in given.items() if k not in SPEED_ONLY_EXTRAS}, **size_params(cfg)}
    return key + _extra_suffix(params)


def weak_artifacts_key(cfg: RunConfig) -> str:
    """Weak model + training part (+ sizes for a smoke build); never the idea's loss or extras."""
    if not cfg.weak_model:
        raise ValueError("weak artifacts need a weak model")
    return f"{model_slug(cfg.weak_model)}_{_training_suffix(cfg)}{_extra_suffix(size_params(cfg))}"


def ceiling_key(cfg: RunConfig) -> str:
    """The ceiling is always trained with cross-entropy on ground truth: no loss or extras
    (sizes only for a smoke build)."""
    return f"{model_slug(cfg.strong_model)}_{_training_suffix(cfg)}{_extra_suffix(size_params(cfg))}"


def cache_root(root: Path | None = None) -> Path:
    return root if root is not None else paths().cache_results


def result_dir(dataset: str, idea: str, key: str, root: Path | None = None) -> Path:
    return cache_root(root) / f"{dataset}_{idea}" / key


def result_path(dataset: str, idea: str, key: str, seed: int, root: Path | None = None) -> Path:
    return result_dir(dataset, idea, key, root) / f"seed_{seed}.json"


def write_result(
    dataset: str, idea: str, key: str, seed: int, result: dict[str, Any], root: Path | None = None
) -> Path:
    path = result_path(dataset, idea, key, seed, root)
    atomic_write_json(path, result)
    return path


def read_result(
    dataset: str, idea: str, key: str, seed: int, root: Path | None = None
) -> dict[str, Any] | None:
    path = result_path(dataset, idea, key, seed, root)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CachedResult:
    dataset: str
    idea: str
    key: str
    seed: int
    path: Path


def _split_group(name: str, known_datasets: set[str] | None) -> tuple[str, str] | None:
    """``demo-math_vanilla_w2s`` -> (``demo-math``, ``vanilla_w2s``). Dataset names hold no ``_``."""
    if "_" not in name:
        return None
    dataset, idea = name.split("_", 1)
    if known_datasets is not None and dataset not in known_datasets:
        return None
    return dataset, idea


def iter_results(root: Path | None = None, dataset: str | None = None) -> Iterator[CachedResult]:
    """Every ``seed_*.json`` in the top level of the cache (nested stale trees are ignored)."""
    base = cache_root(root)
    if not base.is_dir():
        return
    for group in sorted(p for p in base.iterdir() if p.is_dir()):
        split = _split_group(group.name, None)
        if split is None:
            continue
        ds, idea = split
        if dataset is not None and ds != dataset:
            continue
        for key_dir in sorted(p for p in group.iterdir() if p.is_dir()):
            for f in sorted(key_dir.glob("seed_*.json")):
                try:
                    seed = int(f.stem.split("_", 1)[1])
                except ValueError:
                    continue
                yield CachedResult(ds, idea, key_dir.name, seed, f)


# --- key parsing: lets the leaderboard map an idea key onto its baseline producers' keys ---------

_SCHEDULES_LONGEST_FIRST = tuple(sorted(LR_SCHEDULES, key=len, reverse=True))
_KEY_RE = re.compile(
    r"^(?P<models>.+?)_e(?P<epochs>\d+)_lr(?P<lr>[0-9.eE+-]+)_bs(?P<bs>\d+)"
    r"_sch(?P<sch>" + "|".join(re.escape(s) for s in _SCHEDULES_LONGEST_FIRST) + r")"
    r"(?P<loss>_loss(?:" + "|".join(re.escape(x) for x in LOSSES if x != "xent") + r"))?"
    r"(?P<extra>_.*)?$"
)


@dataclass(frozen=True)
class KeyParts:
    """A key split at its fixed fields. ``models`` is ``{strong}_{weak}`` (or one slug): model
    slugs contain ``_`` so telling strong from weak needs outside knowledge (see ``core.results.pgr``).
    ``extra_suffix`` stays a string because extra names and values may themselves hold ``_``."""

    models: str
    epochs: int
    lr: str
    batch_size: int
    schedule: str
    loss: str
    extra_suffix: str

    @property
    def sizes(self) -> dict[str, int]:
        """``train_size``/``test_size`` named in the key (empty for a full-size key)."""
        return {m.group(1): int(m.group(2)) for m in _SIZE_RE.finditer(self.extra_suffix)}

    @property
    def size_capped(self) -> bool:
        return bool(self.sizes)

    @property
    def training(self) -> str:
        """The ``e.._lr.._bs.._sch..`` part shared by an idea key and its baselines' keys."""
        return f"e{self.epochs}_lr{self.lr}_bs{self.batch_size}_sch{self.schedule}"


def parse_key(key: str) -> KeyParts | None:
    """Split a cache key; None when it does not follow the key format."""
    m = _KEY_RE.match(key)
    if m is None:
        return None
    loss = m.group("loss")[len("_loss") :] if m.group("loss") else "xent"
    return KeyParts(
        models=m.group("models"),
        epochs=int(m.group("epochs")),
        lr=m.group("lr"),
        batch_size=int(m.group("bs")),
        schedule=m.group("sch"),
        loss=loss,
        extra_suffix=m.group("extra") or "",
    )


def training_suffix_of(cfg: RunConfig) -> str:
    """Public form of the ``e.._lr.._bs.._sch..`` part for a config."""
    return _training_suffix(cfg)


def list_keys(dataset: str, idea: str, root: Path | None = None) -> list[str]:
    """Key folders of one (dataset, idea) group, sorted; empty when the group is absent."""
    group = cache_root(root) / f"{dataset}_{idea}"
    if not group.is_dir():
        return []
    return sorted(p.name for p in group.iterdir() if p.is_dir())


def read_seed_files(dataset: str, idea: str, key: str, root: Path | None = None) -> list[tuple[int, dict]]:
    """(seed, result) for every readable ``seed_*.json`` of one key; unreadable files are skipped
    (the importer already reported them) so one bad file never hides a whole row."""
    out: list[tuple[int, dict]] = []
    folder = result_dir(dataset, idea, key, root)
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("seed_*.json")):
        try:
            seed = int(f.stem.split("_", 1)[1])
            raw = f.read_bytes()
        except (ValueError, OSError):
            continue
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:  # the stdlib parser also takes NaN and a BOM
                data = json.loads(raw.decode("utf-8-sig"))
            except ValueError:
                continue
        if isinstance(data, dict):
            out.append((seed, data))
    out.sort(key=lambda item: item[0])
    return out


# --- kept predictions: what the referee scored, so `w2s verify` can rescore any seed -------------

def predictions_path(dataset: str, idea: str, key: str, seed: int, root: Path | None = None) -> Path:
    """``predictions_seed_<s>.json.gz`` beside ``seed_<s>.json`` (not a ``seed_*.json``: no reader
    mistakes it for a result)."""
    return result_dir(dataset, idea, key, root) / f"predictions_seed_{seed}.json.gz"


def write_predictions(
    dataset: str, idea: str, key: str, seed: int, predictions: dict[str, float], root: Path | None = None
) -> Path:
    """``{id: P(class 1)}`` as gzipped JSON (no timestamp in the header: same input, same bytes)."""
    import gzip

    from core.common.atomic import atomic_write_bytes

    path = predictions_path(dataset, idea, key, seed, root)
    atomic_write_bytes(path, gzip.compress(orjson.dumps(predictions), mtime=0))
    return path


def read_predictions(dataset: str, idea: str, key: str, seed: int, root: Path | None = None) -> dict[str, Any] | None:
    """The kept predictions of one seed, or None when none were kept (or the file is unreadable)."""
    import gzip

    path = predictions_path(dataset, idea, key, seed, root)
    try:
        data = orjson.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
