"""The control-center defects a new user found (issue 18), each driven with Textual's Pilot on a
fixed workspace (the snapshot one: three jobs, an agent, two fake GPUs, one dataset's results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Footer

from core.control.store import Store
from tests.conftest import pilot_wait_until
from tests.test_tui_snapshots import NOW, frozen_app, loaded, populate
from tui.app import W2SApp
from tui.widgets.jobs_pane import JobsPane

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def ws(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    populate(workspace)
    monkeypatch.setenv("W2S_FAKE_GPUS", str(workspace / "gpus.json"))
    return workspace


def cell(table, row_key: str, column: str) -> str:
    return str(table.get_cell(row_key, column))


def rename_jobs(ws: Path) -> None:
    """Names as the submit path writes them (``<idea> <dataset> seed <n>``)."""
    jobs = Store().table("jobs")
    for job_id, name in (("a1b2c3d4", "vanilla_w2s demo-math seed 42"), ("b2c3d4e5", "vanilla_w2s demo-math seed 43"),
                         ("c3d4e5f6", "train_only_on_confident_labels demo-math seed 42")):
        jobs.update(job_id, {"name": name})


def notes(app: W2SApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_names_are_whole_when_there_is_room_and_keep_the_seed_when_there_is_not(ws):
    rename_jobs(ws)
    app = frozen_app()
    async with app.run_test(size=(200, 60)) as pilot:
        await loaded(pilot)
        await pilot.press("2", "z")  # zoomed at 200 columns: nothing is cut
        await pilot.pause(0.2)
        table = app.jobs_pane.table
        assert cell(table, "c3d4e5f6", "name") == "train_only_on_confident_labels demo-math seed 42"
        await pilot.press("4")
        await pilot.pause(0.2)
        lb = app.leaderboard_pane.table
        key = "demo-math|train_only_on_confident_labels|demo_strong_demo_weak_e1_lr0.001_bs8_schlinear" \
              "_conf_high0.75_conf_low0.25"
        assert cell(lb, key, "idea") == "train_only_on_confident_labels"
        assert cell(lb, key, "key") == "demo_strong_demo_weak_e1_lr0.001_bs8_schlinear_conf_high0.75_conf_low0.25"
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert cell(lb, key, "idea") == "train_only_on_confident_labels"  # the idea is never cut
        await pilot.press("2")
        await pilot.pause(0.3)
        for job_id, seed in (("a1b2c3d4", "seed 42"), ("b2c3d4e5", "seed 43"), ("c3d4e5f6", "seed 42")):
            shown = cell(table, job_id, "name")
            assert shown.endswith(seed) and "…" in shown, shown  # cut in the middle: the seed stays
        assert app.jobs_pane.table.region.right <= app.jobs_pane.region.right


async def test_log_filter_count_survives_refreshes_and_the_leaderboard_filters_as_you_type(ws):
    app = frozen_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        await pilot.press("2", "slash", *"step 1")
        await pilot.pause(0.2)
        pane = app.jobs_pane
        assert len(pane.log_view.lines) == 11  # step 1, 10-19: filtered while typing, no Enter
        await pilot.press("enter")
        app.poll_all()  # the next refresh used to replace the count with "…"
        await pilot_wait_until(pilot, lambda: app.polls["jobs"] >= 2, 10)
        await pilot.pause(0.2)
        assert "filter 'step 1': 11 lines" in str(pane.query_one("#log-status").render())
        await pilot.press("escape", "4", "slash", *"train")
        await pilot.pause(0.2)
        assert [k.split("|")[1] for k in app.leaderboard_pane.table.order] == ["train_only_on_confident_labels"]


async def test_sort_shows_its_column_reverses_and_is_remembered_with_the_dataset(ws):
    from core.results.cache import write_result

    write_result("demo-chat", "vanilla_w2s", "k", 42, {"transfer_acc": 0.5, "seed": 42})
    app = frozen_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        lb = app.leaderboard_pane
        await pilot.press("4", "d")
        await pilot_wait_until(pilot, lambda: lb.dataset == "demo-math", 5)
        labels = {str(c.key.value): str(c.label) for c in lb.table.columns.values()}
        assert labels["pgr"] == "PGR ± CI95 ▼"
        await pilot.press("s")  # transfer, best first
        await pilot.pause(0.1)
        assert [k.split("|")[1] for k in lb.table.order] == ["vanilla_w2s", "train_only_on_confident_labels"]
        await pilot.press("S")  # reversed
        await pilot.pause(0.1)
        assert [k.split("|")[1] for k in lb.table.order] == ["train_only_on_confident_labels", "vanilla_w2s"]
        labels = {str(c.key.value): str(c.label) for c in lb.table.columns.values()}
        assert labels["transfer"] == "transfer ▲" and labels["pgr"] == "PGR ± CI95"
    assert json.loads((ws / ".w2s" / "tui.json").read_text())["leaderboard"] == {
        "dataset": "demo-math", "sort": "transfer", "reverse": True}
    again = frozen_app()  # the next start shows the same dataset, sorted the same way
    async with again.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        lb = again.leaderboard_pane
        assert lb.dataset == "demo-math" and lb.sort_name == "transfer" and lb.reverse
        assert [k.split("|")[1] for k in lb.table.order] == ["train_only_on_confident_labels", "vanilla_w2s"]


async def test_layout_at_100x30_zoom_at_80x24_and_long_log_lines_wrap(ws):
    long_line = "epoch 1 step 30 " + "x" * 200 + " END"
    with open(ws / "runs" / "c3d4e5f6" / "stdout.log", "a") as fh:
        fh.write(long_line + "\n")
    app = frozen_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot_wait_until(pilot, lambda: len(app.jobs_pane.log_view.lines) >= 32, 30)
        await pilot.pause(0.2)
        assert app.query_one("#panes").has_class("-single")  # four panes would leave Jobs two rows
        assert app.jobs_pane.table.size.height >= 4
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        view = app.jobs_pane.log_view
        assert view.wrap and view.virtual_size.width <= view.size.width
        rows = [view.render_line(y).text for y in range(view.size.height)]
        assert any(r.rstrip().endswith("END") for r in rows), rows  # wrapped: the end of the line is seen
        log_height = view.size.height
        await pilot.press("z")  # one pane already: z gives the log the whole pane
        await pilot.pause(0.2)
        assert app.jobs_pane.table.region.area == 0 and view.size.height > log_height + 4
        await pilot.press("z")
        await pilot.pause(0.2)
        assert app.jobs_pane.table.region.area > 0
        await pilot.press("w")  # unwrapped: it scrolls sideways instead
        await pilot.pause(0.2)
        assert not view.wrap and view.virtual_size.width == len(long_line)
        assert "unwrapped" in str(app.jobs_pane.query_one("#log-status").render())


async def test_readonly_footer_and_hints_offer_nothing_it_refuses(workspace):
    app = W2SApp(readonly=True, start_service=False, poll_interval=None, demo_cache=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_wait_until(pilot, lambda: {"jobs", "agents", "leaderboard"} <= set(app.polls), 30)
        await pilot.pause(0.2)
        footer = app.query_one(Footer)
        shown = {b.description for _, b, enabled, _ in app.screen.active_bindings.values() if b.show}
        assert {"Search", "Help", "Quit"} <= shown and not {"Run", "Agent", "Cancel"} & shown, shown
        assert footer.region.area > 0
        for note in ("#jobs-summary", "#agents-summary", "#lb-head"):
            text = str(app.query_one(note).render())
            assert "Press" not in text, (note, text)
        await pilot.press("r")  # the key still explains itself
        await pilot.pause(0.2)
        assert any("Read-only" in m for m in notes(app))


async def test_a_retried_job_counts_its_own_attempt_and_says_which(ws):
    jobs = Store().table("jobs")
    history = [{"state": "running", "time": NOW - 3000, "reason": "started"},
               {"state": "failed", "time": NOW - 2900, "reason": "exit 1"},
               {"state": "queued", "time": NOW - 200, "reason": "retry requested by user"},
               {"state": "running", "time": NOW - 65, "reason": "started"}]
    jobs.update("b2c3d4e5", {"started": NOW - 3000, "history": history, "attempt": 2, "progress": 0.5,
                             "progress_message": "transfer: train epoch 1/1 loss 0.6021"})
    app = frozen_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        table = app.jobs_pane.table
        assert cell(table, "b2c3d4e5", "elapsed") == "1m05s"  # not 50m from attempt 1 plus the gap
        table.move_cursor(row=table.get_row_index("b2c3d4e5"))
        await pilot.pause(0.2)
        detail = str(app.jobs_pane.query_one("#job-detail").render())
        # the training loss reaches the screen between the log's lines, with an ETA at the pace so far
        assert detail == "b2c3d4e5 · attempt 2 · 50% · ETA ~1m05s · transfer: train epoch 1/1 loss 0.6021"


async def test_tabs_click_plural_refusals_and_the_gpu_reason(ws, monkeypatch):
    app = frozen_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        assert str(app.query_one("#agents-summary").render()).startswith("1 agent ·")
        await pilot.click("#topbar", offset=(26, 0))  # " 4 Leaderboard "
        await pilot.pause(0.2)
        assert app.active_pane == "leaderboard"
        await pilot.click("#topbar", offset=(2, 0))
        await pilot.pause(0.2)
        assert app.active_pane == "agents"
        await pilot.press("2")
        table = app.jobs_pane.table
        table.move_cursor(row=table.get_row_index("a1b2c3d4"))  # the succeeded one
        await pilot.pause(0.1)
        await pilot.press("c")
        await pilot.pause(0.2)
        assert "Job a1b2c3d4 succeeded already: nothing to cancel." in notes(app)
    monkeypatch.delenv("W2S_FAKE_GPUS")
    from core.control import gpu

    monkeypatch.setattr(gpu, "_last_error", "NVML unavailable (NVMLError_LibraryNotFound)")
    monkeypatch.setattr(gpu, "probe", lambda store=None: [])
    bare = frozen_app()
    async with bare.run_test(size=(160, 48)) as pilot:
        await pilot_wait_until(pilot, lambda: "gpu" in bare.polls, 30)
        await pilot.pause(0.1)
        text = str(bare.query_one("#gpu-note").render())
        assert text == "no NVIDIA GPU: runs use the CPU (NVML unavailable (NVMLError_LibraryNotFound))"


async def test_tool_results_expand_and_a_finished_job_is_announced(ws):
    app = W2SApp(start_service=False, poll_interval=0.2, clock=lambda: NOW, demo_cache=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        pane = app.agents_pane
        log = pane.query_one("#transcript")
        await pilot.press("1")
        folded = len(log.lines)
        await pilot.press("e")
        await pilot.pause(0.2)
        assert pane.expanded and len(log.lines) == folded  # three lines: all shown folded already
        Store().table("jobs").update("b2c3d4e5", {"state": "failed", "exit_code": 1, "finished": NOW})
        assert await pilot_wait_until(pilot, lambda: any("b2c3d4e5 failed (exit 1)" in m for m in notes(app)), 10)
        assert app.query_one(JobsPane).jobs["b2c3d4e5"]["state"] == "failed"


async def test_wrapped_log_stays_consistent_through_trims_and_resizes():
    from textual.app import App

    from tui.widgets.log_view import LogView, wrap_rows

    class One(App):
        def compose(self):
            yield LogView(max_lines=500)

    app = One()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.query_one(LogView)
        for start in range(0, 2000, 70):  # batches that trim the kept lines several times
            view.add_lines([f"line {i} " + "x" * (i % 150) for i in range(start, start + 70)])
        await pilot.pause(0.1)

        def expected() -> list[str]:
            return [row for line in view.lines for row in wrap_rows(line, view.size.width - 1)]

        assert view.lines[-1].startswith("line 2029 ") and len(view.lines) <= 625
        assert view._rows == expected() and view.virtual_size.height == len(view._rows)
        await pilot.resize_terminal(90, 20)
        await pilot.pause(0.2)
        assert view._rows == expected()
        assert max(len(r) for r in view._rows) <= view.size.width - 1
