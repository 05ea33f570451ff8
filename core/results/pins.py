"""Pinned baselines: one spec (hyperparameters + seed list) per dataset and model pair.

Every PGR is measured against the means of the weak-artifacts and ceiling accuracies over the
*pinned seeds*, built with the *pinned hyperparameters*, whatever the idea itself trained with: an
idea cannot lower its own weak baseline by choosing its lr or epochs, and running one more idea seed
never adds a baseline seed to the mean.

Defaults, used until an operator pins something else (``w2s baselines pin``):

- the demo pair (``demo-weak``/``demo-strong``): the demo registry's recommended values
  (``core.engine.models.DEMO_RECOMMENDED``; a test keeps the copy here equal) and seeds 42-44, what
  the repository's ``cache_results.tar.gz`` holds;
- any other pair: the reference's spec, 5 epochs, lr 1e-4, batch 32, linear schedule, and its 16
  seeds 42-57 (what the reference archive holds).

An explicit pin lives in ``cache_results/<dataset>_baseline_pin.json``: written only by trusted code
(the CLI); readable by idea runs, which need it to find their weak labels, so it carries
hyperparameters and seeds only, never a label statistic. Pins are matched by model *slug*, because a
leaderboard row knows its models only from its cache key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_json
from core.common.config import LR_SCHEDULES, RunConfig
from core.common.errors import UserError
from core.results.cache import cache_root, model_slug

log = logging.getLogger(__name__)

# The hyperparameters a pin may set: exactly those the producer keys show (``e.._lr.._bs.._sch..``),
# so two different pins can never share a key folder. Everything else is the RunConfig default
# (plus ``max_ctx`` for the demo pair, from its registry entry).
PINNABLE = ("epochs", "lr", "batch_size", "lr_schedule")
REFERENCE_HYPERPARAMETERS: dict[str, Any] = {"epochs": 5, "lr": 1e-4, "batch_size": 32, "lr_schedule": "linear"}
REFERENCE_SEEDS: tuple[int, ...] = tuple(range(42, 58))
REFERENCE_PAIR = (RunConfig().weak_model, RunConfig().strong_model)
DEMO_PAIR = ("demo-weak", "demo-strong")
# every registry teacher of the demo student (demo-weak-blank: shuffled embeddings, knows fewer words)
DEMO_WEAK_MODELS = ("demo-weak", "demo-weak-blank")
DEMO_HYPERPARAMETERS: dict[str, Any] = {"epochs": 1, "lr": 1e-3, "batch_size": 8, "lr_schedule": "linear"}
DEMO_FIXED: dict[str, Any] = {"max_ctx": 256}  # the demo registry's context length (not in the key)
DEMO_SEEDS: tuple[int, ...] = (42, 43, 44)
PIN_SUFFIX = "_baseline_pin.json"
MAX_PINNED_SEEDS = 100

_MEMO: dict[Path, tuple[tuple[int, int], list[Pin]]] = {}


@dataclass(frozen=True)
class Pin:
    """One pinned baseline spec. ``weak_model``/``strong_model`` are names when known (an explicit
    pin, or a default resolved from names), else slugs; ``origin`` says where the spec comes from."""

    dataset: str
    weak_model: str | None
    strong_model: str
    hyperparameters: tuple[tuple[str, Any], ...]
    seeds: tuple[int, ...]
    origin: str  # "pinned" | "reference spec" | "demo registry"
    pinned_at: str | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.hyperparameters)

    @property
    def weak_slug(self) -> str | None:
        return model_slug(self.weak_model) if self.weak_model else None

    @property
    def strong_slug(self) -> str:
        return model_slug(self.strong_model)

    @property
    def training(self) -> str:
        """The ``e.._lr.._bs.._sch..`` part of the pinned producers' keys."""
        s = self.spec
        return f"e{s['epochs']}_lr{s['lr']!s}_bs{s['batch_size']}_sch{s['lr_schedule']}"

    def config(self, cfg: RunConfig) -> RunConfig:
        """The config the producers train with for ``cfg``'s seed: the RunConfig defaults, the pair's
        fixed settings and the pinned hyperparameters. Only the dataset, the models, the seed and the
        sizes (a smoke build gets keys of its own) come from ``cfg``; nothing else the idea set."""
        fixed = DEMO_FIXED if self.strong_slug == model_slug(DEMO_PAIR[1]) else {}
        return RunConfig(
            data_dir=cfg.data_dir,
            weak_model=cfg.weak_model or self.weak_model,
            strong_model=cfg.strong_model,
            seed=cfg.seed,
            train_size=cfg.train_size,
            test_size=cfg.test_size,
            **fixed,
            **self.spec,
        )

    def to_dict(self) -> dict[str, Any]:
        """What the leaderboard, ``w2s baselines show`` and result files show of the pin."""
        return {
            "dataset": self.dataset,
            "weak_model": self.weak_model,
            "strong_model": self.strong_model,
            **self.spec,
            "seeds": list(self.seeds),
            "origin": self.origin,
            "pinned_at": self.pinned_at,
        }

    def describe(self) -> str:
        """One line: ``e1 lr0.001 bs8 linear, seeds 42-44 (demo registry)``."""
        s = self.spec
        return (
            f"e{s['epochs']} lr{s['lr']} bs{s['batch_size']} {s['lr_schedule']}, "
            f"seeds {format_seeds(self.seeds)} ({self.origin})"
        )


