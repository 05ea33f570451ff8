"""Where all state lives: one workspace folder (cwd by default, ``W2S_WORKSPACE`` to override).

Every command resolves paths through :func:`paths` so tests can point the whole product at a
temporary folder by setting one environment variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_ENV = "W2S_WORKSPACE"


@dataclass(frozen=True)
class WorkspacePaths:
    """The well-known folders of one workspace. Nothing here creates folders."""

    root: Path

    @property
    def data(self) -> Path:
        """Label-free datasets that ideas and agents may read."""
        return self.root / "data"

    @property
    def labeled_data(self) -> Path:
        """Ground truth; read only by trusted code (baseline producers, the referee)."""
        return self.root / "labeled_data"

    @property
    def cache_results(self) -> Path:
        return self.root / "cache_results"

    @property
    def runs(self) -> Path:
        """One folder per job: command, env without secrets, stdout.log, result.json, exit status."""
        return self.root / "runs"

    @property
    def state(self) -> Path:
        """The TinyDB store, pid files, the operator token."""
        return self.root / ".w2s"

    @property
    def ideas(self) -> Path:
        """Researcher- and agent-written ideas; packaged ideas live in the ``ideas`` package."""
        return self.root / "ideas"


def workspace_root() -> Path:
    value = os.environ.get(WORKSPACE_ENV)
    return Path(value).expanduser().resolve() if value else Path.cwd().resolve()


def paths() -> WorkspacePaths:
    return WorkspacePaths(workspace_root())
