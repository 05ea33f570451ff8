"""The TUI's headless parts: formatting, the data adapter, the keymap file, the log tailer, keyed tables."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from core.common.errors import UserError
from core.control import jobs as J
from tests.conftest import make_dataset
from tui import data, format, keymap
from tui.format import money
from tui.tailer import Tailer
from tui.widgets.agents_pane import budget_lines, render_event
from tui.widgets.log_view import clean


def test_formatting_helpers():
    assert format.duration(42) == "42s" and format.duration(185) == "3m05s"
    assert format.duration(7260) == "2h01m" and format.duration(None) == "-"
    assert format.elapsed(100.0, 160.0, now=1000.0) == "1m00s"
    assert format.elapsed(100.0, None, now=130.0) == "30s"
    assert format.elapsed("2026-01-01T00:00:00+00:00", "2026-01-01T00:00:09+00:00", 0) == "9s"
    assert format.bar(0.5, 4) == "██░░" and format.bar(None, 3) == "░░░"
    assert format.pgr_cell(0.338, [0.3, 0.376]) == "0.338 ± 0.038"
    assert format.pgr_cell(None, None) == "n/a"
    assert format.progress_cell(0.42).endswith("42%")
    assert format.spark([0, 50, 100], 5) == "  ▁▅█"
    assert format.spark([3.0], 3) == "  ▁" and format.spark([87.0], 1) == "▇"


def test_parse_seeds_and_run_options():
    assert data.parse_seeds("42,43 44") == [42, 43, 44]
    assert data.parse_seeds("42-44, 45") == [42, 43, 44, 45]
    for bad in ("", "x", "44-42", "42-44, 42"):
        with pytest.raises(UserError, match="seeds"):
            data.parse_seeds(bad)
    cfg = data.parse_run_options("--epochs 1 --train-size 64 --conf-low 0.3")
    assert cfg.epochs == 1 and cfg.train_size == 64 and cfg.extra == {"conf_low": 0.3}
    with pytest.raises(UserError, match="options: .*epochs"):
        data.parse_run_options("--epochs many")


def test_submit_runs_queues_one_runner_job_per_seed(workspace):
    make_dataset(workspace, "demo-math")
    ids = data.submit_runs("vanilla_w2s", "demo-math", [42, 43], "local", "--epochs 1")
    jobs = {j["id"]: j for j in J.list_jobs()}
    assert set(ids) == set(jobs)
    for job_id in ids:
        command = J.job_command(jobs[job_id])
        assert command[:3] == [sys.executable, "-m", "core.app.seed_job"] and command[3:5] == ["--idea", "vanilla_w2s"]
        cfg = __import__("json").loads(command[command.index("--config-json") + 1])
        assert cfg["data_dir"] == "data/demo-math" and cfg["epochs"] == 1
    assert sorted(jobs[i]["meta"]["seed"] for i in ids) == [42, 43]
    with pytest.raises(UserError, match="idea"):
        data.submit_runs("", "demo-math", [42], "local")


def test_load_jobs_shows_every_unfinished_job_and_counts_the_rest(workspace):
    from core.control.store import Store

    table = Store().table("jobs")
    docs = [{"id": f"f{i:03d}", "state": "succeeded", "created": 1000.0 + i, "name": "old", "executor": "local"}
            for i in range(30)]
    docs.append({"id": "live", "state": "running", "created": 1.0, "name": "oldest but running",
                 "executor": "local"})
    table.insert_many(docs)
    feed = data.load_jobs(limit=10)
    ids = [j["id"] for j in feed.items]
    assert "live" in ids and len(ids) == 10 and feed.total == 31
    assert ids[0] == "f029"  # newest first
    assert feed.extra["counts"] == {"running": 1, "succeeded": 9, "older, finished": 21}


def test_agent_launch_needs_the_api_key(workspace, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert "ANTHROPIC_API_KEY" in data.api_key_problem()
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        data.launch_agent("try things", "local", {})
    assert J.list_jobs() == []


def test_idea_directions_come_from_idea_md(workspace):
    (workspace / "Idea.md").write_text("# Menu\n\n## 1. First idea\n\nDo this.\n\n## 2. Second\n\nThat.\n")
    assert data.idea_directions() == [("First idea", "First idea\n\nDo this."), ("Second", "Second\n\nThat.")]


def test_keymap_file_remaps_by_binding_id_and_names_mistakes(tmp_path: Path):
    good = tmp_path / "keymap.toml"
    good.write_text('[keys]\nlaunch_run = "ctrl+r"\nhelp = "f1"\n')
    assert keymap.load_keymap(good) == {"launch_run": "ctrl+r", "help": "f1"}
    flat = tmp_path / "flat.toml"
    flat.write_text('cancel_job = "delete"\n')
    assert keymap.load_keymap(flat) == {"cancel_job": "delete"}
    bad_id = tmp_path / "bad.toml"
    bad_id.write_text('[keys]\n\nlaunch_rocket = "x"\n')
    with pytest.raises(UserError, match=r"bad.toml:3: launch_rocket: unknown binding id"):
        keymap.load_keymap(bad_id)
    bad_value = tmp_path / "value.toml"
    bad_value.write_text("[keys]\nquit = 5\n")
    with pytest.raises(UserError, match=r"value.toml:2: quit: expected a key string"):
        keymap.load_keymap(bad_value)
    broken = tmp_path / "broken.toml"
    broken.write_text('[keys]\nquit = "q\n')
    with pytest.raises(UserError, match=r"broken.toml:2: "):
        keymap.load_keymap(broken)
    assert all(b.id for b in keymap.bindings())
    assert len({a.id for a in keymap.ACTIONS}) == len(keymap.ACTIONS)


def test_the_workspace_keymap_file_is_found(workspace):
    (workspace / ".w2s").mkdir()
    (workspace / ".w2s" / "keymap.toml").write_text('[keys]\nquit = "ctrl+q"\n')
    assert keymap.find_keymap_file() == workspace / ".w2s" / "keymap.toml"
    assert keymap.load_keymap() == {"quit": "ctrl+q"}
    assert keymap.resolved_keys(keymap.load_keymap())["quit"] == "ctrl+q"


def test_tui_main_reports_a_bad_keymap_in_one_line(tmp_path, capsys, monkeypatch):
    from tui.app import main

    monkeypatch.setenv("W2S_WORKSPACE", str(tmp_path))  # main() points the env at --workspace
    bad = tmp_path / "k.toml"
    bad.write_text('nope = "x"\n')
    assert main(["--keymap", str(bad), "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:1: nope: unknown binding id" in err


def test_tailer_hands_over_whole_lines_and_bounds_its_buffer(tmp_path: Path):
    log = tmp_path / "log"
    log.write_bytes(b"")

    def read(offset: int, max_bytes: int = 1 << 20) -> tuple[bytes, int]:
        with open(log, "rb") as fh:
            size = fh.seek(0, 2)
            if size - offset > max_bytes:
                offset = size - max_bytes
            fh.seek(offset)
            chunk = fh.read(max_bytes)
        return chunk, offset + len(chunk)

    woke = []
    tailer = Tailer(read, max_pending=5)
    tailer.wake = lambda: woke.append(1)
    log.write_bytes(b"one\ntw")
    assert tailer.poll_once() == 1 and tailer.drain() == ["one"] and woke == [1]
    with open(log, "ab") as fh:
        fh.write(b"o\r\n" + b"".join(b"l%d\n" % i for i in range(10)))
    tailer.poll_once()
    assert tailer.drain() == ["l5", "l6", "l7", "l8", "l9"] and tailer.dropped == 6
    with open(log, "ab") as fh:
        fh.write(b"tail without newline")
    tailer.poll_once()
    assert tailer.drain() == [] and tailer.flush_partial() == ["tail without newline"]
    # far behind: the reader jumps ahead, the torn first line is dropped and the jump counted
    jumper = Tailer(lambda off: read(off, 16), max_pending=100)
    log.write_bytes(b"".join(b"row %03d\n" % i for i in range(100)))
    jumper.poll_once()
    assert jumper.drain() == ["row 099"] and jumper.skipped_bytes > 700


def test_clean_shows_what_a_terminal_would():
    assert clean("50%|████ \r100%|█████") == "100%|█████"
    assert clean("\x1b[31mred\x1b[0m text") == "red text"
    assert clean("a\tb") == "a       b"
    assert clean("bell\x07") == "bell�"


def test_transcript_shows_tool_results_cache_tokens_and_the_referees_evaluations():
    lines = render_event({"type": "tool_result", "name": "run_shell", "content": "a\nb\nc", "is_error": True})
    assert "error" in lines[0] and "3 lines" in lines[0] and [ln.strip() for ln in lines[1:]] == [
        "[dim]a[/]", "[dim]b[/]", "[dim]c[/]"]
    # a shell result's "[exit code 0]" header is not what a reader needs; the output's first lines are
    body = "[exit code 0]\n" + "\n".join(f"line {i} " + "x" * 300 for i in range(10))
    folded = render_event({"type": "tool_result", "name": "shell", "content": body})
    assert "11 lines" in folded[0] and "e: expand" in folded[0] and len(folded) == 4
    assert "exit code" not in "".join(folded) and "line 0" in folded[1] and len(folded[1]) > 150
    assert len(render_event({"type": "tool_result", "name": "shell", "content": body}, expanded=True)) == 11
    failed = render_event({"type": "tool_result", "name": "shell", "content": "[exit code 2]\nboom"})
    assert "[exit code 2]" in failed[1]
    turn = render_event({"type": "assistant", "turn": 2, "content": [{"type": "text", "text": "Hi"},
                                                                      {"type": "tool_use", "name": "x"}],
                         "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 48120,
                                   "cache_creation_input_tokens": 1900}, "cost_usd": 0.01, "total_cost_usd": 0.03})
    assert "Hi" in turn[0] and "turn 2" in turn[1] and "$0.0100" in turn[1] and "$0.0300" in turn[1]
    assert "in 10 · cache read 48,120 · cache write 1,900 · out 5" in turn[1]
    assert "waiting (rate limited)" in render_event({"type": "state", "state": "waiting (rate limited)"})[0]
    bars = budget_lines({"budgets": {"max_usd": 2.0, "max_turns": 10}, "usage": {"cost_usd": 1.0, "turns": 5}})
    assert bars[0].startswith("USD") and "$1.00 / $2.00" in bars[0] and "5 / 10" in bars[1]
    # the evaluations bar counts what the referee charged the agent's pool, not the agent's own tally
    evals = budget_lines({"budgets": {"max_evals": 2}, "usage": {"evals": 0}, "evals_charged": 2})
    assert evals == ["evals  ████████████ 2 / 2"]
    assert money(9000.0) == "$9,000" and money(0.61) == "$0.61" and money(123.4) == "$123.40"


@pytest.mark.parametrize(("body", "says"), [
    (b'[keys]\nquit = "\xff\xfe"\n', "k.toml:2: not UTF-8 text"),
    (b'[keys]\nquit = "1"\n', "k.toml:2: quit: key '1' is already bound to pane_agents"),
    (b'launch_run = "c"\n', "k.toml:1: launch_run: key 'c' is already bound to cancel_job"),
    (b'[keys]\nquit = ",,,"\n', "k.toml:2: quit: ',,,': an empty key in the list"),
    (b'[keys]\nquit = "ctrl+"\n', "k.toml:2: quit: 'ctrl+': 'ctrl+' has an empty part"),
    (b'[keys]\nquit = "ctrl q"\n', "k.toml:2: quit: 'ctrl q': 'ctrl q' is not a key name"),
])
def test_bad_keymaps_fall_back_to_the_defaults_in_one_line(tmp_path: Path, body: bytes, says: str):
    bad = tmp_path / "k.toml"
    bad.write_bytes(body)
    with pytest.raises(UserError, match=re.escape(says)):
        keymap.load_keymap(bad)
    keys, problem = keymap.load_keymap_or_defaults(bad)
    assert keys == {} and problem is not None and problem.count("\n") == 0
    assert problem.startswith(str(bad)) and problem.endswith("using the default keys")
    assert keymap.resolved_keys(keys)["quit"] == "q" and keymap.resolved_keys(keys)["pane_agents"] == "1"


def test_a_swap_of_keys_is_not_a_conflict(tmp_path: Path):
    swap = tmp_path / "swap.toml"
    swap.write_text('[keys]\nquit = "1"\npane_agents = "f1"\nhelp = "question_mark, f2"\n')
    assert keymap.load_keymap(swap) == {"quit": "1", "pane_agents": "f1", "help": "question_mark,f2"}


def test_tui_main_bad_explicit_keymap_is_one_line_without_traceback(tmp_path, capsys, monkeypatch):
    from tui.app import main

    monkeypatch.setenv("W2S_WORKSPACE", str(tmp_path))
    bad = tmp_path / "k.toml"
    bad.write_bytes(b'quit = "\xff"\n')
    assert main(["--keymap", str(bad), "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:1: not UTF-8 text" in err and "Traceback" not in err


def test_agents_feed_carries_the_evaluations_the_referee_charged_their_pool(workspace):
    from core.control.store import Store
    from core.control.tokens import agent_pool
    from core.referee.ledger import Entry, ledger_for

    store = Store()
    store.table("agents").insert({"id": "ag000001", "job_id": None, "state": "running", "direction": "d",
                                  "budgets": {"max_evals": 2}, "usage": {"evals": 0}})
    ledger = ledger_for(store)
    for run in ("run-a", "run-b"):  # one call by the agent, one by a run it launched: one pool
        ledger.write(Entry({"run_id": run, "pool": agent_pool("ag000001"), "kind": "evaluate"}, budget=2))
    feed = data.load_agents()
    assert feed.available and feed.items[0]["evals_charged"] == 2
    assert "2 / 2" in budget_lines(feed.items[0])[0]
