"""demo-code: small Python snippets over sentiment words, labelled by actually running them.

Each question shows a snippet over four words (two positive, two negative) that prints a list of
two of them; the two choices propose the positive pair and the negative pair. The label is
``executed stdout == proposed output``, obtained by running every snippet in a subprocess
(:mod:`core.data.demo.executor`), never typed. Most snippets (90%) select the positive pair — by
list slicing, a ratings filter, or VADER itself — so a model's sense of word polarity predicts
most labels, and a pretrained encoder knows the polarity of words unseen in train_label; the
other 10% reward a model that reads the code as well.
"""

from __future__ import annotations

import random
from typing import Any

from core.data.demo.common import pick, rng_for, share_flags, two_distinct
from core.data.demo.executor import run_snippets
from core.data.demo.lexicon import LexWord, strength

FAMILY = "code"
QUESTION = "What does this Python code print?\n```python\n{code}\n```"
NEG_SHARE = 0.1  # share of snippets whose real output is the negative pair
VADER_IMPORT = "from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer"
SUBSETS = ("list_slice", "ratings_filter", "vader_filter")
SLICES = ("[::2]", "[1::2]", "[:2]", "[2:]")
VARS = ("words", "tags", "notes", "moods", "items")


def _arrange(pos: list[str], neg: list[str], slice_: str, want_pos: bool) -> list[str]:
    """Order four words so that ``words<slice_>`` yields the wanted pair."""
    chosen, other = (pos, neg) if want_pos else (neg, pos)
    if slice_ == "[::2]":
        return [chosen[0], other[0], chosen[1], other[1]]
    if slice_ == "[1::2]":
        return [other[0], chosen[0], other[1], chosen[1]]
    if slice_ == "[:2]":
        return [*chosen, *other]
    return [*other, *chosen]


def _snippet(rng: random.Random, subset: str, pos: list[LexWord], neg: list[LexWord], want_pos: bool) -> str:
    p, n = [w.word for w in pos], [w.word for w in neg]
    var = pick(rng, VARS)
    if subset == "list_slice":
        slice_ = pick(rng, SLICES)
        words = _arrange(p, n, slice_, want_pos)
        return f"{var} = {words!r}\nprint({var}{slice_})".replace("'", '"')
    mixed = [p[0], n[0], p[1], n[1]]
    rng.shuffle(mixed)
    if subset == "ratings_filter":
        def stars(w: LexWord) -> int:  # 6..10 for positive words, 1..4 for negative ones
            raw = round(5.5 + 1.2 * w.mean)
            return max(6, min(10, raw)) if w.positive else max(1, min(4, raw))

        ordered = sorted(pos + neg, key=lambda w: mixed.index(w.word))
        table = ", ".join(f'"{w.word}": {stars(w)}' for w in ordered)
        op = ">" if want_pos else "<"
        return f"scores = {{{table}}}\nprint([w for w, s in scores.items() if s {op} 5])"
    op = ">" if want_pos else "<"
    listing = repr(mixed).replace("'", '"')
    return (
        f"{VADER_IMPORT}\n"
        "score = SentimentIntensityAnalyzer().polarity_scores\n"
        f'print([w for w in {listing} if score(w)["compound"] {op} 0])'
    )


def _choice(code: str, pair: list[LexWord]) -> str:
    """A proposed output: the pair listed as Python prints it, in the order the code holds them."""
    return repr(sorted((w.word for w in pair), key=lambda s: code.index(f'"{s}"')))


def generate_split(split: str, n_rows: int, words: list[LexWord], taken: set[str]) -> list[dict[str, Any]]:
    """``n_rows`` rows in groups of two candidate outputs; exactly one is what the code prints."""
    rng = rng_for(FAMILY, split)
    pos_pool = [w for w in words if w.positive]
    neg_pool = [w for w in words if not w.positive]
    n_groups = n_rows // 2
    want_neg = share_flags(rng, n_groups, NEG_SHARE)
    drafts: list[tuple[str, str, list[LexWord], list[LexWord], str]] = []
    while len(drafts) < n_groups:  # rounds: draft, execute, keep snippets that print one of the pairs
        batch: list[tuple[str, str, list[LexWord], list[LexWord]]] = []
        while len(drafts) + len(batch) < n_groups:
            g = len(drafts) + len(batch)
            subset = SUBSETS[g % len(SUBSETS)]
            pos, neg = list(two_distinct(rng, pos_pool)), list(two_distinct(rng, neg_pool))
            code = _snippet(rng, subset, pos, neg, not want_neg[g])
            if code in taken:  # no snippet may appear in two splits (or twice in one)
                continue
            taken.add(code)
            batch.append((subset, code, pos, neg))
        for (subset, code, pos, neg), out in zip(batch, run_snippets([b[1] for b in batch]), strict=True):
            if not out["ok"]:
                raise RuntimeError(f"demo-code snippet failed ({out.get('error')}):\n{code}")
            printed = out["stdout"].strip()
            if printed in (_choice(code, pos), _choice(code, neg)):
                drafts.append((subset, code, pos, neg, printed))
    rows: list[dict[str, Any]] = []
    for gi, (subset, code, pos, neg, printed) in enumerate(drafts):
        order = [pos, neg]
        rng.shuffle(order)
        cid = f"{FAMILY}-{split}-q{gi:04d}"
        keys = ["x", "y"]
        rng.shuffle(keys)
        for k, pair in enumerate(order):
            choice = _choice(code, pair)
            rows.append({
                "id": f"{cid}-c{k}",
                "question": QUESTION.format(code=code),
                "choice": choice,
                "label": printed == choice,  # ground truth: what the code really printed
                "subset": subset,
                "difficulty": strength(min(pos + neg, key=lambda w: abs(w.mean))),
                "consistency_id": cid,
                "consistency_key": keys[k],
            })
    return rows
