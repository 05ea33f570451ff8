"""train_only_on_confident_labels: drop rows whose weak P(class 1) lies in [conf_low, conf_high].

The remaining rows keep their hard weak labels. Filter statistics are recorded in the result
(``filter_stats``, ``confidence_thresholds``) in the reference archive's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.common.errors import UserError
from core.run import experiment

# Idea parameters: they join RunConfig.extra and the cache key (`_conf_high0.75_conf_low0.25`).
DEFAULTS = {"conf_low": 0.25, "conf_high": 0.75}


def confident_mask(weak_p1: np.ndarray, low: float, high: float) -> np.ndarray:
    """True for rows to keep: P(class 1) strictly below ``low`` or strictly above ``high``."""
    return (weak_p1 < low) | (weak_p1 > high)


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    low, high = float(cfg.extra["conf_low"]), float(cfg.extra["conf_high"])
    if not 0.0 <= low <= high <= 1.0:
        raise UserError(f"need 0 <= conf_low <= conf_high <= 1, got conf_low={low} conf_high={high}")
    data = experiment.load_label_free(cfg)
    weak_p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    keep = confident_mask(weak_p1, low, high)
    conf = experiment.confidence(weak_p1)
    rows = [r for r, k in zip(data.train, keep, strict=True) if k]
    experiment.log(f"confident labels: kept {len(rows)}/{len(data.train)} rows outside [{low}, {high}]")
    stats = {
        "total_samples": int(len(keep)),
        "kept_samples": int(keep.sum()),
        "filtered_samples": int((~keep).sum()),
        "retention_rate": float(keep.mean()) if len(keep) else 0.0,
        "low_threshold": low,
        "high_threshold": high,
        "avg_confidence_all": float(conf.mean()) if len(conf) else None,
        "avg_confidence_filtered": float(conf[~keep].mean()) if (~keep).any() else None,
    }
    return experiment.transfer(
        cfg, data, rows, experiment.hard_labels(weak_p1[keep]),
        filter_stats=stats, confidence_thresholds={"low": low, "high": high},
    )
