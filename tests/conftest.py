"""Shared fixtures and helpers: every test gets its own temporary workspace.

The helpers here replace copies that test files used to write by hand: ``wait_until`` (poll a
condition), ``drive_scheduler`` (tick a real scheduler until jobs settle), the ``running_service``
fixture (a real ``python -m web.service`` in the test workspace) and ``make_dataset`` (a tiny
labelled dataset plus its label-free view, as ``w2s data prepare`` writes it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REFERENCE_ARCHIVE = SHARED / "reference" / "cache_results.tar.gz"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PYTHON = sys.executable
T = TypeVar("T")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty workspace folder that every w2s command in this test resolves to."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("W2S_WORKSPACE", str(ws))
    return ws


def run_cli(*argv: str) -> int:
    """Run ``w2s`` in-process and return its exit code."""
    from cli.main import main

    return main(list(argv))


# -- ../shared ------------------------------------------------------------------------------------
def in_ci() -> bool:
    """True under CI (``CI=true``, as GitHub Actions and most runners set it; ``CI=0``/``false`` is not)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_shared(path: Path) -> Path:
    """``path`` (inside ``../shared``), or skip the test when it is absent.

    A developer's clone may lack ``../shared``; CI always has it beside the clone, so there a
    missing file fails the test instead of silently skipping it.
    """
    if path.exists():
        return path
    reason = f"needs {path} (the shared/ folder beside the repository)"
    if in_ci():
        pytest.fail(f"{reason}; CI must provide it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def reference_archive() -> Path:
    """The reference sandbox's public results archive (``../shared/reference``)."""
    return require_shared(REFERENCE_ARCHIVE)


# -- waiting --------------------------------------------------------------------------------------
def wait_until(pred: Callable[[], T], timeout: float = 60.0, step: float = 0.1, what: str = "") -> T:
    """Poll ``pred`` until it returns something truthy and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or 'condition'}")
        time.sleep(step)


class _Pilot(Protocol):
    def pause(self, delay: float | None = None) -> Awaitable[None]: ...


async def pilot_wait_until(pilot: _Pilot, pred: Callable[[], object], timeout: float = 60.0,
                           step: float = 0.1) -> bool:
    """``wait_until`` for Textual tests: lets the app run between checks; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await pilot.pause(step)
    return bool(pred())


# -- the scheduler --------------------------------------------------------------------------------
def drive_scheduler(sched: Any, job_ids: Collection[str], until: Collection[str] | None = None,
                    timeout: float = 90.0, step: float = 0.05) -> list[dict[str, Any]]:
    """Tick ``sched`` (a ``core.control.scheduler.Scheduler``) until every job is in one of ``until``
    (default: a terminal state); returns the jobs, in ``job_ids`` order."""
    from core.common.job_types import TERMINAL_STATES
    from core.control.jobs import get_job

    states = set(TERMINAL_STATES if until is None else until)
    deadline = time.monotonic() + timeout
    while True:
        sched.tick()
        jobs = [get_job(i) or {"id": i, "state": None} for i in job_ids]
        if all(j["state"] in states for j in jobs):
            return jobs
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s: {[(j['id'], j['state']) for j in jobs]}")
        time.sleep(step)


# -- a running service ----------------------------------------------------------------------------
@pytest.fixture
def service_env() -> dict[str, str]:
    """Extra environment for ``running_service`` (override this fixture in a module to change it)."""
    return {}


@pytest.fixture
def service_workspace(workspace: Path, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The workspace, for tests that start its service themselves: ``service_env`` is set (a service
    inherits this process's environment) and whatever service runs at the end is stopped, killed if
    it does not stop. Jobs outlive a service, so live ones are cancelled first."""
    for key, value in service_env.items():
        monkeypatch.setenv(key, value)
    yield workspace
    from core.control import service as discovery
    from core.control.jobs import JobError, cancel_job, list_jobs
    from web import launcher

    for job in list_jobs(active_only=True):  # a failed test leaves no agent or training behind
        try:
            cancel_job(job["id"], grace=1)
        except JobError:
            pass
    info = discovery.service_info()
    if info:
        try:
            launcher.stop_service(timeout=20)
        except Exception:
            os.kill(info["pid"], signal.SIGKILL)


@pytest.fixture
def running_service(service_workspace: Path) -> str:
    """``python -m web.service`` started detached in the test workspace, web side on a free port;
    its URL. Stopped at the end of the test (see ``service_workspace``)."""
    from web import launcher

    url = launcher.start_service_detached(port=0, timeout=180)
    assert url, "the service came up without its web side"
    return url


# -- datasets -------------------------------------------------------------------------------------
GOOD = ["wonderful", "happy", "great", "lovely", "excellent", "joyful", "superb", "pleasant", "delightful",
        "brilliant", "cheerful", "fantastic", "kind", "perfect", "splendid", "warm", "bright", "calm"]
BAD = ["terrible", "sad", "awful", "horrible", "dreadful", "miserable", "nasty", "painful", "gloomy",
       "hateful", "rotten", "cruel", "bitter", "ugly", "grim", "tragic", "angry", "hostile"]


def _word_rows(words: list[tuple[str, bool]], subset: str) -> list[dict[str, Any]]:
    out = []
    for word, positive in words:
        claim = random.Random(word).random() < 0.5
        out.append({
            "question": f"Is the word '{word}' positive?",
            "choice": "yes" if claim else "no",
            "label": claim == positive,
            "subset": subset,
        })
    return out


def sentiment_splits() -> dict[str, list[dict[str, Any]]]:
    """Three splits of one-word sentiment judgements (binary format): MiniLM learns them in seconds."""
    words = [(w, True) for w in GOOD] + [(w, False) for w in BAD]
    random.Random(0).shuffle(words)
    return {
        "train_label": _word_rows(words[:14], "a"),
        "train_unlabel": _word_rows(words[14:26], "b"),
        "test": _word_rows(words[26:], "c"),
    }


def make_dataset(root: Path, name: str = "tiny", splits: Mapping[str, list[dict[str, Any]]] | None = None,
                 view: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Write ``root/labeled_data/<name>/<split>.jsonl`` (default: ``sentiment_splits()``) and, unless
    ``view`` is False, its label-free view ``root/data/<name>/`` row for row as ``w2s data prepare``
    writes it. Returns the labelled rows per split."""
    from core.data.datasets import LABEL_FREE_SPLITS, detect_format, label_free_row

    splits = dict(sentiment_splits() if splits is None else splits)
    for split, rows in splits.items():
        _write_jsonl(root / "labeled_data" / name / f"{split}.jsonl", rows)
        if view and split in LABEL_FREE_SPLITS:
            fmt = detect_format(rows[0]) if rows else None
            free = [label_free_row(r, fmt) for r in rows] if fmt else []
            _write_jsonl(root / "data" / name / f"{split}.jsonl", free)
    return splits


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
