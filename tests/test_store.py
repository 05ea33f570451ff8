"""Store: CRUD semantics, copies, archive split, cross-process freshness, schema guard."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from core.control.store import Store, StoreError
from tests.conftest import REPO


def test_insert_get_update_remove(tmp_path):
    table = Store(tmp_path).table("findings")
    doc_id = table.insert({"title": "a", "votes": 0})
    assert isinstance(doc_id, str) and len(doc_id) == 8
    assert table.get(doc_id)["title"] == "a"
    assert table.update(doc_id, {"votes": 1})["votes"] == 1

    def bump(doc):
        doc["votes"] += 1

    assert table.update(doc_id, bump)["votes"] == 2
    assert table.update(doc_id, lambda doc: {"title": "replaced"})["title"] == "replaced"
    assert "votes" not in table.get(doc_id)
    assert table.insert({"id": "fixed", "x": 1}) == "fixed"
    with pytest.raises(ValueError, match="already exists"):
        table.insert({"id": "fixed"})
    assert sorted(d["id"] for d in table.all()) == sorted([doc_id, "fixed"])
    assert [d["id"] for d in table.search(lambda d: d.get("x") == 1)] == ["fixed"]
    assert table.remove("fixed") is True and table.remove("fixed") is False
    with pytest.raises(KeyError):
        table.update("nope", {"a": 1})
    assert table.get("nope") is None


def test_returned_documents_are_copies(tmp_path):
    table = Store(tmp_path).table("agents")
    doc_id = table.insert({"usage": {"turns": 1}, "list": [1]})
    doc = table.get(doc_id)
    doc["usage"]["turns"] = 99
    doc["list"].append(2)
    assert table.get(doc_id) == {**table.get(doc_id), "usage": {"turns": 1}, "list": [1]}

    def fail(d):
        d["usage"]["turns"] = 5
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        table.update(doc_id, fail)
    assert table.get(doc_id)["usage"]["turns"] == 1


def test_finished_jobs_move_to_archive_and_back(tmp_path):
    store = Store(tmp_path)
    jobs = store.table("jobs")
    a = jobs.insert({"state": "queued"})
    b = jobs.insert({"state": "running"})
    jobs.update(a, {"state": "succeeded"})
    hot = orjson.loads((tmp_path / "jobs.json").read_bytes())["jobs"]
    archive = orjson.loads((tmp_path / "jobs.archive-0000.json").read_bytes())["jobs"]
    assert set(hot) == {b} and set(archive) == {a}
    assert [d["id"] for d in jobs.hot()] == [b]
    assert {d["id"] for d in jobs.all()} == {a, b} and len(jobs) == 2
    jobs.update(a, {"state": "queued"})
    assert {d["id"] for d in jobs.hot()} == {a, b}
    assert orjson.loads((tmp_path / "jobs.archive-0000.json").read_bytes())["jobs"] == {}


def test_archive_is_split_into_segments(tmp_path, monkeypatch):
    from core.control import store as store_mod

    monkeypatch.setattr(store_mod, "ARCHIVE_SEGMENT_DOCS", 3)
    jobs = Store(tmp_path).table("jobs")
    ids = [jobs.insert({"state": "running", "n": n}) for n in range(7)]
    for doc_id in ids:
        jobs.update(doc_id, {"state": "failed"})
    segments = sorted(p.name for p in tmp_path.glob("jobs.archive-*.json"))
    assert segments == ["jobs.archive-0000.json", "jobs.archive-0001.json", "jobs.archive-0002.json"]
    assert [d["n"] for d in jobs.all()] == list(range(7))
    jobs.update(ids[1], {"state": "cancelled"})  # stays in its own segment
    assert ids[1] in orjson.loads((tmp_path / "jobs.archive-0000.json").read_bytes())["jobs"]
    other = Store(tmp_path).table("jobs")  # another process's view finds every segment
    assert other.get(ids[6])["state"] == "failed" and len(other) == 7


def test_duplicate_left_by_a_crash_mid_move_is_resolved(tmp_path):
    """A writer killed between writing the archive and the hot file leaves the job in both."""
    old = {"id": "j1", "state": "running", "_rev": 3}
    new = {"id": "j1", "state": "succeeded", "_rev": 4}
    (tmp_path / "jobs.json").write_bytes(orjson.dumps({"_schema": 1, "jobs": {"j1": old}}))
    (tmp_path / "jobs.archive-0000.json").write_bytes(orjson.dumps({"_schema": 1, "jobs": {"j1": new}}))
    jobs = Store(tmp_path).table("jobs")
    assert jobs.get("j1")["state"] == "succeeded"
    assert [d["state"] for d in jobs.all()] == ["succeeded"]
    jobs.insert({"state": "queued"})  # first write repairs
    assert "j1" not in orjson.loads((tmp_path / "jobs.json").read_bytes())["jobs"]


def test_readers_see_other_processes_writes_even_same_size(tmp_path):
    table = Store(tmp_path).table("ideas")
    doc_id = table.insert({"n": 0})
    assert table.get(doc_id)["n"] == 0
    for n in range(1, 6):  # same file size every time: only the generation stamp tells them apart
        code = (f"from core.control.store import Store; from pathlib import Path; "
                f"Store(Path({str(tmp_path)!r})).table('ideas').update({doc_id!r}, {{'n': {n}}})")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        assert table.get(doc_id)["n"] == n


def test_newer_schema_and_corrupt_file_are_refused(tmp_path):
    (tmp_path / "ideas.json").write_bytes(orjson.dumps({"_schema": 99, "ideas": {}}))
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path).table("ideas").all()
    (tmp_path / "ideas.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        Store(tmp_path).table("ideas").all()


def test_files_are_private_and_schema_stamped(tmp_path):
    Store(tmp_path).table("ideas").insert({"x": 1})
    data = orjson.loads((tmp_path / "ideas.json").read_bytes())
    assert data["_schema"] == 1
    assert oct(os.stat(tmp_path / "ideas.json").st_mode & 0o777) == "0o600"


def test_search_copies_only_matches_and_can_skip_the_archive(tmp_path):
    jobs = Store(tmp_path).table("jobs")
    live = jobs.insert({"state": "running", "tag": "x"})
    done = jobs.insert({"state": "running", "tag": "x"})
    jobs.update(done, {"state": "succeeded"})
    assert {d["id"] for d in jobs.search(lambda d: d.get("tag") == "x")} == {live, done}
    assert [d["id"] for d in jobs.search(lambda d: d.get("tag") == "x", hot_only=True)] == [live]
    found = jobs.search(lambda d: d["id"] == live)
    found[0]["tag"] = "mutated"
    assert jobs.get(live)["tag"] == "x"


def test_bad_table_name(tmp_path):
    with pytest.raises(ValueError):
        Store(tmp_path).table("../evil")
