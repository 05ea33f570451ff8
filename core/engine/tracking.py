"""Optional Weights & Biases logging: on only when ``wandb`` imports and is configured.

Configured means ``WANDB_API_KEY`` or ``WANDB_MODE`` is set in the environment; the key itself is
never read or logged here (wandb picks it up).
"""

from __future__ import annotations

import os
from typing import Any


def wandb_run(name: str, config: dict[str, Any]) -> Any | None:
    """A started wandb run, or None when W&B is not installed or not configured."""
    if not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")):
        return None
    try:
        import wandb
    except Exception:
        return None
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "w2s"), name=name, config=config, reinit=True)
