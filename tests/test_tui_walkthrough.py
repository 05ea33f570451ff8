"""The real ``w2s-tui`` in tmux, driven as a user would (``bench/tui_walkthrough.py``): launch a run,
follow and filter its log, the "succeeded" notification, a second seed cancelled and retried, quit.
Under CI a missing tmux fails the test; elsewhere it skips."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from tests.conftest import REPO, in_ci

pytestmark = pytest.mark.timeout(420)


def test_walk_through_the_real_tui_in_tmux(workspace, capsys):
    if shutil.which("tmux") is None:
        if in_ci():
            pytest.fail("tmux is missing: apt-get install -y tmux")
        pytest.skip("tmux is not installed")
    sys.path.insert(0, str(REPO / "bench"))
    import tui_walkthrough

    assert tui_walkthrough.main(["--json"]) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    names = [name for name, _ in result["steps"]]
    for step in ("r: launch dialog", "typing 'step 1' filters", "notification: the run succeeded", "y: cancelled",
                 "y: queued again", "notification: the retried run succeeded", "q: quit"):
        assert step in names, names
    assert result["keys"] == 14 and result["first_paint_s"] > 0
