"""No isolation, for debugging an idea only: the command runs as a plain child process.

Nothing it produces is trusted: results are labelled ``unverified (not isolated)``, shown apart and
never ranked, and agents refuse this mode unless the operator passes the explicit unsafe flag. It
still gets only ``spec.env`` as its environment, so secrets are not handed to it by accident.
"""

from __future__ import annotations

import os

from core.sandbox.base import Sandbox, SandboxSpec


class UnsafeNoSandbox(Sandbox):
    name = "none"
    isolated = False

    def problem(self) -> str | None:
        return None

    def argv(self, spec: SandboxSpec) -> list[str]:
        return list(spec.command)

    def host_env(self, spec: SandboxSpec) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **dict(spec.env)}

    def host_cwd(self, spec: SandboxSpec) -> str | None:
        return str(spec.cwd)
