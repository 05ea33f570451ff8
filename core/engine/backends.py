"""Which backend trains and which scores, decided once per call with one logged reason.

``auto``: unsloth trains and vllm scores when CUDA is present and the package imports (causal LMs
only); otherwise hf. Asking for ``unsloth``/``vllm`` explicitly where they cannot run also falls
back to hf, with the reason logged, so a config written on a GPU box still runs on a laptop.

unsloth is probed (imported) before vllm, and the engine calls this before anything imports
transformers, so unsloth patches transformers before it loads (its documented requirement).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BackendChoice:
    train: str  # "hf" | "unsloth"
    score: str  # "hf" | "vllm"
    reason: str


def _importable(name: str) -> str | None:
    """None when ``name`` imports, else why not (one short phrase)."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"{name} not importable ({type(exc).__name__})"
    return None


def choose_backend(
    requested: str,
    kind: str,
    cuda: bool | None = None,
    importable: Callable[[str], str | None] = _importable,
) -> BackendChoice:
    """Resolve RunConfig.backend for a model of ``kind`` ("encoder" | "causal")."""
    if requested not in ("auto", "hf", "unsloth", "vllm"):
        raise ValueError(f"unknown backend {requested!r}")
    if requested == "hf":
        return BackendChoice("hf", "hf", "backend hf requested")
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return BackendChoice("hf", "hf", f"backend {requested} -> hf: no CUDA device")
    if kind != "causal":
        return BackendChoice("hf", "hf", f"backend {requested} -> hf: {kind} models train and score on hf")
    train, score, notes = "hf", "hf", []
    if requested in ("auto", "unsloth"):
        why = importable("unsloth")
        if why is None:
            train = "unsloth"
        else:
            notes.append(why)
    if requested in ("auto", "vllm"):
        why = importable("vllm")
        if why is None:
            score = "vllm"
        else:
            notes.append(why)
    tail = f" ({'; '.join(notes)}, using hf there)" if notes else ""
    return BackendChoice(train, score, f"backend {requested}: train={train} score={score}{tail}")
