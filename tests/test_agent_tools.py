"""Each agent tool on its own: folder confinement, shell limits, Idea.md, argument checks."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from core.agent import tools
from core.agent.budgets import Budgets, Usage
from core.agent.tools import ToolContext, run_tool
from core.agent.tools.jobs import blanked_secrets


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    folder = workspace / "ideas" / "agent_t"
    folder.mkdir(parents=True)
    (workspace / "labeled_data" / "demo-math").mkdir(parents=True)
    (workspace / "labeled_data" / "demo-math" / "test.jsonl").write_text('{"label": 1}\n')
    return ToolContext(
        agent_id="t", idea_name="agent_t", folder=folder, run_dir=workspace / "runs" / "j",
        budgets=Budgets(max_evals=1), usage=Usage(),
    )


def call(ctx: ToolContext, name: str, **args):
    return run_tool(ctx, name, args, tool_use_id="u1")


@pytest.mark.parametrize(
    "path",
    ["../../labeled_data/demo-math/test.jsonl", "../../labeled_data", "/etc/passwd", "sub/../../../x", "../..",
     "@core/../../labeled_data", "@workspace/../.w2s"],
)
def test_paths_outside_the_folder_are_refused(ctx: ToolContext, path: str) -> None:
    for name, args in (("read_file", {}), ("write_file", {"content": "x"}), ("list_files", {})):
        out = call(ctx, name, path=path, **args)
        assert out.is_error and "refused" in out.text, (name, path, out.text)


def test_other_ideas_are_readable_but_never_writable(ctx: ToolContext, workspace: Path) -> None:
    other = workspace / "ideas" / "agent_tx"
    other.mkdir()
    (other / "run.py").write_text("# another agent's idea\n")
    for path in ("../agent_tx/run.py", "@workspace/agent_tx/run.py"):
        assert "another agent's idea" in call(ctx, "read_file", path=path).text
        out = call(ctx, "write_file", path=path, content="x")
        assert out.is_error and "refused" in out.text
    assert (other / "run.py").read_text() == "# another agent's idea\n"


def test_symlink_escape_is_refused(ctx: ToolContext, workspace: Path) -> None:
    os.symlink(workspace / "labeled_data", ctx.folder / "sneaky")
    out = call(ctx, "read_file", path="sneaky/demo-math/test.jsonl")
    assert out.is_error and "refused" in out.text
    out = call(ctx, "write_file", path="sneaky/new.txt", content="x")
    assert out.is_error and not (workspace / "labeled_data" / "new.txt").exists()
    listing = call(ctx, "list_files").text
    assert "symlink, not followed" in listing and "test.jsonl" not in listing


def test_write_read_edit_list(ctx: ToolContext) -> None:
    assert not call(ctx, "write_file", path="pkg/a.py", content="x = 1\ny = 2\nx = 1\n").is_error
    read = call(ctx, "read_file", path="pkg/a.py", start_line=2, max_lines=1)
    assert "    2  y = 2" in read.text and "start_line=3" in read.text
    amb = call(ctx, "edit_file", path="pkg/a.py", old_text="x = 1", new_text="x = 3")
    assert amb.is_error and "2 times" in amb.text
    every = call(ctx, "edit_file", path="pkg/a.py", old_text="x = 1", new_text="x = 3", replace_all=True)
    assert not every.is_error
    assert (ctx.folder / "pkg/a.py").read_text() == "x = 3\ny = 2\nx = 3\n"
    missing = call(ctx, "edit_file", path="pkg/a.py", old_text="zzz", new_text="")
    assert missing.is_error and "not found" in missing.text
    assert "pkg/a.py" in call(ctx, "list_files").text


def test_shell_runs_sandboxed_in_folder_with_clean_env_timeout_and_cap(ctx: ToolContext, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-value")
    monkeypatch.setenv("W2S_RUN_TOKEN", "w2s-run-secret")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    out = call(ctx, "run_shell", command="pwd; env")
    assert "exit code 0" in out.text and str(ctx.folder.resolve()) in out.text
    assert "sk-secret-value" not in out.text and "w2s-run-secret" not in out.text
    assert "HARMLESS_SETTING" not in out.text  # nothing inherited: the environment is built, not scrubbed
    assert f"W2S_DATA={ctx.folder.resolve().parent.parent / 'data'}" in out.text
    slow = call(ctx, "run_shell", command="sleep 30", timeout_s=1)
    assert "killed after 1s timeout" in slow.text
    big = call(ctx, "run_shell", command="python -c \"print('y' * 50000)\"")
    assert len(big.text) <= tools.OUTPUT_CAP + 200 and "characters cut" in big.text
    # no text filter any more: the labels simply are not in the shell's view
    labels = call(ctx, "run_shell", command="cat ../../labeled_data/demo-math/test.jsonl")
    assert "No such file" in labels.text and '"label"' not in labels.text
    py = call(ctx, "run_shell", command="python -c 'import core.run.experiment, ideas; print(\"sdk ok\")'")
    assert "sdk ok" in py.text, py.text  # the library code is there, read-only


def test_shell_refuses_without_a_sandbox_unless_allowed(ctx: ToolContext, monkeypatch) -> None:
    monkeypatch.setenv("W2S_BWRAP", "/nonexistent/bwrap")
    monkeypatch.setenv("W2S_LANDLOCK", "0")  # nor the Landlock fallback
    monkeypatch.delenv("W2S_UNSAFE_NO_SANDBOX", raising=False)
    out = call(ctx, "run_shell", command="echo ran > ran.txt")
    assert out.is_error and "W2S_UNSAFE_NO_SANDBOX=1" in out.text and not (ctx.folder / "ran.txt").exists()
    monkeypatch.setenv("W2S_UNSAFE_NO_SANDBOX", "1")
    out = call(ctx, "run_shell", command="echo ran > ran.txt")
    assert not out.is_error and "not isolated" in out.text and (ctx.folder / "ran.txt").exists()


def test_reads_reach_data_but_writes_only_the_folder(ctx: ToolContext, workspace: Path) -> None:
    data = workspace / "data" / "demo-math"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text('{"text": "2+2"}\n')
    read = call(ctx, "read_file", path=str(data / "train.jsonl"))
    assert not read.is_error and "2+2" in read.text
    assert "train.jsonl" in call(ctx, "list_files", path="../../data").text
    out = call(ctx, "write_file", path=str(data / "train.jsonl"), content="x")
    assert out.is_error and "refused" in out.text and "2+2" in (data / "train.jsonl").read_text()
    for target in (workspace / "Idea.md", workspace / ".w2s" / "tokens.json", workspace / "ideas" / "other" / "run.py"):
        out = call(ctx, "write_file", path=str(target), content="x")
        assert out.is_error and "refused" in out.text and not target.exists()


def test_idea_md_and_finish_and_bad_arguments(ctx: ToolContext) -> None:
    whole = call(ctx, "read_idea_md")
    assert "Research directions" in whole.text
    one = call(ctx, "read_idea_md", number=5)
    assert one.text.startswith("5. The weak teacher as a noisy channel")
    assert call(ctx, "read_idea_md", number=99).is_error
    done = call(ctx, "finish", summary="all seeds reported")
    assert done.finish == "all seeds reported" and not done.is_error
    assert call(ctx, "finish", summary="").is_error
    bad = call(ctx, "read_file", path="a", evil=True)
    assert bad.is_error and "unknown argument" in bad.text
    assert call(ctx, "no_such_tool").is_error
    names = tools.tool_names()
    assert len(names) == len(set(names)) == 17
    for spec in tools.tool_schemas():
        assert spec["input_schema"]["type"] == "object" and spec["description"]


def test_schemas_names_and_dispatch_come_from_one_declaration() -> None:
    schemas = tools.tool_schemas()
    assert [s["name"] for s in schemas] == tools.tool_names()
    assert set(tools.tool_names()) == set(tools.TOOLS_BY_NAME)
    for spec in schemas:
        handler = tools.TOOLS_BY_NAME[spec["name"]].handler
        assert handler.__name__ == spec["name"]
        params = inspect.signature(handler).parameters
        schema = spec["input_schema"]
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"]) <= set(params)
        for name in schema["required"]:
            assert params[name].default is inspect.Parameter.empty, (spec["name"], name)
        for name, param in params.items():  # every argument the model may give is in the schema
            if name not in ("ctx", "tool_use_id"):
                assert name in schema["properties"], (spec["name"], name)
                assert (name in schema["required"]) == (param.default is inspect.Parameter.empty)
    run_idea = next(s for s in schemas if s["name"] == "run_idea")["input_schema"]
    assert run_idea["properties"]["seeds"] == {"type": "array", "items": {"type": "integer"}}
    assert "tool_use_id" not in run_idea["properties"]  # filled in by the loop, never by the model


def test_finish_takes_its_summary_leniently(ctx: ToolContext) -> None:
    assert call(ctx, "finish").text == "finish needs a summary"
    done = call(ctx, "finish", summary="  done ", note="ignored")
    assert done.finish == "done" and not done.is_error


def test_evaluate_respects_loop_budget(ctx: ToolContext) -> None:
    (ctx.folder / "preds.json").write_text('{"r1": 0.9}')
    out = call(ctx, "evaluate", dataset="demo-math", predictions_file="preds.json")
    assert out.is_error and "no referee" in out.text  # no service configured
    labels = "../../labeled_data/demo-math/test.jsonl"
    out = call(ctx, "evaluate", dataset="demo-math", predictions_file=labels)
    assert out.is_error and "refused" in out.text
    ctx.usage.evals = 1
    out = call(ctx, "evaluate", dataset="demo-math", predictions_file="preds.json")
    # spent: the loop is not stopped at once; the answer starts the wrap-up it describes
    assert out.is_error and out.stop is None and out.wrap_up and out.wrap_up.startswith("max_evals")
    assert "3 more turns" in out.text and "share_finding" in out.text


def test_template_copy(ctx: ToolContext) -> None:
    out = call(ctx, "start_from_template")
    assert not out.is_error, out.text
    assert (ctx.folder / "run.py").is_file()
    again = call(ctx, "start_from_template")
    assert again.is_error and "already exists" in again.text


def test_findings_leaderboard_and_foreign_jobs(ctx: ToolContext) -> None:
    from core.control.jobs import submit_job

    shared = call(ctx, "share_finding", title="Soft labels help", summary="3 seeds: 0.31, 0.28, 0.35",
                  metrics={"pgr_mean": 0.31})
    assert not shared.is_error, shared.text
    listed = call(ctx, "list_findings", query="soft labels")
    assert "Soft labels help" in listed.text and "agent:t" in listed.text
    bad = call(ctx, "share_finding", title="x", summary="y", metrics={"pgr": "high"})
    assert bad.is_error
    assert call(ctx, "leaderboard").text == "(no leaderboard rows yet)"
    other = submit_job("idea", ["true"], meta={"agent_id": "someone_else"})
    for name in ("job_status", "job_log"):
        out = call(ctx, name, job_id=other["id"])
        assert out.is_error and "no job" in out.text
    assert call(ctx, "run_idea").is_error  # no run.py yet


def test_idea_jobs_get_secrets_blanked(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-x")
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-x")
    monkeypatch.setenv("W2S_RUN_TOKEN", "w2s-run-x")
    blanked = blanked_secrets()
    assert blanked["ANTHROPIC_API_KEY"] == "" and blanked["RUNPOD_API_KEY"] == ""
    assert "W2S_RUN_TOKEN" not in blanked and "PATH" not in blanked
