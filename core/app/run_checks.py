"""What a run will do, checked before it starts: which ``--flags`` it may be given, what it
trains with, and which of its seeds are already cached.

A flag that is not a RunConfig field becomes an idea parameter (``RunConfig.extra``) and enters the
cache key; before this check ``--epoch 2`` (for ``--epochs``) or ``--dry-run`` trained a full run
under a key nobody asked for. A parameter is accepted when the idea declares it (its ``DEFAULTS``)
or the code that runs it reads it by name (``cfg.extra.get("demo_labels")`` in the idea's own files,
or an engine setting such as ``log_every`` in the library); anything else is refused with the
closest valid flag. Sources are read, never imported: idea code is untrusted.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from core.common.config import RunConfig
from core.common.errors import UserError
from core.run.ideas import check_idea

_READ = re.compile(r"""extra(?:\.get\(|\.pop\(|\.setdefault\(|\[)\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")
LIBRARY_DIRS = ("engine", "run", "results")  # where the library reads engine-level parameters


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _names_read(files: Iterable[Path]) -> set[str]:
    found: set[str] = set()
    for path in files:
        try:
            found.update(_READ.findall(path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return found


@functools.lru_cache(maxsize=1)
def library_parameters() -> frozenset[str]:
    """``extra`` names the library itself reads (``log_every``, ``predict_batch_size``, ...)."""
    import core

    root = Path(core.__file__).resolve().parent
    return frozenset(_names_read(p for d in LIBRARY_DIRS for p in sorted((root / d).glob("*.py"))))


def idea_parameters(idea: str) -> tuple[dict[str, Any], set[str]]:
    """The idea's ``DEFAULTS`` and every parameter name a run of it may take."""
    info, defaults = check_idea(idea)
    read = _names_read(sorted(info.path.rglob("*.py")))
    return defaults, set(defaults) | read | set(library_parameters())


def check_parameters(idea: str, extra: Mapping[str, Any], own_flags: Iterable[str] = ()) -> None:
    """UserError naming the first parameter in ``extra`` that nothing declares or reads, with the
    closest valid flag (a RunConfig field, the front end's ``own_flags``, or a parameter)."""
    defaults, known = idea_parameters(idea)
    unknown = sorted(k for k in extra if k not in known)
    if not unknown:
        return
    valid = sorted({flag(f.name) for f in fields(RunConfig) if f.name != "extra"} | {flag(k) for k in known}
                   | set(own_flags))
    name = unknown[0]
    close = difflib.get_close_matches(flag(name), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see `w2s run --help` for the flags"
    declared = ", ".join(flag(k) for k in sorted(defaults)) or "none"
    raise UserError(f"{flag(name)}: unknown flag: not a run setting and not a parameter of idea {idea!r} "
                    f"(its DEFAULTS declare: {declared}); {hint}")


def resolved_defaults(data_dir: str) -> dict[str, Any]:
    """The settings a run with no flags trains with on ``data_dir`` here (models, epochs, lr, batch...),
    as every submit path resolves them (``core.run.resolve.prepare_config``)."""
    from core.control.gpu import visible_gpus
    from core.run.resolve import prepare_config

    return prepare_config(RunConfig(data_dir=data_dir), cuda=bool(visible_gpus())).to_dict()


def seed_key(idea: str, cfg: RunConfig) -> str:
    """The results-cache key a run of ``idea`` with ``cfg`` is written under (its DEFAULTS included)."""
    from core.results.cache import result_key
    from core.run.resolve import prepare_config

    _, defaults = check_idea(idea)
    return result_key(prepare_config(cfg, defaults))


def cached_seeds(idea: str, cfg: RunConfig, seeds: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Seeds that already have a result under the run's key: seed -> that result."""
    from core.results.cache import read_result

    key = seed_key(idea, cfg)
    found = {}
    for seed in seeds:
        result = read_result(cfg.dataset, idea, key, int(seed))
        if result is not None:
            found[int(seed)] = result
    return found


def seed_line(seed: int, result: Mapping[str, Any]) -> str:
    """The operator's one line for a scored seed, whose numbers add up: the transfer accuracy, the
    fixed baselines PGR is measured against and PGR, each to 3 places."""

    def n(value: Any) -> str:
        return "n/a" if not isinstance(value, int | float) else f"{value:.3f}"

    source = result.get("w2s_source") or "imported"
    weak, strong = result.get("fixed_weak_baseline", result.get("weak_acc")), result.get(
        "fixed_strong_baseline", result.get("strong_acc"))
    raw = result.get("baselines")
    base: dict[str, Any] = raw if isinstance(raw, dict) else {}
    seeds = f" over {base['n_weak']}/{base['n_strong']} seeds" if base.get("n_weak") and base.get("n_strong") else ""
    held = " (private holdout)" if result.get("private_acc") is not None else ""
    pgr = result.get("pgr")
    if isinstance(pgr, int | float):
        how = f"PGR {n(pgr)} = ({n(result.get('transfer_acc'))} - {n(weak)}) / ({n(strong)} - {n(weak)})"
    else:
        how = f"PGR n/a ({result.get('pgr_reason') or 'no baselines'})"
    return (f"seed {seed}: {source} · transfer {n(result.get('transfer_acc'))}{held} · {how} · fixed baselines "
            f"weak {n(weak)}, ceiling {n(strong)}{seeds}")
