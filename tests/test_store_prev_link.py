"""A writer killed between linking ``.prev`` and replacing the file leaves the two as one inode;
the next write must not leave its temp link behind (rename() between links of one inode is a no-op)."""

from __future__ import annotations

import os

from core.control.store import Store


def test_prev_same_inode_leaves_no_temp(tmp_path):
    table = Store(tmp_path).table("findings")
    table.insert({"id": "doc", "i": 0})
    table.update("doc", {"i": 1})
    main, prev = tmp_path / "findings.json", tmp_path / "findings.json.prev"
    prev.unlink()
    os.link(main, prev)  # the state a writer killed between the two renames leaves
    Store(tmp_path).table("findings").update("doc", {"i": 2})
    assert not list(tmp_path.glob(".findings.json.*.tmp"))
    assert Store(tmp_path).table("findings").get("doc")["i"] == 2
