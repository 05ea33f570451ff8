"""Which sandbox runs untrusted code here, and what ``w2s doctor`` reports about each."""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.sandbox.base import Sandbox, SandboxUnavailable
from core.sandbox.bwrap import BwrapSandbox
from core.sandbox.landlock import LandlockSandbox, landlock_disabled
from core.sandbox.unsafe import UnsafeNoSandbox

UNSAFE_ENV = "W2S_UNSAFE_NO_SANDBOX"  # "1": the operator accepts unverified, unranked results


def unsafe_allowed() -> bool:
    return os.environ.get(UNSAFE_ENV, "").strip().lower() in ("1", "true", "yes")


def default_sandbox(allow_unsafe: bool | None = None) -> Sandbox:
    """The local sandbox (bwrap) when it works, else Landlock (user namespaces disabled: weaker, no
    pid namespace, paths not hidden, but nothing outside the allow-list can be read); the unsafe
    mode only when the operator asked for it.

    Raises SandboxUnavailable with the reasons and both ways out (fix the sandbox, or accept
    unverified results explicitly).
    """
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


__all__ = ["SandboxUnavailable", "default_sandbox", "doctor", "unsafe_allowed"]
