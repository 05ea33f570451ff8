"""The workspace settings file (``.w2s/settings.toml``): one reader for every section in it.

Executors keep their settings in a section each (``[slurm]``, ``[runpod]``); a missing file is an
empty section, an unreadable or malformed one is a one-line error naming the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core.common.errors import UserError


def read_section(path: Path, name: str) -> dict[str, Any]:
    """The ``[name]`` table of the TOML file at ``path`` ({} when the file or the table is absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise UserError(f"{path}: {name}: expected a table ([{name}])")
    return section
