"""The findings forum in core: validation, search, comments, one vote per voter, no lost updates."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from core.control import findings
from core.control.store import Store


def _share(store: Store, **over) -> dict:
    base = {"title": "Entropy filter", "summary": "Drop high-entropy weak labels.", "author": "run:a1",
            "metrics": {"pgr": 0.3, "transfer_acc": 0.61}, "config": {"keep": 0.7, "loss": "xent"},
            "run": "a1"}
    return findings.share(store, **{**base, **over})


def test_share_validates_and_writes_nothing_on_error(workspace: Path):
    store = Store()
    bad = [
        ({"title": ""}, "title: must not be empty"),
        ({"title": "x" * 201}, "title: longer than 200"),
        ({"summary": 5}, "summary: expected text"),
        ({"metrics": {"pgr": "high"}}, "metrics.pgr: expected a number"),
        ({"metrics": {"pgr": float("nan")}}, "metrics.pgr: expected a number"),
        ({"config": [1, 2]}, "config: expected an object"),
        ({"run": "../../etc"}, "run: expected a run id"),
    ]
    for over, message in bad:
        with pytest.raises(findings.FindingError, match=message.replace(".", r"\.")):
            _share(store, **over)
    assert findings.list_findings(store) == []
    doc = _share(store)
    assert doc["run"] == "a1" and doc["score"] == 0 and doc["comments"] == []
    assert findings.get(store, doc["id"])["title"] == "Entropy filter"
    with pytest.raises(findings.FindingNotFound):
        findings.get(store, "../x")


def test_search_sort_comment_vote(workspace: Path):
    store = Store()
    a = _share(store, title="Entropy filter")
    b = _share(store, title="Critic relabelling", summary="A critic model relabels.", config={})
    assert [d["id"] for d in findings.search(store, "ENTROPY")] == [a["id"]]
    assert [d["id"] for d in findings.search(store, "keep 0.7")] == [a["id"]]
    findings.comment(store, b["id"], "operator", "try on chat too")
    assert [d["id"] for d in findings.search(store, "chat")] == [b["id"]]
    findings.vote(store, b["id"], "run:x", 1)
    findings.vote(store, b["id"], "run:x", 1)  # same voter again: still one vote
    findings.vote(store, b["id"], "run:y", 1)
    findings.vote(store, a["id"], "run:x", -1)
    assert findings.get(store, b["id"])["score"] == 2
    assert [d["id"] for d in findings.list_findings(store)] == [b["id"], a["id"]]
    findings.vote(store, b["id"], "run:y", 0)  # withdraw
    assert findings.get(store, b["id"])["votes"] == {"run:x": 1}
    with pytest.raises(findings.FindingError):
        findings.vote(store, b["id"], "run:x", 5)
    with pytest.raises(findings.FindingError):
        findings.comment(store, b["id"], "operator", "   ")
    with pytest.raises(findings.FindingNotFound):
        findings.vote(store, "fnothere", "run:x", 1)


def _voter(args: tuple[str, str, int, int]) -> None:
    ws, fid, task, n = args
    os.environ["W2S_WORKSPACE"] = ws
    store = Store()
    for i in range(n):  # ids by task, not pid: one pool worker may run two tasks
        findings.vote(store, fid, f"voter-{task}-{i}", 1)
        findings.comment(store, fid, f"voter-{task}", f"comment {i}")


def test_concurrent_votes_and_comments_are_not_lost(workspace: Path):
    fid = _share(Store())["id"]
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        pool.map(_voter, [(str(workspace), fid, task, 8) for task in range(3)])
    doc = findings.get(Store(), fid)
    assert doc["score"] == 24 and len(doc["votes"]) == 24
    assert len(doc["comments"]) == 24


def test_config_and_metrics_are_capped_in_size_and_depth(workspace: Path):
    """A 10 MB or deeply nested ``config`` is refused with one line; nothing is stored."""
    store = Store()
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    big = {"blob": "x" * (10 * 1024 * 1024)}
    wide = {f"k{i}": ["y" * 1000] for i in range(90)}  # under the key count, over 64 KB
    for config, message in ((deep, "config: nested deeper than 8"), (big, "config: .* bytes serialized"),
                            (wide, "config: .* bytes serialized")):
        with pytest.raises(findings.FindingError, match=message):
            _share(store, config=config)
    assert findings.list_findings(store) == []
    ok = _share(store, config={"a": {"b": {"c": [1, 2, {"d": 3}]}}})
    assert ok["config"]["a"]["b"]["c"][2] == {"d": 3}


def test_a_run_token_may_link_only_its_own_run(workspace: Path):
    store = Store()
    with pytest.raises(findings.FindingError, match=r"run: a run may link only its own run id \(a1\)"):
        _share(store, run="someone-elses-run")
    assert findings.list_findings(store) == []
    assert _share(store)["run"] == "a1"
    assert _share(store, author="operator", run="any-run")["run"] == "any-run"
