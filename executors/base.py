"""The executor interface: where a job runs (local process, Docker, RunPod, ...).

The scheduler and the job functions in ``core.control.jobs`` reach an executor only through this
interface. A handle is a small JSON dict that the executor returns from ``submit`` and the scheduler
stores in the job, so any later process (a restarted service, a CLI ``cancel``) can poll, adopt or
cancel the same attempt again.

``submit`` and ``poll`` are required. ``cancel``, ``adopt`` and ``logs`` are optional, and an
adapter's :class:`Capabilities` are derived from which of them it overrides when the class is
created, so a capability flag and the code behind it cannot disagree (an adapter may not set the
flags itself). ``supports_gpus`` is the one declared capability: there is no method behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from core.common.files import MAX_LOG_CHUNK
from core.common.job_types import Handle, Job


class ExecutorError(RuntimeError):
    """The executor could not do what was asked; the job fails with this message."""


class CapacityError(ExecutorError):
    """Transient: no capacity right now (GPUs, pods). The scheduler retries later with backoff."""


@dataclass
class PollResult:
    """What happened to a job: ``running``, ``exited`` (exit code known) or ``lost`` (gone, unknown)."""

    status: Literal["running", "exited", "lost"]
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    handle: Handle | None = None  # a more complete handle the caller should store


@dataclass(frozen=True)
class Capabilities:
    """What an executor can do, for the scheduler, the job functions and the UIs' buttons."""

    can_cancel: bool  # implements cancel(): stop a running attempt
    can_adopt: bool  # implements adopt(): re-attach to an attempt after the service restarted
    streams_logs: bool  # implements logs(): read the job's output while it runs
    supports_gpus: bool  # declared: the job may be handed GPUs (CUDA_VISIBLE_DEVICES)

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


# capability -> the optional method whose override grants it
_DERIVED = {"can_cancel": "cancel", "can_adopt": "adopt", "streams_logs": "logs"}


class Executor(ABC):
    """Submit and poll (required); cancel, adopt and read logs (optional, see ``capabilities``)."""

    name: ClassVar[str] = ""
    supports_gpus: ClassVar[bool] = False
    # declared: a cluster scheduler (Slurm) picks the job's GPUs, so this machine's GPU inventory is not
    # consulted or reserved for its jobs; the job's gpus_requested is passed on instead
    allocates_gpus: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = Capabilities(False, False, False, False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for flag in (*_DERIVED, "capabilities"):
            if flag in cls.__dict__:
                methods = ", ".join(f"{m}()" for m in _DERIVED.values())
                raise TypeError(f"{cls.__name__}.{flag} is derived from which of {methods} the class "
                                "implements; implement the method instead of setting the flag")
        derived = {flag: getattr(cls, method) is not getattr(Executor, method) for flag, method in _DERIVED.items()}
        cls.capabilities = Capabilities(supports_gpus=bool(cls.supports_gpus), **derived)

    @abstractmethod
    def submit(self, job: Job, command: list[str], env: dict[str, str]) -> Handle:
        """Start ``command`` for ``job`` (its ``run_dir`` and ``attempt`` are set); return a handle."""

    @abstractmethod
    def poll(self, job: Job, handle: Handle) -> PollResult:
        """Current status of a submitted job."""

    def cancel(self, job: Job, handle: Handle, grace: float = 10.0) -> bool:
        """Stop the job (and only it); True when something was signalled."""
        raise ExecutorError(f"the {self.name or type(self).__name__} executor cannot cancel jobs")

    def adopt(self, job: Job, handle: Handle | None) -> Handle | None:
        """The full handle of the job's current attempt if it is running somewhere, else None.

        Called for a job left in ``starting`` (a service restarted mid-launch): a handle means the
        attempt runs and is re-attached, never launched twice. Without ``adopt`` the scheduler
        cannot tell, so such a job is failed rather than relaunched.
        """
        return None

    def logs(self, job: Job, offset: int = 0, max_bytes: int = MAX_LOG_CHUNK) -> tuple[str, int]:
        """Log text from byte ``offset`` on (at most ``max_bytes``), and the offset to ask for next."""
        raise ExecutorError(f"the {self.name or type(self).__name__} executor does not stream logs")
