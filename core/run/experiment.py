"""Shared steps for ideas, so no idea re-implements data loading, weak-label alignment or training.

Everything here is on the *untrusted* side: it reads only the label-free view (``data/<ds>/``) and
the results cache (weak soft labels are weak-model outputs, not ground truth). Scoring and PGR are
the runner's job, never an idea's: an idea returns ``{"test_predictions": {id: P(class 1)}, ...}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.common.errors import UserError
from core.common.workspace import paths
from core.data.datasets import LABEL_FREE_DROP, Format, load_split
from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, ceiling_key, read_result, weak_artifacts_key
from core.results.pins import pinned_config  # baselines use the pinned spec, not the idea's

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]

_progress: ContextVar[ProgressFn | None] = ContextVar("w2s_progress", default=None)
_log: ContextVar[LogFn | None] = ContextVar("w2s_log", default=None)


@contextmanager
def reporting(progress: ProgressFn | None, log: LogFn | None) -> Iterator[None]:
    """Let the runner receive progress/log lines from inside ``run_experiment(cfg)``."""
    tp, tl = _progress.set(progress), _log.set(log)
    try:
        yield
    finally:
        _progress.reset(tp)
        _log.reset(tl)


def report(fraction: float, message: str = "") -> None:
    fn = _progress.get()
    if fn is not None:
        fn(max(0.0, min(1.0, float(fraction))), message)


def log(message: str) -> None:
    fn = _log.get()
    if fn is not None:
        fn(message)
    else:
        print(message, flush=True)


def resolve_data_dir(data_dir: str) -> Path:
    """``data_dir`` is relative to the workspace unless absolute."""
    p = Path(data_dir).expanduser()
    return p if p.is_absolute() else paths().root / p


@dataclass
class LabelFreeData:
    """What an idea may see: rows without label/subset/difficulty, each with its ``id``."""

    fmt: Format
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]

    @property
    def train_ids(self) -> list[str]:
        return [r["id"] for r in self.train]

    @property
    def test_ids(self) -> list[str]:
        return [r["id"] for r in self.test]


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in LABEL_FREE_DROP} for r in rows]


def load_label_free(cfg: RunConfig) -> LabelFreeData:
    """Load ``train_unlabel`` and ``test`` from ``cfg.data_dir`` (cut to train_size/test_size)."""
    folder = resolve_data_dir(cfg.data_dir)
    splits = {}
    for name in ("train_unlabel", "test"):
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            raise UserError(f"{path}: missing (prepare the label-free view with `w2s data prepare`)")
        try:
            splits[name] = load_split(path)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    train = _strip(splits["train_unlabel"].rows)
    test = _strip(splits["test"].rows)
    if cfg.train_size is not None:
        train = train[: cfg.train_size]
    if cfg.test_size is not None:
        test = test[: cfg.test_size]
    return LabelFreeData(splits["test"].fmt, train, test)


def weak_artifacts(cfg: RunConfig) -> dict[str, Any]:
    """The cached weak-model result for this seed (built by the runner before the idea starts)."""
    key = weak_artifacts_key(pinned_config(cfg))
    result = read_result(cfg.dataset, WEAK_ARTIFACTS, key, cfg.seed)
    if result is None:
        raise UserError(f"no cached weak artifacts for {cfg.dataset}/{key} seed {cfg.seed}; run via `w2s run`")
    return result


def ceiling_result(cfg: RunConfig) -> dict[str, Any] | None:
    """The cached ground-truth ceiling for this seed, if any (for reporting only)."""
    return read_result(cfg.dataset, TRAIN_CEILING, ceiling_key(pinned_config(cfg)), cfg.seed)


def weak_soft_labels(cfg: RunConfig, ids: Sequence[str]) -> np.ndarray:
    """Weak P(class 1) for each id, aligned by row id (never by position when ids are stored)."""
    result = weak_artifacts(cfg)
    soft = np.asarray(result.get("soft_labels") or [], dtype=np.float64)
    if soft.ndim != 2 or soft.shape[1] != 2:
        raise UserError(f"weak artifacts for {cfg.dataset} seed {cfg.seed}: soft_labels is not N x 2")
    stored_ids = result.get("ids")
    if stored_ids is None:
        # Imported reference files carry no ids: they follow train_unlabel line order.
        full = load_split(resolve_data_dir(cfg.data_dir) / "train_unlabel.jsonl").ids
        if len(full) != len(soft):
            raise UserError(
                f"weak artifacts for {cfg.dataset} seed {cfg.seed} have {len(soft)} rows and no ids, "
                f"but train_unlabel has {len(full)}"
            )
        stored_ids = full
    index = {rid: i for i, rid in enumerate(stored_ids)}
    missing = [rid for rid in ids if rid not in index]
    if missing:
        raise UserError(
            f"weak artifacts for {cfg.dataset} seed {cfg.seed} lack {len(missing)} train_unlabel ids "
            f"(first: {missing[0]}); rebuild them"
        )
    return soft[[index[rid] for rid in ids], 1]


def hard_labels(p1: np.ndarray) -> np.ndarray:
    """Hard 0/1 targets from P(class 1); ties go to class 0 like argmax."""
    return (np.asarray(p1) > 0.5).astype(np.float64)


def confidence(p1: np.ndarray) -> np.ndarray:
    """Confidence of the predicted class: max(p, 1 - p)."""
    p1 = np.asarray(p1, dtype=np.float64)
    return np.maximum(p1, 1.0 - p1)


def train_strong(
    cfg: RunConfig,
    fmt: Format,
    rows: list[dict[str, Any]],
    targets: np.ndarray,
    predict_sets: dict[str, list[dict[str, Any]]],
    sample_weights: np.ndarray | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
) -> dict[str, np.ndarray]:
    """Train ``cfg.strong_model`` on (rows, targets) and return P(class 1) for each predict set."""
    from core.engine import train_and_predict

    if not rows:
        raise UserError("no training rows left for the strong model")
    lo, hi = progress_span

    def progress(frac: float, message: str) -> None:
        report(lo + (hi - lo) * frac, message)

    return train_and_predict(
        cfg.strong_model,
        fmt,
        rows,
        np.asarray(targets, dtype=np.float64),
        predict_sets,
        cfg,
        sample_weights=sample_weights,
        progress=progress,
        log=log,
    )


def predictions(rows: Sequence[dict[str, Any]], probs: np.ndarray) -> dict[str, float]:
    """``{row id: P(class 1)}``: the shape every idea returns as ``test_predictions``."""
    if len(rows) != len(probs):
        raise ValueError(f"{len(rows)} rows but {len(probs)} probabilities")
    return {r["id"]: float(p) for r, p in zip(rows, probs, strict=True)}


def transfer(
    cfg: RunConfig,
    data: LabelFreeData,
    rows: list[dict[str, Any]],
    targets: np.ndarray,
    sample_weights: np.ndarray | None = None,
    **stats: Any,
) -> dict[str, Any]:
    """The common tail of most ideas: train strong on the chosen targets, predict test, package."""
    start = time.time()
    probs = train_strong(cfg, data.fmt, rows, targets, {"test": data.test}, sample_weights)
    return {
        "test_predictions": predictions(data.test, probs["test"]),
        "n_train": len(rows),
        "training_time": time.time() - start,
        **stats,
    }
