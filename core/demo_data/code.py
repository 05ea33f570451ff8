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

from core.demo_data.common import balanced_flags, pick, rng_for
from core.demo_data.executor import run_snippets
from core.demo_data.lexicon import LexWord, strength

FAMILY = "code"
QUESTION = "What does this Python code print?\n```python\n{code}\n```"
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


def _vader_branch(rng: random.Random, w1: LexWord, negate: bool) -> tuple[str, list[str]]:
    good, bad = pick(rng, REPLIES)
    thing = pick(rng, THINGS)
    review = f"the {thing} was {'not ' if negate else ''}{w1.word}"
    code = (
        f"{VADER_IMPORT}\n"
        f'review = "{review}"\n'
        'mood = SentimentIntensityAnalyzer().polarity_scores(review)["compound"]\n'
        f'print("{good}" if mood >= 0 else "{bad}")'
    )
    return code, [good, bad]


def generate_split(split: str, n_rows: int, words: list[LexWord], taken: set[str]) -> list[dict[str, Any]]:
    """``n_rows`` rows in groups of two choices; exactly one choice per group is the real output."""
    rng = rng_for(FAMILY, split)
    pos = [w for w in words if w.positive]
    neg = [w for w in words if not w.positive]
    subsets = ("vader_branch", "vader_pick", "score_table")
    n_groups = n_rows // 2
    flags = balanced_flags(rng, n_groups)
    drafts: list[tuple[str, str, list[str], str]] = []
    g = 0
    while len(drafts) < n_groups:
        subset = subsets[g % len(subsets)]
        flag = flags[len(drafts) % n_groups]
        pair = [pick(rng, pos), pick(rng, neg)]
        rng.shuffle(pair)
        g += 1
        if subset == "vader_pick":
            code, choices = _vader_pick(rng, pair[0], pair[1], flag)
            diff = strength(min(pair, key=lambda w: abs(w.mean)))
        elif subset == "score_table":
            code, choices = _score_table(rng, pair[0], pair[1], flag)
            diff = strength(min(pair, key=lambda w: abs(w.mean)))
        else:
            negate = rng.random() < 0.2
            code, choices = _vader_branch(rng, pair[0], negate)
            diff = "hard" if negate else strength(pair[0])
        if code in taken:  # no snippet may appear in two splits (or twice in one)
            continue
        taken.add(code)
        drafts.append((subset, code, choices, diff))
    outputs = run_snippets([d[1] for d in drafts])
    rows: list[dict[str, Any]] = []
    for gi, ((subset, code, choices, diff), out) in enumerate(zip(drafts, outputs, strict=True)):
        if not out["ok"]:
            raise RuntimeError(f"demo-code snippet failed ({out.get('error')}):\n{code}")
        printed = out["stdout"].strip()
        if printed not in choices:
            raise RuntimeError(f"demo-code snippet printed {printed!r}, not one of {choices}:\n{code}")
        cid = f"{FAMILY}-{split}-q{gi:04d}"
        order = list(choices)
        rng.shuffle(order)
        keys = ["x", "y"]
        rng.shuffle(keys)
        for k, choice in enumerate(order):
            rows.append({
                "id": f"{cid}-c{k}",
                "question": QUESTION.format(code=code),
                "choice": choice,
                "label": printed == choice,  # ground truth: what the code really printed
                "subset": subset,
                "difficulty": diff,
                "consistency_id": cid,
                "consistency_key": keys[k],
            })
    return rows
