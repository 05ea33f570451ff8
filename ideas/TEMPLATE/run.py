"""TEMPLATE: copy me with `w2s ideas new NAME`, then change `choose_training_set`.

The runner builds the weak artifacts and the ceiling, then runs `run_experiment` in a sandbox that
holds only label-free rows and the weak model's P(class 1) for this seed (no accuracies: the
leaderboard shows those). Return a prediction for every test row: the referee scores them, computes
PGR and caches the result; nothing else you return is ranked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.run import experiment

# Your idea's own parameters (pass `--name value` to `w2s run`); they become part of the cache key.
DEFAULTS: dict[str, Any] = {}


def choose_training_set(rows: list[dict], weak_p1: np.ndarray) -> tuple[list[dict], np.ndarray, np.ndarray | None]:
    """The method: which rows to train the strong model on, with which targets and weights.

    This starting point trains on the weak model's *soft* labels, weighting each row by how far the
    weak model is from 50/50. Replace it with your own idea.
    """
    weights = 0.5 + np.abs(weak_p1 - 0.5)
    return rows, weak_p1, weights


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    data = experiment.load_label_free(cfg)
    weak_p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    experiment.log(f"{len(data.train)} train rows, weak labels mean P(class 1) {weak_p1.mean():.3f}")
    rows, targets, weights = choose_training_set(data.train, weak_p1)
    return experiment.transfer(cfg, data, rows, targets, sample_weights=weights)
