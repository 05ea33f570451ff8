"""``RunConfig``: the single source of defaults for every run.

CLI flags are generated from the dataclass fields, so a new field is a new flag everywhere.
Idea-specific parameters travel in ``extra`` (``--extra name=value`` or unknown ``--name value``
flags) and become part of the results-cache key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

LrSchedule = Literal["linear", "cosine", "constant", "constant_with_warmup"]
Loss = Literal["xent", "logconf"]
# the choices as tuples (the results cache parses run names with them), derived so they are written once
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
LOSSES: tuple[str, ...] = get_args(Loss)


@dataclass
class RunConfig:
    """Hyperparameters of one run; defaults follow the reference sandbox."""

    data_dir: str = "data/demo-math"
    weak_model: str | None = "Qwen/Qwen1.5-0.5B-Chat"
    strong_model: str = "Qwen/Qwen3-4B-Base"
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    epochs: int = 5
    seed: int = 42
    lr: float = 1e-4
    lr_schedule: LrSchedule = "linear"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    optimizer: Literal["adamw_torch", "sgd", "adafactor"] = "adamw_torch"
    loss: Loss = "xent"
    max_ctx: int = 8192
    train_size: int | None = None
    test_size: int | None = None
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    load_in_4bit: bool = False
    bf16: Literal["auto", "on", "off"] = "auto"
    backend: Literal["auto", "hf", "unsloth", "vllm"] = "auto"
    # generation settings, for ideas that sample from the strong model
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    num_samples: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        """Dataset name = last component of ``data_dir`` (``data/demo-math`` -> ``demo-math``)."""
        return Path(self.data_dir.rstrip("/")).name

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict; unknown keys go to ``extra`` rather than being rejected."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        return cls(**kwargs, extra=extra)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _field_type(name: str) -> Any:
    return get_type_hints(RunConfig)[name]


def parse_scalar(text: str) -> Any:
    """Best-effort typing for ``extra`` values: int, float, bool, null, else string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _converter(tp: Any) -> tuple[Callable[[str], Any], list[Any] | None]:
    """(argparse ``type=``, ``choices=``) for a RunConfig field annotation."""
    args = [a for a in get_args(tp) if a is not type(None)]
    origin = get_origin(tp)
    if origin is Literal:
        return str, list(get_args(tp))
    if args and get_origin(args[0]) is Literal:
        return str, list(get_args(args[0]))
    base = args[0] if args else tp
    if base is bool:
        return (lambda s: str(s).lower() in ("1", "true", "yes", "on")), None
    if type(None) in get_args(tp):
        inner = base

        def conv(s: str, inner: Callable[[str], Any] = inner) -> Any:
            return None if s.lower() in ("none", "null") else inner(s)

        return conv, None
    return base, None


def add_run_config_arguments(parser: argparse.ArgumentParser, defaults: RunConfig | None = None) -> None:
    """Add one ``--flag`` per RunConfig field (underscores become dashes) plus ``--extra k=v``."""
    defaults = defaults or RunConfig()
    group = parser.add_argument_group("run config (RunConfig fields)")
    for f in fields(RunConfig):
        if f.name == "extra":
            continue
        conv, choices = _converter(_field_type(f.name))
        flag = "--" + f.name.replace("_", "-")
        group.add_argument(
            flag,
            dest=f"rc_{f.name}",
            type=conv,
            choices=choices,
            default=None,
            help=f"default: {getattr(defaults, f.name)!r}",
        )
    group.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="idea-specific parameter (repeatable); enters the cache key",
    )


def run_config_from_args(
    ns: argparse.Namespace, unknown: list[str] | None = None, base: RunConfig | None = None
) -> RunConfig:
    """Build a RunConfig from parsed flags; ``unknown`` ``--name value`` pairs go to ``extra``."""
    cfg = base or RunConfig()
    changes: dict[str, Any] = {}
    for f in fields(RunConfig):
        value = getattr(ns, f"rc_{f.name}", None)
        if value is not None and f.name != "extra":
            changes[f.name] = value
    extra = dict(cfg.extra)
    for item in getattr(ns, "extra", []) or []:
        if "=" not in item:
            raise ValueError(f"--extra expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        extra[k.strip().replace("-", "_")] = parse_scalar(v)
    extra.update(parse_unknown_flags(unknown or []))
    return cfg.replace(**changes, extra=extra)


def parse_unknown_flags(tokens: list[str]) -> dict[str, Any]:
    """Turn ``--conf-low 0.3 --flag`` into ``{"conf_low": 0.3, "flag": True}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ValueError(f"unexpected argument {tok!r}")
        name = tok[2:]
        if "=" in name:
            name, value = name.split("=", 1)
            out[name.replace("-", "_")] = parse_scalar(value)
            i += 1
            continue
        if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            out[name.replace("-", "_")] = parse_scalar(tokens[i + 1])
            i += 2
        else:
            out[name.replace("-", "_")] = True
            i += 1
    return out
