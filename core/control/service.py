"""Finding this workspace's control service: core only *discovers* one; front ends start it.

The service itself (``w2s serve``: scheduler + HTTP) is composed in ``web/service.py``. It holds an
exclusive ``flock`` on ``.w2s/service.lock`` for its lifetime and writes ``.w2s/service.json``
{pid, host, port, url, ...}; readers here trust that file only while that pid is alive with the
recorded start time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.common.process import process_alive
from core.common.workspace import paths

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXECUTOR_ENV = "W2S_EXECUTOR"  # set in a job's env by its executor: what the job submits runs there too


def service_file() -> Path:
    return paths().state / "service.json"


def lock_file() -> Path:
    return paths().state / "service.lock"


def log_file() -> Path:
    return paths().state / "service.log"


def service_info() -> dict[str, Any] | None:
    """The running service's service.json, or None when no live service wrote it."""
    try:
        info = json.loads(service_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    return info if process_alive(info["pid"], info.get("create_time")) else None


def service_url() -> str | None:
    """Base URL of this workspace's service (None when none runs or it serves no HTTP)."""
    info = service_info()
    return info.get("url") if info else None


def is_service_running() -> bool:
    return service_info() is not None


def default_executor() -> str:
    """Where a job runs when its submitter names no executor: ``W2S_EXECUTOR`` (inside a job: the job's
    own executor, so an agent's runs go where the agent runs), else the running service's
    ``w2s serve --executor``, else ``local``."""
    value = os.environ.get(EXECUTOR_ENV, "").strip()
    if value:
        return value
    info = service_info()
    return str(info.get("executor") or "local") if info else "local"
