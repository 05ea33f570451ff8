"""Shared fixtures: every test gets its own temporary workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REFERENCE_ARCHIVE = SHARED / "reference" / "cache_results.tar.gz"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty workspace folder that every w2s command in this test resolves to."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("W2S_WORKSPACE", str(ws))
    return ws


@pytest.fixture
def reference_archive() -> Path:
    """The reference sandbox's public results archive (must exist: CI copies shared/ beside main)."""
    assert REFERENCE_ARCHIVE.is_file(), f"missing {REFERENCE_ARCHIVE}"
    return REFERENCE_ARCHIVE


def run_cli(*argv: str) -> int:
    """Run ``w2s`` in-process and return its exit code."""
    from cli.main import main

    return main(list(argv))


PYTHON = sys.executable
