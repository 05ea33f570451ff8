"""The causal-LM training recipe against the reference's (issue #16 item 5), on tiny models built from
configs: rsLoRA, label tokens without a leading space after ``[BOS] ... Label:``, the optimizer and
its betas, baselines at 5 epochs, logconf with a hand-computed value, the lr warm-up rounding.
The demo encoder recipe deliberately stays as it was (its cached rows were trained with it): the tests
pin that too, so a change to either side shows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.common.config import RunConfig
from core.engine import resolve_model, train_and_predict
from core.engine.hf_backend import CausalLabelScorer, load
from core.engine.losses import LOGCONF_ALPHA, LOGCONF_WARMUP, logconf_coef, logconf_loss, soft_xent
from core.engine.optimizers import (
    CAUSAL_ADAM_BETAS,
    ENCODER_ADAM_BETAS,
    choose_optimizer,
    make_optimizer,
    warmup_steps,
)
from core.engine.prompts import label_token_ids
from core.results.pins import pinned_config

CORPUS = [
    "Question: What is 2 plus 3?\nAnswer: 5\nLabel:True",
    "Question: What is 4 plus 4?\nAnswer: 9\nLabel:False",
    "Question: Which reply is kinder?\nAnswer A: thanks\nAnswer B: go away\nLabel:A",
    "Question: Which reply is clearer?\nAnswer A: hmm\nAnswer B: yes, at noon\nLabel:B",
    "It is True that A and B differ. False, said A. True, said B.",
]


def bpe_tokenizer() -> Any:
    """A byte-level BPE tokenizer (the GPT-2/Qwen kind, where ``A`` and `` A`` are different tokens)
    trained here on a few prompts; it has a BOS token but does not add it by itself, like GPT-2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tk.train_from_iterator(CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and the BPE tokenizer above, saved as a local checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-bpe-llama")
    tok = bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def lora_layers(model: torch.nn.Module) -> list[Any]:
    return [m for m in model.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "scaling", {})]


# 1. rsLoRA ---------------------------------------------------------------------------------------

def test_causal_lora_is_rslora_with_scale_alpha_over_sqrt_r(tiny_causal: Path) -> None:
    cfg = RunConfig(lora_r=4, lora_alpha=8, max_ctx=64, seed=1)
    loaded = load(resolve_model(str(tiny_causal)), cfg, "binary", lambda m: None)
    assert isinstance(loaded.module, CausalLabelScorer)
    lm = loaded.module.lm
    assert lm.peft_config["default"].use_rslora is True
    layers = lora_layers(lm)
    assert len(layers) == 2 * 7  # q/k/v/o/gate/up/down in each of the 2 layers; never the LM head
    expected = 8 / math.sqrt(4)  # 4.0; plain LoRA would be alpha / r = 2.0
    assert all(layer.scaling["default"] == pytest.approx(expected) for layer in layers)
    # the scale really multiplies the adapter's update: delta = scale * B(A(x))
    layer = layers[0]
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
        x = torch.randn(3, layer.in_features)
        delta = layer(x) - layer.base_layer(x)
        by_hand = expected * (x @ layer.lora_A["default"].weight.T @ layer.lora_B["default"].weight.T)
    torch.testing.assert_close(delta, by_hand, rtol=1e-4, atol=1e-5)


def test_demo_encoder_keeps_plain_lora() -> None:
    """Deliberate difference: the demo recipe (lr 1e-3) was tuned with alpha / r, and every cached demo
    row was trained so."""
    cfg = resolve_model("demo-strong").effective_config(RunConfig(seed=1))
    loaded = load(resolve_model("demo-strong"), cfg, "binary", lambda m: None)
    backbone = loaded.module.backbone
    assert backbone.peft_config["default"].use_rslora is False
    assert {layer.scaling["default"] for layer in lora_layers(backbone)} == {cfg.lora_alpha / cfg.lora_r}


# 2. label tokens ---------------------------------------------------------------------------------

