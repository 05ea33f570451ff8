"""Tiny labelled datasets and fake baseline results for the baselines/runner/ideas tests.

Rows are one-word sentiment judgements (binary format), small enough for MiniLM to train in seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from core.common.config import RunConfig
from core.data.datasets import load_split
from core.data.prepare import prepare_dataset
from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, ceiling_key, weak_artifacts_key, write_result

GOOD = ["wonderful", "happy", "great", "lovely", "excellent", "joyful", "superb", "pleasant", "delightful",
        "brilliant", "cheerful", "fantastic", "kind", "perfect", "splendid", "warm", "bright", "calm"]
BAD = ["terrible", "sad", "awful", "horrible", "dreadful", "miserable", "nasty", "painful", "gloomy",
       "hateful", "rotten", "cruel", "bitter", "ugly", "grim", "tragic", "angry", "hostile"]


def _rows(words: list[tuple[str, bool]], subset: str) -> list[dict[str, Any]]:
    out = []
    for word, positive in words:
        claim = random.Random(word).random() < 0.5
        out.append({
            "question": f"Is the word '{word}' positive?",
            "choice": "yes" if claim else "no",
            "label": claim == positive,
            "subset": subset,
        })
    return out


def make_dataset(ws: Path, name: str = "tiny") -> dict[str, list[dict[str, Any]]]:
    """Write labeled_data/<name>/ (three splits) and its label-free view data/<name>/."""
    words = [(w, True) for w in GOOD] + [(w, False) for w in BAD]
    random.Random(0).shuffle(words)
    splits = {
        "train_label": _rows(words[:14], "a"),
        "train_unlabel": _rows(words[14:26], "b"),
        "test": _rows(words[26:], "c"),
    }
    src = ws / "labeled_data" / name
    src.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (src / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prepare_dataset(src, ws / "data" / name)
    return splits


def tiny_config(name: str = "tiny", **changes: Any) -> RunConfig:
    """Demo models, one short epoch: seconds on a CPU."""
    base = dict(data_dir=f"data/{name}", weak_model="demo-weak", strong_model="demo-strong", epochs=1,
                batch_size=8, lr=1e-3, max_ctx=64, seed=42)
    base.update(changes)
    return RunConfig(**base)


def fake_baselines(ws: Path, cfg: RunConfig, seeds: list[int], weak_acc: float = 0.6,
                   strong_acc: float = 0.9) -> None:
    """Cached weak/ceiling results as the producers write them, without training anything."""
    ds = cfg.dataset
    ids = load_split(ws / "data" / ds / "train_unlabel.jsonl").ids
    for seed in seeds:
        write_result(ds, WEAK_ARTIFACTS, weak_artifacts_key(cfg), seed, {
            "weak_model": cfg.weak_model, "weak_acc": weak_acc, "hard_label_acc": weak_acc,
            "soft_labels": [[0.3, 0.7] if i % 2 else [0.8, 0.2] for i in range(len(ids))], "ids": ids,
            "seed": seed, "idea_name": WEAK_ARTIFACTS,
        })
        write_result(ds, TRAIN_CEILING, ceiling_key(cfg), seed, {
            "strong_model": cfg.strong_model, "strong_acc": strong_acc, "seed": seed,
            "idea_name": TRAIN_CEILING,
        })
