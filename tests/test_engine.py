"""Engine tests on CPU with tiny sizes: label-token scoring, truncation, determinism, backends."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from core.common.config import RunConfig
from core.engine import default_models, resolve_model, train_and_predict
from core.engine.backends import choose_backend
from core.engine.hf_backend import CausalLabelScorer, collate, load, predict
from core.engine.losses import logconf_coef, logconf_loss, soft_xent
from core.engine.models import minilm_path
from core.engine.prompts import PromptEncoder, _fit, format_prompt, label_token_ids

TINY = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_ctx": 64}


def binary_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        ok = bool(rng.integers(0, 2))
        words = " ".join(["very"] * int(rng.integers(0, 6)))
        rows.append({
            "id": f"r{i}", "question": f"What is {a} plus {b}? {words}",
            "choice": str(a + b if ok else a + b + 1), "label": ok,
        })
    return rows


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and the MiniLM tokenizer, saved as a local checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_label_token_logits_equal_full_model_logits_at_cue(tiny_llama: Path) -> None:
    cfg = RunConfig(lora_r=0, max_ctx=64, seed=1)
    loaded = load(resolve_model(str(tiny_llama)), cfg, "binary", lambda m: None)
    scorer = loaded.module
    assert isinstance(scorer, CausalLabelScorer) and loaded.kind == "causal"
    rows = binary_rows(5)
    seqs = loaded.encoder.encode_many(rows)
    assert len({len(s) for s in seqs}) > 1  # padding really happens in the batch below
    ids, mask = collate(seqs, loaded.pad_id, loaded.device)
    head = scorer.parts()[1]
    calls: list[tuple] = []
    hook = head.register_forward_hook(lambda mod, inp, out: calls.append(out.shape))
    scorer.eval()
    with torch.no_grad():
        got = scorer(ids, mask)
    hook.remove()
    assert calls == []  # the full-vocabulary LM head never ran
    lm = scorer.lm
    label_ids = list(label_token_ids(loaded.tokenizer, "binary", chat=False))
    with torch.no_grad():
        for i, s in enumerate(seqs):
            full = lm(input_ids=torch.tensor([s])).logits[0, -1]
            torch.testing.assert_close(got[i], full[label_ids], rtol=1e-4, atol=1e-5)


def test_causal_lm_trains_and_scores_through_train_and_predict(tiny_llama: Path) -> None:
    rows = binary_rows(16)
    y = np.array([float(r["label"]) for r in rows])
    cfg = RunConfig(**TINY, lora_r=4, lora_alpha=8, seed=3, backend="hf")
    seen: list[tuple[float, str]] = []
    out = train_and_predict(str(tiny_llama), "binary", rows, y, {"test": rows[:5]}, cfg, log=lambda m: None,
                            progress=lambda f, m: seen.append((f, m)))
    assert out["test"].shape == (5,) and np.all((out["test"] > 0) & (out["test"] < 1))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[0][1].startswith("train epoch 1/1") and seen[-1][1] == "score test"


def test_wandb_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.engine.tracking import wandb_run

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_run("x", {}) is None
    monkeypatch.setenv("WANDB_MODE", "offline")
    try:
        import wandb  # noqa: F401
    except ImportError:
        assert wandb_run("x", {}) is None  # configured but not installed: silently off


def test_truncation_keeps_every_row_and_the_label_cue() -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    long_text = "word " * 500
    rows = [
        {"prompt": long_text, "first": "short answer", "second": long_text},
        {"prompt": "hi", "first": "a", "second": "b"},
        {"prompt": "x " * 40, "first": "y " * 40, "second": "z " * 40},
    ]
    enc = PromptEncoder(tok, "preference", max_len=48, causal=False)
    out = enc.encode_many(rows)
    assert len(out) == len(rows)
    for ids in out:
        assert len(ids) <= 48
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        tail = tok.convert_ids_to_tokens(ids[-3:-1])
        assert tail == ["label", ":"]
        text = tok.decode(ids)
        assert "answer a :" in text and "answer b :" in text
    # the short answer survives whole; the short row is not touched at all
    assert "short answer" in tok.decode(out[0])
    whole = tok(format_prompt(rows[1], "preference"))["input_ids"]
    assert tok.decode(out[1]) == tok.decode(whole)
    # a causal encoder drops trailing special tokens: the cue is the last token
    causal = PromptEncoder(tok, "binary", max_len=20, causal=True).encode_many([{"question": long_text, "choice": "c"}])
    assert tok.convert_ids_to_tokens(causal[0][-2:]) == ["label", ":"] and len(causal[0]) <= 20
    with pytest.raises(ValueError, match="too small"):
        PromptEncoder(tok, "preference", max_len=12, causal=False).encode_many(rows)


def test_chat_template_wraps_prompt_and_cue_stays_before_assistant_turn() -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </turn> {% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    enc = PromptEncoder(tok, "binary", max_len=40, causal=True, use_chat_template=True)
    ids = enc.encode_many([{"question": "long " * 100, "choice": "yes"}])[0]
    text = tok.decode(ids)
    assert len(ids) <= 40 and text.startswith("< user >") and text.endswith("label : < / turn > < assistant >")


def test_fit_water_filling() -> None:
    assert _fit([3, 4], 10) == [3, 4]
    assert _fit([100, 2, 100], 50) == [24, 2, 24]
    assert sum(_fit([7, 9, 30], 20)) == 20


def test_same_seed_same_probs_and_order_preserved() -> None:
    rows = binary_rows(24)
    test = binary_rows(10, seed=5)
    y = np.array([float(r["label"]) for r in rows])
    cfg = RunConfig(**TINY, seed=7)
    a = train_and_predict("demo-weak", "binary", rows, y, {"test": test, "rev": test[::-1]}, cfg)
    b = train_and_predict("demo-weak", "binary", rows, y, {"test": test}, cfg)
    c = train_and_predict("demo-weak", "binary", rows, y, {"test": test}, cfg.replace(seed=8))
    np.testing.assert_array_equal(a["test"], b["test"])
    assert not np.allclose(a["test"], c["test"])
    np.testing.assert_allclose(a["rev"], a["test"][::-1], rtol=1e-5, atol=1e-6)


def test_predict_order_matches_one_by_one_scoring() -> None:
    cfg = RunConfig(**TINY, seed=2)
    loaded = load(resolve_model("demo-weak"), cfg, "binary", lambda m: None)
    seqs = loaded.encoder.encode_many(binary_rows(9, seed=4))
    batched = predict(loaded, seqs, batch_size=4)
    single = np.array([predict(loaded, [s], batch_size=1)[0] for s in seqs])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)


def test_soft_targets_train_toward_the_target() -> None:
    rows = binary_rows(16)
    cfg = RunConfig(epochs=3, batch_size=8, lr=3e-3, max_ctx=64, seed=1)
    hi = train_and_predict("demo-weak", "binary", rows, np.full(16, 0.9), {"t": rows[:8]}, cfg)["t"]
    lo = train_and_predict("demo-weak", "binary", rows, np.full(16, 0.1), {"t": rows[:8]}, cfg)["t"]
    assert hi.mean() > 0.6 and lo.mean() < 0.4
    assert np.all(hi < 0.995)  # soft, not pushed to 1 like a hard target would


def test_registry_passes_per_epoch_reach_the_training_loop() -> None:
    """demo-weak trains ``passes_per_epoch`` times over its rows per epoch; demo-strong once."""
    rows = binary_rows(16)
    for name, passes in (("demo-weak", resolve_model("demo-weak").passes_per_epoch), ("demo-strong", 1)):
        lines: list[str] = []
        train_and_predict(name, "binary", rows, np.ones(16), {"t": rows[:2]}, RunConfig(**TINY), log=lines.append)
        steps = [int(m.group(1)) for m in map(re.compile(r"trained (\d+) steps").search, lines) if m]
        assert steps == [2 * passes], (name, lines)


def test_soft_xent_is_minimised_at_the_target_and_logconf_warms_up() -> None:
    t = torch.tensor([0.3, 0.8])
    logits = torch.zeros(2, 2, requires_grad=True)
    with torch.no_grad():
        logits[:, 1] = torch.log(t / (1 - t))
    soft_xent(logits, t).backward()
    assert torch.allclose(logits.grad, torch.zeros(2, 2), atol=1e-6)
    assert logconf_coef(0.0) == 0.0 and logconf_coef(0.1) == pytest.approx(0.25) and logconf_coef(0.9) == 0.5
    x = torch.randn(6, 2)
    y = torch.tensor([1.0, 0, 1, 0, 1, 0])
    assert torch.allclose(logconf_loss(x, y, 0.0), soft_xent(x, y))
    # late in training the target mixes in the model's own hardened predictions (same class balance)
    p1 = torch.softmax(x, -1)[:, 1]
    own = (p1 >= torch.quantile(p1, 0.5)).float()
    mixed = 0.5 * (1 - own) + 0.5 * own  # the reference's aux_coef 0.5
    assert torch.allclose(logconf_loss(x, 1 - own, 0.9), soft_xent(x, mixed))


def test_backend_fallback_is_logged_once_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    choice = choose_backend("auto", "causal", cuda=True)  # real import attempts: neither is installed here
    assert (choice.train, choice.score) == ("hf", "hf")
    assert "unsloth not importable" in choice.reason and "vllm not importable" in choice.reason
    assert choose_backend("auto", "causal", cuda=False).reason.endswith("no CUDA device")
    assert choose_backend("vllm", "encoder", cuda=True).score == "hf"
    picked = choose_backend("auto", "causal", cuda=True, importable=lambda name: None)
    assert (picked.train, picked.score) == ("unsloth", "vllm")
    lines: list[str] = []
    rows = binary_rows(8)
    train_and_predict("demo-weak", "binary", rows, np.ones(8), {"t": rows[:2]}, RunConfig(**TINY, backend="unsloth"),
                      log=lines.append)
    backend_lines = [ln for ln in lines if ln.startswith("backend")]
    assert backend_lines == ["backend unsloth -> hf: no CUDA device"]


def test_bad_inputs_raise_value_error() -> None:
    rows = binary_rows(4)
    with pytest.raises(ValueError, match="4 train rows but 3 targets"):
        train_and_predict("demo-weak", "binary", rows, np.ones(3), {}, RunConfig(**TINY))
    with pytest.raises(ValueError, match="probabilities"):
        train_and_predict("demo-weak", "binary", rows, np.full(4, 2.0), {}, RunConfig(**TINY))
    with pytest.raises(ValueError, match="fmt"):
        train_and_predict("demo-weak", "chat", rows, np.ones(4), {}, RunConfig(**TINY))


def test_registry_and_defaults() -> None:
    weak, strong = resolve_model("demo-weak"), resolve_model("demo-strong")
    assert weak.path == strong.path == str(minilm_path()) and weak.num_layers == 1 and strong.num_layers is None
    assert json.loads((Path(weak.path) / "config.json").read_text())["model_type"] == "bert"
    assert resolve_model("Qwen/Qwen3-4B-Base").path == "Qwen/Qwen3-4B-Base"
    assert default_models("demo-math", has_cuda=True) == ("demo-weak", "demo-strong")
    assert default_models("math", has_cuda=False) == ("demo-weak", "demo-strong")
    assert default_models("math", has_cuda=True) == (RunConfig().weak_model, RunConfig().strong_model)
    # recommended values fill only fields the user left at their defaults
    eff = strong.effective_config(RunConfig(lr=5e-5))
    assert eff.lr == 5e-5 and eff.epochs == strong.recommended["epochs"]
    # the one-layer teacher makes several passes per requested epoch; the student one
    assert weak.training_epochs(RunConfig(epochs=2)) == 2 * weak.passes_per_epoch > 2
    assert strong.training_epochs(RunConfig(epochs=2)) == 2
    assert logging.getLogger("w2s.engine") is not None


def test_chat_template_choice_follows_model_kind_and_override() -> None:
    from transformers import AutoTokenizer

    from core.engine.chat_models import wants_chat_template
    from core.engine.models import ModelSpec

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    chat, base = ModelSpec("c", "Qwen/Qwen1.5-0.5B-Chat"), ModelSpec("b", "Qwen/Qwen3-4B-Base")
    assert not wants_chat_template(chat, tok, RunConfig())  # no template, nothing to apply
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert wants_chat_template(chat, tok, RunConfig())
    assert not wants_chat_template(base, tok, RunConfig())
    assert wants_chat_template(base, tok, RunConfig(extra={"chat_template": "on"}))
    assert not wants_chat_template(chat, tok, RunConfig(extra={"chat_template": "off"}))


def test_causal_body_runs_without_the_padding_mask_and_scores_the_same(tiny_llama: Path) -> None:
    """Right padding + causal attention: the mask changes nothing at real positions, so the body is
    called without it (SDPA's causal kernel); the masked call gives the same two logits."""
    cfg = RunConfig(lora_r=0, max_ctx=64, seed=1)
    loaded = load(resolve_model(str(tiny_llama)), cfg, "binary", lambda m: None)
    scorer = loaded.module
    assert isinstance(scorer, CausalLabelScorer)
    seqs = loaded.encoder.encode_many(binary_rows(6, seed=3))
    ids, mask = collate(seqs, loaded.pad_id, loaded.device)
    assert bool((mask == 0).any())  # the batch really has pads
    seen: list[object] = []
    body = scorer.parts()[0]
    hook = body.register_forward_pre_hook(lambda mod, args, kw: seen.append(kw.get("attention_mask")), with_kwargs=True)
    scorer.eval()
    with torch.no_grad():
        fast = scorer(ids, mask)
        scorer.body_mask = True
        masked = scorer(ids, mask)
    hook.remove()
    assert seen[0] is None and seen[1] is mask
    torch.testing.assert_close(fast, masked, rtol=1e-4, atol=1e-5)


def test_checkpoint_fraction_and_compiled_blocks_train_like_eager(tiny_llama: Path) -> None:
    """Partial recomputation keeps every k-th block; compiled blocks give the eager logits."""
    from core.engine.speed import (
        checkpoint_fraction,
        compile_layers,
        decoder_layers,
        set_gradient_checkpointing,
    )

    cfg = RunConfig(lora_r=4, max_ctx=64, seed=1)
    loaded = load(resolve_model(str(tiny_llama)), cfg, "binary", lambda m: None)
    lm = loaded.module.lm
    layers = decoder_layers(lm)
    assert layers is not None and len(layers) == 2
    set_gradient_checkpointing(lm, True)
    assert checkpoint_fraction(lm, 0.5) == 1
    assert [bool(layer.gradient_checkpointing) for layer in layers] == [True, False]
    assert checkpoint_fraction(lm, 1.0) == 2
    set_gradient_checkpointing(lm, False)
    ids, mask = collate(loaded.encoder.encode_many(binary_rows(4)), loaded.pad_id, loaded.device)
    loaded.module.eval()
    with torch.no_grad():
        eager = loaded.module(ids, mask)
        assert compile_layers(lm, True) == 2
        assert torch._dynamo.config.recompile_limit >= 64  # training, recompute, scoring, merged: all compiled
        compiled = loaded.module(ids, mask)
        assert compile_layers(lm, False) == 2
        again = loaded.module(ids, mask)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert torch.equal(again, eager)


def test_a_failing_compiler_falls_back_to_eager_with_one_log_line(tiny_llama: Path) -> None:
    """Compiled decoder blocks whose compiler fails (here a backend that raises, as a missing C
    compiler would) cost one log line: training and scoring go on eagerly and give eager results."""
    from core.engine.hf_backend import Progress, train
    from core.engine.speed import decoder_layers

    def broken_backend(gm: object, example_inputs: object) -> object:
        raise RuntimeError("no C compiler on this machine")

    cfg = RunConfig(lora_r=4, max_ctx=64, seed=1, epochs=1, batch_size=4)
    rows = binary_rows(8)
    eager = load(resolve_model(str(tiny_llama)), cfg, "binary", lambda m: None)
    seqs = eager.encoder.encode_many(rows)
    targets = np.array([float(r["label"]) for r in rows])
    train(eager, seqs, targets, None, cfg, Progress(1, None, ""), lambda m: None)
    want = predict(eager, seqs, 4)

    loaded = load(resolve_model(str(tiny_llama)), cfg, "binary", lambda m: None)
    layers = decoder_layers(loaded.module.lm)
    assert layers is not None
    for layer in layers:
        layer.compile(backend=broken_backend)
    loaded.compiled = True
    lines: list[str] = []
    summary = train(loaded, seqs, targets, None, cfg, Progress(1, None, ""), lines.append)
    fell = [ln for ln in lines if "running eagerly" in ln]
    assert len(fell) == 1 and "no C compiler" in fell[0] and not loaded.compiled
    assert all(layer._compiled_call_impl is None for layer in layers)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    np.testing.assert_allclose(predict(loaded, seqs, 4), want, atol=1e-6)
