"""Executor registry: ``get_executor(name)``. Backends register a ``module:Class`` path here so
importing this package stays cheap and optional SDKs (docker, runpod) load only when used."""

from __future__ import annotations

import importlib
import threading

from executors.base import CapacityError, Executor, ExecutorError, PollResult

__all__ = [
    "CapacityError",
    "Executor",
    "ExecutorError",
    "PollResult",
    "executor_names",
    "get_executor",
    "register_executor",
]

_REGISTRY: dict[str, str] = {"local": "executors.local:LocalExecutor"}
_INSTANCES: dict[str, Executor] = {}
_GUARD = threading.Lock()


def register_executor(name: str, target: str) -> None:
    """Register ``module:Class`` under ``name`` (e.g. ``docker``, ``runpod``)."""
    with _GUARD:
        _REGISTRY[name] = target
        _INSTANCES.pop(name, None)


def executor_names() -> list[str]:
    return sorted(_REGISTRY)


def get_executor(name: str) -> Executor:
    """The (per-process, shared) executor called ``name``; ValueError for an unknown one."""
    with _GUARD:
        if name in _INSTANCES:
            return _INSTANCES[name]
        target = _REGISTRY.get(name)
        if target is None:
            raise ValueError(f"unknown executor {name!r} (known: {', '.join(sorted(_REGISTRY))})")
        module_name, _, cls_name = target.partition(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        _INSTANCES[name] = cls()
        return _INSTANCES[name]
