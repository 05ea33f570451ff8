"""The private holdout: a fixed, seeded share of each dataset's ``test`` split never scored for runs.

Membership depends only on the row's group (its ``consistency_id``, else its id) and the dataset
name (sha256 of a versioned salt, the dataset and the group), so it is the same on every machine
and for every run, needs no stored state, and stays put when rows are added or reordered. The
candidate answers of one question always fall on the same side. Knowing which rows are held out reveals nothing
about their labels, and the referee never scores them for a run, so the salt need not be secret.
Runs submit predictions for the whole ``test`` file; the referee scores the public part and a
run's final leaderboard entry is scored on the private part (Kaggle's public/private split).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.workspace import paths
from core.data.datasets import load_split

HOLDOUT_SHARE = 0.2
SALT = "w2s-holdout-v1"
_SCALE = 2**64


def is_holdout(dataset: str, row_id: str, share: float = HOLDOUT_SHARE) -> bool:
    """True when this test row belongs to the private holdout of ``dataset``."""
    digest = hashlib.sha256(f"{SALT}\0{dataset}\0{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * _SCALE


def split_ids(dataset: str, ids: Iterable[str], share: float = HOLDOUT_SHARE) -> tuple[list[str], list[str]]:
    """(public ids, private ids), each in the given order."""
    public: list[str] = []
    private: list[str] = []
    for rid in ids:
        (private if is_holdout(dataset, rid, share) else public).append(rid)
    return public, private


def group_key(row: dict[str, Any]) -> str:
    """What decides a row's side: its ``consistency_id`` when it has one (all candidate answers to
    one question stay together, so public labels never hint at private ones), else its id."""
    cid = row.get("consistency_id")
    return f"group:{cid}" if cid not in (None, "") else str(row["id"])


def split_rows(
    dataset: str, rows: Iterable[dict[str, Any]], share: float = HOLDOUT_SHARE
) -> tuple[list[str], list[str]]:
    """(public ids, private ids) of rows that carry their ``id``, keeping consistency groups whole."""
    public: list[str] = []
    private: list[str] = []
    for row in rows:
        (private if is_holdout(dataset, group_key(row), share) else public).append(str(row["id"]))
    return public, private


@dataclass(frozen=True)
class HoldoutLayout:
    """The ``test`` split of one dataset as runs see it: row ids in file order, and the partition."""

    dataset: str
    ids: tuple[str, ...]
    public: frozenset[str]
    private: frozenset[str]

    @property
    def public_ordered(self) -> list[str]:
        return [i for i in self.ids if i in self.public]

    @property
    def private_ordered(self) -> list[str]:
        return [i for i in self.ids if i in self.private]


_LAYOUTS: dict[tuple[str, str, int, int], HoldoutLayout] = {}


def order_file(dataset: str, root: Path | None = None) -> Path | None:
    """The file whose row order a list of predictions follows: the ground-truth ``test.jsonl``
    (trusted; runs cannot edit it), else the label-free copy. Preparing a dataset only drops
    fields, so both hold the same rows in the same order."""
    if root is None:
        ws = paths()
        data_dir, labeled_dir = ws.data, ws.labeled_data
    else:
        data_dir, labeled_dir = root / "data", root / "labeled_data"
    for candidate in (labeled_dir / dataset / "test.jsonl", data_dir / dataset / "test.jsonl"):
        if candidate.is_file():
            return candidate
    return None


def layout(dataset: str, root: Path | None = None) -> HoldoutLayout | None:
    """Row ids and the public/private partition of ``dataset``'s test split (cached per file version)."""
    path = order_file(dataset, root)
    if path is None:
        return None
    st = path.stat()
    key = (dataset, str(path), st.st_mtime_ns, st.st_size)
    layout = _LAYOUTS.get(key)
    if layout is None:
        rows = load_split(path).rows
        ids = tuple(r["id"] for r in rows)
        public, private = split_rows(dataset, rows)
        layout = HoldoutLayout(dataset, ids, frozenset(public), frozenset(private))
        if len(_LAYOUTS) > 32:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout
