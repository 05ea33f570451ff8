"""The label-free steps of unsupervised elicitation (the reference's ICM initialisation), as plain
functions over rows and P(class 1) arrays, shared by ``ue_zeroshot`` and ``ue_fewshot``.

- **Flipped pairs** (preference rows): every pair is scored twice, as (A, B) and as (B, A), the two
  sharing a consistency group with keys ``A>B`` / ``B>A``.
- **Consistency groups**: rows sharing ``consistency_id`` (binary: the candidate answers of one
  question; preference: a pair and its flip). Inside a group rows are grouped again by
  ``consistency_key`` (the same key = the same answer, so the same label). The reference falls back
  to comparing a field ``answer`` by mathematical equivalence when a group has no keys; our
  label-free view never carries ``answer`` (for binary rows it names the correct choice, so
  ``w2s data prepare`` strips it), so here a row without a key is a key of its own.
- **Consistency fix**: in each group of two or more rows the key holding the highest P(class 1)
  gets class 1, every other key class 0 (at most one true answer per question; a pair and its flip
  get opposite classes). A row alone keeps its own prediction.
- **Confidence balancing**, so the label prior does not drift from 50/50 (the reference's
  threshold 1.1): binary rows drop the least confident rows of the majority class until it is at
  most 1.1 x the minority; preference rows instead swap the answers of the first rows of the
  majority class (their label flips, nothing is lost).
- **Demonstrations** for few-shot scoring: per row, k labelled rows (k/2 per class when both
  classes exist), never from the row's own consistency group, never the row itself.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMBALANCE_THRESHOLD = 1.1
FLIP_KEYS = ("A>B", "B>A")


def augment_flipped(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """(working rows, index of each original in them): every preference pair followed by its flip."""
    out: list[dict[str, Any]] = []
    originals: list[int] = []
    for i, row in enumerate(rows):
        gid = f"pair-{i}"
        originals.append(len(out))
        out.append({**row, "consistency_id": gid, "consistency_key": FLIP_KEYS[0]})
        out.append({**row, "first": row["second"], "second": row["first"],
                    "consistency_id": gid, "consistency_key": FLIP_KEYS[1]})
    return out, originals


def consistency_groups(rows: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Row indices grouped by ``consistency_id`` (first-seen order); a row without one is alone."""
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        cid = row.get("consistency_id")
        groups.setdefault(("id", cid) if cid not in (None, "") else ("row", i), []).append(i)
    return list(groups.values())


def _keys(rows: Sequence[dict[str, Any]], group: Sequence[int]) -> dict[str, list[int]]:
    """Key -> row indices inside one group; a row without ``consistency_key`` is its own key."""
    out: dict[str, list[int]] = {}
    for i in group:
        key = rows[i].get("consistency_key")
        out.setdefault(f"k:{key}" if key not in (None, "") else f"row:{i}", []).append(i)
    return out


def consistency_fix(rows: Sequence[dict[str, Any]], groups: Sequence[Sequence[int]], p1: np.ndarray) -> np.ndarray:
    """Hard labels after the fix (see the module docstring)."""
    p1 = np.asarray(p1, dtype=np.float64)
    labels = (p1 > 0.5).astype(np.int64)
    for group in groups:
        if len(group) < 2:
            continue
        keys = _keys(rows, group)
        best = {k: max(float(p1[i]) for i in idx) for k, idx in keys.items()}
        winner = max(keys, key=lambda k: best[k])  # first key wins a tie, as the reference's max()
        for k, idx in keys.items():
            labels[idx] = 1 if k == winner else 0
    return labels


def consistency_rate(rows: Sequence[dict[str, Any]], groups: Sequence[Sequence[int]], labels: np.ndarray) -> float:
    """Share of groups whose labels agree within each key and give class 1 to at most one key."""
    if not groups:
        return 1.0
    ok = 0
    for group in groups:
        keys = _keys(rows, group)
        same = all(len({int(labels[i]) for i in idx}) == 1 for idx in keys.values())
        ok += same and sum(int(labels[idx[0]]) for idx in keys.values()) <= 1
    return ok / len(groups)


