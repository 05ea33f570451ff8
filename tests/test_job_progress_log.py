"""A training job's log is not silent between loading a model and the end of an epoch: the runner
echoes its progress message (the loss) into the log at most every 10 s, and writes progress.json."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from core.app import seed_job


def test_progress_reaches_the_log_every_ten_seconds(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(seed_job, "time", SimpleNamespace(time=lambda: clock[0], strftime=time.strftime))
    lines: list[str] = []
    progress = seed_job._ProgressFile(tmp_path, lines.append)
    for step in range(30):  # one message a second, as a CPU training reports per batch
        clock[0] += 1.0
        progress(step / 30, f"transfer: train epoch 1/1 loss {1 / (step + 1):.4f}")
    assert lines == ["[progress] 30% transfer: train epoch 1/1 loss 0.1000",
                     "[progress] 63% transfer: train epoch 1/1 loss 0.0500",
                     "[progress] 97% transfer: train epoch 1/1 loss 0.0333"]
    saved = json.loads((tmp_path / "progress.json").read_text())
    assert saved["message"].endswith("loss 0.0333") and saved["progress"] == round(29 / 30, 4)
