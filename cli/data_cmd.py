"""``w2s data``: check, prepare, list and (re)generate datasets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.common.errors import UserError
from core.common.workspace import paths
from core.data.check import check_path
from core.data.datasets import SPLITS, load_split
from core.data.prepare import prepare_dataset


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check, prepare, list and generate datasets")
    verbs = data.add_subparsers(dest="data_verb", metavar="ACTION")
    data.set_defaults(func=lambda args, unknown: data.print_help() or 2)

    check = verbs.add_parser("check", help="validate a dataset folder or file (file:line: field: message)")
    check.add_argument("path", type=Path)
    check.add_argument("--json", action="store_true", help="machine-readable problems")
    check.set_defaults(func=_check)

    prep = verbs.add_parser("prepare", help="write the label-free view (test, train_unlabel) of a dataset")
    prep.add_argument("src", type=Path, help="labelled dataset folder (e.g. labeled_data/math)")
    prep.add_argument("dst", type=Path, help="destination folder (e.g. data/math)")
    prep.set_defaults(func=_prepare)

    lst = verbs.add_parser("list", help="datasets in the workspace, with row counts")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    demo = verbs.add_parser("demo", help="regenerate the offline demo datasets (deterministic)")
    demo.add_argument("--out", type=Path, default=None, help="workspace to write into (default: current)")
    demo.set_defaults(func=_demo)


def _check(args: argparse.Namespace, unknown: list[str]) -> int:
    problems = check_path(args.path)
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        print(json.dumps([{**p.__dict__, "file": str(p.file)} for p in problems], indent=2))
    else:
        for p in problems:
            print(p)
        if not errors:
            print(f"{args.path}: ok" + (f" ({len(problems)} warnings)" if problems else ""))
    return 1 if errors else 0


def _prepare(args: argparse.Namespace, unknown: list[str]) -> int:
    try:
        counts = prepare_dataset(args.src, args.dst, labeled_root=paths().labeled_data)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    for split, n in counts.items():
        print(f"{args.dst / (split + '.jsonl')}: {n} rows (label-free)")
    stale = args.dst / "train_label.jsonl"
    if stale.is_file() and load_split(stale).has_labels:
        print(f"warning: {stale} holds labels; ground truth does not belong in the label-free view")
    return 0


def _list(args: argparse.Namespace, unknown: list[str]) -> int:
    ws = paths()
    rows = []
    for side, base in (("label-free", ws.data), ("labelled", ws.labeled_data)):
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            counts = {}
            fmt = None
            for split in SPLITS:
                f = folder / f"{split}.jsonl"
                if f.is_file():
                    try:
                        loaded = load_split(f)
                    except ValueError:
                        counts[split] = "invalid"
                        continue
                    counts[split] = len(loaded.rows)
                    fmt = loaded.fmt
            rows.append({"dataset": folder.name, "side": side, "format": fmt, "rows": counts})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no datasets under {ws.data} or {ws.labeled_data}")
    for r in rows:
        counts = ", ".join(f"{k} {v}" for k, v in r["rows"].items())
        print(f"{r['dataset']:<16} {r['side']:<11} {r['format'] or '?':<11} {counts}")
    return 0


def _demo(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.data.demo import generate_all

    root = (args.out or paths().root).resolve()
    summary = generate_all(root)
    print(json.dumps(summary, indent=2, default=str))
    return 0
