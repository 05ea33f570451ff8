"""The training engine: train a two-class classifier on rows with hard or soft targets and return
P(class 1) for every row of every predict set.

    probs = train_and_predict("demo-strong", "binary", rows, targets, {"test": test_rows}, cfg)

Model names resolve through :mod:`core.engine.models`; prompts through :mod:`core.engine.prompts`;
the backend (hf | unsloth | vllm) through :mod:`core.engine.backends`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.data.datasets import Format
from core.engine.backends import BackendChoice, choose_backend
from core.engine.models import ModelSpec, default_models, detect_kind, read_model_config, resolve_model

__all__ = [
    "ModelSpec",
    "BackendChoice",
    "default_models",
    "resolve_model",
    "train_and_predict",
    "model_kind",
]

_logger = logging.getLogger("w2s.engine")


def model_kind(spec: ModelSpec) -> str:
    """"encoder" or "causal" for a spec, reading only the checkpoint's config.json (without importing
    transformers: unsloth must be imported before it to patch it)."""
    if spec.kind:
        return spec.kind
    return detect_kind(read_model_config(spec))


def _validate(
    fmt: str, train_rows: list[dict[str, Any]], targets: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if fmt not in ("preference", "binary"):
        raise ValueError(f"fmt must be 'preference' or 'binary', got {fmt!r}")
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    if len(t) != len(train_rows):
        raise ValueError(f"{len(train_rows)} train rows but {len(t)} targets")
    if len(t) and (not np.all(np.isfinite(t)) or t.min() < 0 or t.max() > 1):
        raise ValueError("train_targets must be probabilities in [0, 1]")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != len(t):
            raise ValueError(f"{len(t)} targets but {len(w)} sample weights")
        if len(w) and (not np.all(np.isfinite(w)) or w.min() < 0):
            raise ValueError("sample_weights must be finite and >= 0")
    return t, w


def train_and_predict(
    model: str,
    fmt: Format,
    train_rows: list[dict[str, Any]],
    train_targets: np.ndarray,
    predict_sets: dict[str, list[dict[str, Any]]],
    cfg: RunConfig,
    sample_weights: np.ndarray | None = None,
    progress: Callable[[float, str], None] | None = None,
    log: Callable[[str], None] | None = None,
    *,
    apply_recommended: bool = True,
    keep: Callable[[Any], None] | None = None,
) -> dict[str, np.ndarray]:
    """Fine-tune ``model`` on (train_rows, P(class 1) targets), then score each predict set.

    Returns ``{set name: float64 array of P(class 1)}`` in the given row order. With
    ``apply_recommended`` the registry's per-model settings replace RunConfig values the user left
    at their defaults (see ``ModelSpec.effective_config``) and its ``passes_per_epoch`` applies.
    ``keep`` receives the trained model (``hf_backend.Loaded``) to score more rows later with
    ``hf_backend.predict``; such a model is always scored on hf, never handed to vLLM.
    """
    say = log or _logger.info
    targets, weights = _validate(fmt, train_rows, train_targets, sample_weights)
    spec = resolve_model(model)
    if apply_recommended:
        cfg = spec.effective_config(cfg)
        if spec.passes_per_epoch != 1:
            cfg = cfg.replace(epochs=spec.training_epochs(cfg))
            say(f"{spec.name}: {cfg.epochs} passes over the training rows "
                f"({spec.passes_per_epoch} per epoch, set by the model registry)")
    kind = model_kind(spec)
    late = "transformers" in sys.modules  # choose_backend imports unsloth when it will train
    choice = choose_backend(cfg.backend, kind)
    say(choice.reason)
    if choice.train == "unsloth" and late:
        say("note: transformers was imported before unsloth in this process; unsloth may patch late")
    from core.engine.tracking import wandb_run

    tracker = wandb_run(f"{spec.name}-seed{cfg.seed}", {**cfg.to_dict(), "model": spec.name, "fmt": fmt})
    lm_loader = scorer = None
    if choice.train == "unsloth":
        from core.engine.unsloth_backend import load_causal_lm

        lm_loader = load_causal_lm
    if choice.score == "vllm" and keep is None:
        from core.engine.vllm_backend import score_with_vllm

        scorer = score_with_vllm
    from core.engine.hf_backend import train_and_predict_hf

    try:
        return train_and_predict_hf(
            spec, fmt, list(train_rows), targets, predict_sets, cfg, weights, progress, say,
            lm_loader=lm_loader, scorer=scorer, tracker=tracker, keep=keep,
        )
    finally:
        if tracker is not None:
            tracker.finish()
