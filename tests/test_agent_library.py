"""The agent's read-only library (@core, @ideas, @workspace, @findings), the validation slice of
``train_unlabel`` and the chart tools, each on its own."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.agent.budgets import Budgets, Usage
from core.agent.png import bar_chart, encode_png, line_chart
from core.agent.tools import ToolContext, run_tool
from core.agent.transcript import Transcript
from core.control import findings
from core.control.store import Store
from core.run import validation


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    folder = workspace / "ideas" / "agent_t"
    folder.mkdir(parents=True)
    (workspace / "labeled_data" / "demo-math").mkdir(parents=True)
    (workspace / "labeled_data" / "demo-math" / "test.jsonl").write_text('{"label": 1}\n')
    return ToolContext(agent_id="t", idea_name="agent_t", folder=folder, run_dir=workspace / "runs" / "j",
                       budgets=Budgets(max_evals=1), usage=Usage())


def call(ctx: ToolContext, name: str, **args):
    return run_tool(ctx, name, args, tool_use_id="u1")


def test_the_library_reads_but_never_writes(ctx: ToolContext, workspace: Path) -> None:
    sdk = call(ctx, "read_file", path="@core/run/experiment.py")
    assert not sdk.is_error and "def load_label_free" in sdk.text
    assert "vanilla_w2s/" in call(ctx, "list_files", path="@ideas", recursive=False).text
    assert "weak" in call(ctx, "read_file", path="@ideas/vanilla_w2s/run.py").text
    assert "agent_t/" in call(ctx, "list_files", path="@workspace", recursive=False).text
    for path in ("@core/run/experiment.py", "@core/evil.py", "@ideas/new/run.py"):
        out = call(ctx, "write_file", path=path, content="x")
        assert out.is_error and "read-only library" in out.text
        out = call(ctx, "edit_file", path=path, old_text="def", new_text="x")
        assert out.is_error and "read-only library" in out.text
    assert "def load_label_free" in (Path(__file__).parents[1] / "core/run/experiment.py").read_text()
    unknown = call(ctx, "read_file", path="@secrets/x")
    assert unknown.is_error and "unknown library root" in unknown.text
    # a symlink planted in the workspace's ideas cannot lead the library view to the labels
    (workspace / "ideas" / "sneaky").symlink_to(workspace / "labeled_data")
    for path in ("@workspace/sneaky/demo-math/test.jsonl", "../sneaky/demo-math/test.jsonl"):
        out = call(ctx, "read_file", path=path)
        assert out.is_error and "refused" in out.text and '"label"' not in out.text


def test_findings_are_virtual_files(ctx: ToolContext) -> None:
    assert call(ctx, "list_files", path="@findings").text == "(no findings yet)"
    doc = findings.share(Store(), title="Soft labels help", summary="3 seeds: 0.31, 0.28, 0.35",
                         author="run:other", metrics={"pgr_mean": 0.31})
    listing = call(ctx, "list_files", path="@findings").text
    assert f"@findings/{doc['id']}  Soft labels help" in listing
    one = call(ctx, "read_file", path=f"@findings/{doc['id']}")
    assert not one.is_error and '"pgr_mean": 0.31' in one.text and "3 seeds" in one.text
    assert call(ctx, "read_file", path="@findings/fdeadbeef").is_error


def test_share_finding_records_the_runs_behind_it(ctx: ToolContext) -> None:
    from core.control.jobs import submit_job

    mine = submit_job("idea_run", ["true"], meta={"agent_id": "t", "seed": 1})
    other = submit_job("idea_run", ["true"], meta={"agent_id": "someone_else"})
    out = call(ctx, "share_finding", title="t", summary="s", job_ids=[mine["id"]])
    assert not out.is_error and f"backed by runs {mine['id']}" in out.text
    (doc,) = findings.list_findings(Store())
    assert doc["config"]["runs"] == mine["id"] and doc["run"] == "j"  # linked to the agent's own run
    bad = call(ctx, "share_finding", title="t", summary="s", job_ids=[other["id"]])
    assert bad.is_error and "no job" in bad.text


def test_validation_slice_is_fixed_disjoint_and_label_free() -> None:
    rows = [{"id": f"r{i}", "text": str(i)} for i in range(400)]
    p1 = np.linspace(0.0, 1.0, 400)
    train, train_p1, val, val_p1 = validation.split(rows, p1, fraction=0.1)
    assert {r["id"] for r in train}.isdisjoint({r["id"] for r in val})
    assert len(train) + len(val) == 400 and 20 <= len(val) <= 60
    assert list(val_p1) == [p1[int(r["id"][1:])] for r in val]  # weak labels stay with their rows
    again = validation.split(list(reversed(rows)), p1[::-1], fraction=0.1)  # order does not matter
    assert {r["id"] for r in again[2]} == {r["id"] for r in val}
    tiny = validation.split(rows[:3], p1[:3], fraction=0.1)
    assert len(tiny[0]) >= 1 and len(tiny[2]) >= 1
    with pytest.raises(ValueError):
        validation.split(rows, p1[:10])
    s = validation.scores([0.9, 0.8, 0.2, 0.45], [0.7, 0.3, 0.1, 0.6])
    assert s["n"] == 4 and s["agreement_with_weak"] == 0.5
    # weak confidence 0.9, 0.8, 0.8, 0.55: the confident half (>= median) is rows 0-2, two of which agree
    assert s["agreement_on_weak_confident_half"] == pytest.approx(2 / 3)
    assert s["strong_mean_confidence"] == pytest.approx((0.7 + 0.7 + 0.9 + 0.6) / 4)


def _png_rows(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_png_writer_and_charts() -> None:
    width, height, raw = _png_rows(encode_png(2, 1, bytes([255, 0, 0, 0, 0, 255])))
    assert (width, height) == (2, 1) and raw == b"\x00" + bytes([255, 0, 0, 0, 0, 255])
    w, h, raw = _png_rows(line_chart([[1.0, 0.5, 0.25], [0.9, 0.8]]))
    assert (w, h) == (480, 300) and len(raw) == h * (1 + 3 * w)
    blue = bytes((31, 119, 180))
    assert blue in raw and bytes((255, 127, 14)) in raw  # both series drawn
    _, _, bars = _png_rows(bar_chart([[0.5, 0.9], [0.7, float("nan")]]))
    assert blue in bars


def test_plot_subsets_reads_past_evaluations(ctx: ToolContext) -> None:
    path = ctx.run_dir / "transcript.jsonl"
    tr = Transcript(path)
    answer = {"accuracy": 0.71, "pgr": 0.4, "per_subset": {"algebra": {"accuracy": 0.8, "n": 50},
                                                            "geometry": {"accuracy": 0.6, "n": 40}}}
    tr.append({"type": "tool_call", "id": "e1", "name": "evaluate", "input": {"dataset": "d", "job_id": "abc12345"}})
    tr.append({"type": "tool_result", "id": "e1", "name": "evaluate", "evaluation": True, "is_error": False,
               "content": json.dumps(answer) + "\n(evaluations left in your budget: 0)"})
    ctx.transcript = path
    out = call(ctx, "plot", kind="subsets")
    assert not out.is_error and len(out.images) == 1 and out.images[0][:4] == b"\x89PNG"
    assert "algebra: 0.80" in out.text and "geometry: 0.60" in out.text and "job abc12345" in out.text
    assert call(ctx, "plot", kind="pie").is_error
    assert call(ctx, "plot", kind="curve", metric="loss); import os").is_error  # a word, not a pattern