def confidences(p1: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """P of the assigned label: p1 where the label is 1, 1 - p1 where it is 0."""
    p1 = np.asarray(p1, dtype=np.float64)
    return np.where(np.asarray(labels) == 1, p1, 1.0 - p1)


@dataclass
class Balanced:
    """The outcome of balancing: which rows to train on, which of them to flip (preference), stats."""

    keep: np.ndarray  # indices into the input rows, ascending
    flip: np.ndarray  # bool per kept row: swap its answers and its label (preference only)
    info: dict[str, Any] = field(default_factory=dict)


def balance_by_confidence(
    fmt: str, labels: np.ndarray, conf: np.ndarray, threshold: float = IMBALANCE_THRESHOLD
) -> Balanced:
    """Bring the majority class within ``threshold`` x the minority (see the module docstring)."""
    labels = np.asarray(labels, dtype=np.int64)
    conf = np.asarray(conf, dtype=np.float64)
    n = len(labels)
    c0, c1 = int((labels == 0).sum()), int((labels == 1).sum())
    lo, hi = min(c0, c1), max(c0, c1)
    info: dict[str, Any] = {"count_0": c0, "count_1": c1, "total": n, "balanced": False,
                            "method": "flip" if fmt == "preference" else "confidence_downsample"}
    everything = Balanced(np.arange(n), np.zeros(n, dtype=bool), info)
    if lo == 0:
        info["note"] = "one class is empty: nothing to balance against"
        return everything
    if hi <= threshold * lo:
        return everything
    majority = 0 if c0 > c1 else 1
    major = np.flatnonzero(labels == majority)
    if fmt == "preference":
        flip = np.zeros(n, dtype=bool)
        flip[major[: (hi - lo) // 2]] = True  # the first rows, as the reference does: deterministic
        new = np.where(flip, 1 - labels, labels)
        info.update(balanced=True, flipped=int(flip.sum()), final_count_0=int((new == 0).sum()),
                    final_count_1=int((new == 1).sum()))
        return Balanced(np.arange(n), flip, info)
    target = int(lo * threshold)
    order = major[np.argsort(conf[major], kind="stable")]  # least confident first
    drop = set(order[: len(major) - target].tolist())
    keep = np.array([i for i in range(n) if i not in drop], dtype=np.int64)
    kept = labels[keep]
    info.update(balanced=True, removed=len(drop), final_count_0=int((kept == 0).sum()),
                final_count_1=int((kept == 1).sum()))
    return Balanced(keep, np.zeros(len(keep), dtype=bool), info)


def flip_pair(row: dict[str, Any]) -> dict[str, Any]:
    """A preference row with its answers swapped (its label, if any, is the caller's to flip)."""
    return {**row, "first": row["second"], "second": row["first"]}


def sample_demos(
    labels: np.ndarray, groups: Sequence[Sequence[int]], k: int, seed: int, pool: np.ndarray | None = None
) -> list[list[tuple[int, int]]]:
    """Per row, ``k`` (row index, label) demonstrations from ``pool`` (default: every row), outside
    the row's own consistency group: k // 2 per class while both classes have candidates, the rest
    from whatever is left; in random order (seeded)."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if k < 0:
        raise ValueError("the number of demonstrations must be >= 0")
    group_of = np.empty(n, dtype=np.int64)
    for g, members in enumerate(groups):
        group_of[list(members)] = g
    candidates = np.arange(n) if pool is None else np.asarray(pool, dtype=np.int64)
    by_class = {c: [int(i) for i in candidates if labels[i] == c] for c in (0, 1)}
    rng = random.Random(seed)
    out: list[list[tuple[int, int]]] = []
    for i in range(n):
        own = int(group_of[i])
        chosen: list[int] = []
        wants = {0: k // 2, 1: k // 2} if by_class[0] and by_class[1] else {0: k, 1: k}
        for c in (0, 1):
            picks = _draw(rng, by_class[c], min(wants[c], k - len(chosen)), group_of, own)
            chosen.extend(picks)
        if len(chosen) < k:  # odd k, or one class short: fill from either class
            rest = [j for c in (0, 1) for j in by_class[c] if j not in chosen]
            chosen.extend(_draw(rng, rest, k - len(chosen), group_of, own))
        rng.shuffle(chosen)
        out.append([(j, int(labels[j])) for j in chosen])
    return out


def _draw(rng: random.Random, items: list[int], n: int, group_of: np.ndarray, own: int) -> list[int]:
    """Up to ``n`` distinct items outside group ``own``, uniformly (rejection first, then a scan)."""
    if n <= 0 or not items:
        return []
    got: list[int] = []
    seen: set[int] = set()
    for _ in range(8 * n):
        j = items[rng.randrange(len(items))]
        if j not in seen and group_of[j] != own:
            seen.add(j)
            got.append(j)
            if len(got) == n:
                return got
    left = [j for j in items if j not in seen and group_of[j] != own]
    got.extend(rng.sample(left, min(n - len(got), len(left))))
    return got


MAX_DEMOS = 256  # per row: far past any context a demonstration prompt fits in


def parse_schedule(value: Any) -> list[int]:
    """``2-4-16`` / ``2,4,16`` / ``2_4_16`` / ``4`` / [2, 4] -> [2, 4, 16]; every count in 1..MAX_DEMOS.

    (On the command line ``2_4_16`` reads as the number 2416, as Python's ``int`` does; that is
    refused with a hint rather than run as 2416 demonstrations.)"""
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = re.split(r"[-_,\s]+", str(value).strip())
    try:
        counts = [int(p) for p in parts if p != ""]
    except ValueError:
        raise ValueError(f"num_demos: expected counts like 2-4-16, got {value!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise ValueError(f"num_demos: expected counts >= 1 like 2-4-16, got {value!r}")
    if any(c > MAX_DEMOS for c in counts):
        raise ValueError(f"num_demos: {max(counts)} demonstrations per row is more than {MAX_DEMOS} "
                         "(write a schedule as 2-4-16: the command line reads 2_4_16 as the number 2416)")
    return counts
