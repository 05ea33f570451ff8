"""GRPO through TRL (core.engine.grpo) on a tiny causal LM built from a config (random weights, the
MiniLM tokenizer), on CPU. The generation and LM-loss paths it builds on are tested in
tests/test_engine_claims.py (shapes, determinism, gradients, the loss falling after training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.common.config import RunConfig
from core.engine.generation import generate, load_causal_lm
from core.engine.grpo import RewardFunctionError, grpo_train
from core.engine.models import minilm_path
from tests.tiny_w2s import tiny_llama

PROMPTS = [f"question number {i} is" for i in range(8)]
CFG = RunConfig(max_ctx=96, batch_size=8, seed=0, backend="hf", lora_r=4, lora_alpha=8)
REWARDED = "yes"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights whose LM-head row for ``yes`` points along the mean final
    hidden state: about 10% of the probability after a prompt and a few % inside a completion, so a
    reward paying for ``yes`` varies within a group (with a uniform 30k vocabulary it would be 0 for
    every completion and GRPO would have nothing to learn from)."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-grpo-lm")
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    model = tiny_llama(tok).eval()
    enc = tok(PROMPTS, return_tensors="pt", padding=True, return_token_type_ids=False)
    with torch.no_grad():
        hidden = model.model(**enc).last_hidden_state[enc["attention_mask"].bool()].mean(0)
        model.lm_head.weight[tok.convert_tokens_to_ids(REWARDED)] = 8.0 * hidden / hidden.norm() ** 2
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def p_rewarded(lm, token_id: int) -> float:
    """Mean probability of the rewarded token right after each prompt (a plain forward pass)."""
    with torch.no_grad():
        probs = [lm.model(input_ids=torch.tensor([lm.tokenizer(p)["input_ids"]])).logits[0, -1].softmax(-1)[token_id]
                 for p in PROMPTS]
    return float(torch.stack(probs).mean())


def test_grpo_raises_the_rewarded_token_and_trains_only_lora(tiny_lm: Path) -> None:
    lm = load_causal_lm(str(tiny_lm), CFG, trainable=True)
    x = lm.tokenizer.convert_tokens_to_ids(REWARDED)
    calls: list[tuple[list[str], list[str]]] = []

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        calls.append((prompts, completions))
        ids = [lm.tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions]
        return [sum(i == x for i in s) / max(1, len(s)) for s in ids]

    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    p_before = p_rewarded(lm, x)
    eos_before = lm.model.generation_config.eos_token_id
    out = grpo_train(lm, PROMPTS, reward, CFG, steps=4, num_generations=4, max_new_tokens=8, lr=1e-2,
                     prompts_per_step=4)

    # shapes: one reward call per step with 4 prompts x 4 completions, grouped per prompt
    assert out["steps"] == 4 and len(out["reward_mean_per_step"]) == 4 and len(out["kl"]) == 4
    assert len(calls) == 4
    for prompts, completions in calls:
        assert len(prompts) == len(completions) == 16
        groups = [prompts[i : i + 4] for i in range(0, 16, 4)]
        assert all(len(set(g)) == 1 for g in groups) and len({g[0] for g in groups}) == 4
        assert set(prompts) <= set(PROMPTS) and all(isinstance(c, str) for c in completions)

    # learning: the reward rises, and so does P(yes | prompt) measured outside TRL
    rewards = out["reward_mean_per_step"]
    assert rewards[-1] > rewards[0] + 0.2, rewards
    assert p_rewarded(lm, x) > p_before + 0.2
    assert out["kl"][0] == pytest.approx(0.0, abs=1e-6) and out["kl"][-1] > 0  # the policy left its reference

    # LoRA weights moved, base weights did not, and nothing of TRL's stays on the model
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_B" in n for n in changed)
    assert set(before) == {n for n, _ in lm.model.named_parameters()}  # the "ref" adapter is gone
    assert list(lm.model.peft_config) == ["default"]
    assert "forward" not in vars(lm.model.get_base_model()) and "forward" not in vars(lm.model)
    assert lm.model.generation_config.eos_token_id == eos_before

    # the trained policy is usable by the engine's generate
    greedy = generate(lm, PROMPTS[:2], max_new_tokens=5, temperature=0.0)
    assert all(g[0].split() == [REWARDED] * 5 for g in greedy)


def test_constant_reward_leaves_the_adapter_unchanged(tiny_lm: Path) -> None:
    """Zero advantage everywhere: the policy term is zero, and the KL term's gradient is zero too
    while the policy equals its reference (TRL's ``ref`` adapter is a copy of the current one), so
    TRL's update is exactly nothing — with beta > 0 as well as beta == 0."""
    for beta in (0.04, 0.0):
        lm = load_causal_lm(str(tiny_lm), CFG, trainable=True)
        before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
        out = grpo_train(lm, PROMPTS, lambda p, c: [0.5] * len(c), CFG, steps=3, num_generations=4,
                         max_new_tokens=6, lr=1e-2, prompts_per_step=4, beta=beta)
        assert out["reward_mean_per_step"] == [0.5, 0.5, 0.5]
        assert out["kl"] == [0.0, 0.0, 0.0]
        assert all(torch.equal(p.detach(), before[n]) for n, p in lm.model.named_parameters())


def test_reward_fn_failures_are_one_clear_error(tiny_lm: Path) -> None:
    lm = load_causal_lm(str(tiny_lm), CFG, trainable=True)

    def boom(prompts: list[str], completions: list[str]) -> list[float]:
        raise KeyError("no such judge")

    with pytest.raises(RewardFunctionError, match=r"reward_fn raised KeyError: 'no such judge' \(GRPO step 1, 8 completions\)") as info:
        grpo_train(lm, PROMPTS, boom, CFG, steps=2, num_generations=2, max_new_tokens=4, prompts_per_step=4)
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(RewardFunctionError, match="returned 3 rewards for 8 completions"):
        grpo_train(lm, PROMPTS, lambda p, c: [1.0, 0.0, 1.0], CFG, steps=1, num_generations=2, max_new_tokens=4,
                   prompts_per_step=4)
    with pytest.raises(RewardFunctionError, match="non-finite"):
        grpo_train(lm, PROMPTS, lambda p, c: [float("nan")] * len(c), CFG, steps=1, num_generations=2,
                   max_new_tokens=4, prompts_per_step=4)
    # a failed run leaves the model as it was: one adapter, no patched forward
    assert list(lm.model.peft_config) == ["default"]
    assert "forward" not in vars(lm.model.get_base_model())
    with pytest.raises(ValueError, match="num_generations >= 2"):
        grpo_train(lm, PROMPTS, lambda p, c: [0.0] * len(c), CFG, steps=1, num_generations=1)


def test_full_fine_tuning_uses_a_frozen_copy_as_reference(tiny_lm: Path) -> None:
    """lora_r == 0: no adapter to switch off, and TRL would reload the checkpoint by name; the copy we
    hand it gives a real KL (> 0 once the policy moves) and every weight trains."""
    cfg = CFG.replace(lora_r=0)
    lm = load_causal_lm(str(tiny_lm), cfg, trainable=True)
    x = lm.tokenizer.convert_tokens_to_ids(REWARDED)
    head_before = lm.model.lm_head.weight.detach().clone()

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        return [c.split().count(REWARDED) / max(1, len(c.split())) for c in completions]

    p_before = p_rewarded(lm, x)
    out = grpo_train(lm, PROMPTS, reward, cfg, steps=3, num_generations=4, max_new_tokens=6, lr=1e-3,
                     prompts_per_step=4)
    assert out["kl"][-1] > 0
    assert p_rewarded(lm, x) > p_before
    assert not torch.equal(lm.model.lm_head.weight.detach(), head_before)
    assert "forward" not in vars(lm.model)


def test_progress_reports_each_steps_own_reward(tiny_lm: Path) -> None:
    """Step k's progress line carries step k's mean reward (it used to show the step before's,
    'step 1/3 reward nan' first)."""
    lm = load_causal_lm(str(tiny_lm), CFG, trainable=True)
    calls = {"n": 0}

    def by_step(prompts: list[str], completions: list[str]) -> list[float]:
        calls["n"] += 1
        return [calls["n"] / 10] * len(completions)

    said: list[tuple[float, str]] = []
    grpo_train(lm, PROMPTS, by_step, CFG, steps=3, num_generations=2, max_new_tokens=4, lr=1e-2,
               prompts_per_step=4, progress=lambda f, m: said.append((f, m)))
    steps = [(f, m) for f, m in said if m.startswith("GRPO step")]
    assert [m for _f, m in steps] == [f"GRPO step {k}/3 reward {k / 10:.3f}" for k in (1, 2, 3)]
    assert [round(f, 3) for f, _m in steps] == [round(k / 3, 3) for k in (1, 2, 3)]
