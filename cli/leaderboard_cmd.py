"""``w2s leaderboard``: PGR per (dataset, idea, key) against fixed baselines.

``--json`` prints ``{"rows": [...], "baselines": [...]}`` (``core.app.views.leaderboard``): ``rows`` as
``core.results.leaderboard.leaderboard_rows`` (keys ``dataset, idea, key, n_seeds, pgr_mean, pgr_sem,
pgr_ci95, transfer_acc, weak_acc, strong_acc, source`` plus details; rows the referee scored also
``public_acc, private_acc``), ``baselines`` one entry per
(dataset, producer, pinned key) with ``n_seeds, acc_mean, acc_sd, acc_sem`` over the pinned seeds and
the pin (``pin``: spec, seeds, origin; ``pin_text``; ``n_pinned``; ``w2s baselines show``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from core.app.views import ensure_demo_cache, leaderboard
from core.common.errors import UserError
from core.results.cache import cache_root, parse_key


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="PGR leaderboard from the results cache (baselines on top)")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--json", action="store_true", help='machine-readable {"rows": [...], "baselines": [...]}')
    p.set_defaults(func=_leaderboard)


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pgr(row: dict[str, Any]) -> str:
    if row["pgr_mean"] is None:
        return "n/a"
    if row["pgr_sem"] is None:
        return _f(row["pgr_mean"])
    return f"{row['pgr_mean']:.3f} ± {row['pgr_sem']:.3f}"


def _ci(row: dict[str, Any]) -> str:
    ci = row["pgr_ci95"]
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _params(key: str) -> str:
    """The key without its model slugs (shown in the baselines table): keeps rows narrow."""
    parts = parse_key(key)
    return key if parts is None else key[len(parts.models) + 1 :]


def render(doc: dict[str, Any], console: Console) -> None:
    """The people's view: a baselines table on top, then the ranked rows, then n/a reasons."""
    base = Table(title="Baselines (pinned: mean over the pinned seeds)", title_justify="left")
    for col in ("dataset", "producer", "accuracy", "sd", "seeds", "pin", "key"):
        base.add_column(col, overflow="fold", no_wrap=col not in ("key", "pin"))
    for b in doc["baselines"]:
        acc, sd = _f(b["acc_mean"], 4), _f(b["acc_sd"], 4)
        seeds = f"{b['n_seeds']}/{b['n_pinned']}" if b.get("n_pinned") else str(b["n_seeds"])
        base.add_row(b["dataset"], b["producer"], acc, sd, seeds, b.get("pin_text", ""), b["key"])
    console.print(base)
    table = Table(title="Leaderboard (PGR mean ± SEM over seeds)", title_justify="left")
    columns = ("#", "dataset", "idea", "seeds", "PGR", "95% CI", "transfer", "weak", "ceiling")
    columns += ("source", "params")
    for col in columns:
        table.add_column(
            col,
            overflow="fold",
            no_wrap=col != "params",
            justify="right" if col in ("#", "seeds") else "left",
        )
    notes = []
    unranked = 0
    for r in doc["rows"]:
        table.add_row(
            str(r["rank"]) if r.get("rank") else "-", r["dataset"], r["idea"], str(r["n_seeds"]), _pgr(r), _ci(r),
            _f(r["transfer_acc"], 4), _f(r["weak_acc"], 4), _f(r["strong_acc"], 4),
            r["source"], _params(r["key"]),
        )
        if r.get("pgr_reason"):
            notes.append(f"{r['dataset']}/{r['idea']}: PGR n/a: {r['pgr_reason']}")
        if r.get("judge_texts") is not None:
            notes.append(f"{r['dataset']}/{r['idea']}: used a weak judge trained on train_label labels "
                         f"(trusted service): {r['judge_texts']} texts judged over its seeds")
        if not r.get("rank"):
            unranked += 1
    if unranked:
        notes.append(f"'-': {unranked} rows shown apart, not ranked (only referee-scored, full-size runs rank)")
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def _check_dataset(name: str) -> None:
    """An unknown ``--dataset`` is a mistake, not an empty leaderboard: name the ones that exist."""
    import difflib

    from core.app.views import result_datasets

    known = result_datasets()
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5) or [k for k in known if name in k][:1]
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = ", ".join(known) if known else f"none yet in {cache_root()} (try: w2s cache import ARCHIVE.tar.gz)"
    raise UserError(f"--dataset: no results for {name!r}; datasets with results: {listed}{hint}")


def _leaderboard(args: argparse.Namespace, unknown: list[str]) -> int:
    ensure_demo_cache()
    if args.dataset is not None:
        _check_dataset(args.dataset)
    doc = leaderboard(dataset=args.dataset)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if not doc["rows"] and not doc["baselines"]:
        what = f" for dataset {args.dataset!r}" if args.dataset else ""
        print(f"no cached results{what} in {cache_root()} (try: w2s cache import ARCHIVE.tar.gz)")
        return 0
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 180))  # piped: rich would assume 80 columns
    render(doc, console)
    return 0
