"""``w2s``: one CLI, one subcommand module per area. Each module exposes ``register(subparsers)``
and sets ``func`` on its parsers; ``func(args, unknown)`` returns the exit code."""

from __future__ import annotations

import argparse
import os
import sys

from cli import (
    agent_cmd,
    baselines_cmd,
    cache_cmd,
    data_cmd,
    doctor_cmd,
    gpu_cmd,
    ideas_cmd,
    image_cmd,
    jobs_cmd,
    leaderboard_cmd,
    run_cmd,
    serve_cmd,
    verify_cmd,
)
from core.common.errors import UserError

# Every verb a user can type lives in one of these modules (each imports its heavy parts lazily).
COMMAND_MODULES = (
    data_cmd,
    cache_cmd,
    leaderboard_cmd,
    baselines_cmd,
    run_cmd,
    ideas_cmd,
    serve_cmd,
    jobs_cmd,
    gpu_cmd,
    agent_cmd,
    doctor_cmd,
    image_cmd,
    verify_cmd,
)

# Verbs whose parsers accept unknown ``--flags`` (passed on as RunConfig ``extra``).
PASSTHROUGH_VERBS = {"run"}


class Parser(argparse.ArgumentParser):
    """Every ``w2s`` parser, sub-commands included: no prefix matching, so ``--epoch 2`` is never
    silently ``--epochs 2`` (``w2s run`` then refuses it, naming ``--epochs``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="w2s",
        description="w2s: a research control center for weak-to-strong generalization research.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # inside the try: a reader that went away (`| head -1`) is no traceback
    except BrokenPipeError:
        return _reader_gone()
    return code


def _run(argv: list[str]) -> int:
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


def _reader_gone() -> int:
    """The reader of stdout closed it early (``w2s agent list | head -1``): stop quietly, as a
    command killed by SIGPIPE would. Later writes (the interpreter's final flush) go to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
