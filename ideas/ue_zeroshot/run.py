"""ue_zeroshot: label train_unlabel with the untrained strong model's own zero-shot judgement, then
train the strong model on those labels (no weak label is used).

The reference recipe (its ICM initialisation): a True/False claim per row scored by the pretrained
model (preference pairs also in flipped order), the consistency fix over consistency groups,
confidence balancing of the label prior, then ordinary training and test predictions. The steps
live in the SDK (``experiment.elicit_labels``); see README.md for the encoder (demo) analogue.
"""

from __future__ import annotations

import time
from typing import Any

from core.common.config import RunConfig
from core.run import experiment

# No parameters of its own: its cache key is the reference's (models + training hyperparameters).
DEFAULTS: dict[str, Any] = {}


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    data = experiment.load_label_free(cfg)
    start = time.time()
    got = experiment.elicit_labels(cfg, data, balance=bool(cfg.extra.get("balance", True)))
    labeling_time = time.time() - start
    return experiment.transfer(
        cfg, data, got.rows, got.targets, progress_span=(0.3, 1.0),
        labeling_time=labeling_time, labeling_logs=got.stages, balance_info=got.balance,
    )
