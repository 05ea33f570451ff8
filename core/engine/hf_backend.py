"""The ``hf`` backend: transformers + peft, on CPU or CUDA. The reference path every other backend
falls back to.

Two model shapes, one interface (``forward(input_ids, attention_mask) -> logits [B, 2]``):
- encoders (BERT-like, MiniLM): mean-pooled last hidden state -> linear two-class head;
- causal LMs: the hidden state at the last real token (the ``Label:`` cue) multiplied by only the
  two label-token rows of the LM head — never full-vocabulary logits, never at every position.
LoRA (peft) on all linear layers when ``lora_r > 0``, full fine-tuning when ``lora_r == 0``.
Gradient checkpointing follows ``RunConfig.gradient_checkpointing`` (auto: on for causal LMs on CUDA);
the causal scorer's decoder blocks are compiled on CUDA (``extra.compile``, auto).

The CUDA-only parts (bf16 autocast, fused AdamW, checkpointing and compiling by default) ran in
``bench/gpu_check.py`` on an H200 (bench/README.md); 4-bit loading and bitsandbytes' 8-bit AdamW
did not (not installed there): unverified.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from core.common.config import RunConfig
from core.data.datasets import Format
from core.engine.chat_models import wants_chat_template
from core.engine.losses import LOGCONF_ALPHA, LOGCONF_WARMUP, compute_loss
from core.engine.models import ModelSpec, detect_kind
from core.engine.optimizers import choose_optimizer, make_optimizer, warmup_steps
from core.engine.prompts import PromptEncoder, label_token_ids
from core.engine.speed import (
    checkpointing_on,
    compile_layers,
    compile_wanted,
    set_gradient_checkpointing,
)

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]


class EncoderClassifier(nn.Module):
    """Encoder backbone + mean pooling (as sentence-transformers pools MiniLM) + linear head."""

    backbone: Any  # a transformers model, or its peft wrapper: torch's nn.Module types say too little

    def __init__(self, backbone: nn.Module, hidden: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled).to(self.head.weight.dtype))

    def merge_adapters(self) -> None:
        if hasattr(self.backbone, "merge_and_unload"):
            self.backbone = self.backbone.merge_and_unload()


class CausalLabelScorer(nn.Module):
    """Two-class logits of a causal LM from the label tokens' LM-head rows at the cue position.

    Inputs must be right-padded: the cue is the last position whose attention mask is 1.
    (Models with final-logit soft-capping or logit scaling are scored without it: a monotone map
    of the two logits would only rescale the margin.)
    """

    lm: Any  # a transformers causal LM, or its peft wrapper: torch's nn.Module types say too little
    label_ids: torch.Tensor  # a buffer
    # The padding mask is not passed to the decoder body: rows are right-padded and attention is
    # causal, so no real token ever attends to a pad after it, and every real position (the cue
    # included) gets the same hidden state with or without the mask. Without it SDPA may take its
    # flash kernel (``is_causal``) instead of the masked memory-efficient one. True restores the
    # masked call (``bench/gpu_check.py`` measures both).
    body_mask: bool = False

    def __init__(self, lm: nn.Module, label_ids: tuple[int, int]) -> None:
        super().__init__()
        self.lm = lm
        self.register_buffer("label_ids", torch.tensor(label_ids, dtype=torch.long), persistent=False)

    def parts(self) -> tuple[nn.Module, nn.Linear]:
        """(decoder body returning hidden states, LM head), looking through a peft wrapper."""
        base = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
        return getattr(base, base.base_model_prefix), base.get_output_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        body, head = self.parts()
        mask = attention_mask if self.body_mask else None
        h = body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        last = attention_mask.long().sum(1) - 1
        h_last = h[torch.arange(h.shape[0], device=h.device), last]
        w = head.weight[self.label_ids]
        logits = h_last.to(w.dtype) @ w.T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[self.label_ids]
        return logits.float()

    def merge_adapters(self) -> None:
        if hasattr(self.lm, "merge_and_unload"):
            self.lm = self.lm.merge_and_unload()


@dataclass
class Loaded:
    """A model ready to train: tokenizer, prompt encoder, the [B, 2]-logit module and where it runs."""

    spec: ModelSpec
    kind: str
    tokenizer: Any
    encoder: PromptEncoder
    module: EncoderClassifier | CausalLabelScorer
    device: torch.device
    dtype: torch.dtype
    pad_id: int
    uses_lora: bool
    quantized: bool = False  # 4-bit weights: adapters stay unmerged and vLLM is not used
    compiled: bool = False  # decoder blocks compiled (compile_layers): the first call may fall back


def eager_on_compile_failure(
    loaded: Loaded, log: LogFn, reset: Callable[[], None], call: Callable[..., Any], *args: Any
) -> Any:
    """Run ``call(*args)`` (a step's first forward, and backward); when the decoder blocks are compiled and
    compiling fails (no C compiler, a model the compiler cannot trace), drop the compiled code, say so
    in one log line, ``reset`` (zero partial gradients) and run ``call`` eagerly. Out-of-memory and
    every error of an eager model are raised as they are."""
    if not loaded.compiled:
        return call(*args)
    try:
        return call(*args)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:
        compile_layers(loaded.module.lm if isinstance(loaded.module, CausalLabelScorer) else loaded.module, False)
        loaded.compiled = False
        root: BaseException = exc
        while getattr(root, "inner_exception", None) or root.__cause__:
            root = getattr(root, "inner_exception", None) or root.__cause__  # type: ignore[assignment]
        said = str(root).strip().splitlines()[0][:160] if str(root).strip() else ""
        log(f"compiled decoder blocks failed ({type(exc).__name__}: {type(root).__name__}: {said}); running eagerly")
        reset()
        return call(*args)


def pick_device(cfg: RunConfig) -> torch.device:
    want = cfg.extra.get("device")
    if want:
        return torch.device(str(want))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(cfg: RunConfig, device: torch.device, log: LogFn) -> torch.dtype:
    """bf16 on CUDA when ``bf16`` is auto/on and the card supports it; fp32 otherwise (CPU: always)."""
    if device.type != "cuda" or cfg.bf16 == "off":
        return torch.float32
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if cfg.bf16 == "on":
        log("bf16=on but this GPU has no bf16 support: training in fp32")
    return torch.float32


@lru_cache(maxsize=8)
def _tokenizer(path: str, local_only: bool) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=local_only)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the expected 'weights not used / newly initialised' notices while loading."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


def lora_config(cfg: RunConfig, task_type: str | None, rslora: bool | None = None) -> Any:
    """LoRA on every linear layer but the output head (peft's ``all-linear``: for Qwen/Llama exactly the
    reference's q/k/v/o/gate/up/down projections), no bias.

    ``rslora`` (default: on for causal LMs, ``task_type == "CAUSAL_LM"``) scales the adapter by
    alpha/sqrt(r) instead of alpha/r, as the reference's ``get_peft_model(..., use_rslora=True)``
    does: at its r = alpha = 32 that is sqrt(32) = 5.7x the plain LoRA update for the same lr, so a
    reference lr of 1e-4 only means the same thing with it on. The demo encoders keep plain LoRA:
    their recipe (lr 1e-3) was tuned with it and every cached demo row was trained so."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.extra.get("lora_target_modules", "all-linear"),
        task_type=task_type,
        bias="none",
        use_rslora=task_type == "CAUSAL_LM" if rslora is None else rslora,
    )


def max_len_for(cfg: RunConfig, tokenizer: Any, model_config: Any) -> int:
    """min(max_ctx, what the model's positions allow)."""
    limits = [int(cfg.max_ctx)]
    mpe = getattr(model_config, "max_position_embeddings", None)
    if isinstance(mpe, int) and mpe > 0:
        limits.append(mpe)
    return min(limits)


def load(
    spec: ModelSpec,
    cfg: RunConfig,
    fmt: Format,
    log: LogFn,
    lm_loader: Callable[..., Any] | None = None,
) -> Loaded:
    """Load tokenizer + model for training; ``lm_loader`` lets the unsloth backend supply the LM."""
    from transformers import AutoConfig, AutoModelForCausalLM

    device = pick_device(cfg)
    dtype = pick_dtype(cfg, device, log)
    tok = _tokenizer(spec.path, spec.local_only)
    mcfg = AutoConfig.from_pretrained(spec.path, local_files_only=spec.local_only)
    kind = spec.kind or detect_kind(mcfg)
    torch.manual_seed(cfg.seed)  # head init and LoRA init are part of the seed
    uses_lora = cfg.lora_r > 0
    module: EncoderClassifier | CausalLabelScorer
    quantized = compiled = False
    with _quiet_transformers():
        if kind == "encoder":
            backbone = load_encoder_backbone(spec, mcfg, dtype)
            if cfg.gradient_checkpointing:  # encoders: only when asked for explicitly
                set_gradient_checkpointing(backbone, True)
            if uses_lora:
                from peft import get_peft_model

                backbone = get_peft_model(backbone, lora_config(cfg, None))
            if spec.reinit_embeddings:  # a blank model must learn its words: its embeddings train too
                backbone.get_input_embeddings().weight.requires_grad_(True)
            dropout = float(getattr(mcfg, "hidden_dropout_prob", 0.1) or 0.0)
            module = EncoderClassifier(backbone, int(mcfg.hidden_size), dropout)
            chat = False
        else:
            if lm_loader is not None:
                lm = lm_loader(spec, cfg, dtype)
            else:
                if spec.num_layers:
                    mcfg.num_hidden_layers = spec.num_layers
                lm_kwargs: dict[str, Any] = {
                    "config": mcfg, "local_files_only": spec.local_only, "dtype": dtype,
                }
                if device.type == "cuda":
                    lm_kwargs["device_map"] = {"": device.index or 0}  # load straight onto the GPU
                if cfg.load_in_4bit:
                    lm_kwargs.update(_four_bit(device, log))
                lm = AutoModelForCausalLM.from_pretrained(spec.path, **lm_kwargs)
                lm = prepare_causal_lm(lm, cfg, device, log)
            chat = wants_chat_template(spec, tok, cfg, mcfg)
            module = CausalLabelScorer(lm, label_token_ids(tok, fmt, chat))
            quantized = is_quantized(lm)
            if lm_loader is None and compile_wanted(cfg, device):
                compiled = compile_layers(lm, True) > 0
                if compiled:
                    log(f"decoder blocks compiled (extra.compile={cfg.extra.get('compile', 'auto')}; off to skip)")
    if not uses_lora and lm_loader is None:
        for p in module.parameters():
            p.requires_grad_(True)
    module.to(device)
    pad = tok.pad_token_id
    if pad is None:
        pad = tok.eos_token_id if tok.eos_token_id is not None else 0
    enc = PromptEncoder(tok, fmt, max_len_for(cfg, tok, mcfg), causal=kind == "causal", use_chat_template=chat)
    return Loaded(spec, kind, tok, enc, module, device, dtype, int(pad), uses_lora, quantized, compiled)


REINIT_SEED = 1234  # the blank teacher's embeddings are the same in every run: part of the model, not the seed


def load_encoder_backbone(spec: ModelSpec, model_config: Any, dtype: torch.dtype) -> Any:
    """The encoder body (no pooler, no head) as ``spec`` describes it: cut to ``num_layers``, word
    embeddings re-initialised when ``reinit_embeddings``. ``model_config`` is modified in place."""
    from transformers import AutoModel

    if spec.num_layers:
        model_config.num_hidden_layers = spec.num_layers
    kwargs: dict[str, Any] = {"config": model_config, "local_files_only": spec.local_only, "dtype": dtype}
    if model_config.model_type == "bert":
        kwargs["add_pooling_layer"] = False
    backbone = AutoModel.from_pretrained(spec.path, **kwargs)
    if spec.reinit_embeddings:
        # a seeded shuffle of the pretrained rows among the ordinary tokens: every word gets another
        # word's vector (the same scale and statistics, none of its meaning); special tokens stay
        emb = backbone.get_input_embeddings()
        special = set(_tokenizer(spec.path, spec.local_only).all_special_ids)
        ordinary = torch.tensor([i for i in range(emb.weight.shape[0]) if i not in special])
        gen = torch.Generator().manual_seed(REINIT_SEED)
        with torch.no_grad():
            shuffled = ordinary[torch.randperm(len(ordinary), generator=gen)]
            emb.weight[ordinary] = emb.weight[shuffled].clone()
    return backbone


def prepare_causal_lm(lm: Any, cfg: RunConfig, device: torch.device, log: LogFn) -> Any:
    """A loaded causal LM made ready to train: checkpointing per ``cfg``, then LoRA when ``lora_r > 0``.

    ``bench/gpu_check.py`` calls this on a config-built model, so it measures what ``w2s run`` gets."""
    if checkpointing_on(cfg, "causal", device):
        set_gradient_checkpointing(lm, True)
    if cfg.lora_r > 0:
        from peft import get_peft_model

        lm = get_peft_model(lm, lora_config(cfg, "CAUSAL_LM"))
    return lm


def is_quantized(lm: Any) -> bool:
    """True when the LM's weights are quantized (bitsandbytes 4-bit/8-bit): such adapters are never
    merged and the weights never go to vLLM."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        return True
    if getattr(base, "is_quantized", False) is True:
        return True
    return getattr(getattr(base, "config", None), "quantization_config", None) is not None


def _four_bit(device: torch.device, log: LogFn) -> dict[str, Any]:
    if device.type != "cuda":
        log("load_in_4bit ignored: 4-bit loading needs CUDA")
        return {}
    try:
        from transformers import BitsAndBytesConfig

        return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)}
    except Exception as exc:  # bitsandbytes missing or broken
        log(f"load_in_4bit ignored: {exc}")
        return {}


def collate(seqs: Sequence[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch to its own longest row (dynamic padding)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_threads() -> None:
    """Use every core for intra-op work (the CPU demo is compute bound), unless the environment
    pins a count (``W2S_TORCH_THREADS`` or ``OMP_NUM_THREADS``): on a shared, oversubscribed box
    fewer threads avoid spin-wait collapse."""
    pinned = os.environ.get("W2S_TORCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
    n = int(pinned) if pinned and pinned.isdigit() and int(pinned) > 0 else (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def epoch_batches(lengths: Sequence[int], batch_size: int, gen: torch.Generator, group: bool) -> list[list[int]]:
    """One epoch's batches: a seeded shuffle; with ``group``, rows of similar length share a batch
    (sorted inside windows of 50 batches, then batch order shuffled) so less padding is computed."""
    n = len(lengths)
    perm = torch.randperm(n, generator=gen).tolist()
    if not group:
        return [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, n, window):
        chunk = sorted(perm[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


class Progress:
    """Feeds the caller's progress callback and, on a TTY, a tqdm bar; ``total`` is in work units."""

    def __init__(self, total: float, callback: ProgressFn | None, desc: str) -> None:
        self.total = max(total, 1e-9)
        self.done = 0.0
        self.callback = callback
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=round(total), desc=desc, unit="ex", leave=False)

    def advance(self, units: float, message: str) -> None:
        self.done += units
        if self.bar is not None:
            self.bar.update(round(units))
            self.bar.set_postfix_str(message, refresh=False)
        if self.callback is not None:
            self.callback(min(1.0, self.done / self.total), message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(
    loaded: Loaded,
    seqs: list[list[int]],
    targets: np.ndarray,
    weights: np.ndarray | None,
    cfg: RunConfig,
    progress: Progress,
    log: LogFn,
    tracker: Any = None,
) -> dict[str, Any]:
    """Fine-tune ``loaded.module`` in place; returns a small training summary."""
    from transformers import get_scheduler

    module, device = loaded.module, loaded.device
    n = len(seqs)
    if n == 0 or cfg.epochs <= 0:
        return {"steps": 0, "final_loss": None, "train_seconds": 0.0}
    bs, accum = max(1, cfg.batch_size), max(1, cfg.gradient_accumulation_steps)
    lengths = [len(s) for s in seqs]
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(n / bs)
    total_steps = math.ceil(per_epoch / accum) * cfg.epochs
    params = [p for p in module.parameters() if p.requires_grad]
    choice = choose_optimizer(cfg, loaded.kind, device)
    opt = make_optimizer(cfg, params, choice)
    log(f"optimizer {choice.name} (betas {choice.betas}, eps {choice.eps}, weight decay {choice.weight_decay}): {choice.why}")
    sched = get_scheduler(
        cfg.lr_schedule, opt, num_warmup_steps=warmup_steps(cfg, total_steps, loaded.kind),
        num_training_steps=total_steps,
    )
    t_all = torch.tensor(np.asarray(targets, dtype=np.float32))
    w_all = None if weights is None else torch.tensor(np.asarray(weights, dtype=np.float32))
    alpha = float(cfg.extra.get("logconf_alpha", LOGCONF_ALPHA))
    warmup = float(cfg.extra.get("logconf_warmup", LOGCONF_WARMUP))
    clip = float(cfg.extra.get("max_grad_norm", 1.0))
    group = bool(cfg.extra.get("group_by_length", True))
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and loaded.dtype == torch.bfloat16
        else contextlib.nullcontext()
    )
    # The loss stays on the device: reading it (a host sync that stalls the GPU queue) happens only
    # every ``log_every`` optimizer steps (extra; default 1 on CPU, where it costs nothing, 10 on CUDA)
    # and at each epoch's end.
    log_every = max(1, int(cfg.extra.get("log_every", 1 if device.type == "cpu" else 10)))

    def forward_backward(
        ids: torch.Tensor, mask: torch.Tensor, tb: torch.Tensor, wb: torch.Tensor | None, frac: float
    ) -> torch.Tensor:
        with autocast:
            logits = module(ids, mask)
        loss = compute_loss(cfg.loss, logits, tb, frac, wb, alpha, warmup)
        (loss / accum).backward()
        return loss

    module.train()
    step, t0 = 0, time.perf_counter()
    shown, epoch_mean = float("nan"), float("nan")
    for epoch in range(cfg.epochs):
        batches = epoch_batches(lengths, bs, gen, group)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        for bi, idx in enumerate(batches):
            ids, mask = collate([seqs[i] for i in idx], loaded.pad_id, device)
            tb = t_all[idx].to(device, non_blocking=True)
            wb = None if w_all is None else w_all[idx].to(device, non_blocking=True)
            args = (ids, mask, tb, wb, step / total_steps)
            if epoch == 0 and bi == 0:
                loss = eager_on_compile_failure(loaded, log, lambda: opt.zero_grad(set_to_none=True), forward_backward, *args)
            else:
                loss = forward_backward(*args)
            last = loss.detach()
            loss_sum += last
            if (bi + 1) % accum == 0 or bi + 1 == len(batches):
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                if step % log_every == 0:
                    shown = float(last)  # the one sync per log step
                    if tracker is not None:
                        tracker.log({"train/loss": shown, "train/lr": sched.get_last_lr()[0]}, step=step)
            progress.advance(3 * len(idx), f"train epoch {epoch + 1}/{cfg.epochs} loss {shown:.4f}")
        epoch_mean = float(loss_sum) / max(1, len(batches))
        log(f"epoch {epoch + 1}/{cfg.epochs}: mean loss {epoch_mean:.4f}")
    seconds = time.perf_counter() - t0
    return {
        "steps": step,
        "optimizer": choice.name,
        "final_loss": epoch_mean,
        "train_seconds": seconds,
        "train_examples_per_s": n * cfg.epochs / seconds if seconds > 0 else None,
    }


