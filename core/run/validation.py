"""Honest model selection without the referee: a validation slice of ``train_unlabel``, weak-labelled.

Tuning on ``test`` scores spends referee evaluations and overfits the public part. An idea can
instead hold out a slice of ``train_unlabel`` (never ``test``), train on the rest, and measure how
its strong model does there against the only labels it has: the weak model's. Agreement with the
weak labels is a biased yardstick (a student that copies its teacher scores 1.0), so the slice is
also scored on its weak-confident half, where the weak labels are most often right, and the
student's own confidence is reported; compare settings on these, then confirm the winner once with
the referee.

    from core.run import experiment, validation
    data = experiment.load_label_free(cfg)
    weak_p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    train, train_p1, val, val_p1 = validation.split(data.train, weak_p1)
    return validation.transfer(cfg, data, train, train_p1, val, val_p1)

The returned dict carries ``validation`` (the numbers above) besides the test predictions; the
agent's ``job_status`` shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.run import experiment

DEFAULT_FRACTION = 0.1


def in_slice(row_id: str, fraction: float, salt: str = "w2s-validation") -> bool:
    """Whether a row belongs to the slice: decided by its id alone, so the slice is the same in
    every run, seed and ordering (settings are compared on the same rows)."""
    digest = hashlib.sha256(f"{salt}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split(
    rows: Sequence[dict[str, Any]], weak_p1: Sequence[float] | np.ndarray, fraction: float = DEFAULT_FRACTION
) -> tuple[list[dict[str, Any]], np.ndarray, list[dict[str, Any]], np.ndarray]:
    """(train rows, their weak P(class 1), validation rows, theirs). ``rows`` are ``train_unlabel``
    rows (each with an ``id``), aligned with ``weak_p1``."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1")
    p1 = np.asarray(weak_p1, dtype=np.float64)
    if len(p1) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(p1)} weak probabilities")
    mask = np.array([in_slice(str(r["id"]), fraction) for r in rows], dtype=bool)
    if mask.all() or not mask.any():  # tiny data: keep at least one row on each side
        mask = np.zeros(len(rows), dtype=bool)
        mask[: max(1, min(len(rows) - 1, round(len(rows) * fraction)))] = True
    train = [r for r, m in zip(rows, mask, strict=True) if not m]
    val = [r for r, m in zip(rows, mask, strict=True) if m]
    return train, p1[~mask], val, p1[mask]


def scores(weak_p1: Sequence[float] | np.ndarray, strong_p1: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """How the strong model's validation predictions compare with the weak labels."""
    weak = np.asarray(weak_p1, dtype=np.float64)
    strong = np.asarray(strong_p1, dtype=np.float64)
    agree = (weak >= 0.5) == (strong >= 0.5)
    confident = experiment.confidence(weak)
    top = confident >= np.median(confident) if len(weak) else np.zeros(0, dtype=bool)
    return {
        "n": len(weak),
        "agreement_with_weak": float(agree.mean()) if len(weak) else None,
        "agreement_on_weak_confident_half": float(agree[top].mean()) if top.any() else None,
        "strong_mean_confidence": float(experiment.confidence(strong).mean()) if len(strong) else None,
    }


def transfer(
    cfg: RunConfig,
    data: experiment.LabelFreeData,
    rows: list[dict[str, Any]],
    targets: np.ndarray,
    val_rows: list[dict[str, Any]],
    val_weak_p1: np.ndarray,
    sample_weights: np.ndarray | None = None,
    **stats: Any,
) -> dict[str, Any]:
    """:func:`core.run.experiment.transfer` that also predicts the validation slice (one training)
    and returns its :func:`scores` as ``validation``."""
    probs = experiment.train_strong(cfg, data.fmt, rows, targets, {"test": data.test, "val": val_rows},
                                    sample_weights)
    return {
        "test_predictions": experiment.predictions(data.test, probs["test"]),
        "n_train": len(rows),
        "validation": scores(val_weak_p1, probs["val"]),
        **stats,
    }
