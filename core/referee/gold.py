"""Ground truth as vectors, on the trusted side only: the labelled ``test`` split of a dataset aligned
with its row ids, so that many calls are scored fast; predictions as classes, ids as positions, and
the exact public-part metrics (what a run is shown is rounded later, ``service.public_view``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.common.workspace import paths
from core.data import holdout
from core.data.datasets import load_split
from core.referee.errors import RefereeError
from core.results.scoring import to_class


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