def predict(
    loaded: Loaded, seqs: list[list[int]], batch_size: int, progress: Progress | None = None, label: str = ""
) -> np.ndarray:
    """P(class 1) per row in the given order; rows are scored longest first in length-sorted batches."""
    module, device = loaded.module, loaded.device
    out = np.zeros(len(seqs), dtype=np.float64)
    if not seqs:
        return out
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    module.eval()
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and loaded.dtype == torch.bfloat16
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = collate([seqs[i] for i in idx], loaded.pad_id, device)
            if start == 0:
                logits = eager_on_compile_failure(loaded, lambda m: None, lambda: None, module, ids, mask)
            else:
                logits = module(ids, mask)
            p1 = torch.softmax(logits.float(), dim=-1)[:, 1]
            out[idx] = p1.double().cpu().numpy()
            if progress is not None:
                progress.advance(len(idx), f"score {label}")
    return out


def train_and_predict_hf(
    spec: ModelSpec,
    fmt: Format,
    train_rows: list[dict[str, Any]],
    train_targets: np.ndarray,
    predict_sets: dict[str, list[dict[str, Any]]],
    cfg: RunConfig,
    sample_weights: np.ndarray | None,
    progress: ProgressFn | None,
    log: LogFn,
    lm_loader: Callable[..., Any] | None = None,
    scorer: Callable[..., dict[str, np.ndarray]] | None = None,
    tracker: Any = None,
    keep: Callable[[Loaded], None] | None = None,
) -> dict[str, np.ndarray]:
    """Load, fine-tune on (rows, soft targets), merge adapters, score every predict set.

    ``keep`` receives the trained model (adapters merged) so a caller can score more rows later
    with :func:`predict` (the trusted weak-judge service keeps its judges in memory)."""
    set_threads()
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    loaded = load(spec, cfg, fmt, log, lm_loader=lm_loader)
    log(
        f"loaded {spec.name} ({loaded.kind}, {'LoRA r=' + str(cfg.lora_r) if loaded.uses_lora else 'full'}, "
        f"{loaded.device.type}, {str(loaded.dtype).replace('torch.', '')}, max_len {loaded.encoder.max_len}) "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    train_seqs = loaded.encoder.encode_many(train_rows)
    pred_seqs = {name: loaded.encoder.encode_many(rows) for name, rows in predict_sets.items()}
    units = 3 * len(train_seqs) * max(cfg.epochs, 0) + sum(len(s) for s in pred_seqs.values())
    bar = Progress(units, progress, spec.name)
    try:
        summary = train(loaded, train_seqs, train_targets, sample_weights, cfg, bar, log, tracker)
        if summary.get("train_examples_per_s"):
            log(f"trained {summary['steps']} steps at {summary['train_examples_per_s']:.1f} ex/s")
        if loaded.uses_lora and not loaded.quantized:
            loaded.module.merge_adapters()  # scoring through merged weights is cheaper
        if keep is not None:
            keep(loaded)
        if scorer is not None and loaded.quantized:
            # vLLM would get a LoRA-injected 4-bit model it cannot load (or would score the wrong
            # weights): score through the unmerged adapter on hf instead.
            log("score=vllm -> hf: the model is 4-bit (load_in_4bit); its adapter stays unmerged")
            scorer = None
        if scorer is not None:
            return scorer(loaded, pred_seqs, cfg, log)
        pbs = int(cfg.extra.get("predict_batch_size", max(2 * cfg.batch_size, 32)))
        return {name: predict(loaded, seqs, pbs, bar, name) for name, seqs in pred_seqs.items()}
    finally:
        bar.close()
