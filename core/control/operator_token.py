"""The operator token: the one secret that authorises mutations from people (launch, cancel, vote).

It is created on first use, stored in ``<workspace>/.w2s/operator_token`` readable only by its
owner (0600), and compared in constant time. Agents never get it: they hold run tokens.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from core.common.atomic import atomic_write_text
from core.common.workspace import paths

FILENAME = "operator_token"


def token_path(state_dir: Path | None = None) -> Path:
    return (state_dir if state_dir is not None else paths().state) / FILENAME


def read_operator_token(state_dir: Path | None = None) -> str | None:
    """The stored token, or None when none was created yet."""
    path = token_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def ensure_operator_token(state_dir: Path | None = None) -> str:
    """Return the operator token, creating it (0600) the first time."""
    existing = read_operator_token(state_dir)
    if existing:
        path = token_path(state_dir)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return existing
    token = secrets.token_urlsafe(32)
    path = token_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, token + "\n", mode=0o600)
    # Two processes may race on first start: whoever renamed last wins, so re-read.
    return read_operator_token(state_dir) or token


def check_operator_token(presented: str | None, state_dir: Path | None = None) -> bool:
    """Constant-time comparison against the stored token; False when either side is missing."""
    if not presented:
        return False
    stored = read_operator_token(state_dir)
    if not stored:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), stored.encode("utf-8"))
