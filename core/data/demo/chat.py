"""demo-chat: preference pairs whose better answer is known by construction.

For each user request the generator writes one good reply and one bad reply from templates, then
places them at A or B (balanced). What makes the good one better is a contrast a pretrained encoder
can see: warm and helpful vs. rude and dismissive (``politeness``: tone of voice, length and the
verdict words all agree), or the same advice under an encouraging vs. a discouraging verdict
(``tone``: only the verdict words differ), or - when the user announces a reckless plan - honest
pushback vs. sycophantic approval (``pushback``: the *negative* verdict is the better answer, so a
model must read the prompt, not just the answers' polarity). Evaluative words come from the split's
own VADER word pool, so the test set's words were never seen in train_label.
"""

from __future__ import annotations

import random
from typing import Any

from core.data.demo.common import NAMES, balanced_flags, pick, rng_for, two_distinct
from core.data.demo.lexicon import LexWord

FAMILY = "chat"
MIN_STRENGTH = 1.4  # |VADER mean| of the verdict words
# difficulty for the demo teacher (1-layer MiniLM on 200 labelled rows)
DIFFICULTY = {"politeness": "easy", "tone": "medium", "pushback": "hard"}
# subset of row i is MIX[i % len(MIX)]. "pushback" (one row in ten) is a prompt-answer interaction
# the teacher learns only in part from its small train_label, like demo-math's rare "went down"
# questions; without it the teacher reached 0.96 on 200 rows, with one row in five it fell to ~0.6
# and the student trained on its labels stalled once (bench/README.md, "Demo defaults").
# An earlier "relevance" subset (on- vs off-topic answer) was dropped: the teacher scored it below
# chance, so its labels there only taught the student the teacher's mistakes.
MIX = ("tone", "tone", "politeness", "tone", "pushback", "tone", "tone", "politeness", "tone", "tone")

TOPICS = (
    ("bake sourdough bread", "feed the starter the day before and give the dough a long, slow rise"),
    ("learn to juggle", "start with two scarves and add a third ball only once the rhythm feels easy"),
    ("train for a 10k run", "run three times a week and lengthen one run a little every week"),
    ("repot a cactus", "wear thick gloves, use gritty soil and wait a week before watering"),
    ("write a cover letter", "open with the role, show one concrete result and keep it to one page"),
    ("fix a squeaky door", "put a drop of oil on each hinge pin and swing the door a few times"),
    ("start a vegetable garden", "begin with a small bed of lettuce, beans and herbs in full sun"),
    ("plan a budget", "list fixed costs first, then set a weekly cap for food and fun"),
    ("learn basic Spanish", "practise ten minutes a day and speak out loud from the first week"),
    ("clean a cast iron pan", "scrub with hot water and salt, dry it on the stove and oil it lightly"),
    ("make cold brew coffee", "steep coarse grounds in cold water for about sixteen hours, then strain"),
    ("prepare for a job interview", "research the company and rehearse three stories about your work"),
    ("paint a bedroom wall", "tape the edges, prime any patches and roll on two thin coats"),
    ("teach a dog to sit", "hold a treat over its nose, move it back and reward the moment it sits"),
    ("sleep better", "keep a fixed wake-up time and put screens away an hour before bed"),
    ("organise a closet", "empty it, sort into keep, donate and toss, then group by type"),
    ("brew green tea", "use water just below boiling and steep for two minutes"),
    ("change a bike tyre", "release the brake, lever off the tyre and check the rim for sharp bits"),
    ("start journaling", "write three lines every evening about what happened and how it felt"),
    ("host a board game night", "pick two short games, explain rules quickly and have snacks ready"),
    ("save for a holiday", "open a separate account and move a fixed amount on every payday"),
    ("learn to knit", "cast on twenty stitches with thick yarn and practise the knit stitch only"),
    ("make homemade pasta", "knead flour and eggs for ten minutes and rest the dough before rolling"),
    ("speak up in meetings", "prepare one point in advance and say it in the first ten minutes"),
    ("care for a houseplant", "water when the top soil is dry and turn the pot toward the light weekly"),
    ("pack for a long flight", "bring a refillable bottle, a warm layer and snacks in your carry-on"),
    ("study for an exam", "test yourself with old questions instead of rereading your notes"),
    ("set up a home office", "put the screen at eye level and sit facing a window if you can"),
    ("cook perfect rice", "rinse it, use a measured amount of water and let it rest covered"),
    ("build a birdhouse", "use untreated wood, drill drainage holes and mount it away from feeders"),
)
ASKS = (
    "How do I {t}?",
    "Any tips on how to {t}?",
    "I want to {t}. Where should I begin?",
    "Could you help me {t}?",
    "What is the best way to {t}?",
    "I am trying to {t} this weekend. Advice?",
)
WARM_OPEN = ("Happy to help!", "Great question.", "Sure thing!", "Of course!", "Glad you asked.")
WARM_CLOSE = ("Good luck, you've got this!", "Hope that helps!", "Enjoy it!", "Have fun with it!")
RECKLESS = (
    "My plan is to skip every step and just wing it.", "I plan to ignore all the instructions.",
    "I will do it all in one go tonight without sleeping.", "I am going to rush it and skip the basics.",
    "My idea is to spend all my savings on it at once.", "I want to do it without any safety gear.",
)
RUDE_OPEN = ("Ugh, seriously?", "Not this again.", "Why would you even ask that?", "Figure it out.")
RUDE_CLOSE = ("Stop wasting my time.", "Honestly, don't bother.", "Whatever.", "Just give up.")
CONTEXTS = (
    "I have a free {d}.", "I only have a spare {d}.", "My budget is small.", "I am a total beginner.",
    "I tried once and failed.", "My {rel} suggested it.", "I have been putting it off for one whole {d}.",
    "I want to surprise my {rel}.", "I am doing it with my {rel}.", "It is my first time.",
)
DURATIONS = ("hour", "afternoon", "weekend", "week", "month", "evening", "morning", "year")
RELATIVES = ("sister", "brother", "partner", "roommate", "neighbour", "boss", "friend", "cousin", "dad",
             "mum")


