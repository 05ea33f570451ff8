"""``RunConfig``: the single source of defaults for every run.

CLI flags are generated from the dataclass fields, so a new field is a new flag everywhere.
Idea-specific parameters travel in ``extra`` (``--extra name=value`` or unknown ``--name value``
flags) and become part of the results-cache key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from core.common.errors import UserError

LrSchedule = Literal["linear", "cosine", "constant", "constant_with_warmup"]
Loss = Literal["xent", "logconf"]
# the choices as tuples (the results cache parses run names with them), derived so they are written once
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
LOSSES: tuple[str, ...] = get_args(Loss)


@dataclass
class RunConfig:
    """Hyperparameters of one run; defaults follow the reference sandbox (its ``RunConfig`` and the
    argparse defaults its runs get: 5 epochs, lr 1e-4 linear with 10% warm-up, batch 32, weight decay
    0, LoRA r = alpha = 32, max_ctx 8192). What the fields mean on each model kind, where the engine
    follows the reference and where the demo encoders deliberately differ:
    ``ideas/vanilla_w2s/README.md`` ("Recipe")."""

    data_dir: str = "data/demo-math"
    weak_model: str | None = "Qwen/Qwen1.5-0.5B-Chat"
    strong_model: str = "Qwen/Qwen3-4B-Base"
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    epochs: int = 5
    seed: int = 42
    lr: float = 1e-4
    lr_schedule: LrSchedule = "linear"
    warmup_ratio: float = 0.1  # causal LMs: ceil(ratio * steps) warm-up steps, as transformers' Trainer
    weight_decay: float = 0.0  # the reference's CLI default (its dataclass says 0.01; its runs got 0.0)
    # adamw_torch: AdamW as the reference trains causal LMs (betas 0.9/0.95, eps 1e-8), with 8-bit
    # states (bitsandbytes AdamW8bit, the reference's adamw_8bit) on CUDA when bitsandbytes is
    # installed; encoders keep torch's betas 0.9/0.999 (the demo recipe). optimizers.choose_optimizer
    optimizer: Literal["adamw_torch", "sgd", "adafactor"] = "adamw_torch"
    loss: Loss = "xent"
    max_ctx: int = 8192
    train_size: int | None = None
    test_size: int | None = None
    lora_r: int = 32
    # causal LMs use rsLoRA (adapter scale alpha/sqrt(r), as the reference); encoders alpha/r
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    load_in_4bit: bool = False
    # gradient checkpointing (recompute activations in the backward pass): None = auto, on for causal
    # LMs on CUDA (a 4B model at batch 32 x 8192 tokens does not fit otherwise), off elsewhere. It
    # changes memory and speed, not results, so it stays out of the results-cache key.
    # (``extra.compile`` auto|on|off: the causal label scorer's decoder blocks are compiled on CUDA by
    # default, about 80 s once per process; a failing compiler falls back to eager with one log line.)
    gradient_checkpointing: bool | None = None
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
    def from_dict(cls, data: dict[str, Any], strict: bool = False) -> RunConfig:
        """Build from a dict; unknown keys go to ``extra``, or with ``strict`` are refused (ConfigError)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in data if k not in known)
        if strict and unknown:
            raise ConfigError(unknown[0], "unknown RunConfig field (idea parameters go in 'extra')")
        kwargs = {k: v for k, v in data.items() if k in known}
        given = kwargs.pop("extra", {}) or {}
        if not isinstance(given, dict):
            raise ConfigError("extra", f"expected an object of idea parameters, not {given!r}"[:200])
        extra = dict(given)
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


