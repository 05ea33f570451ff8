"""Shared helpers for the demo-data generators: seeded randomness, word pools, row writing.

Why: every family must be byte-for-byte reproducible and keep test/unlabel items unseen in
train_label, so the randomness, the disjoint word pools and the JSONL writer live in one place.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.data.demo.lexicon import LexWord

SPLIT_NAMES = ("train_label", "train_unlabel", "test")
DEFAULT_SIZES: dict[str, int] = {"train_label": 200, "train_unlabel": 2000, "test": 500}
SEED = 20240611

NAMES = (
    "Ava", "Liam", "Noah", "Mia", "Emma", "Omar", "Priya", "Kenji", "Lucia", "Tariq", "Hana", "Jonas",
    "Sofia", "Mateo", "Amara", "Felix", "Ines", "Ravi", "Chloe", "Diego", "Nadia", "Owen", "Zara", "Leo",
)


def rng_for(*parts: object) -> random.Random:
    """A Random seeded from a string: stable across runs and Python processes (no hash())."""
    return random.Random("|".join(str(p) for p in (SEED, *parts)))


def stable_bucket(key: str, n: int) -> int:
    """Deterministic bucket in [0, n) for ``key`` (sha256, not Python's salted hash)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) % n


def pool_of(word: str) -> str:
    """Which split may use ``word``: words sharing a 5-letter stem share a pool.

    30% of the words are ``common`` (any split may use them: the teacher can learn them from
    train_label), the rest belong to one split only (10% train_label, 30% train_unlabel, 30% test),
    so a good share of test words are unseen in train_label and only pretraining knows them.
    """
    b = stable_bucket(word[:5], 10)
    if b < 3:
        return "common"
    return "train_label" if b < 4 else ("train_unlabel" if b < 7 else "test")


def split_words(words: Iterable[LexWord]) -> dict[str, list[LexWord]]:
    """Per-split word lists: the split's own words plus the common ones (sorted, deterministic)."""
    pools: dict[str, list[LexWord]] = {s: [] for s in SPLIT_NAMES}
    for w in sorted(words, key=lambda x: x.word):
        owner = pool_of(w.word)
        for split in SPLIT_NAMES if owner == "common" else (owner,):
            pools[split].append(w)
    return pools


def balanced_flags(rng: random.Random, n: int) -> list[bool]:
    """``n`` booleans, half True (the extra one False when odd), in seeded random order."""
    flags = [True] * (n // 2) + [False] * (n - n // 2)
    rng.shuffle(flags)
    return flags


def share_flags(rng: random.Random, n: int, share: float) -> list[bool]:
    """``n`` booleans of which exactly ``round(n * share)`` are True, in seeded random order."""
    k = round(n * share)
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


def pick(rng: random.Random, seq: Sequence[Any]) -> Any:
    return seq[rng.randrange(len(seq))]


def two_distinct(rng: random.Random, words: Sequence[LexWord]) -> tuple[LexWord, LexWord]:
    """Two different words drawn from ``words`` (one polarity's pool)."""
    w1 = pick(rng, words)
    w2 = pick(rng, words)
    while w2.word == w1.word:
        w2 = pick(rng, words)
    return w1, w2


def dump_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """Canonical JSONL text: one compact object per line, keys in insertion order, UTF-8."""
    return "".join(json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) + "\n" for r in rows)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    from core.common.atomic import atomic_write_text

    atomic_write_text(path, dump_jsonl(rows))
