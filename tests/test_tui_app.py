"""The control center driven from the keyboard with Textual's Pilot, on real jobs and a real scheduler."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from core.control import jobs as J
from tests.conftest import make_dataset, pilot_wait_until
from tests.tiny_w2s import fake_baselines, tiny_config
from tui.app import W2SApp
from tui.keymap import ACTIONS
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.launch_run import LaunchRunScreen
from tui.widgets.jobs_pane import JobsPane
from tui.widgets.leaderboard_pane import LeaderboardPane

pytestmark = pytest.mark.timeout(180)

# Matches tests.tiny_w2s.tiny_config, so the cached fake baselines are found and nothing trains them.
TINY_FLAGS = "--weak-model demo-weak --strong-model demo-strong --epochs 1 --batch-size 8 --lr 0.001 --max-ctx 64"
QUICK_IDEA = '''
"""A constant-prediction idea that prints as it goes: a run that takes a second, for UI tests."""
import time
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    for step in range(30):
        print(f"quick step {step}", flush=True)
        time.sleep(0.05)
    return {"test_predictions": {r["id"]: (0.9 if i % 2 else 0.2) for i, r in enumerate(data.test)}}
'''


def make_app(**kwargs) -> W2SApp:
    kwargs.setdefault("start_service", False)
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("demo_cache", False)
    return W2SApp(**kwargs)


class SchedulerThread:
    """The real scheduler loop, in-process (what ``w2s serve`` runs), stopped at the end of the test."""

    def __init__(self) -> None:
        from core.control.scheduler import Scheduler

        self.stop = threading.Event()
        self.scheduler = Scheduler(poll_interval=0.1, service_url="", gpus=[])
        self.thread = threading.Thread(target=self.scheduler.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> SchedulerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def job_state(app: W2SApp, job_id: str) -> str | None:
    job = app.query_one(JobsPane).jobs.get(job_id)
    return None if job is None else str(job.get("state"))


def _quick_idea(ws: Path) -> None:
    folder = ws / "ideas" / "quick"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(QUICK_IDEA)


async def test_four_panes_side_by_side_when_wide_and_one_at_a_time_when_narrow(workspace):
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.3)
        titles = [app.query_one(f"#{p}").border_title for p in ("agents", "jobs", "gpu", "leaderboard")]
        assert titles == ["Agents", "Jobs", "GPU", "Leaderboard"]
        assert all(app.query_one(f"#{p}").region.area > 0 for p in ("agents", "jobs", "gpu", "leaderboard"))
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert app.query_one("#jobs").region.area > 0
        assert app.query_one("#agents").region.area == 0
        await pilot.press("4")
        await pilot.pause(0.1)
        assert app.active_pane == "leaderboard"
        assert app.query_one("#leaderboard").region.area > 0 and app.query_one("#jobs").region.area == 0
        await pilot.press("1")
        await pilot.pause(0.1)
        assert app.query_one("#agents").region.area > 0
        await pilot.resize_terminal(160, 48)
        await pilot.press("z")  # zoom works when wide too, and toggles back
        await pilot.pause(0.2)
        assert app.query_one("#agents").region.area > 0 and app.query_one("#jobs").region.area == 0
        await pilot.press("z")
        await pilot.pause(0.2)
        assert app.query_one("#jobs").region.area > 0


async def test_a_fresh_workspace_gets_the_demo_leaderboard(workspace, tmp_path, monkeypatch):
    import tarfile

    import core.results.archive
    from tests.test_tui_snapshots import populate

    source = tmp_path / "source"
    source.mkdir()
    monkeypatch.setenv("W2S_WORKSPACE", str(source))
    populate(source)
    archive = tmp_path / "demo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cache_results", arcname="cache_results")
    monkeypatch.setattr(core.results.archive, "DEMO_ARCHIVE", archive)
    monkeypatch.setenv("W2S_WORKSPACE", str(workspace))
    app = make_app(demo_cache=True)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await pilot_wait_until(pilot, lambda: app.leaderboard_pane.table.row_count == 2, 60)
        assert (workspace / "cache_results").is_dir()
        assert "No jobs yet" in str(app.query_one("#jobs-summary").render())


async def test_first_run_with_no_state_shows_hints_and_no_gpu(workspace):
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        assert await pilot_wait_until(pilot, lambda: {"jobs", "gpu", "leaderboard"} <= set(app.polls), 60)
        jobs_note = str(app.query_one("#jobs-summary").render())
        assert "No jobs yet" in jobs_note and "r" in jobs_note
        assert "no NVIDIA GPU" in str(app.query_one("#gpu-note").render())
        assert "No results yet" in str(app.query_one("#lb-head").render())


async def test_launch_a_run_from_the_keyboard_and_watch_it_finish(workspace):
    make_dataset(workspace)
    fake_baselines(workspace, tiny_config(), [42])
    _quick_idea(workspace)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        assert await pilot_wait_until(pilot, lambda: "leaderboard" in app.polls, 60)
        await pilot.press("r")
        assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, LaunchRunScreen), 20)
        screen = app.screen
        # idea: the Select is first in the dialog; pick "quick" with the keyboard
        screen.query_one("#run-idea").focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        ideas = screen.ideas
        assert "quick" in ideas
        await pilot.press("home")
        for _ in range(ideas.index("quick")):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert screen.query_one("#run-idea").value == "quick"
        assert screen.query_one("#run-dataset").value == "tiny"
        screen.query_one("#run-options").focus()
        await pilot.press(*TINY_FLAGS)
        await pilot.press("ctrl+s")
        assert await pilot_wait_until(pilot, lambda: not isinstance(app.screen, LaunchRunScreen), 5)
        assert await pilot_wait_until(pilot, lambda: len(J.list_jobs()) == 1, 20)
        job_id = J.list_jobs()[0]["id"]
        assert await pilot_wait_until(pilot, lambda: job_state(app, job_id) == "queued", 20)

        seen: list[str] = []
        pane = app.query_one(JobsPane)
        lines_while_running: list[int] = []

        def note_state() -> bool:
            state = job_state(app, job_id)
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if state == "running":
                lines_while_running.append(sum(ln.startswith("quick step") for ln in pane.log_view.lines))
            return state in ("succeeded", "failed")

        with SchedulerThread():
            assert await pilot_wait_until(pilot, note_state, 150, step=0.05), seen
        assert seen[0] == "queued" and "running" in seen and seen[-1] == "succeeded", seen
        assert max(lines_while_running) > 0  # the tail was live, not read after the fact

        assert pane.tailed_job == job_id
        assert await pilot_wait_until(pilot, lambda: any("quick step 29" in line for line in pane.log_view.lines), 10)
        assert len([ln for ln in pane.log_view.lines if ln.startswith("quick step")]) == 30
        lb = app.query_one(LeaderboardPane)
        assert await pilot_wait_until(pilot, lambda: any(r.get("idea") == "quick" for r in lb.rows), 30)
        assert lb.dataset == "tiny" and any("quick" in k for k in lb.table.order)
        row = next(r for r in lb.rows if r.get("idea") == "quick")
        assert row["n_seeds"] == 1 and row["source"] == "referee"  # scored by the referee, not the idea


async def test_cancel_asks_first_and_then_kills_the_job(workspace):
    job = J.submit_job("demo", [sys.executable, "-c", "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"],
                       name="sleeper")
    app = make_app()
    with SchedulerThread():
        async with app.run_test(size=(160, 48)) as pilot:
            assert await pilot_wait_until(pilot, lambda: job_state(app, job["id"]) == "running", 60)
            await pilot.press("2", "c")
            assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5)
            assert job["id"] in app.screen.question
            await pilot.press("n")  # a "no" leaves it running
            await pilot.pause(0.5)
            assert J.get_job(job["id"])["state"] == "running"
            await pilot.press("c")
            assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5)
            await pilot.press("y")
            assert await pilot_wait_until(pilot, lambda: J.get_job(job["id"])["state"] == "cancelled", 30)
            assert await pilot_wait_until(pilot, lambda: job_state(app, job["id"]) == "cancelled", 10)
            await pilot.press("c")  # a finished job is not offered for cancelling
            await pilot.pause(0.2)
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("R")  # but it can be retried, again after a question
            assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5)
            assert "Retry" in app.screen.question
            await pilot.press("y")
            assert await pilot_wait_until(pilot, lambda: job_state(app, job["id"]) in ("queued", "starting", "running"), 30)
            J.cancel_job(job["id"])


async def test_launching_an_agent_without_an_api_key_says_so(workspace, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("a")
        await pilot.pause(0.3)
        messages = [n.message for n in app._notifications]
        assert any("ANTHROPIC_API_KEY" in m for m in messages), messages
        assert app.screen is app.screen_stack[0]  # no dialog opened
        assert not (workspace / ".w2s" / "agents.json").exists() or not J.list_jobs()


async def test_launching_an_agent_with_a_key_queues_its_job(workspace, monkeypatch):
    from core.control.store import Store
    from tui.screens.launch_agent import LaunchAgentScreen

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    (workspace / "Idea.md").write_text("# Menu\n\n## 1. Reweight weak labels\n\nBy confidence.\n")
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("a")
        assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, LaunchAgentScreen), 20)
        await pilot.press("ctrl+s")
        assert await pilot_wait_until(pilot, lambda: len(Store().table("agents").all()) == 1, 60)
        agent = Store().table("agents").all()[0]
        assert agent["direction"] == "Reweight weak labels\n\nBy confidence."
        assert agent["budgets"]["max_usd"] == 2.0 and agent["budgets"]["max_turns"] == 40
        job = J.get_job(agent["job_id"])
        assert job["kind"] == "agent" and "sk-test" not in " ".join(J.job_command(job))
        assert await pilot_wait_until(pilot, lambda: agent["id"] in app.agents_pane.agents, 20)
        await pilot.press("1", "x")
        assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5)
        assert agent["id"] in app.screen.question
        await pilot.press("y")
        assert await pilot_wait_until(pilot, lambda: Store().table("agents").get(agent["id"])["state"] == "stopped", 30)
        assert J.get_job(agent["job_id"])["state"] == "cancelled"


async def test_leaderboard_switches_dataset_sorts_and_filters(workspace):
    from core.results.cache import write_result
    from tests.test_tui_snapshots import populate

    populate(workspace)
    write_result("demo-chat", "vanilla_w2s", "k", 42, {"transfer_acc": 0.5, "seed": 42})
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        lb = app.leaderboard_pane
        assert await pilot_wait_until(pilot, lambda: lb.table.row_count == 1 and lb.dataset == "demo-chat", 60)
        await pilot.press("4", "d")
        assert lb.dataset == "demo-math" and lb.table.row_count == 2
        assert [k.split("|")[1] for k in lb.table.order] == ["vanilla_w2s", "train_only_on_confident_labels"]
        assert "baselines: weak 0.600 · ceiling 0.900 (3 seeds each)" in str(
            lb.query_one("#lb-baselines").render())
        await pilot.press("s", "s", "s")  # pgr -> transfer -> seeds -> idea (alphabetical)
        assert lb.sort_name == "idea"
        assert [k.split("|")[1] for k in lb.table.order] == ["train_only_on_confident_labels", "vanilla_w2s"]
        await pilot.press("slash", *"vanilla", "enter")
        assert [k.split("|")[1] for k in lb.table.order] == ["vanilla_w2s"]
        await pilot.press("escape")
        assert lb.table.row_count == 2


async def test_readonly_refuses_launch_and_cancel(workspace):
    job = J.submit_job("demo", [sys.executable, "-c", "pass"], name="never-run")
    app = make_app(readonly=True)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await pilot_wait_until(pilot, lambda: job_state(app, job["id"]) == "queued", 30)
        await pilot.press("r")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, LaunchRunScreen)
        await pilot.press("2", "c")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("Read-only" in n.message for n in app._notifications)
        assert J.get_job(job["id"])["state"] == "queued"
        assert "READ-ONLY" in str(app.query_one("#topbar").render())


async def test_help_lists_every_binding_and_keymap_remaps_by_id(workspace):
    app = make_app(keys={"launch_run": "ctrl+o", "help": "f1"})
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").render())
        for action in ACTIONS:
            assert action.description in text and action.id in text
        assert "ctrl+o" in text
        await pilot.press("escape")
        await pilot.pause(0.1)
        await pilot.press("r")  # the old key no longer launches
        await pilot.pause(0.3)
        assert not isinstance(app.screen, LaunchRunScreen)
        await pilot.press("ctrl+o")
        assert await pilot_wait_until(pilot, lambda: isinstance(app.screen, LaunchRunScreen), 20)


async def test_command_palette_offers_every_action(workspace):
    from tui.commands import W2SCommands

    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.1)
        provider = W2SCommands(app.screen)
        found = [hit.help async for hit in provider.discover()]
        assert found == [a.id for a in ACTIONS]
        hits = [hit.help async for hit in provider.search("launch run")]
        assert hits and hits[0] == "launch_run"
        ro = make_app(readonly=True)
        async with ro.run_test(size=(80, 24)):
            ids = [hit.help async for hit in W2SCommands(ro.screen).discover()]
            assert "launch_run" not in ids and "help" in ids


async def test_log_search_filters_and_follow_toggles(workspace):
    job = J.submit_job("demo", [sys.executable, "-c", "pass"], name="logger")
    log = Path(job["run_dir"]) / "stdout.log"
    log.write_text("".join(f"line {i} {'needle' if i % 10 == 0 else 'hay'}\n" for i in range(200)))
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(JobsPane)
        assert await pilot_wait_until(pilot, lambda: len(pane.log_view.lines) >= 200, 30)
        await pilot.press("2", "slash")
        await pilot.press(*"needle", "enter")
        await pilot.pause(0.2)
        assert pane.log_view.filter_text == "needle"
        assert len(pane.log_view.lines) == 20
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert len(pane.log_view.lines) == 200
        await pilot.press("f")
        assert not pane.log_view.following
        with open(log, "a") as fh:
            fh.write("late line\n")
        assert await pilot_wait_until(pilot, lambda: pane.log_view.unseen == 1, 10)
        assert "paused" in str(pane.query_one("#log-status").render())
        await pilot.press("f")
        assert pane.log_view.following
