"""SVG snapshots of the control center at 80x24 and 160x48 on a fixed workspace.

Stable by construction: fixed job/agent ids and times, a frozen clock, no periodic polling (one load),
a fake GPU feed (W2S_FAKE_GPUS), cached results written here. Update with ``--snapshot-update`` after
looking at the new SVGs (tests/__snapshots__/test_tui_snapshots/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.control.store import Store
from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, write_result
from tests.conftest import pilot_wait_until
from tui.app import W2SApp

NOW = 1_790_000_000.0  # the frozen clock
MODELS = {"weak_model": "demo-weak", "strong_model": "demo-strong"}
KEY = "demo_strong_demo_weak_e1_lr0.001_bs8_schlinear"
GPUS = [
    {"index": 0, "name": "NVIDIA H100 80GB HBM3", "util_pct": 87, "mem_used_mb": 61440, "mem_total_mb": 81559,
     "temp_c": 64, "power_w": 512, "power_limit_w": 700},
    {"index": 1, "name": "NVIDIA H100 80GB HBM3", "util_pct": 3, "mem_used_mb": 512, "mem_total_mb": 81559,
     "temp_c": 38, "power_w": 71, "power_limit_w": 700},
]


def _job(job_id: str, name: str, state: str, created: float, started: float | None, finished: float | None,
         run_dir: Path, progress: float | None = None, gpus: list[int] | None = None) -> dict:
    return {
        "id": job_id, "kind": "idea_run", "name": name, "state": state, "executor": "local",
        "gpus": gpus or [], "created": created, "started": started, "finished": finished,
        "exit_code": None if finished is None else (0 if state == "succeeded" else 1),
        "history": [{"state": state, "time": created, "reason": "snapshot"}], "run_dir": str(run_dir),
        "meta": {}, "progress": progress,
    }


def populate(ws: Path) -> None:
    """Three jobs, one agent with a transcript, two fake GPUs, one dataset's results."""
    store = Store()
    jobs = store.table("jobs")
    specs = [
        ("a1b2c3d4", "vanilla_w2s demo-math s42", "succeeded", 600, 590, 400, None, []),
        ("b2c3d4e5", "vanilla_w2s demo-math s43", "running", 300, 290, None, 0.42, [0]),
        ("c3d4e5f6", "confident demo-math s42", "queued", 60, None, None, None, []),
    ]
    for job_id, name, state, created, started, finished, progress, gpus in specs:
        run_dir = ws / "runs" / job_id
        run_dir.mkdir(parents=True)
        lines = [f"[w2s] attempt 1 started ({name})"] + [f"epoch 1 step {i} loss {1 / (i + 1):.4f}" for i in range(30)]
        (run_dir / "stdout.log").write_text("\n".join(lines) + "\n")
        jobs.insert(_job(job_id, name, state, NOW - created, None if started is None else NOW - started,
                         None if finished is None else NOW - finished, run_dir, progress, gpus))
    agent_dir = ws / "runs" / "d4e5f6a7"
    agent_dir.mkdir(parents=True)
    events = [
        {"type": "start", "model": "claude-sonnet", "direction": "Confidence-weighted losses"},
        {"type": "state", "state": "running", "reason": "started"},
        {"type": "assistant", "turn": 1, "content": [{"type": "text", "text": "I will start from TEMPLATE."}],
         "usage": {"input_tokens": 5200, "output_tokens": 310}, "cost_usd": 0.0203, "total_cost_usd": 0.0203},
        {"type": "tool_call", "turn": 1, "id": "t1", "name": "start_from_template", "input": {}},
        {"type": "tool_result", "turn": 1, "id": "t1", "name": "start_from_template",
         "content": "copied TEMPLATE into ideas/agent_e5f6\nrun.py\nREADME.md", "is_error": False},
        {"type": "state", "state": "waiting (rate limited)", "reason": "429 from the API"},
    ]
    (agent_dir / "transcript.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    store.table("agents").insert({
        "id": "e5f6a7b8", "job_id": "d4e5f6a7", "state": "waiting (rate limited)",
        "direction": "Confidence-weighted losses", "created": NOW - 900,
        "budgets": {"max_usd": 2.0, "max_turns": 40, "max_wall_s": 14400.0, "max_evals": 20},
        "usage": {"turns": 1, "cost_usd": 0.0203, "evals": 0, "elapsed_s": 95.0},
        "cost_usd": 0.0203, "transcript_path": str(agent_dir / "transcript.jsonl"), "stop_reason": None,
    })
    (ws / "gpus.json").write_text(json.dumps(GPUS))
    for seed, (weak, strong, transfer, other) in zip(
        (42, 43, 44), ((0.60, 0.90, 0.75, 0.70), (0.62, 0.88, 0.74, 0.71), (0.58, 0.92, 0.79, 0.66)), strict=True
    ):
        write_result("demo-math", WEAK_ARTIFACTS, "demo_weak_e1_lr0.001_bs8_schlinear", seed,
                     {"weak_acc": weak, "seed": seed})
        write_result("demo-math", TRAIN_CEILING, "demo_strong_e1_lr0.001_bs8_schlinear", seed,
                     {"strong_acc": strong, "seed": seed})
        write_result("demo-math", "vanilla_w2s", KEY, seed,
                     {"transfer_acc": transfer, "seed": seed, "w2s_source": "local run", **MODELS})
        write_result("demo-math", "train_only_on_confident_labels", KEY + "_conf_high0.75_conf_low0.25", seed,
                     {"transfer_acc": other, "seed": seed, **MODELS})


