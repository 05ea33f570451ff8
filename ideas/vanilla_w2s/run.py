"""vanilla_w2s: train the strong model on the weak model's hard labels (cross-entropy), or on its
soft labels with logconf.

``--loss logconf`` uses the auxiliary-confidence loss of the original W2S paper (Burns et al. 2023);
its warm-up fraction is the engine's ``logconf_warmup`` extra (default 0.2), its weight
``logconf_alpha`` (default 0.5, the reference's).
"""

from __future__ import annotations

from typing import Any

from core.common.config import RunConfig
from core.run import experiment


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    data = experiment.load_label_free(cfg)
    weak_p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    # xent trains on the hard weak labels; logconf on the weak soft labels, as the reference does
    targets = weak_p1 if cfg.loss == "logconf" else experiment.hard_labels(weak_p1)
    return experiment.transfer(cfg, data, data.train, targets, loss=cfg.loss)
