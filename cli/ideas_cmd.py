"""``w2s ideas``: list the ideas that ``w2s run --idea`` accepts, and start a new one from TEMPLATE."""

from __future__ import annotations

import argparse
import json

from core.common.workspace import paths
from core.run.ideas import list_ideas, new_idea


def register(sub: argparse._SubParsersAction) -> None:
    ideas = sub.add_parser("ideas", help="list ideas; create a new one from the TEMPLATE")
    verbs = ideas.add_subparsers(dest="ideas_verb", metavar="ACTION")
    ideas.set_defaults(func=_list)

    lst = verbs.add_parser("list", help="packaged and workspace ideas (workspace ones override)")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)

    new = verbs.add_parser("new", help="copy TEMPLATE into <workspace>/ideas/NAME/")
    new.add_argument("name")
    new.set_defaults(func=_new)


def _list(args: argparse.Namespace, unknown: list[str]) -> int:
    found = list_ideas()
    if getattr(args, "json", False):
        print(json.dumps([{**i.__dict__, "path": str(i.path)} for i in found], indent=2))
        return 0
    if not found:
        print("no ideas found")
        return 0
    width = max(len(i.name) for i in found)
    for i in found:
        print(f"{i.name:<{width}}  {i.source:<9}  {i.description}")
    return 0


def _new(args: argparse.Namespace, unknown: list[str]) -> int:
    dest = new_idea(args.name)
    try:
        shown = dest.relative_to(paths().root)
    except ValueError:
        shown = dest
    print(f"created {shown}/ (edit run.py, then: w2s run --idea {args.name} --seeds 42)")
    return 0
