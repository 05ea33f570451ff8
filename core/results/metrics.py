"""Accuracy metrics and seed statistics, in the shape the reference's ``final_eval`` uses.

Kept free of any file access so the referee, the runner and the leaderboard compute numbers the
same way: classes are ints (0/1), distributions are keyed by the class as a string (``"0"``, ``"1"``)
exactly like the reference archive's ``pred_distribution`` / ``label_distribution``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any


def _distribution(values: Sequence[int]) -> dict[str, int]:
    counts = Counter(int(v) for v in values)
    return {str(k): counts[k] for k in sorted(counts)}


def _block(pred: Sequence[int], gold: Sequence[int]) -> dict[str, Any]:
    correct = sum(1 for p, g in zip(pred, gold, strict=True) if int(p) == int(g))
    total = len(gold)
    return {
        "accuracy": correct / total if total else None,
        "correct": correct,
        "total": total,
        "pred_distribution": _distribution(pred),
        "label_distribution": _distribution(gold),
    }


def compute_metrics(
    pred: Sequence[int],
    gold: Sequence[int],
    subsets: Sequence[str] | None = None,
    fmt: str | None = None,
) -> dict[str, Any]:
    """Accuracy, correct/total, prediction and label distributions, and the same per subset.

    ``fmt`` (``preference`` | ``binary``) is recorded so a reader knows class 0 means ``A``/False.
    An empty input gives accuracy None rather than a division error.
    """
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} labels")
    if subsets is not None and len(subsets) != len(gold):
        raise ValueError(f"{len(subsets)} subset names for {len(gold)} labels")
    out = _block(pred, gold)
    per_subset: dict[str, Any] = {}
    if subsets is not None:
        groups: dict[str, tuple[list[int], list[int]]] = {}
        for p, g, s in zip(pred, gold, subsets, strict=True):
            ps, gs = groups.setdefault(str(s), ([], []))
            ps.append(int(p))
            gs.append(int(g))
        per_subset = {name: _block(*groups[name]) for name in sorted(groups)}
    out["per_subset"] = per_subset
    if fmt is not None:
        out["format"] = fmt
    return out


def seed_stats(values: Sequence[float | None]) -> dict[str, Any]:
    """n, mean, sd (n-1), SEM and a two-sided 95% CI from Student's t, over the non-null values.

    With one value sd/sem/ci95 are None (spread is unknown, not zero); with none, everything
    but n is None.
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "sem": None, "ci95": None}
    mean = math.fsum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "sem": None, "ci95": None}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    sem = sd / math.sqrt(n)
    from scipy import stats  # imported here: scipy.stats costs seconds at CLI start-up

    half = float(stats.t.ppf(0.975, n - 1)) * sem
    return {"n": n, "mean": mean, "sd": sd, "sem": sem, "ci95": (mean - half, mean + half)}
