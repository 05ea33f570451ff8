"""Executor registry: ``get_executor(name)``.

Each name maps to a small factory that imports its adapter when first asked for, so importing this
package stays cheap and an optional SDK (docker, runpod) loads only in the process that uses it.
The imports are written out (no ``importlib`` by name) so the import-linter contracts see them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from executors.base import Capabilities, CapacityError, Executor, ExecutorError, PollResult

__all__ = [
    "Capabilities",
    "CapacityError",
    "Executor",
    "ExecutorError",
    "PollResult",
    "executor_names",
    "get_executor",
    "register_executor",
    "unregister_executor",
]

ExecutorFactory = Callable[[], Executor]


def _local() -> Executor:
    from executors.local import LocalExecutor

    return LocalExecutor()


def _docker() -> Executor:
    from executors.docker import DockerExecutor

    return DockerExecutor()


def _slurm() -> Executor:
    from executors.slurm import SlurmExecutor

    return SlurmExecutor()


def _runpod() -> Executor:
    from executors.runpod import RunPodExecutor

    return RunPodExecutor()


_FACTORIES: dict[str, ExecutorFactory] = {"local": _local, "docker": _docker, "slurm": _slurm, "runpod": _runpod}
_INSTANCES: dict[str, Executor] = {}
_GUARD = threading.Lock()


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Register ``factory`` (an Executor subclass, or a function that imports and builds one) as ``name``."""
    with _GUARD:
        _FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def unregister_executor(name: str) -> None:
    """Forget ``name`` (tests register throwaway executors)."""
    with _GUARD:
        _FACTORIES.pop(name, None)
        _INSTANCES.pop(name, None)


def executor_names() -> list[str]:
    return sorted(_FACTORIES)


def get_executor(name: str) -> Executor:
    """The (per-process, shared) executor called ``name``; ValueError for an unknown one."""
    with _GUARD:
        if name not in _INSTANCES:
            factory = _FACTORIES.get(name)
            if factory is None:
                raise ValueError(f"unknown executor {name!r} (known: {', '.join(sorted(_FACTORIES))})")
            _INSTANCES[name] = factory()
        return _INSTANCES[name]