class ConfigError(UserError, ValueError):
    """One RunConfig field is wrong; ``field`` names it so each front end can say ``--lr`` or ``config.lr``."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message

    def as_flag(self) -> UserError:
        """The same mistake as a CLI flag: ``--lr: must be > 0``."""
        return UserError(f"--{self.field.replace('_', '-')}: {self.message}")


# (lowest, highest, lowest is allowed) for the numeric fields; None: unbounded on that side
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "batch_size": (1, None, True),
    "gradient_accumulation_steps": (1, None, True),
    "epochs": (1, None, True),
    "lr": (0, None, False),
    "warmup_ratio": (0, 1, True),
    "weight_decay": (0, None, True),
    "max_ctx": (1, None, True),
    "train_size": (1, None, True),
    "test_size": (1, None, True),
    "lora_r": (1, None, True),
    "lora_alpha": (0, None, False),
    "lora_dropout": (0, 1, True),
    "max_new_tokens": (1, None, True),
    "temperature": (0, None, True),
    "top_p": (0, 1, False),
    "num_samples": (1, None, True),
}


def _check_type(name: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the field's annotation; ints are accepted where floats are."""
    options = get_args(tp) if get_origin(tp) in (Union, UnionType) else (tp,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(name, "must not be null")
    for opt in options:
        if opt is type(None):
            continue
        if get_origin(opt) is Literal:
            if value in get_args(opt) and isinstance(value, str):
                return value
            continue
        if opt is bool and isinstance(value, bool):
            return value
        if opt is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if opt is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(name, f"must be a finite number, not {value!r}")
            return float(value)
        if opt is str and isinstance(value, str):
            return value
        if get_origin(opt) is dict or opt is dict:
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                return value
    choices = [c for o in options if get_origin(o) is Literal for c in get_args(o)]
    if choices:
        raise ConfigError(name, f"expected one of {', '.join(map(str, choices))}, not {value!r}")
    kinds = [getattr(o, "__name__", str(o)) for o in options if o is not type(None)]
    what = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false",
            "dict": "an object"}
    expected = " or ".join(what.get(k, k) for k in kinds)
    return _raise(name, f"expected {expected}, not {value!r}"[:200])


def _raise(name: str, message: str) -> Any:
    raise ConfigError(name, message)


def check_data_dir(data_dir: str, root: Path) -> Path:
    """The prepared, label-free dataset folder ``data_dir`` names: under ``<root>/data/``, with test.jsonl."""
    if not data_dir.strip():
        raise ConfigError("data_dir", "give a dataset folder such as data/demo-math")
    raw = Path(data_dir).expanduser()
    if "labeled_data" in raw.parts:
        raise ConfigError("data_dir", f"{data_dir}: runs read the label-free view under data/, never labeled_data/")
    folder = (raw if raw.is_absolute() else root / raw).resolve()
    base = (root / "data").resolve()
    if folder == base or not folder.is_relative_to(base):
        raise ConfigError("data_dir", f"{data_dir}: must be a dataset folder under {root / 'data'}")
    if not (folder / "test.jsonl").is_file():
        raise ConfigError("data_dir", f"{data_dir}: no test.jsonl (is it a prepared dataset? see `w2s data prepare`)")
    return folder


def validate_run_config(cfg: RunConfig, root: Path | None = None, check_data: bool = True) -> RunConfig:
    """The one check every entry (CLI, TUI, API, agent) applies before a job is queued: types,
    ranges and, with ``check_data``, a prepared dataset under ``<root>/data/`` (default: the
    workspace). Raises ConfigError naming the field; returns ``cfg`` with ints widened to floats."""
    hints = get_type_hints(RunConfig)
    changes: dict[str, Any] = {}
    for f in fields(RunConfig):
        value = getattr(cfg, f.name)
        checked = _check_type(f.name, value, hints[f.name])
        if checked is not value:
            changes[f.name] = checked
        bounds = _RANGES.get(f.name)
        if bounds is not None and checked is not None:
            lo, hi, inclusive = bounds
            if lo is not None and (checked < lo or (checked == lo and not inclusive)):
                raise ConfigError(f.name, f"must be {'>=' if inclusive else '>'} {lo:g}, not {checked!r}")
            if hi is not None and checked > hi:
                raise ConfigError(f.name, f"must be <= {hi:g}, not {checked!r}")
    for name in ("strong_model", "weak_model"):
        if isinstance(getattr(cfg, name), str) and not getattr(cfg, name).strip():
            raise ConfigError(name, "must name a model")
    if check_data:
        if root is None:
            from core.common.workspace import paths

            root = paths().root
        check_data_dir(cfg.data_dir, root)
    return cfg.replace(**changes) if changes else cfg
