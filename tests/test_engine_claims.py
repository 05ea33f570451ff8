"""Claim scoring, generation and the LM loss on a tiny causal LM built from a config (random
weights, the MiniLM tokenizer), and the encoder analogue on the packaged MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.common.config import RunConfig
from core.engine.claims import (
    BINARY_CLAIM,
    CausalClaimScorer,
    ClaimTemplate,
    EncoderClaimScorer,
    claim_label_ids,
    claim_scorer,
    claim_segments,
    default_template,
    score_claims,
    template_segments,
)
from core.engine.generation import generate, generate_ids, lm_batch, lm_loss, load_causal_lm
from core.engine.models import minilm_path
from tests.tiny_w2s import tiny_llama

CFG = RunConfig(max_ctx=96, batch_size=4, seed=0, backend="hf", lora_r=0)


def claim_rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "question": f"What is {i} plus {i}?", "choice": str(2 * i + (i % 2))} for i in range(n)]


def pair_rows(n: int) -> list[dict]:
    return [{"id": f"p{i}", "prompt": f"Say hi to person {i}.", "first": "Hello there, friend!" * (1 + i % 2),
             "second": "Go away."} for i in range(n)]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and the MiniLM (WordPiece) tokenizer, saved locally."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-lm")
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    tiny_llama(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_template_segments_keep_literals_fixed_and_spaces_with_values() -> None:
    segs = template_segments("Question: {question}\nAnswer: {choice}\nCue:", {"question": "Q?", "choice": "A"})
    assert segs == [("Question:", False), (" Q?", True), ("\nAnswer:", False), (" A", True), ("\nCue:", False)]
    assert "".join(t for t, _ in segs) == "Question: Q?\nAnswer: A\nCue:"
    with pytest.raises(ValueError, match="'prompt'"):
        template_segments("{prompt}", {"question": "x"})


def test_demonstrations_precede_the_row_with_their_label_words() -> None:
    t = ClaimTemplate("Q: {question} -> {choice}. Right?", ("no", "yes"))
    row, d0, d1 = ({"question": f"q{i}", "choice": f"c{i}"} for i in range(3))
    text = "".join(s for s, _ in claim_segments(t, row, [(d1, 1), (d0, 0)]))
    assert text == "Q: q2 -> c2. Right?yes\n\nQ: q1 -> c1. Right?no\n\nQ: q0 -> c0. Right?"


def test_causal_claim_scores_are_the_label_word_logits_at_the_cue(tiny_lm: Path) -> None:
    rows = claim_rows(6)
    scorer = claim_scorer(str(tiny_lm), "binary", CFG)
    assert isinstance(scorer, CausalClaimScorer)
    p1 = scorer.score(rows)
    assert p1.shape == (6,) and np.all((p1 > 0) & (p1 < 1))
    seqs = scorer.encode(rows)
    ids = claim_label_ids(scorer.tokenizer, default_template("binary").label_words)
    lm = scorer.module.lm
    with torch.no_grad():
        for i, s in enumerate(seqs):
            logits = lm(input_ids=torch.tensor([s])).logits[0, -1, list(ids)]
            assert p1[i] == pytest.approx(float(torch.softmax(logits, -1)[1]), abs=1e-5)
    # the claim text is the reference's, and the cue ends every prompt
    text = scorer.tokenizer.decode(seqs[0], skip_special_tokens=True)
    assert text.endswith("i think this claim is ( true or false ) :")  # MiniLM lower-cases
    assert BINARY_CLAIM.startswith("Question: {question}\nProposed Answer: {choice}")


def test_label_word_choice_matters(tiny_lm: Path) -> None:
    rows = claim_rows(5)
    base = score_claims(str(tiny_lm), "binary", rows, CFG)
    swapped = score_claims(str(tiny_lm), "binary", rows, CFG, ClaimTemplate(BINARY_CLAIM, ("True", "False")))
    np.testing.assert_allclose(swapped, 1 - base, atol=1e-6)  # swapping the words swaps the classes
    other = score_claims(str(tiny_lm), "binary", rows, CFG, ClaimTemplate(BINARY_CLAIM, ("no", "yes")))
    assert np.abs(other - base).max() > 1e-3
    with pytest.raises(ValueError, match="share their first token"):
        score_claims(str(tiny_lm), "binary", rows, CFG, ClaimTemplate(BINARY_CLAIM, ("yes", "yes")))


def test_preference_claims_and_few_shot_demos_change_the_scores(tiny_lm: Path) -> None:
    rows = pair_rows(4)
    scorer = claim_scorer(str(tiny_lm), "preference", CFG.replace(max_ctx=256))
    zero = scorer.score(rows)
    demos = [[(rows[(i + 1) % 4], 0), (rows[(i + 2) % 4], 1)] for i in range(4)]
    few = scorer.score(rows, demos)
    assert zero.shape == few.shape == (4,) and np.abs(few - zero).max() > 1e-4
    assert all(len(a) > len(b) for a, b in zip(scorer.encode(rows, demos), scorer.encode(rows), strict=True))
    with pytest.raises(ValueError, match="demonstration lists"):
        scorer.score(rows, demos[:2])


def test_long_prompts_are_truncated_inside_fields_and_keep_the_cue(tiny_lm: Path) -> None:
    rows = [{"question": "many words " * 200, "choice": "x"}]
    scorer = claim_scorer(str(tiny_lm), "binary", CFG)
    (seq,) = scorer.encode(rows)
    assert len(seq) <= CFG.max_ctx
    assert scorer.tokenizer.decode(seq, skip_special_tokens=True).endswith("( true or false ) :")


def test_generation_shapes_and_determinism(tiny_lm: Path) -> None:
    lm = load_causal_lm(str(tiny_lm), CFG)
    prompts = ["Tell me a story", "Why is the sky blue? Explain in detail please"]
    out = generate(lm, prompts, max_new_tokens=5, temperature=0.0, num_samples=1)
    assert len(out) == 2 and all(len(o) == 1 and isinstance(o[0], str) for o in out)
    assert generate(lm, prompts, max_new_tokens=5, temperature=0.0) == out  # greedy is deterministic
    sampled = generate(lm, prompts, max_new_tokens=4, temperature=1.0, num_samples=3, seed=7, batch_size=1)
    assert [len(o) for o in sampled] == [3, 3]
    assert sampled == generate(lm, prompts, max_new_tokens=4, temperature=1.0, num_samples=3, seed=7, batch_size=1)
    ids = generate_ids(lm, prompts, max_new_tokens=4, temperature=1.0, num_samples=3, seed=7, batch_size=1)
    assert [[len(s) for s in group] for group in ids] == [[4, 4, 4], [4, 4, 4]]  # no end token in this vocabulary
    assert len({tuple(s) for group in ids for s in group}) > 1  # sampling, not six copies
    # batching (left padding) does not change greedy completions
    assert generate(lm, prompts, max_new_tokens=5, temperature=0.0, batch_size=1) == out


def test_lm_loss_equals_the_full_model_loss_and_has_gradients(tiny_lm: Path) -> None:
    lm = load_causal_lm(str(tiny_lm), CFG, trainable=True)
    prompts, completions = ["The answer is", "Short"], [" yes indeed", " no"]
    loss = lm_loss(lm, prompts, completions)
    ids, mask, labels = lm_batch(lm.tokenizer, prompts, completions, pad_id=lm.pad_id)
    assert int((labels != -100).sum()) == sum(len(lm.tokenizer(c, add_special_tokens=False)["input_ids"])
                                              for c in completions)
    full = lm.model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert loss.item() == pytest.approx(full.item(), rel=1e-5)
    loss.backward()
    grads = [p.grad for p in lm.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_a_few_lm_loss_steps_move_the_claim_scores(tiny_lm: Path) -> None:
    """Train the LM to answer ``True`` after the claim cue: its zero-shot P(True) rises."""
    cfg = CFG.replace(lora_r=4, lora_alpha=8)
    lm = load_causal_lm(str(tiny_lm), cfg, trainable=True)
    rows = claim_rows(4)
    template = default_template("binary")
    scorer = CausalClaimScorer(lm.model, lm.tokenizer, "binary", template, 96, lm.device, 4)
    before = scorer.score(rows)
    prompts = ["".join(t for t, _ in claim_segments(template, r)) for r in rows]
    opt = torch.optim.AdamW([p for p in lm.model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        lm.model.train()
        loss = lm_loss(lm, prompts, ["True"] * len(prompts))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = scorer.score(rows)
    assert losses[-1] < losses[0]
    assert np.all(after > before + 0.05)  # P(True) rose on every row


def test_encoder_analogue_reads_polarity_from_the_pretrained_embeddings() -> None:
    """MiniLM, untrained: positive choices sit nearer 'This answer is correct.' than negative ones."""
    cfg = RunConfig(max_ctx=64, seed=0, backend="hf")
    good = ["wonderful and delightful", "great and lovely", "happy and excellent", "brilliant and kind"]
    bad = ["awful and horrible", "terrible and sad", "miserable and cruel", "nasty and dreadful"]
    rows = [{"question": "How was it?", "choice": w} for w in good + bad]
    scorer = claim_scorer("demo-strong", "binary", cfg)
    assert isinstance(scorer, EncoderClaimScorer)
    p1 = scorer.score(rows)
    assert p1.shape == (8,) and np.all((p1 > 0) & (p1 < 1))
    assert p1[:4].mean() > p1[4:].mean() + 0.2
    # pairs: the better answer is the one nearer "This answer is helpful."
    pairs = [{"prompt": "Help?", "first": g, "second": b} for g, b in zip(good, bad, strict=True)]
    pairs += [{"prompt": "Help?", "first": b, "second": g} for g, b in zip(good, bad, strict=True)]
    pref = score_claims("demo-strong", "preference", pairs, cfg)
    np.testing.assert_allclose(pref[:4], 1 - pref[4:], atol=1e-6)  # a pair and its flip agree
    assert np.all(pref[:4] < 0.5)  # class 0: A (the good answer) is better
    # demonstrations move the prototypes: mislabelled demos pull the scores the other way
    demos = [[({"question": "q", "choice": g}, 0), ({"question": "q", "choice": b}, 1)]
             for g, b in zip(good + good, bad + bad, strict=True)]
    fooled = scorer.score(rows, demos)
    assert fooled[:4].mean() < p1[:4].mean() and fooled[4:].mean() > p1[4:].mean()


def test_blank_teacher_has_fresh_embeddings_and_keeps_its_layers() -> None:
    from transformers import AutoConfig

    from core.engine.hf_backend import load_encoder_backbone
    from core.engine.models import resolve_model

    blank, weak = resolve_model("demo-weak-blank"), resolve_model("demo-weak")
    a = load_encoder_backbone(blank, AutoConfig.from_pretrained(blank.path), torch.float32)
    b = load_encoder_backbone(weak, AutoConfig.from_pretrained(weak.path), torch.float32)
    again = load_encoder_backbone(blank, AutoConfig.from_pretrained(blank.path), torch.float32)
    ea, eb = a.get_input_embeddings().weight, b.get_input_embeddings().weight
    assert ea.shape == eb.shape and not torch.allclose(ea, eb)
    assert torch.equal(ea, again.get_input_embeddings().weight)  # the same blank model every time
    # a shuffle among ordinary tokens: the same vectors, other words; special tokens keep theirs
    torch.testing.assert_close(ea.norm(dim=1).sort().values, eb.norm(dim=1).sort().values)
    cls, word = 101, 2204  # [CLS], "good" in MiniLM's vocabulary
    assert torch.equal(ea[cls], eb[cls]) and not torch.equal(ea[word], eb[word])
    assert len(a.encoder.layer) == len(b.encoder.layer) == 1
    torch.testing.assert_close(a.encoder.layer[0].attention.self.query.weight,
                               b.encoder.layer[0].attention.self.query.weight)


def test_blank_teacher_trains_its_embeddings_and_demo_weak_does_not() -> None:
    from core.engine.hf_backend import load
    from core.engine.models import resolve_model

    cfg = RunConfig(max_ctx=32, seed=0, backend="hf")
    for name, trains in (("demo-weak-blank", True), ("demo-weak", False)):
        loaded = load(resolve_model(name), cfg, "binary", lambda m: None)
        emb = loaded.module.backbone.get_input_embeddings().weight
        assert emb.requires_grad is trains
        assert any(p.requires_grad for n, p in loaded.module.named_parameters() if "lora_" in n)


def test_blank_teacher_baselines_are_pinned_like_the_demo_pair(tmp_path: Path) -> None:
    from core.engine.models import REGISTRY_NAMES
    from core.results.cache import model_slug
    from core.results.pins import DEMO_WEAK_MODELS, pins_for_slug, resolve_pin

    assert set(DEMO_WEAK_MODELS) <= set(REGISTRY_NAMES)
    pins = pins_for_slug("demo-math", model_slug("demo-weak-blank"), "weak", tmp_path)
    assert [p.origin for p in pins] == ["demo registry"] and pins[0].training == "e1_lr0.001_bs8_schlinear"
    assert resolve_pin("demo-math", "demo-weak-blank", "demo-strong", tmp_path).seeds == (42, 43, 44)
