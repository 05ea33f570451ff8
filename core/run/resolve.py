"""The configuration a seed really runs with, resolved the same way wherever a run is submitted.

Light on purpose: importing it loads no torch (``core.engine`` does, so the model registry is read
only when a config is resolved), because the TUI and the referee import the submit path at start.
"""

from __future__ import annotations

from typing import Any

from core.common.config import RunConfig


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def prepare_config(cfg: RunConfig, defaults: dict[str, Any] | None = None, cuda: bool | None = None) -> RunConfig:
    """The configuration a seed really runs with, so cache keys say what was trained.

    Models left at the RunConfig defaults become the demo pair on demo datasets or without CUDA;
    the strong model's recommended hyperparameters replace values still at their defaults; the
    idea's own ``DEFAULTS`` join ``extra`` (user values win). Idempotent.
    """
    from core.engine.models import default_models, resolve_model  # loads torch (core.engine's package)

    base = RunConfig()
    if cfg.weak_model == base.weak_model and cfg.strong_model == base.strong_model:
        weak, strong = default_models(cfg.dataset, has_cuda() if cuda is None else cuda)
        cfg = cfg.replace(weak_model=weak, strong_model=strong)
    cfg = resolve_model(cfg.strong_model).effective_config(cfg)
    if defaults:
        cfg = cfg.replace(extra={**defaults, **cfg.extra})
    return cfg
