"""The PGR leaderboard, rebuilt from the results cache on every call.

One row per (dataset, idea, key). PGR is recomputed for each seed from its ``transfer_acc`` and
the fixed baselines (never taken from the stored ``pgr``, which may be null or computed against
other baselines), then aggregated with Student-t statistics. The baseline producers
(``weak_artifacts``, ``train_ceiling``) are not rows: they form the separate baselines list.

Ranking: only seeds the referee scored (``w2s_source: "referee"``) are ranked. A row with any
referee-scored seed counts those alone (other files in its folder are listed in
``excluded_seeds``, so a hand-written ``seed_*.json`` cannot move it) and is ``ranked``; ranked rows
sort first. A row with none (the imported reference archive, results from before the referee
scored runs, ``unverified (not isolated)`` runs) is shown apart: ``ranked`` false, its numbers for
information, after every ranked row of its dataset.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.results.cache import (
    BASELINE_PRODUCERS,
    SIZE_FIELDS,
    cache_root,
    iter_results,
    list_keys,
    parse_key,
    read_result,
    read_seed_files,
)
from core.results.metrics import seed_stats
from core.results.pgr import baselines_for_key, compute_pgr, producer_seed_accuracies
from core.results.pins import pins_for_slug
from core.sandbox.base import UNVERIFIED_LABEL

SOURCE_FIELD = "w2s_source"
IMPORTED = "imported"
STALE_NESTED = "cache_results"  # the reference archive's stale copy of itself; never a group

ROW_KEYS = (
    "dataset",
    "idea",
    "key",
    "n_seeds",
    "pgr_mean",
    "pgr_sem",
    "pgr_ci95",
    "transfer_acc",
    "weak_acc",
    "strong_acc",
    "source",
    "ranked",
)

REFEREE_SOURCE = "referee"  # w2s_source of a seed result scored by the referee
UNVERIFIED_SOURCE = UNVERIFIED_LABEL  # an unsandboxed run: shown apart, never ranked


def groups(root: Path | None = None, dataset: str | None = None) -> list[tuple[str, str]]:
    """(dataset, idea) of every top-level cache folder, sorted."""
    base = cache_root(root)
    if not base.is_dir():
        return []
    out = []
    for p in sorted(base.iterdir()):
        if not p.is_dir() or p.name == STALE_NESTED or "_" not in p.name:
            continue
        ds, idea = p.name.split("_", 1)
        if ds and idea and (dataset is None or ds == dataset):
            out.append((ds, idea))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _source(results: list[dict[str, Any]]) -> str:
    """``imported`` unless our own code wrote the file; a mix is shown as ``a+b``."""
    kinds = sorted({str(r.get(SOURCE_FIELD) or IMPORTED) for r in results})
    return "+".join(kinds)


def _first(results: list[dict[str, Any]], field: str) -> str | None:
    for r in results:
        if isinstance(r.get(field), str) and r[field]:
            return r[field]
    return None


def _ci(stats: dict[str, Any]) -> list[float] | None:
    return list(stats["ci95"]) if stats["ci95"] is not None else None


def _judge_texts(results: list[dict[str, Any]]) -> int | None:
    counts = [r["judge_calls"] for r in results if isinstance(r.get("judge_calls"), dict)]
    return sum(int(c.get("texts", 0)) for c in counts) if counts else None


def _row(dataset: str, idea: str, key: str, root: Path | None) -> dict[str, Any] | None:
    found = read_seed_files(dataset, idea, key, root)
    if not found:
        return None
    scored = [(seed, r) for seed, r in found if r.get(SOURCE_FIELD) == REFEREE_SOURCE]
    seeds = scored or found  # with a referee-scored seed, nothing else counts
    excluded = sorted(seed for seed, r in found if scored and r.get(SOURCE_FIELD) != REFEREE_SOURCE)
    results = [r for _, r in seeds]
    hints = {"strong_model": _first(results, "strong_model"), "weak_model": _first(results, "weak_model")}
    baselines = baselines_for_key(dataset, key, root, **hints)
    used = [(seed, t) for seed, r in seeds if (t := _number(r.get("transfer_acc"))) is not None]
    pgrs: list[float] = []
    reason = None if used else "no seed has a transfer accuracy"
    capped = _size_capped(key, results)
    if capped:  # a smoke run: never ranked, whatever it scored
        reason, used_for_pgr = "size-capped run (train_size/test_size set): never ranked", []
    else:
        used_for_pgr = used
    for _, t in used_for_pgr:
        pgr, why = compute_pgr(t, baselines)
        if pgr is None:
            reason = why
        else:
            pgrs.append(pgr)
    pgr_stats = seed_stats(pgrs)
    transfer_stats = seed_stats([t for _, t in used])
    return {
        "dataset": dataset,
        "idea": idea,
        "key": key,
        "n_seeds": len(used),
        "pgr_mean": pgr_stats["mean"],
        "pgr_sem": pgr_stats["sem"],
        "pgr_ci95": _ci(pgr_stats),
        "transfer_acc": transfer_stats["mean"],
        "weak_acc": baselines.weak_acc,
        "strong_acc": baselines.strong_acc,
        "source": _source(results),
        "ranked": bool(scored) and not capped,
        "pgr_sd": pgr_stats["sd"],
        "pgr_reason": reason if pgr_stats["n"] == 0 else None,
        "transfer_sem": transfer_stats["sem"],
        "seeds": [seed for seed, _ in used],
        "n_weak": baselines.n_weak,
        "n_strong": baselines.n_strong,
        "weak_key": baselines.weak_key,
        "strong_key": baselines.strong_key,
        "size_capped": capped,
        "baseline_pin": baselines.pin,
        "excluded_seeds": excluded,
        # texts the ranked seeds had a label-trained weak judge score (core.run.judge_service); None: no judge
        "judge_texts": _judge_texts(results),
    }


def _size_capped(key: str, results: list[dict[str, Any]]) -> bool:
    """The key names train_size/test_size, or a seed's config does (a smoke result written before
    sizes joined the key)."""
    parts = parse_key(key)
    if parts is not None and parts.size_capped:
        return True
    return any(
        isinstance(r.get("config"), dict) and any(r["config"].get(f) is not None for f in SIZE_FIELDS)
        for r in results
    )


def _sort_key(row: dict[str, Any]) -> tuple:
    pgr = row["pgr_mean"]
    return (row["dataset"], not row["ranked"], pgr is None, -(pgr or 0.0), row["idea"], row["key"])


def leaderboard_rows(dataset: str | None = None, root: Path | None = None) -> list[dict[str, Any]]:
    """Rows sorted by dataset, ranked rows first, then PGR mean descending (rows without PGR last).

    Every row carries the ``ROW_KEYS`` (``ranked``: see the module docstring) plus excluded_seeds
    (files a ranked row does not count), pgr_sd, pgr_reason (why PGR is n/a), transfer_sem,
    seeds, n_weak/n_strong and weak_key/strong_key (the pinned baselines used), baseline_pin (their
    spec and seeds) and size_capped (a smoke run: PGR n/a, never ranked).
    """
    rows = []
    for ds, idea in groups(root, dataset):
        if idea in BASELINE_PRODUCERS:
            continue
        for key in list_keys(ds, idea, root):
            row = _row(ds, idea, key, root)
            if row is not None:
                rows.append(row)
    rows.sort(key=_sort_key)
    return rows


def baseline_rows(dataset: str | None = None, root: Path | None = None) -> list[dict[str, Any]]:
    """One entry per (dataset, producer, pinned key) with pinned seeds cached: the baselines PGR is
    measured by, with the pin (``pin``: spec, seeds, origin). Means cover the pinned seeds only;
    ``n_unpinned`` counts other seeds in the folder (weak labels built for unpinned idea seeds).
    Keys no pin uses (other hyperparameters, smoke builds) are not baselines and are left out."""
    out = []
    for ds, idea in groups(root, dataset):
        if idea not in BASELINE_PRODUCERS:
            continue
        for key in list_keys(ds, idea, root):
            parts = parse_key(key)
            if parts is None or parts.size_capped or parts.extra_suffix:
                continue
            role = "weak" if idea == BASELINE_PRODUCERS[0] else "strong"
            pin = next((p for p in pins_for_slug(ds, parts.models, role, root) if p.training == parts.training), None)
            if pin is None:
                continue
            seed_accs = producer_seed_accuracies(ds, idea, key, root)
            accs = [acc for seed, acc in seed_accs if seed in pin.seeds]
            if not accs:
                continue
            st = seed_stats(accs)
            out.append(
                {
                    "dataset": ds,
                    "producer": idea,
                    "key": key,
                    "n_seeds": st["n"],
                    "acc_mean": st["mean"],
                    "acc_sd": st["sd"],
                    "acc_sem": st["sem"],
                    "n_pinned": len(pin.seeds),
                    "n_unpinned": len(seed_accs) - len(accs),
                    "pin": pin.to_dict(),
                    "pin_text": pin.describe(),
                }
            )
    out.sort(key=lambda b: (b["dataset"], BASELINE_PRODUCERS.index(b["producer"]), b["key"]))
    return out


def leaderboard(dataset: str | None = None, root: Path | None = None) -> dict[str, Any]:
    """The machine-readable document ``w2s leaderboard --json`` prints: rows and baselines."""
    return {"rows": leaderboard_rows(dataset, root), "baselines": baseline_rows(dataset, root)}


def referee_accuracies(dataset: str, idea: str, key: str) -> dict[str, float | None]:
    """Mean public and private accuracy over a leaderboard row's referee-scored seeds."""
    public: list[float] = []
    private: list[float] = []
    for item in iter_results(dataset=dataset):
        if item.idea != idea or item.key != key:
            continue
        data = read_result(dataset, idea, key, item.seed) or {}
        if data.get("w2s_source") != REFEREE_SOURCE:
            continue
        if isinstance(data.get("public_acc"), int | float):
            public.append(float(data["public_acc"]))
        if isinstance(data.get("private_acc"), int | float):
            private.append(float(data["private_acc"]))
    return {
        "public_acc": sum(public) / len(public) if public else None,
        "private_acc": sum(private) / len(private) if private else None,
    }
