"""How a causal LM's decoder runs: activation recomputation (gradient checkpointing, on all blocks or
every k-th) and compiled decoder blocks. Memory and speed only, never results; the figures behind the
defaults are in bench/README.md (H200 runs of bench/gpu_check.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.common.config import RunConfig


def checkpointing_on(cfg: RunConfig, kind: str, device: torch.device) -> bool:
    """``RunConfig.gradient_checkpointing``, or when None (auto): on for causal LMs on CUDA.

    The legacy ``extra.gradient_checkpointing`` still counts when the field is left at auto."""
    if cfg.gradient_checkpointing is not None:
        return bool(cfg.gradient_checkpointing)
    legacy = cfg.extra.get("gradient_checkpointing")
    if legacy is not None:
        return bool(legacy)
    return kind == "causal" and device.type == "cuda"


def decoder_layers(model: Any) -> nn.ModuleList | None:
    """The repeated decoder blocks of a causal LM (``model.<body>.layers``), through a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, getattr(base, "base_model_prefix", ""), None)
    layers = getattr(body, "layers", None)
    return layers if isinstance(layers, nn.ModuleList) else None


def compile_layers(model: Any, on: bool) -> int:
    """Regional compilation: ``torch.compile`` each decoder block (dynamic shapes, as rows vary in
    length) instead of the whole model, so one compiled block serves all of them and compiling takes
    seconds, not minutes; ``on=False`` drops the compiled code. Returns how many blocks changed.
    ``extra.compile`` decides (``compile_wanted``); ``bench/gpu_check.py`` measures what it buys."""
    layers = decoder_layers(model)
    if layers is None:
        return 0
    if on:
        # every block shares one code object, and each mode (training, recomputation without grad,
        # scoring, merged weights) is another entry: the default limit of 8 was reached in one
        # gpu_check run, after which dynamo silently ran the new cases eagerly
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(int(getattr(torch._dynamo.config, name)), 64))
                break
    for layer in layers:
        if on:
            layer.compile(dynamic=True)
        else:
            layer._compiled_call_impl = None  # what nn.Module.compile sets
    return len(layers)


def checkpoint_fraction(model: Any, fraction: float) -> int:
    """With checkpointing enabled, keep recomputation on only every k-th decoder block (k = 1/fraction,
    rounded): activation memory against speed. Returns the number of blocks that recompute."""
    layers = decoder_layers(model)
    if layers is None:
        return 0
    every = max(1, round(1 / fraction)) if fraction > 0 else 0
    count = 0
    for i, layer in enumerate(layers):
        if hasattr(layer, "gradient_checkpointing"):
            recompute = bool(every) and i % every == 0
            setattr(layer, "gradient_checkpointing", recompute)  # noqa: B010  # a transformers layer flag
            count += int(recompute)
    return count


def set_gradient_checkpointing(model: Any, on: bool) -> None:
    """Switch activation recomputation on or off, looking through a peft wrapper.

    Reentrant recomputation, with the input embeddings' output marked as requiring grad so the
    frozen base under LoRA still back-propagates into the adapters: measured on an H200 (Qwen3-4B
    shape, batch 8 x 1024, bench/README.md) at 7,842 tok/s against 6,268 for the non-reentrant
    variant, at the same peak memory."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if on:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        if hasattr(base, "enable_input_require_grads"):
            base.enable_input_require_grads()
    elif getattr(base, "is_gradient_checkpointing", False):
        base.gradient_checkpointing_disable()


def compile_wanted(cfg: RunConfig, device: torch.device) -> bool:
    """``extra.compile``: auto (default: on for the causal label scorer on CUDA) | on | off. CUDA only:
    on CPU the compile time is never repaid. Measured on an H200 (Qwen3-4B shape, LoRA r=32, batch 8
    x 1024, bench/README.md): training 26,290 tok/s compiled vs 12,499 eager without checkpointing,
    18,520 vs 8,288 with it; merged scoring 73,737 vs 48,061; about 80 s to compile, once per process.
    Generation (the critic, GRPO) never compiles: its decode steps would recompile."""
    mode = str(cfg.extra.get("compile", "auto")).lower()
    if mode in ("off", "false", "0", "no"):
        return False
    return device.type == "cuda"