@pytest.fixture
def snap_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    populate(workspace)
    monkeypatch.setenv("W2S_FAKE_GPUS", str(workspace / "gpus.json"))
    monkeypatch.delenv("COLORTERM", raising=False)
    return workspace


def frozen_app() -> W2SApp:
    return W2SApp(start_service=False, poll_interval=None, clock=lambda: NOW, demo_cache=False)


async def loaded(pilot) -> None:
    """Wait for the one load of every source and the transcript, then let the screen settle."""
    app = pilot.app
    await pilot_wait_until(pilot, lambda: {"jobs", "agents", "gpu", "leaderboard", "startup"} <= set(app.polls)
                           and app.agents_pane.events and len(app.jobs_pane.log_view.lines) >= 31
                           and app.leaderboard_pane.table.row_count == 2, 60)
    await pilot.pause(0.3)
    # both tails follow their newest line; where the first layout left them depends on timing
    app.jobs_pane.log_view.scroll_end(animate=False, immediate=True)
    app.agents_pane.query_one("#transcript").scroll_end(animate=False, immediate=True)
    await pilot.pause(0.2)


def test_snapshot_160x48_all_four_panes(snap_workspace, snap_compare):
    assert snap_compare(frozen_app(), terminal_size=(160, 48), run_before=loaded)


def test_snapshot_80x24_one_pane_at_a_time(snap_workspace, snap_compare):
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=loaded)


def test_snapshot_80x24_leaderboard_pane(snap_workspace, snap_compare):
    async def leaderboard(pilot) -> None:
        await loaded(pilot)
        await pilot.press("4")
        await pilot.pause(0.2)

    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=leaderboard)


def test_snapshot_80x24_agents_pane(snap_workspace, snap_compare):
    async def agents(pilot) -> None:
        await loaded(pilot)
        await pilot.press("1")
        await pilot.pause(0.2)

    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=agents)


def test_snapshot_120x40_all_four_panes(snap_workspace, snap_compare):
    """The smallest size that gets four panes: every table keeps at least four rows."""
    assert snap_compare(frozen_app(), terminal_size=(120, 40), run_before=loaded)


def test_snapshot_100x30_one_pane_at_a_time(snap_workspace, snap_compare):
    """Four panes here left Jobs two rows: one pane shows, switched by 1-4."""
    assert snap_compare(frozen_app(), terminal_size=(100, 30), run_before=loaded)


def test_snapshot_80x24_log_zoomed(snap_workspace, snap_compare):
    async def zoomed(pilot) -> None:
        await loaded(pilot)
        await pilot.press("z")
        await pilot.pause(0.2)

    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=zoomed)


def test_snapshot_160x48_readonly(snap_workspace, snap_compare):
    """No launch, agent or cancel keys in the footer of a shared screen."""
    app = W2SApp(readonly=True, start_service=False, poll_interval=None, clock=lambda: NOW, demo_cache=False)
    assert snap_compare(app, terminal_size=(160, 48), run_before=loaded)