def format_seeds(seeds: tuple[int, ...] | list[int]) -> str:
    """``42-57`` for a run of consecutive seeds, else ``42,45,50``."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def pin_path(dataset: str, root: Path | None = None) -> Path:
    return cache_root(root) / f"{dataset}{PIN_SUFFIX}"


def _frozen(spec: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, spec[k]) for k in PINNABLE)


def check_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A complete, valid hyperparameter dict, or UserError with one line saying what is wrong."""
    unknown = sorted(set(spec) - set(PINNABLE))
    if unknown:
        raise UserError(f"baseline pin: {', '.join(unknown)} cannot be pinned (only {', '.join(PINNABLE)})")
    missing = [k for k in PINNABLE if k not in spec]
    if missing:
        raise UserError(f"baseline pin: missing {', '.join(missing)}")
    out = dict(spec)
    for name in ("epochs", "batch_size"):
        if isinstance(out[name], bool) or not isinstance(out[name], int) or out[name] < 1:
            raise UserError(f"baseline pin: {name} must be a whole number >= 1, got {out[name]!r}")
    if isinstance(out["lr"], bool) or not isinstance(out["lr"], int | float) or not 0 < out["lr"] < 1:
        raise UserError(f"baseline pin: lr must be a number between 0 and 1, got {out['lr']!r}")
    out["lr"] = float(out["lr"])
    if out["lr_schedule"] not in LR_SCHEDULES:
        raise UserError(f"baseline pin: lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
    return {k: out[k] for k in PINNABLE}


def check_seeds(seeds: Any) -> tuple[int, ...]:
    if not isinstance(seeds, list | tuple) or not seeds:
        raise UserError("baseline pin: give at least one seed")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise UserError("baseline pin: seeds must be whole numbers")
    if len(set(seeds)) != len(seeds):
        raise UserError("baseline pin: a seed is repeated")
    if len(seeds) > MAX_PINNED_SEEDS:
        raise UserError(f"baseline pin: more than {MAX_PINNED_SEEDS} seeds")
    return tuple(sorted(seeds))


def explicit_pins(dataset: str, root: Path | None = None) -> list[Pin]:
    """The operator's pins for a dataset (memoised on the file's stats). A damaged file or entry is
    logged and ignored: it was written by trusted code, and a leaderboard poll must not crash."""
    path = pin_path(dataset, root)
    try:
        st = path.stat()
    except OSError:
        return []
    stamp = (st.st_mtime_ns, st.st_size)
    memo = _MEMO.get(path)
    if memo is not None and memo[0] == stamp:
        return list(memo[1])
    pins: list[Pin] = []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = doc.get("pins", []) if isinstance(doc, dict) else []
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable baseline pin (%s); using the defaults", path, exc)
        entries = []
    for entry in entries:
        try:
            strong = entry["strong_model"]
            weak = entry.get("weak_model")
            if not isinstance(strong, str) or not strong or not (weak is None or isinstance(weak, str)):
                raise UserError("models must be names")
            pins.append(Pin(dataset, weak, strong, _frozen(check_spec(entry["hyperparameters"])),
                            check_seeds(entry["seeds"]), "pinned", entry.get("pinned_at")))
        except (UserError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: ignoring a damaged pin entry (%s)", path, exc)
    _MEMO[path] = (stamp, pins)
    return list(pins)


def default_pin(dataset: str, weak: str | None, strong: str) -> Pin:
    """The spec used until something is pinned: the demo registry's for the demo pair, else the
    reference's. ``weak``/``strong`` may be names or slugs (only their slugs are compared)."""
    if model_slug(strong) == model_slug(DEMO_PAIR[1]):
        return Pin(dataset, weak or DEMO_PAIR[0], strong, _frozen(DEMO_HYPERPARAMETERS), DEMO_SEEDS,
                   "demo registry")
    default_weak = REFERENCE_PAIR[0] if model_slug(strong) == model_slug(REFERENCE_PAIR[1]) else None
    return Pin(dataset, weak or default_weak, strong, _frozen(REFERENCE_HYPERPARAMETERS), REFERENCE_SEEDS,
               "reference spec")


def resolve_pin(dataset: str, weak: str | None, strong: str, root: Path | None = None) -> Pin:
    """The pin for a model pair (names or slugs). Without a weak model (zero-shot ideas) the pair's
    weak model is the one pinned with this strong model, else the default pair's."""
    weak_slug = model_slug(weak) if weak else None
    strong_slug = model_slug(strong)
    candidates = [p for p in explicit_pins(dataset, root) if p.strong_slug == strong_slug]
    if weak_slug is not None:
        candidates = [p for p in candidates if p.weak_slug == weak_slug]
    if candidates:
        return candidates[-1] if weak_slug is not None or len(candidates) == 1 else default_pin(
            dataset, None, strong
        )
    return default_pin(dataset, weak, strong)


def pins_for_slug(dataset: str, slug: str, role: str, root: Path | None = None) -> list[Pin]:
    """Every pin whose weak (``role="weak"``) or strong model has this slug, defaults included: the
    leaderboard's baselines list maps a producer key folder onto the pins that use it."""
    out = [p for p in explicit_pins(dataset, root) if (p.weak_slug if role == "weak" else p.strong_slug) == slug]
    if role == "weak":
        demo = slug in {model_slug(m) for m in DEMO_WEAK_MODELS}
        out.append(default_pin(dataset, slug, DEMO_PAIR[1] if demo else REFERENCE_PAIR[1]))
    else:
        out.append(default_pin(dataset, None, slug))
    return out


def write_pin(
    dataset: str,
    weak_model: str,
    strong_model: str,
    spec: Mapping[str, Any],
    seeds: list[int] | tuple[int, ...],
    *,
    force: bool = False,
    root: Path | None = None,
) -> Pin:
    """Pin (trusted side only: the CLI). Replacing an existing explicit pin of the same pair needs
    ``force``, because it moves the baselines of every row measured against it."""
    checked, seed_tuple = check_spec(spec), check_seeds(list(seeds))
    if not weak_model or not strong_model:
        raise UserError("baseline pin: give both the weak and the strong model")
    existing = explicit_pins(dataset, root)
    same = [p for p in existing if p.weak_slug == model_slug(weak_model) and p.strong_slug == model_slug(strong_model)]
    if same and not force:
        raise UserError(
            f"{dataset}: {weak_model} -> {strong_model} is already pinned ({same[-1].describe()}); "
            "pass --force to replace it (every PGR against it moves)"
        )
    keep = [p for p in existing if p not in same]
    pin = Pin(dataset, weak_model, strong_model, _frozen(checked), seed_tuple, "pinned",
              time.strftime("%Y-%m-%d %H:%M:%S"))
    entries = [
        {"weak_model": p.weak_model, "strong_model": p.strong_model, "hyperparameters": p.spec,
         "seeds": list(p.seeds), "pinned_at": p.pinned_at}
        for p in [*keep, pin]
    ]
    atomic_write_json(pin_path(dataset, root), {"dataset": dataset, "pins": entries})
    return pin


def pinned_config(cfg: RunConfig, root: Path | None = None) -> RunConfig:
    """The config the baseline producers use for ``cfg``'s dataset, models, seed and sizes."""
    return resolve_pin(cfg.dataset, cfg.weak_model, cfg.strong_model, root).config(cfg)
