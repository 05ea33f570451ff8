"""The ``unsloth`` training backend: unsloth loads (and LoRA-wraps) the causal LM; the rest of the
training loop, label-token scoring included, is the hf backend's.

UNVERIFIED: written against unsloth's documented ``FastLanguageModel`` API
(``from_pretrained(model_name, max_seq_length, dtype, load_in_4bit, full_finetuning)`` and
``get_peft_model(model, r, target_modules, lora_alpha, lora_dropout, bias,
use_gradient_checkpointing, random_state, max_seq_length)``) but never run here: the machine that
wrote it has no GPU. unsloth patches transformers on import, so it must be imported first:
``core.engine.train_and_predict`` reads the model's kind from its config.json without transformers
and then ``choose_backend`` imports unsloth, before the hf backend imports transformers.
"""

from __future__ import annotations

from typing import Any

import torch

from core.common.config import RunConfig
from core.engine.models import ModelSpec

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load_causal_lm(spec: ModelSpec, cfg: RunConfig, dtype: torch.dtype) -> Any:
    """The model, LoRA-wrapped per ``cfg`` (or fully trainable when ``lora_r == 0``). UNVERIFIED.

    ``dtype`` is passed explicitly (unsloth's ``dtype=None`` silently picks bf16 or fp16 by card), and
    gradient checkpointing follows ``RunConfig.gradient_checkpointing`` (auto: unsloth's own, on)."""
    from unsloth import FastLanguageModel

    from core.engine.speed import checkpointing_on

    full = cfg.lora_r <= 0
    model, _tokenizer = FastLanguageModel.from_pretrained(
        model_name=spec.path,
        max_seq_length=int(cfg.max_ctx),
        dtype=dtype,
        load_in_4bit=bool(cfg.load_in_4bit),
        full_finetuning=full,
    )
    ckpt: str | bool = "unsloth" if checkpointing_on(cfg, "causal", torch.device("cuda")) else False
    if full:
        if ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model
    return FastLanguageModel.get_peft_model(
        model,
        r=cfg.lora_r,
        target_modules=cfg.extra.get("lora_target_modules", PROJECTIONS),
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        bias="none",
        use_gradient_checkpointing=ckpt,
        random_state=cfg.seed,
        max_seq_length=int(cfg.max_ctx),
        use_rslora=True,  # adapter scale alpha/sqrt(r), as the reference (and the hf backend's causal path)
    )
