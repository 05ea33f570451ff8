"""``w2s cache``: import and export results-cache archives (reference-compatible .tar.gz)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.results.archive import export_archive, import_archive
from core.results.cache import cache_root


def register(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="import/export results-cache archives")
    verbs = cache.add_subparsers(dest="cache_verb", metavar="ACTION")
    cache.set_defaults(func=lambda args, unknown: cache.print_help() or 2)

    imp = verbs.add_parser(
        "import",
        help="unpack a cache_results .tar.gz into the workspace cache (unsafe archives are refused)",
    )
    imp.add_argument("archive", type=Path)
    imp.add_argument("--overwrite", action="store_true", help="replace cached files whose content differs")
    imp.set_defaults(func=_import)

    exp = verbs.add_parser("export", help="write the workspace cache as a cache_results/ .tar.gz")
    exp.add_argument("archive", type=Path)
    exp.add_argument("--dataset", default=None, help="only this dataset")
    exp.set_defaults(func=_export)


def _import(args: argparse.Namespace, unknown: list[str]) -> int:
    report = import_archive(args.archive, overwrite=args.overwrite)
    for line in report.summary_lines():
        print(line)
    print(f"cache: {cache_root()}")
    return 0


def _export(args: argparse.Namespace, unknown: list[str]) -> int:
    n = export_archive(args.archive, dataset=args.dataset)
    print(f"wrote {n} files to {args.archive}")
    return 0
