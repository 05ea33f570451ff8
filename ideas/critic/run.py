"""critic: a strong critic writes critiques, a weak judge trained on train_label reads them, and the
judge's verdicts on train_unlabel train the strong student.

The pipeline (the reference's ``w2s_research/ideas/critic``; see README.md for its numbers and where we
differ):

a. critiques of train_label and test rows by the untrained critic (sampled);
b. a weak judge trained by the trusted side on train_label with (row + critique) texts
   (``experiment.train_weak_judge``: the idea never sees a label);
c. warm start: best-of-k critiques of a train_unlabel slice, ranked by the judge's reward, and a
   language-modelling fine-tune of the critic on them;
d. GRPO on train_unlabel critique prompts with the judge as the reward: a critique earns 1 when the
   judge then calls the answer wrong (binary rows), or prefers the *other* answer of the pair;
e. critiques of train_unlabel by the trained critic, the judge's verdicts on them as labels, the
   strong student trained on those labels (``experiment.transfer``), predictions on test.

Why the reward asks for "wrong": without labels, the only pressure available is to find fault; the
judge, trained on ground truth, is supposed to be convinced only by faults that are real.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.common.errors import UserError
from core.run import experiment

# Sized for the offline demo (2 CPU cores, minutes per seed on top of cached baselines); the
# reference's values for a real run are in README.md ("Knobs"). DEFAULTS always join the cache key
# (the four the reference keys on: GRPO steps, lr, KL coefficient, warm-start size); the SETTINGS
# join it only when a run sets them (every knob in the key would make the folder name too long).
DEFAULTS: dict[str, Any] = {
    "grpo_steps": 8,  # reference 50 (grpo_max_steps)
    "grpo_lr": 1e-4,  # reference 1e-5 (LoRA on a 4B model); see README.md
    "grpo_beta": 0.02,  # KL coefficient, reference 0.02 (grpo_kl_penalty)
    "sft_rows": 64,  # warm start: train_unlabel critique prompts (reference: 3000 weak critiques)
}
SETTINGS: dict[str, Any] = {
    "critic_model": "auto",  # auto: the strong model when it is a causal LM, else demo-critic
    "critique_tokens": 8,  # new tokens per critique (reference 1024); see README.md ("On the demo")
    "critique_temperature": 1.0,  # reference 1.0
    "critique_top_p": 1.0,  # reference 0.99 (nucleus sorting of a 30k vocabulary dominates CPU time)
    "judge_template": "default",  # or a template string: see README.md ("Judge texts")
    "judge_anchor": "on",  # on: the judge also trains on each train_label row with its review withheld
    "sft_samples": 4,  # k critiques per prompt, the judge's best kept
    "sft_epochs": 2,
    "sft_lr": 2e-4,  # reference sft_critic_lr
    "grpo_generations": 4,  # critiques per prompt per step (reference 8)
    "grpo_prompts": 8,  # prompts per step (reference 32)
    "reward": "hard",  # hard: 1/0 by the judge's verdict (reference); soft: the judge's probability
    "labels": "hard",  # hard: the judge's verdict (reference); soft: its P(class 1)
}

PROBE_PROMPTS = 32  # GRPO prompts whose reward is measured before and after training

CRITIQUE_PROMPT = (
    "You are grading an exam. Students often get things wrong.\n\n"
    "Question: {question}\n\nStudent's answer: {answer}\n\n"
    "Point out every error in the student's answer.\nCritique:"
)
JUDGE_BINARY = (
    "Question: {question}\nProposed answer: {answer}\nA critic's review: {critique}\n"
    "Given the question, the answer and the review: is the proposed answer correct?"
)
JUDGE_PAIR = (
    "Conversation: {question}\nResponse A: {first}\nResponse B: {second}\n"
    "A critic's review of A: {critique_a}\nA critic's review of B: {critique_b}\n"
    "Given both responses and both reviews: is response B the better one?"
)
# What stands in for a critique when the judge is shown a row with its review withheld (below).
NO_REVIEW = "(no review)"


@dataclass(frozen=True)
class Unit:
    """One thing to critique: a binary row's answer, or one answer of a preference pair."""

    row: dict[str, Any]
    option: int | None  # None: binary; 0: the pair's first answer (A); 1: its second (B)

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def question(self) -> str:
        return str(self.row["question"] if self.option is None else self.row["prompt"])

    @property
    def answer(self) -> str:
        if self.option is None:
            return str(self.row["choice"])
        return str(self.row["first" if self.option == 0 else "second"])


