"""``w2s image build [--offline] [--tag T]`` and ``w2s image push TAG``: images for the docker executor.

``--offline`` builds the image these machines and CI use (Debian packages through debootstrap, then
``docker import``; the project's environment is mounted at run time): no registry needed, tagged by
a hash of its recipe and built only once. Without it, the repository's ``Dockerfile`` is built
(CUDA base, ``uv sync --frozen --extra gpu``) for GPU hosts and RunPod, and ``push`` sends it to a
registry. Building and pushing the production image are UNVERIFIED here: no registry is reachable
from the development machines (see ``core.sandbox.docker_image``).
"""

from __future__ import annotations

import argparse

from core.common.errors import UserError

DEFAULT_TAG = "w2s:latest"


def register(sub: argparse._SubParsersAction) -> None:
    image = sub.add_parser("image", help="build or push the docker executor's image")
    verbs = image.add_subparsers(dest="image_verb", metavar="ACTION")
    build = verbs.add_parser("build", help="build the image (--offline: from Debian packages, no registry)")
    build.add_argument("--offline", action="store_true",
                       help="debootstrap + docker import; the project's environment is mounted at run time")
    build.add_argument("--force", action="store_true", help="--offline: import again even when present")
    build.add_argument("--tag", default=None, help=f"production image tag (default {DEFAULT_TAG})")
    build.set_defaults(func=_build)
    push = verbs.add_parser("push", help="push a production image to its registry (UNVERIFIED here)")
    push.add_argument("tag", help="e.g. registry.example.com/team/w2s:2026-11")
    push.set_defaults(func=_push)
    image.set_defaults(func=lambda args, unknown: _usage(image))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def _client() -> object:
    from core.sandbox.base import SandboxUnavailable
    from core.sandbox.docker import connect

    try:
        return connect()
    except SandboxUnavailable as exc:
        raise UserError(str(exc)) from None


def _build(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.sandbox import docker_image

    client = _client()
    if args.offline:
        if args.tag:
            raise UserError("--tag: the offline image is named by its recipe's hash; drop --tag")
        tag = docker_image.build_offline(client, say=print, force=args.force)
        print(f"offline image ready: {tag} (the docker executor's default; W2S_DOCKER_IMAGE overrides it)")
        return 0
    tag = docker_image.build_production(client, args.tag or DEFAULT_TAG, say=print)
    print(f"built {tag}; run with W2S_DOCKER_IMAGE={tag} W2S_DOCKER_PYTHON=/opt/w2s/.venv/bin/python")
    return 0


def _push(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.sandbox import docker_image

    docker_image.push(_client(), args.tag, say=print)
    print(f"pushed {args.tag}")
    return 0
