"""demo-code: small Python snippets over sentiment words, labelled by actually running them.

Each question shows a snippet and asks what it prints; each choice proposes an output. The label is
``executed stdout == proposed output``, obtained by running every snippet in a subprocess
(:mod:`core.demo_data.executor`). The snippets rank or branch on word polarity (VADER, which the
snippets call, or a ratings table consistent with it), so a pretrained encoder's sense of polarity
helps on words unseen in train_label.
"""

from __future__ import annotations

import random
from typing import Any

from core.demo_data.common import balanced_flags, pick, rng_for, share_flags
from core.demo_data.executor import run_snippets
from core.demo_data.lexicon import LexWord, strength

FAMILY = "code"
QUESTION = "What does this Python code print?\n```python\n{code}\n```"
# Share of ranking snippets that ask for min() instead of max(), and of branch rows offering the
# unhappy reply: polarity alone predicts most labels; the rest need the code read as well.
MIN_SHARE = 0.25
NEGATE_SHARE = 0.15
VADER_IMPORT = "from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer"
THINGS = ("service", "food", "movie", "trip", "room", "concert", "class", "update", "meeting", "game",
          "weather", "show", "book", "team", "delivery", "party")
REPLIES = (
    ("Thanks for the kind words!", "Sorry to hear that."),
    ("Glad you enjoyed it.", "We will try to do better."),
    ("Happy customer", "Unhappy customer"),
    ("keep", "refund"),
)


def _vader_pick(rng: random.Random, w1: LexWord, w2: LexWord, want_max: bool) -> tuple[str, list[str]]:
    fn = "max" if want_max else "min"
    code = (
        f"{VADER_IMPORT}\n"
        f'words = ["{w1.word}", "{w2.word}"]\n'
        "score = SentimentIntensityAnalyzer().polarity_scores\n"
        f'print({fn}(words, key=lambda w: score(w)["compound"]))'
    )
    return code, [w1.word, w2.word]


def _score_table(rng: random.Random, w1: LexWord, w2: LexWord, want_max: bool) -> tuple[str, list[str]]:
    def stars(w: LexWord) -> int:
        return max(1, min(10, round(5.5 + 1.2 * w.mean)))

    fn = "max" if want_max else "min"
    var = pick(rng, ("ratings", "scores", "stars", "votes"))
    code = (
        f'{var} = {{"{w1.word}": {stars(w1)}, "{w2.word}": {stars(w2)}}}\n'
        f"print({fn}({var}, key={var}.get))"
    )
    return code, [w1.word, w2.word]


def _vader_branch(rng: random.Random, word: LexWord, negate: bool) -> tuple[str, tuple[str, str]]:
    good, bad = pick(rng, REPLIES)
    thing = pick(rng, THINGS)
    review = f"the {thing} was {'not ' if negate else ''}{word.word}"
    code = (
        f"{VADER_IMPORT}\n"
        f'review = "{review}"\n'
        'mood = SentimentIntensityAnalyzer().polarity_scores(review)["compound"]\n'
        f'print("{good}" if mood >= 0 else "{bad}")'
    )
    return code, (good, bad)


def _plan(n_rows: int) -> list[str]:
    """Subset per item: pick and table items give two rows (a group), branch items one row."""
    cycle = ("vader_pick", "score_table", "vader_branch", "vader_branch")
    plan: list[str] = []
    rows = 0
    while rows < n_rows:
        subset = cycle[len(plan) % len(cycle)]
        if subset != "vader_branch" and n_rows - rows < 2:
            subset = "vader_branch"
        plan.append(subset)
        rows += 1 if subset == "vader_branch" else 2
    return plan


def generate_split(split: str, n_rows: int, words: list[LexWord], taken: set[str]) -> list[dict[str, Any]]:
    """``n_rows`` rows: groups of two candidate outputs (one is real) and single branch rows."""
    rng = rng_for(FAMILY, split)
    pos = [w for w in words if w.positive]
    neg = [w for w in words if not w.positive]
    plan = _plan(n_rows)
    n_pairs = sum(1 for s in plan if s != "vader_branch")
    n_single = len(plan) - n_pairs
    want_min = share_flags(rng, n_pairs, MIN_SHARE)
    want_true = balanced_flags(rng, n_single)
    offer_good = share_flags(rng, n_single, 1 - MIN_SHARE)
    drafts: list[tuple[str, str, list[str], str]] = []
    i_pair = i_single = 0
    for subset in plan:
        while True:
            if subset == "vader_branch":
                negate = rng.random() < NEGATE_SHARE
                # choose the review so the offered reply is (or is not) what the code will print
                print_good = offer_good[i_single] == want_true[i_single]
                word = pick(rng, pos if print_good != negate else neg)
                code, (good, bad) = _vader_branch(rng, word, negate)
                choices = [good if offer_good[i_single] else bad]
                diff = "hard" if negate else strength(word)
            else:
                pair = [pick(rng, pos), pick(rng, neg)]
                rng.shuffle(pair)
                make = _vader_pick if subset == "vader_pick" else _score_table
                code, choices = make(rng, pair[0], pair[1], not want_min[i_pair])
                diff = strength(min(pair, key=lambda w: abs(w.mean)))
            if code not in taken:  # no snippet may appear in two splits (or twice in one)
                taken.add(code)
                break
        if subset == "vader_branch":
            i_single += 1
        else:
            i_pair += 1
        drafts.append((subset, code, choices, diff))
    outputs = run_snippets([d[1] for d in drafts])
    rows: list[dict[str, Any]] = []
    for gi, ((subset, code, choices, diff), out) in enumerate(zip(drafts, outputs, strict=True)):
        if not out["ok"]:
            raise RuntimeError(f"demo-code snippet failed ({out.get('error')}):\n{code}")
        printed = out["stdout"].strip()
        cid = f"{FAMILY}-{split}-q{gi:04d}"
        order = list(choices)
        rng.shuffle(order)
        keys = ["x", "y"]
        rng.shuffle(keys)
        for k, choice in enumerate(order):
            row = {
                "id": f"{cid}-c{k}",
                "question": QUESTION.format(code=code),
                "choice": choice,
                "label": printed == choice,  # ground truth: what the code really printed
                "subset": subset,
                "difficulty": diff,
            }
            if len(order) > 1:
                row.update(consistency_id=cid, consistency_key=keys[k])
            rows.append(row)
    return rows
