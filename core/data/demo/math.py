"""demo-math: binary word problems whose truth is computed by evaluating the arithmetic.

Each question describes a quantity that moves up by ``d`` after a good event and down by ``d`` after
a bad one, and states where it ended. Each choice proposes the event as two same-polarity words from the
VADER lexicon. The label is computed, never typed: ``start + d * sign(words) == end`` (integers).
Test words were never seen in train_label, and the up/down direction makes it a real
question-choice interaction that a teacher trained on 200 rows learns only in part.
"""

from __future__ import annotations

import random
from typing import Any

from core.data.demo.common import NAMES, pick, rng_for, share_flags, two_distinct
from core.data.demo.lexicon import LexWord, strength

FAMILY = "math"

# Share of questions where the quantity went *down* (a good word is then the wrong choice). Most
# questions go up, so word polarity alone already predicts most labels (a weak teacher can learn
# it); the rest reward a model that also reads the direction.
DOWN_SHARE = 0.1
UP = ("rose", "climbed", "went up", "grew", "increased")
DOWN = ("fell", "dropped", "went down", "shrank", "decreased")

# subset -> (question template, choice template). {a} start, {d} step, {t} end, {dir} direction.
TEMPLATES: dict[str, tuple[str, str]] = {
    "review_score": (
        "{place} had a rating of {a} points. Every positive review adds {d} points and every negative "
        "review takes {d} points away. After one new review the rating {dir} to {t}. "
        "Which review was it?",
        'A review that said: "{w1} and {w2}."',
    ),
    "savings_jar": (
        "{name} keeps {a} dollars in a jar, adds {d} dollars after a good day and takes out {d} dollars "
        "after a bad day. Tonight the jar {dir} to {t} dollars. Which diary entry did {name} write today?",
        'Today felt "{w1} and {w2}".',
    ),
    "game_points": (
        "In a board game {name} holds {a} points. A lucky card gives {d} points and an unlucky card "
        "costs {d} points. After drawing one card the total {dir} to {t}. Which card was drawn?",
        'The card read "{w1} and {w2}".',
    ),
}
PLACES = ("The bakery", "The museum", "The hotel", "A food truck", "The library", "The gym", "A cinema",
          "The bookshop", "A pizzeria", "The zoo", "The barber", "A cafe", "The dentist", "The hostel")


def _sign(w: LexWord) -> int:
    return 1 if w.positive else -1


def _question(rng: random.Random, subset: str, up: bool) -> tuple[str, int, int, int]:
    a = rng.randrange(12, 95)
    d = rng.randrange(2, 12)
    t = a + d if up else a - d
    q_t, _ = TEMPLATES[subset]
    direction = pick(rng, UP if up else DOWN)
    text = q_t.format(place=pick(rng, PLACES), name=pick(rng, NAMES), a=a, d=d, t=t, dir=direction)
    return text, a, d, t


def generate_split(split: str, n_rows: int, words: list[LexWord], taken: set[str]) -> list[dict[str, Any]]:
    """``n_rows`` rows (groups of 2 choices: one positive, one negative word; one is true)."""
    rng = rng_for(FAMILY, split)
    pos = [w for w in words if w.positive]
    neg = [w for w in words if not w.positive]
    subsets = sorted(TEMPLATES)
    n_groups = n_rows // 2
    ups = [not down for down in share_flags(rng, n_groups, DOWN_SHARE)]
    rows: list[dict[str, Any]] = []
    g = 0
    while len(rows) < 2 * n_groups:
        subset = subsets[g % len(subsets)]
        up = ups[g % n_groups]
        text, a, d, t = _question(rng, subset, up)
        if text in taken:  # no question text may appear in two splits (or twice in one)
            continue
        taken.add(text)
        pair = [two_distinct(rng, pos), two_distinct(rng, neg)]
        rng.shuffle(pair)
        cid = f"{FAMILY}-{split}-q{g:04d}"
        keys = ["x", "y"]
        rng.shuffle(keys)
        for k, (w1, w2) in enumerate(pair):
            label = a + d * _sign(w1) == t  # the ground truth: evaluate the problem
            rows.append({
                "id": f"{cid}-c{k}",
                "question": text,
                "choice": TEMPLATES[subset][1].format(w1=w1.word, w2=w2.word),
                "label": label,
                "subset": subset,
                "difficulty": strength(min((w1, w2), key=lambda w: abs(w.mean))),
                "consistency_id": cid,
                "consistency_key": keys[k],
            })
        g += 1
    return rows
