"""The executor interface: where a job runs (local process, Docker, RunPod, ...).

The scheduler only talks to this interface. A handle is a small JSON dict that the executor
returns from ``submit`` and the scheduler stores in the job, so any later process (a restarted
service, a CLI ``cancel``) can poll or cancel the same job again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


class ExecutorError(RuntimeError):
    """The executor could not do what was asked; the job fails with this message."""


class CapacityError(ExecutorError):
    """Transient: no capacity right now (GPUs, pods). The scheduler retries later with backoff."""


@dataclass
class PollResult:
    """What happened to a job: ``running``, ``exited`` (exit code known) or ``lost`` (gone, unknown)."""

    status: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    handle: dict[str, Any] | None = None  # a more complete handle the caller should store


class Executor(ABC):
    """Submit, poll, read logs, cancel. Capability flags tell UIs which buttons make sense."""

    name: ClassVar[str] = ""
    can_cancel: ClassVar[bool] = False
    streams_logs: ClassVar[bool] = False
    supports_gpus: ClassVar[bool] = False

    @abstractmethod
    def submit(self, job: dict[str, Any], command: list[str], env: dict[str, str]) -> dict[str, Any]:
        """Start ``command`` for ``job`` (its ``run_dir`` and ``attempt`` are set); return a handle."""

    @abstractmethod
    def poll(self, job: dict[str, Any], handle: dict[str, Any]) -> PollResult:
        """Current status of a submitted job."""

    @abstractmethod
    def logs(self, job: dict[str, Any], offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` on, and the offset to ask for next time."""

    @abstractmethod
    def cancel(self, job: dict[str, Any], handle: dict[str, Any], grace: float = 10.0) -> bool:
        """Stop the job (and only it); True when something was signalled."""

    def capabilities(self) -> dict[str, bool]:
        return {
            "can_cancel": self.can_cancel,
            "streams_logs": self.streams_logs,
            "supports_gpus": self.supports_gpus,
        }
