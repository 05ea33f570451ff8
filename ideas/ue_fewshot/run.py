"""ue_fewshot: ue_zeroshot followed by few-shot rounds. Each round rescores every train_unlabel row
with k demonstrations (k = 2, then 4, then 16 by default) drawn from the *other* train_unlabel rows
and labelled by the previous round (``--demo-labels weak``: by the weak model instead); ground truth
is never shown. Each round ends with the consistency fix; the last round's labels train the
strong model. The steps live in the SDK (``experiment.elicit_labels``); see README.md.
"""

from __future__ import annotations

import time
from typing import Any

from core.common.config import RunConfig
from core.run import experiment

# The reference's schedule (zero-shot -> 2-shot -> 4-shot -> 16-shot); it joins the cache key.
# Written with "-": on the command line "2_4_16" would read as the number 2416.
DEFAULTS: dict[str, Any] = {"num_demos": "2-4-16"}


def run_experiment(cfg: RunConfig) -> dict[str, Any]:
    counts = experiment.demo_schedule(cfg.extra["num_demos"])
    data = experiment.load_label_free(cfg)
    start = time.time()
    got = experiment.elicit_labels(
        cfg, data, schedule=counts, demo_labels=str(cfg.extra.get("demo_labels", "self")),
        balance=bool(cfg.extra.get("balance", False)),  # the reference balances only in ue_zeroshot
    )
    labeling_time = time.time() - start
    return experiment.transfer(
        cfg, data, got.rows, got.targets, progress_span=(0.3, 1.0),
        labeling_time=labeling_time, labeling_logs=got.stages, balance_info=got.balance,
    )
