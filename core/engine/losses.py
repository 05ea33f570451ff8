"""Training losses over two-class logits with soft targets P(class 1).

``xent``: cross-entropy against the soft target distribution [1 - t, t].
``logconf``: the auxiliary-confidence loss of Burns et al. (2023), "Weak-to-strong generalization", as
the reference's vanilla_w2s defines it (``LogconfLossTrainer``): the weak model's *soft* labels are
mixed with the strong model's own hardened predictions, hardened at the threshold that gives them the
weak labels' class balance in the batch; the mixing weight ramps linearly from 0 to ``alpha`` over the
first ``warmup`` fraction of the optimizer steps and stays there. Defaults are the reference's:
``alpha`` 0.5 (its ``aux_coef``), ``warmup`` 0.2 (its trainer's ``warmup_frac``); RunConfig.extra
``logconf_alpha`` and ``logconf_warmup`` change them.

Deliberate difference: the reference takes the cross-entropy over the full vocabulary at the label
position (every other token has target 0); ours is over the two label tokens only (the engine never
computes full-vocabulary logits), so the loss does not also push mass off the other tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOGCONF_ALPHA = 0.5
LOGCONF_WARMUP = 0.2


def soft_xent(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean of -sum_c target_c * log p_c for two-class logits [B, 2] and targets [B] in [0, 1]."""
    logp = F.log_softmax(logits.float(), dim=-1)
    t = targets.float().clamp(0.0, 1.0)
    per_row = -((1.0 - t) * logp[:, 0] + t * logp[:, 1])
    if weights is None:
        return per_row.mean()
    w = weights.float()
    return (per_row * w).sum() / w.sum().clamp_min(1e-12)


def logconf_coef(step_frac: float, alpha: float = LOGCONF_ALPHA, warmup: float = LOGCONF_WARMUP) -> float:
    """Mixing weight at a point of training: linear ramp 0 -> alpha over the warm-up, then alpha."""
    if warmup <= 0:
        return alpha
    return alpha * min(1.0, max(0.0, step_frac) / warmup)


def hardened_predictions(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The strong model's own labels (1.0 / 0.0) in the reference's terms: with p0 = P(class 0) and
    m1 the mean weak target, a row is class 0 when p0 >= quantile(p0, m1), else class 1, so about
    1 - m1 of the batch is class 0. Computed without gradient."""
    p0 = torch.softmax(logits.detach().float(), dim=-1)[:, 0]
    m1 = targets.float().clamp(0.0, 1.0).mean()
    threshold = torch.quantile(p0, m1)
    return (p0 < threshold).float()


def logconf_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_frac: float,
    weights: torch.Tensor | None = None,
    alpha: float = LOGCONF_ALPHA,
    warmup: float = LOGCONF_WARMUP,
) -> torch.Tensor:
    """Cross-entropy against (1 - c) * weak target + c * hardened own prediction (c = logconf_coef).

    ``targets`` should be the weak model's soft P(class 1), as in the reference. A batch of one row is
    plain cross-entropy: the reference's threshold would call its single row class 0 whatever it is."""
    coef = logconf_coef(step_frac, alpha, warmup)
    t = targets.float().clamp(0.0, 1.0)
    if coef == 0.0 or logits.shape[0] < 2:
        return soft_xent(logits, t, weights)
    mixed = (1.0 - coef) * t + coef * hardened_predictions(logits, t)
    return soft_xent(logits, mixed, weights)


def compute_loss(
    name: str,
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_frac: float,
    weights: torch.Tensor | None = None,
    alpha: float = LOGCONF_ALPHA,
    warmup: float = LOGCONF_WARMUP,
) -> torch.Tensor:
    """Dispatch on RunConfig.loss."""
    if name == "xent":
        return soft_xent(logits, targets, weights)
    if name == "logconf":
        return logconf_loss(logits, targets, step_frac, weights, alpha, warmup)
    raise ValueError(f"unknown loss {name!r} (choose xent or logconf)")
