"""``w2s baselines show|pin|build``: the pinned baselines every PGR is measured against.

- ``show [--dataset D] [--json]``: the pin of each dataset's model pair (spec + seeds, explicit or
  default) and how many pinned seeds of each producer are built.
- ``pin --dataset D [--weak-model W --strong-model S] [--epochs --lr --batch-size --lr-schedule]
  [--seeds 42-57] [--force]``: pin a spec (unset values keep the current pin's). Replacing an explicit
  pin needs ``--force``: every PGR measured against it moves.
- ``build --dataset D [--weak-model W --strong-model S] [--seeds ...]``: train the missing pinned
  weak artifacts and ceilings here (trusted side: reads ``labeled_data/``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.common.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baselines", help="the pinned baselines (spec + seeds) every PGR is measured against")
    verbs = p.add_subparsers(dest="baselines_verb", metavar="ACTION")
    show = verbs.add_parser("show", help="each dataset's pin and how many pinned seeds are built")
    show.add_argument("--dataset", default=None)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    pin = verbs.add_parser("pin", help="pin a baseline spec and seed list for a dataset and model pair")
    _pair_args(pin)
    pin.add_argument("--epochs", type=int, default=None)
    pin.add_argument("--lr", type=float, default=None)
    pin.add_argument("--batch-size", type=int, default=None)
    pin.add_argument("--lr-schedule", default=None)
    pin.add_argument("--seeds", default=None, help="e.g. 42-57 or 42,43,44 (default: the current pin's)")
    pin.add_argument("--force", action="store_true", help="replace an existing explicit pin")
    pin.set_defaults(func=_pin)
    build = verbs.add_parser("build", help="train the missing pinned weak artifacts and ceilings here")
    _pair_args(build)
    build.add_argument("--seeds", default=None, help="only these pinned seeds (default: all pinned seeds)")
    build.set_defaults(func=_build)
    p.set_defaults(func=lambda args, unknown: (p.print_help(), 0)[1])


def _pair_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--weak-model", default=None, help="default: the pair a default run uses on this dataset")
    p.add_argument("--strong-model", default=None)


def _default_pair(dataset: str) -> tuple[str, str]:
    """The pair a default run trains on this dataset (demo pair on demo data or without CUDA)."""
    from core.common.config import RunConfig
    from core.run.resolve import prepare_config

    cfg = prepare_config(RunConfig(data_dir=f"data/{dataset}"))
    assert cfg.weak_model is not None
    return cfg.weak_model, cfg.strong_model


def _pair(args: argparse.Namespace) -> tuple[str, str]:
    if bool(args.weak_model) != bool(args.strong_model):
        raise UserError("give both --weak-model and --strong-model, or neither (the default pair)")
    if args.weak_model:
        return args.weak_model, args.strong_model
    return _default_pair(args.dataset)


def _check_dataset(dataset: str) -> None:
    from core.results.pins import pin_path

    if not dataset or "/" in dataset or "_" in dataset or dataset.startswith("."):
        raise UserError(f"--dataset {dataset!r}: a dataset name (no '/', no '_')")
    pin_path(dataset)  # resolves the workspace


def _datasets(only: str | None) -> list[str]:
    from core.common.workspace import paths
    from core.results.leaderboard import groups

    if only:
        return [only]
    found = {ds for ds, _ in groups()}
    for base in (paths().labeled_data, paths().root / "data"):
        if base.is_dir():
            found.update(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(found)


def _status(dataset: str, weak: str | None, strong: str) -> dict[str, Any]:
    from core.results.pgr import pinned_keys, producer_seed_accuracies
    from core.results.pins import resolve_pin

    pin = resolve_pin(dataset, weak, strong)
    weak_key, strong_key = pinned_keys(pin, pin.weak_slug, pin.strong_slug, {})
    built = {}
    for producer, key in (("weak_artifacts", weak_key), ("train_ceiling", strong_key)):
        seeds = {s for s, _ in producer_seed_accuracies(dataset, producer, key)} if key else set()
        built[producer] = sorted(s for s in seeds if s in pin.seeds)
    return {**pin.to_dict(), "weak_key": weak_key, "strong_key": strong_key, "built": built}


def _show(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.results.cache import model_slug
    from core.results.pins import explicit_pins, format_seeds

    out = []
    for ds in _datasets(args.dataset):
        pins = explicit_pins(ds)
        pairs = [(p.weak_model, p.strong_model) for p in pins]
        default = _default_pair(ds)
        if not any(p.strong_slug == model_slug(default[1]) for p in pins):
            pairs.append(default)
        out.extend(_status(ds, w, s) for w, s in pairs)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if not out:
        print("no datasets here (try: w2s data prepare)")
    for st in out:
        print(f"{st['dataset']}: {st['weak_model']} -> {st['strong_model']}  e{st['epochs']} lr{st['lr']} "
              f"bs{st['batch_size']} {st['lr_schedule']}  seeds {format_seeds(st['seeds'])}  ({st['origin']})")
        for producer, key in (("weak_artifacts", st["weak_key"]), ("train_ceiling", st["strong_key"])):
            print(f"  {producer:<15} {len(st['built'][producer]):>3}/{len(st['seeds'])} built  {key}")
    return 0


def _seed_list(text: str | None) -> list[int] | None:
    from core.app.jobs import parse_seeds

    if text is None:
        return None
    try:
        return parse_seeds(text)
    except UserError as exc:
        raise UserError(f"--{exc}") from None


def _pin(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.results.pins import resolve_pin, write_pin

    _check_dataset(args.dataset)
    weak, strong = _pair(args)
    current = resolve_pin(args.dataset, weak, strong)
    spec = current.spec
    for name in ("epochs", "lr", "batch_size", "lr_schedule"):
        value = getattr(args, name)
        if value is not None:
            spec[name] = value
    seeds = _seed_list(args.seeds) or list(current.seeds)
    pin = write_pin(args.dataset, weak, strong, spec, seeds, force=args.force)
    print(f"pinned {args.dataset}: {weak} -> {strong}  {pin.describe()}")
    st = _status(args.dataset, weak, strong)
    missing = sum(len(pin.seeds) - len(v) for v in st["built"].values())
    if missing:
        print(f"{missing} pinned baseline files still to build: w2s baselines build --dataset {args.dataset}")
    return 0


def _build(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.common.config import RunConfig
    from core.run.baselines import build_pinned

    _check_dataset(args.dataset)
    weak, strong = _pair(args)
    data_dir = str(Path("data") / args.dataset)
    cfg = RunConfig(data_dir=data_dir, weak_model=weak, strong_model=strong)
    results = build_pinned(cfg, _seed_list(args.seeds), log=lambda m: print(m, flush=True))
    built = sum(1 for r in results if r["built"])
    print(f"{args.dataset}: {built} built, {len(results) - built} already cached")
    return 0