def test_label_tokens_are_the_words_without_a_leading_space() -> None:
    tok = bpe_tokenizer()
    vocab = tok.get_vocab()
    # the tokenizer really has both spellings, so the choice below is a choice
    assert {"A", "\u0120A", "True", "\u0120True"} <= set(vocab)
    ref = {w: tok.encode(w, add_special_tokens=False)[0] for w in ("A", "B", "False", "True")}
    for chat in (False, True):
        assert label_token_ids(tok, "preference", chat) == (ref["A"], ref["B"]) == (vocab["A"], vocab["B"])
        assert label_token_ids(tok, "binary", chat) == (ref["False"], ref["True"])
    assert vocab["\u0120A"] not in label_token_ids(tok, "preference")


def test_base_prompt_is_bos_then_prompt_then_cue_and_the_label_follows(tiny_causal: Path) -> None:
    cfg = RunConfig(lora_r=0, max_ctx=64, seed=1)
    loaded = load(resolve_model(str(tiny_causal)), cfg, "preference", lambda m: None)
    tok = loaded.tokenizer
    row = {"prompt": "Which reply is kinder?", "first": "thanks", "second": "go away"}
    (seq,) = loaded.encoder.encode_many([row])
    assert seq[0] == tok.bos_token_id and tok.bos_token_id not in seq[1:]  # [BOS] + prompt, nothing added after
    a_id = int(loaded.module.label_ids[0])
    text = tok.decode(seq + [a_id])
    assert text == "<s>Question: Which reply is kinder?\nAnswer A: thanks\nAnswer B: go away\nLabel:A"


# 3. optimizer ------------------------------------------------------------------------------------

def test_optimizer_choice_per_kind_and_device() -> None:
    cfg = RunConfig(lr=1e-4)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    causal_cpu = choose_optimizer(cfg, "causal", cpu)
    assert (causal_cpu.name, causal_cpu.betas, causal_cpu.eps, causal_cpu.weight_decay) == (
        "torch.AdamW", (0.9, 0.95), 1e-8, 0.0)
    # UNVERIFIED past the choice: bitsandbytes is not installed where this was written, so the 8-bit
    # optimizer itself was never built here (bench/gpu_check.py is where a GPU would build it)
    assert choose_optimizer(cfg, "causal", cuda, have_bnb=True).name == "bnb.AdamW8bit"
    assert choose_optimizer(cfg, "causal", cuda, have_bnb=True).betas == CAUSAL_ADAM_BETAS
    no_bnb = choose_optimizer(cfg, "causal", cuda, have_bnb=False)
    assert (no_bnb.name, no_bnb.betas) == ("torch.AdamW", CAUSAL_ADAM_BETAS)
    enc = choose_optimizer(cfg, "encoder", cuda, have_bnb=True)
    assert (enc.name, enc.betas) == ("torch.AdamW", ENCODER_ADAM_BETAS)  # the demo recipe, unchanged
    assert choose_optimizer(cfg.replace(optimizer="sgd"), "causal", cpu).name == "torch.SGD"
    # the CPU path builds a real torch AdamW with those settings
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = make_optimizer(cfg.replace(weight_decay=0.01), params, choose_optimizer(cfg.replace(weight_decay=0.01),
                                                                                  "causal", cpu))
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"], group["lr"]) == ((0.9, 0.95), 1e-8, 0.01, 1e-4)
    enc_opt = make_optimizer(cfg, params, enc)
    assert enc_opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_training_a_causal_model_uses_and_logs_the_reference_optimizer(tiny_causal: Path) -> None:
    rows = [{"question": f"What is {i} plus 1?", "choice": str(i + 1 + i % 2), "label": i % 2 == 0}
            for i in range(8)]
    y = [float(r["label"]) for r in rows]
    lines: list[str] = []
    cfg = RunConfig(epochs=1, batch_size=4, lr=1e-3, max_ctx=64, lora_r=4, lora_alpha=8, seed=3, backend="hf")
    out = train_and_predict(str(tiny_causal), "binary", rows, np.array(y), {"test": rows[:2]}, cfg,
                            log=lines.append)
    assert out["test"].shape == (2,)
    assert any(line.startswith("optimizer torch.AdamW (betas (0.9, 0.95), eps 1e-08") for line in lines), lines


# 4. baselines at the reference's 5 epochs --------------------------------------------------------

