"""The real Docker engine the docker tests run against (``.ci/services/docker.sh`` starts a private one
and exports ``DOCKER_HOST``), and the offline image, built on first use and cached.

Without an engine the docker tests skip on a developer's machine and FAIL under CI (``CI=true``),
where the engine is part of the test setup.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import in_ci


def _require(what: str, problem: str | None) -> None:
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"{what}: {problem}; CI must provide it (.ci/services/docker.sh)", pytrace=False)
    pytest.skip(f"{what}: {problem}")


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """An SDK client for the engine at ``DOCKER_HOST`` (skip or fail as the module docstring says)."""
    from core.sandbox.base import SandboxUnavailable
    from core.sandbox.docker import connect

    try:
        return connect()
    except SandboxUnavailable as exc:
        _require("a Docker engine", str(exc))


@pytest.fixture(scope="session")
def offline_image(docker_client: Any) -> str:
    """The offline image's tag, built (debootstrap + docker import, about a minute) when missing."""
    from core.sandbox.docker_image import build_offline

    try:
        return build_offline(docker_client, say=lambda line: print(f"[docker image] {line}", flush=True))
    except Exception as exc:  # noqa: BLE001 - no root, no debootstrap, no mirror: say which
        _require("the offline Docker image", f"{type(exc).__name__}: {exc}")
        raise


def workspace_containers(client: Any, workspace: str) -> list[Any]:
    from core.sandbox.docker import list_containers

    return list_containers(client, workspace)


@pytest.fixture
def docker_ws(workspace: Any, docker_client: Any, offline_image: str) -> Iterator[Any]:
    """The test workspace, with the engine and image ready; every container labelled with this
    workspace is removed at the end (a failed test leaves nothing running on the engine)."""
    yield workspace
    from core.sandbox.docker import remove_container

    for container in workspace_containers(docker_client, str(workspace.resolve())):
        remove_container(container)


def container_creations(client: Any, since: float, workspace: str) -> list[dict[str, Any]]:
    """``create`` events of this workspace's containers since ``since`` (engine time, seconds)."""
    events = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                           filters={"type": "container", "event": "create", "label": f"w2s.workspace={workspace}"})
    return [e for e in events if e.get("Action") == "create"]


def environ_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
