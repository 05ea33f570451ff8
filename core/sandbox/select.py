"""Which sandbox runs untrusted code here, and what ``w2s doctor`` reports about each."""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.sandbox.base import Sandbox, SandboxUnavailable
from core.sandbox.bwrap import BwrapSandbox
from core.sandbox.landlock import LandlockSandbox, landlock_disabled
from core.sandbox.unsafe import UnsafeNoSandbox

UNSAFE_ENV = "W2S_UNSAFE_NO_SANDBOX"  # "1": the operator accepts unverified, unranked results
SANDBOX_ENV = "W2S_SANDBOX"  # "docker": the job's executor asked for containers (executors.docker sets it)


def unsafe_allowed() -> bool:
    return os.environ.get(UNSAFE_ENV, "").strip().lower() in ("1", "true", "yes")


def named_sandbox(name: str) -> Sandbox | None:
    """The sandbox an executor asks for by name (``docker``: a container, ``runpod``: a pod); None for
    ``local`` and every other executor, whose ideas run in the local sandbox."""
    if name == "docker":
        from core.sandbox.docker import DockerSandbox

        return DockerSandbox()
    if name == "runpod":
        from core.sandbox.runpod import RunPodSandbox

        return RunPodSandbox()
    return None


def executor_problem(name: str) -> str | None:
    """Why the executor ``name`` cannot run an idea here (its engine, image or settings), or None."""
    box = named_sandbox(name)
    return box.problem() if box is not None else None


def default_sandbox(allow_unsafe: bool | None = None) -> Sandbox:
    """The local sandbox (bwrap) when it works, else Landlock (user namespaces disabled: weaker, no
    pid namespace, paths not hidden, but nothing outside the allow-list can be read); the unsafe
    mode only when the operator asked for it.

    ``W2S_SANDBOX=docker`` (a job of the Docker executor) means the Docker sandbox and nothing else: when
    the engine or the image is missing that is the error, never a silent fall back to another sandbox.

    Raises SandboxUnavailable with the reasons and both ways out (fix the sandbox, or accept
    unverified results explicitly).
    """
    asked = os.environ.get(SANDBOX_ENV, "").strip().lower()
    named = named_sandbox(asked)
    if named is not None:
        why = named.problem()
        if why:
            raise SandboxUnavailable(f"{SANDBOX_ENV}={asked}: {why}")
        return named
    if asked not in ("", "local"):
        raise SandboxUnavailable(f"{SANDBOX_ENV}={asked!r}: unknown sandbox (known: docker, local, runpod)")
    bwrap = BwrapSandbox()
    problem = bwrap.problem()
    if problem is None:
        return bwrap
    landlock = LandlockSandbox()
    fallback = landlock.problem()
    if fallback is None:
        return landlock
    if allow_unsafe if allow_unsafe is not None else unsafe_allowed():
        return UnsafeNoSandbox()
    raise SandboxUnavailable(
        f"no sandbox for untrusted code: {problem}; {fallback}. To run anyway with unverified, unranked "
        f"results, set {UNSAFE_ENV}=1 (debugging only)"
    )


@dataclass(frozen=True)
class SandboxReport:
    name: str
    works: bool
    detail: str


def doctor() -> list[SandboxReport]:
    """Every sandbox this build knows, whether it works here and how to get it."""
    bwrap = BwrapSandbox()
    problem = bwrap.problem()
    reports = [SandboxReport("bwrap", problem is None, problem or f"works ({bwrap.binary})")]
    landlock = LandlockSandbox()
    fallback = landlock.problem()
    if fallback is None:
        gaps = landlock.limits()
        detail = (f"works (Landlock ABI {landlock.abi}{'; ' + gaps if gaps else ''}); "
                  + ("used only when bwrap does not work" if problem is None else
                     "in use: paths are not hidden and there is no pid namespace, prefer bwrap"))
    else:
        detail = fallback if landlock_disabled() else f"{fallback} (the fallback when bwrap does not work)"
    reports.append(SandboxReport("landlock", fallback is None, detail))
    reports.append(SandboxReport(
        "none", unsafe_allowed(),
        f"allowed by {UNSAFE_ENV}=1: results are labelled unverified and never ranked" if unsafe_allowed()
        else f"debugging only; off (set {UNSAFE_ENV}=1 to allow unverified runs)",
    ))
    return reports


def docker_report() -> SandboxReport:
    """The Docker sandbox (the docker executor's): engine reachable, image present, and why not.
    Reported apart from :func:`doctor`: it is used only when a job asks for it."""
    from core.sandbox.docker import DockerSandbox, engine_address

    box = DockerSandbox()
    problem = box.problem()
    if problem:
        return SandboxReport("docker", False, problem)
    version = box.client().version().get("Version", "?")
    return SandboxReport("docker", True, f"works (engine {version} at {engine_address()}, image "
                                         f"{box.settings.image}); used by the docker executor")


__all__ = ["SandboxUnavailable", "default_sandbox", "docker_report", "doctor", "executor_problem", "named_sandbox",
           "unsafe_allowed"]
