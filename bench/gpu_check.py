"""One short GPU check of the engine's causal path: correct on CUDA, and how fast.

    python bench/gpu_check.py            # a Qwen3-4B-shaped model on the GPU, under 6 minutes
    python bench/gpu_check.py --tiny     # the same phases on CPU with a toy shape, in seconds

Standalone: it needs only this repository's files and the machine's torch, transformers and peft
(no uv, no network, no download: the model is built from a config with random weights). Prints one
JSON object per line as each phase ends (flushed, so a timeout still leaves results):
``env`` (versions, GPU), ``build``, the correctness asserts (``assert_label_rows`` label-row logits
vs full logits, ``assert_default_checkpointing``, ``assert_lora_grads`` with checkpointing on,
``assert_merged_vs_unmerged``), then the engine's own ``train`` and ``predict``
(``core.engine.hf_backend``, not a hand loop) on synthetic variable-length rows: training at batch 8
x seq 1024 and batch 32 x seq 2048, checkpointing on and off (an out-of-memory is caught and
reported), scoring unmerged at batch 16 and merged at batch 16 and 64; tokens/s and peak GiB per
phase (peak memory reset per phase). ``unsloth`` and ``vllm`` blocks run only where they import.
The last line is ``summary`` (``all_ok``: every assert passed). Each phase has a time estimate; a
phase that would overrun ``--budget`` seconds prints ``{"skipped": why}`` instead.

Tokens/s counts real (unpadded) tokens; ``padded_tok_s`` counts batch x width as computed. Rows are
from seq/2 to seq tokens long. The CUDA figures are UNVERIFIED until this runs on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.common.config import RunConfig  # noqa: E402
from core.engine import hf_backend as hf  # noqa: E402
from core.engine import speed  # noqa: E402
from core.engine.losses import soft_xent  # noqa: E402
from core.engine.models import ModelSpec  # noqa: E402

QWEN3_4B: dict[str, Any] = dict(
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
    num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
    rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)
TINY: dict[str, Any] = dict(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
    tie_word_embeddings=True,
)
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LABELS = (32, 33)  # any two token ids serve as the label tokens of a random model
PAD = 0
GIB = 2**30


class Check:
    """Prints phases as JSON lines and keeps the time budget."""

    def __init__(self, budget: float, device: torch.device) -> None:
        self.t0 = time.perf_counter()
        self.budget = budget
        self.device = device
        self.failed: list[str] = []
        self.phases: list[str] = []
        self.only: set[str] = set()

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def emit(self, phase: str, **fields: Any) -> None:
        self.phases.append(phase)
        if fields.get("ok") is False:
            self.failed.append(phase)
        line = {"phase": phase, **fields, "t": round(time.perf_counter() - self.t0, 1)}
        print(json.dumps(line, default=str), flush=True)

    def fits(self, phase: str, estimate: float) -> bool:
        """False (and a skip line) when ``estimate`` seconds would overrun the budget, or when
        ``--only`` names other phases."""
        if self.only and phase not in self.only:
            self.emit(phase, skipped="not in --only")
            return False
        if self.left() < estimate:
            self.emit(phase, skipped=f"{self.left():.0f}s left of the budget, phase needs ~{estimate:.0f}s")
            return False
        return True

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return round(torch.cuda.max_memory_allocated() / GIB, 2)


def build_lm(shape: dict[str, Any], device: torch.device, dtype: torch.dtype) -> tuple[Any, str]:
    """A causal LM of ``shape`` with random weights, created directly on ``device`` in ``dtype``
    (no fp32 copy). Qwen3 classes when this transformers has them, else Qwen2 with the same shape."""
    import transformers

    if hasattr(transformers, "Qwen3Config"):
        config_cls, model_cls, name = transformers.Qwen3Config, transformers.Qwen3ForCausalLM, "Qwen3Config"
    else:
        config_cls, model_cls, name = transformers.Qwen2Config, transformers.Qwen2ForCausalLM, "Qwen2Config"
    kwargs = dict(shape)
    if name == "Qwen2Config":
        kwargs.pop("head_dim", None)  # Qwen2 derives it: 2560 / 32 = 80, not Qwen3's 128
    config = config_cls(**kwargs, pad_token_id=PAD, attn_implementation="sdpa")
    torch.manual_seed(0)
    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
    except (TypeError, RuntimeError):  # an old torch: build in fp32, then cast
        pass
    try:
        with torch.device(device):
            lm = model_cls(config)
    finally:
        torch.set_default_dtype(before)
    return lm.to(device=device, dtype=dtype), name


def rows(n: int, seq: int, vocab: int, seed: int) -> list[list[int]]:
    """``n`` synthetic token rows of seq/2..seq tokens (no pad id, so the mask is the length)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(2, seq // 2), seq + 1, size=n)
    return [rng.integers(PAD + 1, vocab, size=int(k)).tolist() for k in lengths]


def run_cfg(batch: int, ckpt: bool | None, device: torch.device) -> RunConfig:
    return RunConfig(
        batch_size=batch, epochs=1, lr=5e-4, lora_r=32, lora_alpha=32, lora_dropout=0.0, seed=0,
        gradient_checkpointing=ckpt, extra={"lora_target_modules": PROJECTIONS, "device": str(device)},
    )


def make_loaded(module: hf.CausalLabelScorer, device: torch.device, dtype: torch.dtype) -> hf.Loaded:
    """The engine's ``Loaded`` around ``module``, its decoder blocks compiled when the engine's default
    (``extra.compile`` auto) would compile them on this device, as ``hf_backend.load`` does."""
    spec = ModelSpec("gpu-check", "random-weights", "causal")
    compiled = speed.compile_wanted(RunConfig(), device) and speed.compile_layers(module.lm, True) > 0
    return hf.Loaded(spec, "causal", None, None, module, device, dtype, PAD, True, compiled=compiled)  # type: ignore[arg-type]


def tokens(seqs: list[list[int]], batch: int) -> tuple[int, int]:
    """(real tokens, padded tokens) when ``seqs`` are batched ``batch`` at a time in length order
    (the engine groups by length, so this is close to what it computes)."""
    ordered = sorted(len(s) for s in seqs)
    padded = sum(max(ordered[i : i + batch]) * len(ordered[i : i + batch]) for i in range(0, len(ordered), batch))
    return sum(ordered), padded


@contextlib.contextmanager
def variant_applied(loaded: hf.Loaded, variant: dict[str, Any], fields: dict[str, Any]) -> Iterator[None]:
    """Apply a phase's ``variant`` (``body_mask``, ``compile``) and undo it afterwards, noting in
    ``fields`` whether the blocks ran compiled and whether they fell back to eager. An out-of-memory
    is recorded as such; any other failure of a variant (a compiler missing) is reported, not fatal."""
    default_compiled = loaded.compiled
    compiled = bool(variant.get("compile", default_compiled))
    speed.compile_layers(loaded.module.lm, compiled)
    loaded.module.body_mask = bool(variant.get("body_mask", False))
    fields["compiled"] = compiled
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        fields.update(oom=True, error=str(exc).splitlines()[0][:200])
    except Exception as exc:
        if not variant:
            raise
        fields.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        loaded.module.body_mask = False
        speed.compile_layers(loaded.module.lm, default_compiled)
        fields["fell_back_to_eager"] = compiled and not loaded.compiled
        loaded.compiled = default_compiled


def phase_train(
    ck: Check, name: str, loaded: hf.Loaded, batch: int, seq: int, ckpt: bool, warm: int, timed: int,
    vocab: int, estimate: float, variant: dict[str, Any] | None = None,
) -> None:
    """Warm up ``warm`` optimizer steps, then time ``timed`` steps of the engine's ``train``.

    ``variant`` (measured side by side with the defaults, then undone): ``body_mask`` True passes the
    padding mask to the decoder (the engine's behaviour before it dropped it), ``ckpt_fraction``
    recomputes only every k-th block, ``compile`` compiles the decoder blocks."""
    if not ck.fits(name, estimate):
        return
    variant = variant or {}
    cfg = run_cfg(batch, ckpt, loaded.device)
    speed.set_gradient_checkpointing(loaded.module.lm, ckpt)
    if ckpt and "ckpt_fraction" in variant:
        speed.checkpoint_fraction(loaded.module.lm, float(variant["ckpt_fraction"]))
    lines: list[str] = []
    fields: dict[str, Any] = {"batch": batch, "seq": seq, "checkpointing": ckpt, "steps": timed, **variant}
    ck.reset_peak()
    with variant_applied(loaded, variant, fields):
        t_w = time.perf_counter()
        warm_rows = rows(batch * warm, seq, vocab, seed=1)
        hf.train(loaded, warm_rows, np.full(len(warm_rows), 0.7), None, cfg, hf.Progress(1, None, ""), lines.append)
        ck.sync()
        fields["warmup_s"] = round(time.perf_counter() - t_w, 1)  # includes compiling, when it happens
        seqs = rows(batch * timed, seq, vocab, seed=2)
        ck.sync()
        t0 = time.perf_counter()
        summary = hf.train(loaded, seqs, np.full(len(seqs), 0.7), None, cfg, hf.Progress(1, None, ""), lines.append)
        ck.sync()
        dt = time.perf_counter() - t0
        real, padded = tokens(seqs, batch)
        loss = summary.get("final_loss")
        fields.update(
            ok=loss is not None and math.isfinite(loss), seconds=round(dt, 2), tok_s=round(real / dt),
            padded_tok_s=round(padded / dt), peak_gib=ck.peak_gib(), final_loss=loss,
        )
    fields.setdefault("peak_gib", ck.peak_gib())  # an out-of-memory: how far it got
    for p in loaded.module.parameters():
        p.grad = None
    ck.emit(name, **fields)
    ck.reset_peak()


def phase_score(
    ck: Check, name: str, loaded: hf.Loaded, batch: int, seq: int, timed: int, vocab: int, estimate: float,
    variant: dict[str, Any] | None = None,
) -> np.ndarray | None:
    """One warm-up batch, then ``timed`` batches of the engine's ``predict`` (``variant`` as in
    :func:`phase_train`: ``body_mask``, ``compile``)."""
    if not ck.fits(name, estimate):
        return None
    variant = variant or {}
    ck.reset_peak()
    fields: dict[str, Any] = {"batch": batch, "seq": seq, **variant}
    probs = None
    with variant_applied(loaded, variant, fields):
        t_w = time.perf_counter()
        hf.predict(loaded, rows(batch, seq, vocab, seed=3), batch)
        hf.predict(loaded, rows(batch // 2 + 1, seq - 3, vocab, seed=10), batch)  # a second shape
        ck.sync()
        fields["warmup_s"] = round(time.perf_counter() - t_w, 1)  # includes compiling, when it happens
        seqs = rows(batch * timed, seq, vocab, seed=4)
        ck.sync()
        t0 = time.perf_counter()
        probs = hf.predict(loaded, seqs, batch)
        ck.sync()
        dt = time.perf_counter() - t0
        real, padded = tokens(seqs, batch)
        ok = bool(np.all(np.isfinite(probs)) and np.all((probs >= 0) & (probs <= 1)))
        fields.update(ok=ok, rows=len(seqs), seconds=round(dt, 2), tok_s=round(real / dt),
                      padded_tok_s=round(padded / dt), peak_gib=ck.peak_gib())
    ck.emit(name, **fields)
    return probs


def phase_profile(ck: Check, loaded: hf.Loaded, batch: int, seq: int, vocab: int, estimate: float) -> None:
    """Two training steps (checkpointing off) under torch.profiler: where the GPU time goes (the top
    kernels by self time) and how busy the GPU was over the wall time (low: the host is the limit)."""
    if not ck.fits("profile_train_b8", estimate):
        return
    from torch.profiler import ProfilerActivity, profile

    cfg = run_cfg(batch, False, loaded.device)
    speed.set_gradient_checkpointing(loaded.module.lm, False)
    seqs = rows(batch * 2, seq, vocab, seed=11)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if loaded.device.type == "cuda" else [])
    ck.sync()
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        hf.train(loaded, seqs, np.full(len(seqs), 0.7), None, cfg, hf.Progress(1, None, ""), lambda m: None)
        ck.sync()
    wall = time.perf_counter() - t0
    for p in loaded.module.parameters():
        p.grad = None
    events = prof.key_averages()
    attr = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
    if loaded.device.type != "cuda":
        attr = "self_cpu_time_total"
    total_us = sum(float(getattr(e, attr, 0.0)) for e in events)
    top = sorted(events, key=lambda e: -float(getattr(e, attr, 0.0)))[:14]
    ck.emit("profile_train_b8", ok=True, wall_s=round(wall, 2), device_busy_s=round(total_us / 1e6, 2),
            busy_share=round(total_us / 1e6 / wall, 2) if wall > 0 else None, clock=attr,
            top=[[e.key[:60], round(float(getattr(e, attr, 0.0)) / 1e3, 1), e.count] for e in top])


def probe_liger(ck: Check) -> None:
    """Whether Liger's fused kernels are installed (they are not applied: reported for the record)."""
    try:
        import importlib.metadata as md

        ck.emit("liger", installed=True, version=md.version("liger-kernel"))
    except Exception:
        ck.emit("liger", installed=False)


def assert_label_rows(ck: Check, lm: Any, device: torch.device, dtype: torch.dtype, vocab: int, seq: int) -> None:
    """The scorer's two label-row logits at the cue equal the full LM's logits there (same dtype)."""
    scorer = hf.CausalLabelScorer(lm, LABELS).to(device)
    seqs = rows(4, seq, vocab, seed=5)
    ids, mask = hf.collate(seqs, PAD, device)
    lm.eval()
    with torch.inference_mode():
        got = scorer(ids, mask).float()
        full = lm(input_ids=ids, attention_mask=mask, use_cache=False).logits
        last = mask.sum(1) - 1
        want = full[torch.arange(len(seqs), device=device), last][:, list(LABELS)].float()
    diff = float((got - want).abs().max())
    scale = float(want.abs().max())
    tol = (0.02 * scale + 0.02) if dtype == torch.bfloat16 else (1e-4 * scale + 1e-5)
    ck.emit("assert_label_rows", ok=diff <= tol, max_abs_diff=diff, logit_scale=scale, tol=tol,
            dtype=str(dtype).replace("torch.", ""))
    del full


def fp32_reference(loaded: hf.Loaded, seqs: list[list[int]]) -> np.ndarray:
    """P(class 1) of the unmerged adapted model computed in fp32 (a temporary fp32 copy): the
    'exact' answer both bf16 paths are measured against."""
    speed.compile_layers(loaded.module.lm, False)  # a compiled block's code stays bound to the original
    module = copy.deepcopy(loaded.module).float()
    speed.compile_layers(loaded.module.lm, loaded.compiled)
    ref = hf.Loaded(loaded.spec, "causal", None, None, module, loaded.device, torch.float32, PAD, True)  # type: ignore[arg-type]
    try:
        return hf.predict(ref, seqs, 16)
    finally:
        del module, ref
        gc.collect()
        if loaded.device.type == "cuda":
            torch.cuda.empty_cache()


def assert_merged(
    ck: Check, merged: np.ndarray, unmerged: np.ndarray, plain: np.ndarray, exact: np.ndarray, dtype: torch.dtype
) -> None:
    """Merging the adapter into bf16 weights rounds them once more, so merged and unmerged bf16
    probabilities differ; what matters is that the merged model is no further from the exact (fp32)
    answer than bf16 scoring already is: err(merged) <= 2 x err(unmerged) + 0.01 in bf16 (fp32: both
    within 1e-4). The direct difference and the adapter's own effect are reported beside it."""
    err_m = float(np.abs(merged - exact).max())
    err_u = float(np.abs(unmerged - exact).max())
    if dtype == torch.bfloat16:
        ok = err_m <= 2 * err_u + 0.01
    else:
        ok = err_m <= 1e-4 and err_u <= 1e-4
    ck.emit("assert_merged_vs_unmerged", ok=ok, max_abs_diff=float(np.abs(merged - unmerged).max()),
            mean_abs_diff=float(np.abs(merged - unmerged).mean()), merged_vs_fp32=err_m, unmerged_vs_fp32=err_u,
            rule="merged_vs_fp32 <= 2 x unmerged_vs_fp32 + 0.01" if dtype == torch.bfloat16 else "both <= 1e-4",
            adapter_effect=float(np.abs(unmerged - plain).max()))


def assert_lora_grads(ck: Check, loaded: hf.Loaded, vocab: int, seq: int) -> None:
    """One forward/backward through the engine's module with checkpointing on: every LoRA weight
    gets a finite gradient, the B matrices a non-zero one, and the base weights none."""
    module = loaded.module
    base = module.lm.get_base_model()
    speed.set_gradient_checkpointing(module.lm, True)
    module.train()
    ids, mask = hf.collate(rows(4, seq, vocab, seed=6), PAD, loaded.device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if loaded.device.type == "cuda"
                else contextlib.nullcontext())
    with autocast:
        logits = module(ids, mask)
    soft_xent(logits, torch.full((4,), 0.7, device=loaded.device)).backward()
    lora = {n: p for n, p in module.named_parameters() if "lora_" in n}
    missing = [n for n, p in lora.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    b_nonzero = sum(1 for n, p in lora.items() if "lora_B" in n and p.grad is not None and p.grad.abs().sum() > 0)
    n_b = sum(1 for n in lora if "lora_B" in n)
    frozen_grads = sum(1 for n, p in module.named_parameters() if "lora_" not in n and p.grad is not None)
    ok = bool(lora) and not missing and b_nonzero == n_b and frozen_grads == 0 and base.is_gradient_checkpointing
    ck.emit("assert_lora_grads", ok=ok, lora_tensors=len(lora), without_grad=len(missing),
            lora_B_nonzero=f"{b_nonzero}/{n_b}", frozen_with_grad=frozen_grads,
            checkpointing=bool(base.is_gradient_checkpointing))
    for p in module.parameters():
        p.grad = None


def block_unsloth(ck: Check) -> None:
    """Reported only: unsloth must be imported before transformers, which this process has already
    loaded, and it needs a checkpoint with a tokenizer, which an offline random model has not."""
    try:
        import importlib.metadata as md

        version = md.version("unsloth")
    except Exception:
        ck.emit("unsloth", skipped="unsloth not installed")
        return
    ck.emit("unsloth", skipped="installed but not exercised here (needs a tokenizer-bearing checkpoint and "
            "a fresh process importing unsloth first)", version=version)


def block_vllm(ck: Check, loaded: hf.Loaded, vocab: int, seq: int, hf_probs_fn: Any) -> None:
    """The engine's ``score_with_vllm`` on the merged model, compared with hf's probabilities."""
    try:
        import vllm
    except Exception as exc:
        ck.emit("vllm", skipped=f"vllm not importable ({type(exc).__name__})")
        return
    if not ck.fits("vllm", 150):
        return
    from core.engine.vllm_backend import score_with_vllm

    seqs = rows(64, seq, vocab, seed=7)
    want = hf_probs_fn(seqs)
    cfg = run_cfg(16, None, loaded.device).replace(
        extra={"vllm_enforce_eager": True, "vllm_gpu_memory_utilization": 0.6})
    try:
        t0 = time.perf_counter()
        got = score_with_vllm(loaded, {"check": seqs}, cfg, lambda m: None)["check"]
        diff = float(np.abs(got - want).max())
        ck.emit("vllm", ok=diff <= 0.05, version=vllm.__version__, seconds_with_startup=round(time.perf_counter() - t0, 1),
                max_abs_diff_vs_hf=diff)
    except Exception as exc:  # report, never crash the check
        ck.emit("vllm", ok=False, version=vllm.__version__, error=f"{type(exc).__name__}: {str(exc)[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy shape on CPU, seconds (the test's mode)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 330; tiny 120)")
    parser.add_argument("--only", default="", help="comma-separated train/score phases to run (the asserts always run)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    shape = TINY if args.tiny else QWEN3_4B
    scale = 16 if args.tiny else 1  # tiny: sequences 1/16 as long, same batch sizes
    ck = Check(args.budget or (120.0 if args.tiny else 330.0), device)
    ck.only = {x for x in args.only.split(",") if x}
    if not cuda and not args.tiny:
        ck.emit("env", ok=False, error="no CUDA device: run with --tiny for the CPU check")
        return 1
    import peft
    import transformers

    ck.emit("env", ok=True, python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
            transformers=transformers.__version__, peft=peft.__version__, device=str(device),
            gpu=torch.cuda.get_device_name(0) if cuda else None, dtype=str(dtype).replace("torch.", ""),
            tiny=args.tiny)
    t0 = time.perf_counter()
    lm, config_name = build_lm(shape, device, dtype)
    ck.sync()
    params = sum(p.numel() for p in lm.parameters())
    ck.emit("build", ok=True, config=config_name, params_b=round(params / 1e9, 3), seconds=round(time.perf_counter() - t0, 1),
            shape={k: shape[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                          "num_key_value_heads", "intermediate_size", "vocab_size")})
    vocab = int(shape["vocab_size"])

    assert_label_rows(ck, lm, device, dtype, vocab, 256 // scale)
    default_on = speed.checkpointing_on(RunConfig(), "causal", torch.device("cuda"))
    default_cpu = speed.checkpointing_on(RunConfig(), "causal", torch.device("cpu"))
    ck.emit("assert_default_checkpointing", ok=default_on and not default_cpu, causal_cuda=default_on, causal_cpu=default_cpu)

    # the engine's own preparation: checkpointing per RunConfig (explicitly on here, so --tiny on CPU
    # checkpoints too), then LoRA r=32 on every projection
    peft_lm = hf.prepare_causal_lm(lm, run_cfg(8, True, device), device, lambda m: None)
    loaded = make_loaded(hf.CausalLabelScorer(peft_lm, LABELS).to(device), device, dtype)
    assert_lora_grads(ck, loaded, vocab, 256 // scale)

    s1, s2 = 1024 // scale, 2048 // scale
    # 3 warm-up and 10 timed steps: a 1 + 4 window undercounted checkpointed training by a third
    phase_train(ck, "train_b8_s1024_ckpt", loaded, 8, s1, True, 3, 10, vocab, 40)
    phase_train(ck, "train_b8_s1024_nockpt", loaded, 8, s1, False, 3, 10, vocab, 25)
    phase_train(ck, "train_b32_s2048_ckpt", loaded, 32, s2, True, 1, 3, vocab, 70)
    phase_train(ck, "train_b32_s2048_nockpt", loaded, 32, s2, False, 1, 3, vocab, 50)
    # side-by-side variants: the masked decoder call (before), half the blocks recomputed
    phase_train(ck, "train_b8_s1024_nockpt_masked", loaded, 8, s1, False, 3, 10, vocab, 25, {"body_mask": True})
    phase_train(ck, "train_b8_s1024_ckpt_half", loaded, 8, s1, True, 3, 10, vocab, 35, {"ckpt_fraction": 0.5})
    phase_train(ck, "train_b8_s1024_nockpt_eager", loaded, 8, s1, False, 3, 10, vocab, 25, {"compile": False})
    phase_train(ck, "train_b8_s1024_ckpt_eager", loaded, 8, s1, True, 3, 10, vocab, 35, {"compile": False})
    phase_profile(ck, loaded, 8, s1, vocab, 30)
    speed.set_gradient_checkpointing(loaded.module.lm, False)

    probe = rows(32, 512 // scale, vocab, seed=8)
    unmerged = hf.predict(loaded, probe, 16)
    with loaded.module.lm.disable_adapter():
        plain = hf.predict(loaded, probe, 16)
    exact = fp32_reference(loaded, probe)
    phase_score(ck, "score_unmerged_b16", loaded, 16, s1, 4, vocab, 20)
    loaded.module.merge_adapters()
    merged = hf.predict(loaded, probe, 16)
    assert_merged(ck, merged, unmerged, plain, exact, dtype)
    phase_score(ck, "score_merged_b16", loaded, 16, s1, 4, vocab, 30)
    phase_score(ck, "score_merged_b64", loaded, 64, s1, 3, vocab, 30)
    phase_score(ck, "score_merged_b16_masked", loaded, 16, s1, 4, vocab, 20, {"body_mask": True})
    phase_score(ck, "score_merged_b16_eager", loaded, 16, s1, 4, vocab, 20, {"compile": False})
    ck.emit("core_done", all_ok=not ck.failed, failed=list(ck.failed))
    probe_liger(ck)
    block_unsloth(ck)
    if cuda:
        block_vllm(ck, loaded, vocab, s1, lambda seqs: hf.predict(loaded, seqs, 16))
    else:
        ck.emit("vllm", skipped="no CUDA device")
    ck.emit("summary", all_ok=not ck.failed, failed=ck.failed, seconds=round(time.perf_counter() - ck.t0, 1))
    return 0 if not ck.failed else 1


if __name__ == "__main__":
    sys.exit(main())
