"""A run config and fake baseline results for the tiny dataset ``tests.conftest.make_dataset`` writes
(the baselines/runner/ideas/TUI tests): demo models, so everything trains in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.common.config import RunConfig
from core.data.datasets import load_split
from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, ceiling_key, weak_artifacts_key, write_result


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


def tiny_llama(tok: Any, seed: int = 0) -> Any:
    """A 2-layer Llama (width 32) with random weights seeded, over ``tok``'s vocabulary: the causal
    model the engine, claims and GRPO tests build from a config (no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)