def units_of(rows: Sequence[dict[str, Any]], fmt: str) -> list[Unit]:
    """Every answer to critique: one per binary row, both answers of a pair (each seen alone, as the
    reference does: the critic never compares)."""
    if fmt == "binary":
        return [Unit(r, None) for r in rows]
    return [Unit(r, o) for r in rows for o in (0, 1)]


def knob(cfg: RunConfig, name: str) -> Any:
    return cfg.extra.get(name, DEFAULTS[name] if name in DEFAULTS else SETTINGS[name])


def int_knob(cfg: RunConfig, name: str, low: int = 1) -> int:
    value = knob(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < low:
        raise UserError(f"extra.{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def float_knob(cfg: RunConfig, name: str, low: float = 0.0) -> float:
    value = knob(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise UserError(f"extra.{name}: expected a number >= {low}, got {value!r}")
    return float(value)


def choice_knob(cfg: RunConfig, name: str, allowed: tuple[str, ...]) -> str:
    value = str(knob(cfg, name))
    if value not in allowed:
        raise UserError(f"extra.{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def judge_template(cfg: RunConfig, fmt: str) -> str:
    """The judge's text template for ``fmt``: ours by default, or the user's (checked here, so a typo
    fails before any model loads)."""
    value = str(knob(cfg, "judge_template"))
    if value == "default":
        return JUDGE_BINARY if fmt == "binary" else JUDGE_PAIR
    fields = (dict(question="q", answer="a", critique="c") if fmt == "binary"
              else dict(question="q", first="a", second="b", critique_a="c", critique_b="d"))
    try:
        probe = value.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"extra.judge_template: {exc!r} is not a field of {fmt} rows "
                        f"(fields: {', '.join(fields)})") from None
    needed = ("c",) if fmt == "binary" else ("c", "d")
    if not all(f in probe for f in needed):
        raise UserError("extra.judge_template: the template must show the critique(s) "
                        f"({'{critique}' if fmt == 'binary' else '{critique_a} and {critique_b}'})")
    return value


def judge_text(template: str, row: dict[str, Any], critiques: dict[int | None, str]) -> str:
    """The text the judge classifies for one row, with its critique(s)."""
    if "choice" in row:
        return template.format(question=row["question"], answer=row["choice"], critique=critiques[None])
    return template.format(question=row["prompt"], first=row["first"], second=row["second"],
                           critique_a=critiques[0], critique_b=critiques[1])


def judge_training_texts(template: str, rows: Sequence[dict[str, Any]], crit: dict[tuple[str, int | None], str],
                         fmt: str, anchor: bool) -> dict[str, str]:
    """The judge's train_label texts: each row with its critique(s) and, with ``anchor``, the same row
    once more with every review withheld (``NO_REVIEW``), under the same label.

    Why: measured on demo-code (seed 42, 300 test rows), the weak judge trained on rows + 32-token
    critiques of the untrained demo critic reached 0.577 test accuracy, against 0.860 for the same
    judge on the rows alone: a weak judge trained on 200 rows fits the critiques' row-varying words
    (its training loss fell to 0.14) instead of the answer, so a critic with nothing to say pulls it
    to chance. Shown every row without a review as well, it must learn the row itself, and a critique
    can only add to that. The key ``<id>#bare`` is the service's ``<row id>#<suffix>``."""
    texts = {str(r["id"]): judge_text(template, r, row_critiques(crit, r, fmt)) for r in rows}
    if anchor:
        for r in rows:
            bare = {k: NO_REVIEW for k in row_critiques(crit, r, fmt)}
            texts[f"{r['id']}#bare"] = judge_text(template, r, bare)
    return texts


def reward_of(unit: Unit, p1: float, mode: str) -> float:
    """The reference's reward for a critique of ``unit`` given the judge's P(class 1) afterwards:
    binary, 1 when the judge calls the answer wrong; pairs, 1 when the judge prefers the other answer.
    ``soft``: the judge's probability of that verdict instead."""
    against = 1.0 - p1 if unit.option in (None, 1) else p1  # P(wrong) / P(other answer better)
    if mode == "soft":
        return float(against)
    said_class_1 = p1 > 0.5  # ties go to class 0, like experiment.hard_labels
    return float(not said_class_1) if unit.option in (None, 1) else float(said_class_1)


class Critic:
    """The critic LM with its prompt format: one user turn of the chat template for chat models (the
    engine's rule, ``extra.chat_template`` auto|on|off, which GRPO follows too), else the plain prompt
    (base models, the demo critic)."""

    def __init__(self, cfg: RunConfig, model: str) -> None:
        from core.engine.chat_models import wants_chat_template

        self.cfg, self.name = cfg, model
        self.lm = experiment.load_lm(cfg, model, trainable=True)
        base = self.lm.model.get_base_model() if hasattr(self.lm.model, "get_base_model") else self.lm.model
        try:
            self.chat = wants_chat_template(self.lm.spec, self.lm.tokenizer, cfg, getattr(base, "config", None))
        except ValueError as exc:
            raise UserError(f"extra.chat_template: {exc}") from None
        self.gen_cfg = cfg.replace(max_new_tokens=int_knob(cfg, "critique_tokens"),
                                   temperature=float_knob(cfg, "critique_temperature"),
                                   top_p=float_knob(cfg, "critique_top_p"), num_samples=1)
        self.calls = 0

    @staticmethod
    def request(unit: Unit) -> str:
        """The critique request as plain text (what GRPO is given: it applies the template itself)."""
        return CRITIQUE_PROMPT.format(question=unit.question, answer=unit.answer)

    def prompt(self, unit: Unit) -> str:
        """The text the critic continues: the request, inside the chat template for chat models."""
        text = self.request(unit)
        if not self.chat:
            return text
        out = self.lm.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                    add_generation_prompt=True)
        return str(out)

    def critique(self, units: Sequence[Unit], samples: int = 1) -> list[list[str]]:
        """``samples`` sampled critiques per unit (a new seed per call, so calls differ)."""
        self.calls += 1
        cfg = self.gen_cfg.replace(num_samples=samples, seed=self.cfg.seed * 1000 + self.calls)
        out = experiment.generate(self.lm, [self.prompt(u) for u in units], cfg, batch_size=32)
        return [[c.strip() for c in group] for group in out]

    def release(self) -> None:
        """Free the critic before the student trains (a 4B critic and a 4B student on one GPU)."""
        del self.lm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass


def critic_model(cfg: RunConfig) -> str:
    """``extra.critic_model``; ``auto``: the strong model when it can write (a causal LM), else the
    registry's ``demo-critic`` (the demo's strong model is an encoder)."""
    name = str(knob(cfg, "critic_model"))
    if name != "auto":
        return name
    from core.engine.models import detect_kind, read_model_config, resolve_model

    spec = resolve_model(cfg.strong_model)
    try:
        kind = spec.kind or detect_kind(read_model_config(spec))
    except (OSError, ValueError) as exc:
        raise UserError(f"critic_model auto: cannot read {cfg.strong_model}'s config ({exc})") from None
    return cfg.strong_model if kind == "causal" else "demo-critic"


def by_unit(units: Sequence[Unit], texts: Sequence[str]) -> dict[tuple[str, int | None], str]:
    return {(u.id, u.option): t for u, t in zip(units, texts, strict=True)}


def row_critiques(crit: dict[tuple[str, int | None], str], row: dict[str, Any], fmt: str) -> dict[int | None, str]:
    rid = str(row["id"])
    return {None: crit[(rid, None)]} if fmt == "binary" else {0: crit[(rid, 0)], 1: crit[(rid, 1)]}


def sft(critic: Critic, pairs: list[tuple[str, str]], epochs: int, lr: float, seed: int) -> list[float]:
    """Fine-tune the critic with the LM loss on (prompt, critique) pairs; the mean loss per epoch."""
    import torch

    model = critic.lm.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = random.Random(seed)
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), 8):
            batch = [pairs[i] for i in order[start : start + 8]]
            loss = experiment.lm_loss(critic.lm, [p for p, _ in batch], [c for _, c in batch],
                                      max_len=critic.cfg.max_ctx)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += float(loss.detach()) * len(batch)
        losses.append(total / max(1, len(pairs)))
    return losses


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    start = time.time()
    data = experiment.load_label_free(cfg)
    fmt = data.fmt
    labelled = experiment.load_train_label_free(cfg)
    template = judge_template(cfg, fmt)
    reward_mode = choice_knob(cfg, "reward", ("hard", "soft"))
    label_mode = choice_knob(cfg, "labels", ("hard", "soft"))
    anchor = choice_knob(cfg, "judge_anchor", ("on", "off")) == "on"
    if not data.train or not data.test:
        raise UserError("critic needs train_unlabel and test rows")
    name = critic_model(cfg)
    experiment.log(f"critic: critic {name}, judge {cfg.weak_model}, student {cfg.strong_model}; "
                   f"{len(labelled)} train_label, {len(data.train)} train_unlabel, {len(data.test)} test rows")
    critic = Critic(cfg, name)
    texts_asked = 0

    def predict(judge: Any, texts: dict[str, str]) -> dict[str, float]:
        nonlocal texts_asked
        texts_asked += len(texts)
        return judge.predict(texts)

    # a. critiques of train_label and test (sampled, one each)
    experiment.report(0.0, "critiques of train_label and test")
    tl_units, te_units = units_of(labelled, fmt), units_of(data.test, fmt)
    first = critic.critique(tl_units + te_units)
    crit_tl = by_unit(tl_units, [g[0] for g in first[: len(tl_units)]])
    crit_te = by_unit(te_units, [g[0] for g in first[len(tl_units) :]])
    experiment.log(f"critic: {len(first)} critiques of train_label and test rows")

    # b. the weak judge, trained by the trusted side on train_label (row + critique)
    experiment.report(0.1, "training the weak judge")
    judge = experiment.train_weak_judge(cfg, judge_training_texts(template, labelled, crit_tl, fmt, anchor))
    judge_test_before = predict(judge, {f"{r['id']}#a": judge_text(template, r, row_critiques(crit_te, r, fmt))
                                        for r in data.test})
    experiment.log("critic: weak judge trained")

    # c. warm start: best-of-k critiques of a train_unlabel slice by the judge's reward, then SFT
    experiment.report(0.2, "best-of-k critiques for the warm start")
    k, n_sft = int_knob(cfg, "sft_samples"), int_knob(cfg, "sft_rows", 0)
    sft_rows = data.train[: n_sft // 2 if fmt == "preference" else n_sft]
    sft_info: dict[str, Any] = {"rows": len(sft_rows), "samples": k}
    if sft_rows:
        sft_units = units_of(sft_rows, fmt)
        groups = critic.critique(sft_units, samples=k)
        ref = by_unit(sft_units, [g[0] for g in groups])  # the other answer's critique (pairs)
        texts: dict[str, str] = {}
        for u, group in zip(sft_units, groups, strict=True):
            for j, c in enumerate(group):
                crits = row_critiques(ref, u.row, fmt) | {u.option: c}
                texts[f"{u.id}#s{u.option}_{j}"] = judge_text(template, u.row, crits)
        probs = predict(judge, texts)
        pairs: list[tuple[str, str]] = []
        best_rewards, mean_rewards = [], []
        for u, group in zip(sft_units, groups, strict=True):
            soft = [reward_of(u, probs[f"{u.id}#s{u.option}_{j}"], "soft") for j in range(len(group))]
            mean_rewards.append(float(np.mean([reward_of(u, probs[f"{u.id}#s{u.option}_{j}"], reward_mode)
                                               for j in range(len(group))])))
            order = sorted(range(len(group)), key=lambda j: -soft[j])
            best = next((j for j in order if group[j]), None)  # an empty critique teaches nothing
            if best is not None:
                pairs.append((critic.prompt(u), group[best]))
                best_rewards.append(reward_of(u, probs[f"{u.id}#s{u.option}_{best}"], reward_mode))
        experiment.report(0.25, "warm-start fine-tune")
        losses = sft(critic, pairs, int_knob(cfg, "sft_epochs", 0), float_knob(cfg, "sft_lr"), cfg.seed)
        sft_info.update(pairs=len(pairs), loss_per_epoch=losses, mean_reward_sampled=float(np.mean(mean_rewards)),
                        mean_reward_kept=float(np.mean(best_rewards)) if best_rewards else None)
        experiment.log(f"critic: warm start on {len(pairs)} best-of-{k} critiques, reward "
                       f"{sft_info['mean_reward_sampled']:.3f} sampled -> {sft_info['mean_reward_kept'] or 0:.3f} kept, "
                       f"LM loss per epoch {', '.join(f'{x:.3f}' for x in losses)}")

    # d. GRPO against the judge on train_unlabel critique prompts
    experiment.report(0.3, "GRPO")
    rng = random.Random(cfg.seed)
    steps, per_step = int_knob(cfg, "grpo_steps", 0), int_knob(cfg, "grpo_prompts")
    rows = list(data.train)
    rng.shuffle(rows)
    rows = rows[: steps * per_step]  # the prompts GRPO can use: each row once before any repeats
    if fmt == "binary":
        pool = units_of(rows, fmt)
        ref_crit: dict[tuple[str, int | None], str] = {}
    else:  # one answer per pair, drawn at random (the reference's grpo_random_sample_option)
        pool = [Unit(r, rng.randrange(2)) for r in rows]
        others = [Unit(u.row, 1 - (u.option or 0)) for u in pool]
        # the other answer's critique, fixed for the whole of GRPO (the reference's critique_other_option)
        ref_crit = by_unit(others, [g[0] for g in critic.critique(others)]) if others else {}
    by_prompt: dict[str, Unit] = {}
    for u in pool:
        by_prompt.setdefault(critic.request(u), u)
    prompts = list(by_prompt)
    trace: list[dict[str, float]] = []

    def reward_fn(batch_prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        call = len(trace)
        keyed: dict[str, str] = {}
        units = []
        for i, (p, c) in enumerate(zip(batch_prompts, completions, strict=True)):
            u = by_prompt[p]
            crits = ({None: c.strip()} if fmt == "binary"
                     else {u.option: c.strip(), 1 - (u.option or 0): ref_crit[(u.id, 1 - (u.option or 0))]})
            keyed[f"{u.id}#g{call}_{i}"] = judge_text(template, u.row, crits)
            units.append(u)
        probs = predict(judge, keyed)
        p1 = [probs[key] for key in keyed]
        rewards = [reward_of(u, p, reward_mode) for u, p in zip(units, p1, strict=True)]
        soft = [reward_of(u, p, "soft") for u, p in zip(units, p1, strict=True)]
        trace.append({"reward": float(np.mean(rewards)), "p_against": float(np.mean(soft))})
        experiment.log(f"critic: GRPO reward call {call + 1}: mean reward {trace[-1]['reward']:.3f}, "
                       f"judge P(against) {trace[-1]['p_against']:.3f} over {len(rewards)} critiques")
        return rewards

    def probe(tag: str) -> float | None:
        """Mean reward of one fresh critique per probe prompt: the same prompts before and after GRPO
        (the per-step means cover different prompts, so they are not comparable)."""
        units = [by_prompt[p] for p in prompts[:PROBE_PROMPTS]]
        if not units:
            return None
        crits = [g[0] for g in critic.critique(units)]
        keyed = {f"{u.id}#{tag}{i}": judge_text(template, u.row, {u.option: c} if fmt == "binary" else
                                                {u.option: c, 1 - (u.option or 0): ref_crit[(u.id, 1 - (u.option or 0))]})
                 for i, (u, c) in enumerate(zip(units, crits, strict=True))}
        probs = predict(judge, keyed)
        return float(np.mean([reward_of(u, probs[key], reward_mode) for u, key in zip(units, keyed, strict=True)]))

    grpo_out: dict[str, Any] = {}
    probe_before = probe("pb") if steps else None
    if steps:
        from core.engine.grpo import grpo_train

        def grpo_progress(frac: float, message: str = "") -> None:
            experiment.report(0.3 + 0.2 * frac, message or "GRPO")

        grpo_out = grpo_train(
            critic.lm, prompts, reward_fn, critic.gen_cfg, steps=steps,
            num_generations=int_knob(cfg, "grpo_generations", 2), max_new_tokens=critic.gen_cfg.max_new_tokens,
            lr=float_knob(cfg, "grpo_lr"), beta=float_knob(cfg, "grpo_beta"),
            temperature=critic.gen_cfg.temperature, prompts_per_step=per_step,
            progress=grpo_progress,
        ) or {}
    probe_after = probe("pa") if steps else None
    if steps:
        experiment.log(f"critic: mean reward on {min(len(prompts), PROBE_PROMPTS)} probe prompts: "
                       f"{probe_before:.3f} before GRPO, {probe_after:.3f} after")

    # e. critiques of train_unlabel (and test) by the trained critic; the judge's verdicts label train_unlabel
    experiment.report(0.5, "critiques of train_unlabel by the trained critic")
    tu_units = units_of(data.train, fmt)
    after = critic.critique(tu_units + te_units)
    crit_tu = by_unit(tu_units, [g[0] for g in after[: len(tu_units)]])
    crit_te_after = by_unit(te_units, [g[0] for g in after[len(tu_units) :]])
    critic.release()
    judged = predict(judge, {str(r["id"]): judge_text(template, r, row_critiques(crit_tu, r, fmt)) for r in data.train})
    judge_test_after = predict(judge, {f"{r['id']}#e": judge_text(template, r, row_critiques(crit_te_after, r, fmt))
                                       for r in data.test})
    p1 = np.array([judged[str(r["id"])] for r in data.train])
    labels = experiment.hard_labels(p1)
    weak = experiment.hard_labels(experiment.weak_soft_labels(cfg, data.train_ids))
    before_t = experiment.hard_labels(np.array([judge_test_before[f"{r['id']}#a"] for r in data.test]))
    after_t = experiment.hard_labels(np.array([judge_test_after[f"{r['id']}#e"] for r in data.test]))
    stats = {
        "critic_model": name,
        "critiques": {"train_label": len(tl_units), "test": 2 * len(te_units), "train_unlabel": len(tu_units),
                      "generate_calls": critic.calls},
        "warm_start": sft_info,
        "grpo": {"steps": steps, "prompts": len(prompts), "reward_per_step": [t["reward"] for t in trace],
                 "p_against_per_step": [t["p_against"] for t in trace],
                 "probe_prompts": min(len(prompts), PROBE_PROMPTS) if steps else 0,
                 "mean_reward_before": probe_before, "mean_reward_after": probe_after,
                 "engine": {k: v for k, v in grpo_out.items() if isinstance(v, int | float | str | list)}},
        "judge": {"texts_asked": texts_asked, "texts_left": judge.texts_left,
                  "agreement_with_weak_labels": float(np.mean(labels == weak)),
                  "class_1_share": float(np.mean(labels)),
                  "test_verdicts_changed_by_training": float(np.mean(before_t != after_t))},
        "labels": label_mode,
        "labeling_time": time.time() - start,
    }
    experiment.log(f"critic: judge labels on train_unlabel: class 1 share {stats['judge']['class_1_share']:.3f}, "
                   f"agreement with the weak labels {stats['judge']['agreement_with_weak_labels']:.3f}; "
                   f"{texts_asked} judge texts")
    targets = p1 if label_mode == "soft" else labels
    result = experiment.transfer(cfg, data, data.train, targets, progress_span=(0.6, 1.0), **stats)
    student = experiment.hard_labels(np.array([result["test_predictions"][str(r["id"])] for r in data.test]))
    result["judge"]["test_agreement_with_student"] = float(np.mean(student == after_t))
    return result
