"""Text generation and the language-modelling loss on causal LMs (hf, CPU or CUDA).

Why here: methods that make the strong model *write* (critiques, explanations) need to sample from
it and to fine-tune it on text. Both stay small and explicit:

- :func:`generate`: left-padded batches through ``model.generate``; ``temperature`` 0 is greedy,
  otherwise nucleus sampling (``top_p``); ``num_samples`` completions per prompt; seeded.
- :func:`lm_loss`: cross-entropy of the completion tokens given the prompt (prompt tokens are not
  predicted), averaged over completion tokens. The LM head runs only at the positions that predict
  a completion token, never over the full sequence, so long prompts do not materialise
  [batch, length, vocabulary] logits. (Final-logit soft-capping, where a model has it, is not
  applied, as in the label scorer.)

vLLM generation on GPU is not wired here yet; these functions run wherever transformers does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from core.common.config import RunConfig
from core.engine.models import ModelSpec, resolve_model


@dataclass
class CausalLM:
    """A causal LM with its tokenizer, ready to generate or train (``model`` may be peft-wrapped)."""

    spec: ModelSpec
    tokenizer: Any
    model: Any
    device: torch.device
    dtype: torch.dtype

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        return int(pad)


def load_causal_lm(model: str, cfg: RunConfig, *, trainable: bool = False, log: Any = None) -> CausalLM:
    """Load a causal LM: eval mode by default; with ``trainable``, LoRA per ``cfg`` (or every weight
    when ``lora_r == 0``) and checkpointing per ``cfg.gradient_checkpointing``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.engine.hf_backend import (
        _quiet_transformers,
        _tokenizer,
        pick_device,
        pick_dtype,
        prepare_causal_lm,
        seed_everything,
    )
    from core.engine.models import detect_kind

    say = log or (lambda _m: None)
    spec = resolve_model(model)
    device = pick_device(cfg)
    dtype = pick_dtype(cfg, device, say)
    tok = _tokenizer(spec.path, spec.local_only)
    lm: Any
    if spec.init_config is not None:
        lm = _built_from_config(spec.init_config, tok, dtype)
        seed_everything(cfg.seed)  # adapters and sampling follow the run's seed, the weights do not
    else:
        mcfg = AutoConfig.from_pretrained(spec.path, local_files_only=spec.local_only)
        if (spec.kind or detect_kind(mcfg)) != "causal":
            raise ValueError(f"{spec.name} is not a causal LM: it cannot generate")
        if spec.num_layers:
            mcfg.num_hidden_layers = spec.num_layers
        seed_everything(cfg.seed)
        kwargs: dict[str, Any] = {"config": mcfg, "local_files_only": spec.local_only, "dtype": dtype}
        if device.type == "cuda":
            kwargs["device_map"] = {"": device.index or 0}
        with _quiet_transformers():
            lm = AutoModelForCausalLM.from_pretrained(spec.path, **kwargs)
    if device.type != "cuda" or spec.init_config is not None:
        lm.to(device)
    if trainable:
        lm = prepare_causal_lm(lm, cfg, device, say)
        if cfg.lora_r <= 0:
            for p in lm.parameters():
                p.requires_grad_(True)
        lm.train()
    else:
        lm.eval()
    return CausalLM(spec, tok, lm, device, dtype)


