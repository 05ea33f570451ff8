"""Which optimizer and lr warm-up a training run gets: the reference's AdamW recipe for causal LMs
(betas 0.9/0.95, 8-bit states through bitsandbytes on CUDA), torch's defaults for the demo encoders."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from core.common.config import RunConfig

# AdamW as the reference trains causal LMs (its TrainingArguments: adam_beta1 0.9, adam_beta2 0.95,
# adam_epsilon left at 1e-8, optim "adamw_8bit"). The demo encoders keep torch's defaults (0.9, 0.999):
# their recipe was tuned with them and every cached demo row was trained so.
CAUSAL_ADAM_BETAS = (0.9, 0.95)
ENCODER_ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class OptimizerChoice:
    """Which optimizer a run gets and with what settings; recorded in the training summary, because
    the 8-bit one depends on what is installed and its results differ slightly from 32-bit AdamW."""

    name: str  # "bnb.AdamW8bit" | "torch.AdamW" | "torch.SGD" | "transformers.Adafactor"
    betas: tuple[float, float] | None
    eps: float | None
    weight_decay: float
    why: str


def bitsandbytes_available() -> bool:
    """True when ``bitsandbytes`` imports (its 8-bit optimizers need CUDA besides)."""
    try:
        import bitsandbytes  # noqa: F401  # an optional package, absent on CPU machines
    except Exception:  # missing, or installed without a usable CUDA runtime
        return False
    return True


def choose_optimizer(
    cfg: RunConfig, kind: str, device: torch.device, have_bnb: bool | None = None
) -> OptimizerChoice:
    """The optimizer for ``cfg.optimizer`` on this model kind and device.

    ``adamw_torch`` (the default) is the reference's AdamW on causal LMs: betas (0.9, 0.95), eps
    1e-8, 8-bit states through bitsandbytes when the model is on CUDA and bitsandbytes imports (the
    reference's ``adamw_8bit``), else torch's AdamW with the same betas. Encoders keep torch's AdamW
    with its default betas. ``have_bnb`` overrides the import probe (tests)."""
    wd = float(cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return OptimizerChoice("torch.SGD", None, None, wd, "optimizer=sgd (momentum 0.9)")
    if cfg.optimizer == "adafactor":
        return OptimizerChoice("transformers.Adafactor", None, None, wd, "optimizer=adafactor")
    if cfg.optimizer != "adamw_torch":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
    if kind != "causal":
        return OptimizerChoice("torch.AdamW", ENCODER_ADAM_BETAS, ADAM_EPS, wd, "encoder: the demo recipe")
    if device.type == "cuda":
        bnb = bitsandbytes_available() if have_bnb is None else have_bnb
        if bnb:
            return OptimizerChoice("bnb.AdamW8bit", CAUSAL_ADAM_BETAS, ADAM_EPS, wd, "causal LM on CUDA: the reference's adamw_8bit")
        return OptimizerChoice(
            "torch.AdamW", CAUSAL_ADAM_BETAS, ADAM_EPS, wd, "causal LM on CUDA without bitsandbytes: 32-bit states"
        )
    return OptimizerChoice("torch.AdamW", CAUSAL_ADAM_BETAS, ADAM_EPS, wd, "causal LM on CPU: 32-bit states")


def make_optimizer(
    cfg: RunConfig, params: list[nn.Parameter], choice: OptimizerChoice | None = None
) -> torch.optim.Optimizer:
    """Build ``choice`` (default: what ``choose_optimizer`` picks for an encoder on these params'
    device); torch's AdamW is fused (one kernel per step) when every parameter is on CUDA."""
    if choice is None:
        device = params[0].device if params else torch.device("cpu")
        choice = choose_optimizer(cfg, "encoder", device)
    if choice.name == "bnb.AdamW8bit":  # UNVERIFIED here: no bitsandbytes on the machine that wrote it
        import bitsandbytes as bnb
        optimizer: torch.optim.Optimizer = bnb.optim.AdamW8bit(
            params, lr=cfg.lr, betas=choice.betas, eps=choice.eps, weight_decay=choice.weight_decay
        )
        return optimizer
    if choice.name == "torch.AdamW":
        fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
        betas = choice.betas or ENCODER_ADAM_BETAS
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=betas, eps=choice.eps or ADAM_EPS, weight_decay=choice.weight_decay,
            fused=fused or None,
        )
    if choice.name == "torch.SGD":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=choice.weight_decay, momentum=0.9)
    if choice.name == "transformers.Adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            params, lr=cfg.lr, weight_decay=choice.weight_decay, scale_parameter=False, relative_step=False
        )
    raise ValueError(f"unknown optimizer {choice.name!r}")


def warmup_steps(cfg: RunConfig, total_steps: int, kind: str) -> int:
    """Warm-up steps of the lr schedule: for causal LMs rounded up, as transformers' Trainer does for
    the reference (``ceil(warmup_ratio * steps)``); the demo encoders keep their rounding down (their
    recipe and cached rows were made with it)."""
    raw = cfg.warmup_ratio * total_steps
    return math.ceil(raw) if kind == "causal" else int(raw)
