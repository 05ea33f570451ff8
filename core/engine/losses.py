"""Training losses over two-class logits with soft targets P(class 1).

``xent``: cross-entropy against the soft target distribution [1 - t, t].
``logconf``: the auxiliary-confidence loss of Burns et al. (2023), "Weak-to-strong generalization":
the target is mixed with the strong model's own hardened predictions, thresholded so that the
batch keeps the weak labels' class balance; the mixing weight ramps from 0 to ``alpha`` over the
first ``warmup`` fraction of training (defaults 0.75 and 0.2, RunConfig.extra ``logconf_alpha``,
``logconf_warmup``), so the model first fits the weak labels and then trusts itself more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOGCONF_ALPHA = 0.75
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


def logconf_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    step_frac: float,
    weights: torch.Tensor | None = None,
    alpha: float = LOGCONF_ALPHA,
    warmup: float = LOGCONF_WARMUP,
) -> torch.Tensor:
    """Cross-entropy against (1 - c) * weak target + c * hardened own prediction (c = logconf_coef)."""
    coef = logconf_coef(step_frac, alpha, warmup)
    t = targets.float().clamp(0.0, 1.0)
    if coef == 0.0 or logits.shape[0] < 2:
        return soft_xent(logits, t, weights)
    p1 = torch.softmax(logits.detach().float(), dim=-1)[:, 1]
    prior = float(t.mean())  # weak labels' share of class 1 in this batch
    threshold = torch.quantile(p1, 1.0 - prior)
    hard = (p1 >= threshold).float() if prior > 0 else torch.zeros_like(p1)
    mixed = (1.0 - coef) * t + coef * hard
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