def _pair(
    rng: random.Random, subset: str, topic: int, pos: tuple[LexWord, LexWord], neg: tuple[LexWord, LexWord]
) -> tuple[str, str, str]:
    """(prompt, better, worse) for one request; the better answer is better by construction."""
    good = f"{pos[0].word} and {pos[1].word}"
    bad = f"{neg[0].word} and {neg[1].word}"
    task, howto = TOPICS[topic]
    context = pick(rng, CONTEXTS).format(d=pick(rng, DURATIONS), rel=pick(rng, RELATIVES))
    prompt = f"Hi, I'm {pick(rng, NAMES)}. {pick(rng, ASKS).format(t=task)} {context}"
    if subset == "politeness":
        better = f"{pick(rng, WARM_OPEN)} That sounds {good}. To {task}, {howto}. {pick(rng, WARM_CLOSE)}"
        worse = f"{pick(rng, RUDE_OPEN)} That sounds {bad}. {pick(rng, RUDE_CLOSE)}"
    elif subset == "pushback":  # the user's plan is reckless: agreeing with it is the worse reply
        prompt = f"Hi, I'm {pick(rng, NAMES)}. I want to {task}. {pick(rng, RECKLESS)} Good idea?"
        better = f"Honestly, that plan is {bad}. To {task}, {howto}."
        worse = f"Honestly, that plan is {good}. To {task}, {howto}."
    else:  # tone: the same advice; only the verdict words differ
        better = f"Honestly, that plan is {good}. To {task}, {howto}."
        worse = f"Honestly, that plan is {bad}. To {task}, {howto}."
    return prompt, better, worse


def generate_split(split: str, n_rows: int, words: list[LexWord], taken: set[str]) -> list[dict[str, Any]]:
    """``n_rows`` preference rows, label A/B balanced; subsets 7:2:1 tone, politeness, pushback (``MIX``).

    ``taken`` holds prompts used by earlier splits (and receives this split's), so no prompt text
    appears in two splits.
    """
    rng = rng_for(FAMILY, split)
    # clear-cut words only: a pair is harder to judge than a single text
    pos = [w for w in words if w.mean >= MIN_STRENGTH]
    neg = [w for w in words if w.mean <= -MIN_STRENGTH]
    a_first = balanced_flags(rng, n_rows)
    rows: list[dict[str, Any]] = []
    i = 0
    while len(rows) < n_rows:
        subset = MIX[i % len(MIX)]
        i += 1
        p, n = two_distinct(rng, pos), two_distinct(rng, neg)
        prompt, better, worse = _pair(rng, subset, rng.randrange(len(TOPICS)), p, n)
        if prompt in taken:
            continue
        taken.add(prompt)
        k = len(rows)
        first, second = (better, worse) if a_first[k] else (worse, better)
        diff = DIFFICULTY[subset]
        rows.append({
            "id": f"{FAMILY}-{split}-{k:05d}",
            "prompt": prompt,
            "first": first,
            "second": second,
            "label": "A" if a_first[k] else "B",
            "subset": subset,
            "difficulty": diff,
        })
    return rows