@pytest.mark.parametrize("weak,strong", [
    ("Qwen/Qwen1.5-0.5B-Chat", "Qwen/Qwen3-4B-Base"),  # the reference pair
    ("Qwen/Qwen3-0.6B-Base", "Qwen/Qwen3-1.7B-Base"),  # any other non-demo pair
])
def test_non_demo_baselines_train_at_five_epochs(tmp_path: Path, weak: str, strong: str) -> None:
    idea = RunConfig(data_dir="data/math", weak_model=weak, strong_model=strong, epochs=2, lr=3e-4,
                     batch_size=8, lr_schedule="cosine")
    base = pinned_config(idea, tmp_path)  # no explicit pin under tmp_path: the default spec
    assert (base.epochs, base.lr, base.batch_size, base.lr_schedule) == (5, 1e-4, 32, "linear")
    # an idea left at the defaults on a Hugging Face model trains 5 epochs too (no registry override)
    assert RunConfig().epochs == 5
    assert resolve_model(strong).effective_config(RunConfig(strong_model=strong)).epochs == 5


def test_demo_pair_keeps_its_registry_baselines(tmp_path: Path) -> None:
    """Deliberate difference: the demo pair's baselines are its registry recipe (1 epoch, lr 1e-3)."""
    base = pinned_config(RunConfig(data_dir="data/demo-math", weak_model="demo-weak", strong_model="demo-strong"),
                         tmp_path)
    assert (base.epochs, base.lr, base.batch_size) == (1, 1e-3, 8)


# 5. logconf --------------------------------------------------------------------------------------

def logits_for(p1: list[float]) -> torch.Tensor:
    p = torch.tensor(p1, dtype=torch.float64)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


def test_logconf_matches_a_hand_computed_value() -> None:
    """Four rows, strong P(class 1) = .9 .2 .6 .4, weak soft labels .8 .3 .3 .2 (mean .4).
    p0 = .1 .8 .4 .6; quantile(p0, .4) = .4 + .2 * (.6 - .4) = .44; class 0 where p0 >= .44, so the
    hardened labels are 1 0 1 0. Past the warm-up c = 0.5: mixed = .9 .15 .65 .1, and the loss is the
    mean of -(m ln p1 + (1 - m) ln(1 - p1)) = (.325083 + .431088 + .652738 + .551372) / 4 = .490070."""
    assert (LOGCONF_ALPHA, LOGCONF_WARMUP) == (0.5, 0.2)  # the reference's aux_coef and warmup_frac
    logits = logits_for([0.9, 0.2, 0.6, 0.4])
    weak = torch.tensor([0.8, 0.3, 0.3, 0.2], dtype=torch.float64)
    assert float(logconf_loss(logits, weak, step_frac=0.5)) == pytest.approx(0.490070, abs=1e-6)
    # the coefficient ramps linearly over the first 20% of steps: 0 -> plain xent on the soft labels
    assert logconf_coef(0.0) == 0.0 and logconf_coef(0.1) == pytest.approx(0.25) and logconf_coef(0.2) == 0.5
    assert float(logconf_loss(logits, weak, step_frac=0.0)) == pytest.approx(float(soft_xent(logits, weak)))
    # halfway through the warm-up c = 0.25: mixed = .85 .225 .475 .15
    mixed = torch.tensor([0.85, 0.225, 0.475, 0.15], dtype=torch.float64)
    assert float(logconf_loss(logits, weak, step_frac=0.1)) == pytest.approx(float(soft_xent(logits, mixed)))


def test_logconf_hardening_ties_go_to_class_zero_as_in_the_reference() -> None:
    """With every row at p1 = .5 the reference's ``p0 >= quantile(p0, m1)`` calls them all class 0."""
    logits = logits_for([0.5, 0.5, 0.5, 0.5])
    weak = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    expected = soft_xent(logits, 0.5 * weak)  # hardened labels all 0, c = 0.5
    assert float(logconf_loss(logits, weak, step_frac=1.0)) == pytest.approx(float(expected))


# 6. other recipe points --------------------------------------------------------------------------

def test_lr_warmup_rounds_up_for_causal_models_as_transformers_does() -> None:
    cfg = RunConfig(warmup_ratio=0.1)
    assert warmup_steps(cfg, 125, "causal") == 13  # Trainer: ceil(0.1 * 125)
    assert warmup_steps(cfg, 125, "encoder") == 12  # the demo recipe, unchanged
