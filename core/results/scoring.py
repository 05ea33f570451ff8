"""Score predictions against ground truth (trusted side only: reads ``labeled_data/``).

Predictions are matched to gold rows by stable row id, never by position, so a backend that
reorders or drops rows cannot silently misalign them. Error messages name ids and counts but
never a label, because the referee forwards them to untrusted callers.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.common.workspace import paths
from core.data.datasets import SPLITS, Split, label_to_int, load_split
from core.results.metrics import compute_metrics

_SPLIT_CACHE: dict[tuple[str, int, int], Split] = {}


def _check_name(dataset: str) -> None:
    if not dataset or dataset in (".", "..") or "/" in dataset or "\\" in dataset or "\0" in dataset:
        raise ValueError(f"invalid dataset name {dataset!r}")


def gold_path(dataset: str, split: str = "test") -> Path:
    _check_name(dataset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    return paths().labeled_data / dataset / f"{split}.jsonl"


def _load_gold(path: Path) -> Split:
    """Load once per file version: the referee scores the same test split many times."""
    st = path.stat()
    cache_key = (str(path), st.st_mtime_ns, st.st_size)
    split = _SPLIT_CACHE.get(cache_key)
    if split is None:
        split = load_split(path)
        _SPLIT_CACHE.clear()
        _SPLIT_CACHE[cache_key] = split
    return split


def to_class(value: Any) -> int:
    """One prediction as class 0/1.

    bool -> False/True; ``"A"``/``"B"`` -> 0/1; int 0/1 as is; float = P(class 1), class 1 only
    when strictly above 0.5 (a tie goes to class 0, as an argmax over [p0, p1] would);
    a pair ``[p0, p1]`` -> argmax.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if value in ("A", "B"):
            return 0 if value == "A" else 1
        raise ValueError(f"prediction {value!r} is not 'A' or 'B'")
    if isinstance(value, numbers.Integral):
        if value in (0, 1):
            return int(value)
        raise ValueError(f"integer prediction {value} is not 0 or 1")
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"probability {value} outside [0, 1]")
        return 1 if value > 0.5 else 0
    if isinstance(value, list | tuple) and len(value) == 2:
        p0, p1 = (float(v) for v in value)
        return 1 if p1 > p0 else 0
    raise ValueError(f"unsupported prediction {value!r}")


def _pairs(
    predictions: Mapping[str, Any] | Sequence[Any], ids: Sequence[str] | None
) -> list[tuple[str, Any]]:
    if isinstance(predictions, Mapping):
        if ids is None:
            return [(str(k), v) for k, v in predictions.items()]
        missing = [i for i in ids if i not in predictions]
        if missing:
            raise ValueError(f"{len(missing)} requested ids have no prediction (first: {missing[0]!r})")
        return [(str(i), predictions[i]) for i in ids]
    if ids is None:
        raise ValueError("a list of predictions needs the matching list of ids")
    if len(ids) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(ids)} ids")
    return [(str(i), p) for i, p in zip(ids, predictions, strict=True)]


def score_predictions(
    dataset: str,
    predictions: Mapping[str, Any] | Sequence[Any],
    split: str = "test",
    ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics for predictions keyed by row id (or a list aligned with ``ids``).

    ``ids`` restricts scoring to those rows. Rows of the split with no prediction are left out
    of ``total``; ``n_split_rows`` and ``coverage`` say how much of the split was scored, so a
    caller that must score the whole split (the referee) can insist on coverage 1.0.
    """
    path = gold_path(dataset, split)
    if not path.is_file():
        raise ValueError(f"no ground truth for dataset {dataset!r} split {split!r}")
    gold = _load_gold(path)
    pairs = _pairs(predictions, ids)
    if not pairs:
        raise ValueError("no predictions to score")
    by_id = {row["id"]: row for row in gold.rows}
    seen: set[str] = set()
    unknown: list[str] = []
    for rid, _ in pairs:
        if rid in seen:
            raise ValueError(f"id {rid!r} predicted twice")
        seen.add(rid)
        if rid not in by_id:
            unknown.append(rid)
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction ids are not rows of {dataset}/{split} (first: {unknown[0]!r})"
        )
    pred: list[int] = []
    for rid, value in pairs:
        try:
            pred.append(to_class(value))
        except ValueError as exc:
            raise ValueError(f"id {rid!r}: {exc}") from None
    rows = [by_id[rid] for rid, _ in pairs]
    if any("label" not in r for r in rows):
        raise ValueError(f"ground truth file for {dataset}/{split} has rows without a label")
    gold_labels = [label_to_int(r, gold.fmt) for r in rows]
    subsets = [str(r.get("subset", "")) for r in rows]
    out = compute_metrics(pred, gold_labels, subsets, gold.fmt)
    out.update(
        dataset=dataset,
        split=split,
        n_split_rows=len(gold.rows),
        coverage=len(rows) / len(gold.rows),
        gold_file=os.fspath(path.relative_to(paths().root)),
    )
    return out
