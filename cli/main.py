"""``w2s``: one CLI, one subcommand module per area. Each module exposes ``register(subparsers)``
and sets ``func`` on its parsers; ``func(args, unknown)`` returns the exit code."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.common.errors import UserError

# (module, purpose) — every verb a user can type lives in one of these.
COMMAND_MODULES = (
    "cli.data_cmd",
    "cli.cache_cmd",
    "cli.leaderboard_cmd",
    "cli.run_cmd",
    "cli.ideas_cmd",
    "cli.serve_cmd",
    "cli.jobs_cmd",
    "cli.gpu_cmd",
    "cli.agent_cmd",
)

# Verbs whose parsers accept unknown ``--flags`` (passed on as RunConfig ``extra``).
PASSTHROUGH_VERBS = {"run"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="w2s",
        description="w2s: a research control center for weak-to-strong generalization research.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # area not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else 2
    if unknown and args.verb not in PASSTHROUGH_VERBS:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code = args.func(args, unknown)
    except UserError as exc:
        print(f"w2s: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("w2s: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