def _built_from_config(init: dict[str, Any], tokenizer: Any, dtype: torch.dtype) -> Any:
    """A causal LM with random weights from ``init`` (a registry entry's ``init_config``), sized to the
    tokenizer's vocabulary; its own fixed ``seed`` makes it the same model every time, whatever the run."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    params = dict(init)
    arch, seed = params.pop("architecture", "llama"), int(params.pop("seed", 0))
    if arch != "llama":
        raise ValueError(f"init_config: unknown architecture {arch!r} (known: llama)")
    special = {k: getattr(tokenizer, f"{k}_id", None) for k in ("pad_token", "bos_token", "eos_token")}
    # a WordPiece tokenizer (MiniLM's) has no BOS/EOS: its [CLS]/[SEP] play those parts
    special["bos_token"] = special["bos_token"] if special["bos_token"] is not None else tokenizer.cls_token_id
    special["eos_token"] = special["eos_token"] if special["eos_token"] is not None else tokenizer.sep_token_id
    mcfg = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=False, pad_token_id=special["pad_token"],
                       bos_token_id=special["bos_token"], eos_token_id=special["eos_token"], **params)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return AutoModelForCausalLM.from_config(mcfg, dtype=dtype)
    finally:
        torch.random.set_rng_state(state)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])  # with the tokenizer's own special tokens (BOS)


def generate_ids(
    lm: CausalLM,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.7,
    top_p: float = 0.95,
    num_samples: int = 1,
    seed: int = 0,
    batch_size: int = 8,
    max_prompt_tokens: int | None = None,
) -> list[list[list[int]]]:
    """The new token ids of ``num_samples`` completions per prompt (padding after an end-of-text
    token removed), in prompt order. A prompt longer than ``max_prompt_tokens`` keeps its last
    tokens (the end is what is continued)."""
    if num_samples < 1 or max_new_tokens < 1:
        raise ValueError("num_samples and max_new_tokens must be >= 1")
    model, tok = lm.model, lm.tokenizer
    sample = temperature > 0
    eos = tok.eos_token_id
    out: list[list[list[int]]] = []
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            encoded = [_encode(tok, p) for p in prompts[start : start + batch_size]]
            if max_prompt_tokens:
                encoded = [e[-max_prompt_tokens:] for e in encoded]
            width = max(len(e) for e in encoded)
            ids = torch.full((len(encoded), width), lm.pad_id, dtype=torch.long)
            mask = torch.zeros((len(encoded), width), dtype=torch.long)
            for i, e in enumerate(encoded):  # left padding: every prompt ends at the last column
                ids[i, width - len(e) :] = torch.tensor(e, dtype=torch.long)
                mask[i, width - len(e) :] = 1
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens, "do_sample": sample, "num_return_sequences": num_samples,
                "pad_token_id": lm.pad_id,
            }
            if sample:
                kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
            with torch.inference_mode():
                seqs = model.generate(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), **kwargs)
            new = seqs[:, width:].cpu().tolist()
            for i in range(len(encoded)):
                group = []
                for s in new[i * num_samples : (i + 1) * num_samples]:
                    if eos is not None and eos in s:
                        s = s[: s.index(eos) + 1]
                    group.append(s)
                out.append(group)
    finally:
        if was_training:
            model.train()
    return out


def generate(lm: CausalLM, prompts: Sequence[str], **kwargs: Any) -> list[list[str]]:
    """``num_samples`` decoded completions (new text only) per prompt; arguments as :func:`generate_ids`."""
    ids = generate_ids(lm, prompts, **kwargs)
    return [[lm.tokenizer.decode(s, skip_special_tokens=True) for s in group] for group in ids]


def lm_batch(
    tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_len: int | None = None, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, labels) right-padded; labels are -100 except on completion tokens.

    A too-long pair loses prompt tokens from its start; the completion is kept whole (truncated at
    its end only if it alone exceeds ``max_len``)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    rows: list[tuple[list[int], list[int]]] = []
    for prompt, completion in zip(prompts, completions, strict=True):
        p_ids = _encode(tokenizer, prompt)
        c_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
        if not c_ids:
            raise ValueError(f"completion {completion!r} encodes to no token")
        if max_len is not None and len(p_ids) + len(c_ids) > max_len:
            c_ids = c_ids[: max_len - 1]
            p_ids = p_ids[len(p_ids) - (max_len - len(c_ids)) :]
        rows.append((p_ids, c_ids))
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(p) : len(seq)] = torch.tensor(c)
    return ids, mask, labels


def lm_loss(lm: CausalLM, prompts: Sequence[str], completions: Sequence[str], max_len: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of the completion tokens given their prompts (a scalar with grad)."""
    ids, mask, labels = lm_batch(lm.tokenizer, prompts, completions, max_len, lm.pad_id)
    ids, mask, labels = ids.to(lm.device), mask.to(lm.device), labels.to(lm.device)
    base = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
    body, head = getattr(base, base.base_model_prefix), base.get_output_embeddings()
    hidden = body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    target = labels[:, 1:]  # position t predicts token t + 1
    rows, cols = (target != -100).nonzero(as_tuple=True)
    logits = head(hidden[rows, cols])
    return F.cross_entropy(logits.float(), target[rows, cols])
