"""Agent jobs as the scheduler and the CLI treat them: an agent supervises its runs, so it takes no
executor slot (it never waits behind, or starves, its own runs); ``w2s ... | head -1`` ends quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.control.jobs import get_job, submit_job
from core.control.scheduler import SUPERVISORS, Scheduler
from core.control.store import Store
from tests.conftest import REPO, drive_scheduler, make_dataset

HOLD = 'touch "$W2S_RUN_DIR/started"; while [ ! -f "$W2S_RUN_DIR/go" ]; do sleep 0.05; done'


def test_an_agent_does_not_take_the_slot_its_runs_need(workspace: Path) -> None:
    agent = submit_job("agent", ["bash", "-c", HOLD], meta={"agent_id": "a1"})
    runs = [submit_job("idea_run", ["bash", "-c", "sleep 0.2"], meta={"agent_id": "a1"}) for _ in range(2)]
    sched = Scheduler(gpus=[], limits={"local": 1}, poll_interval=0.05)
    # with one local slot, the agent (a supervisor) and its runs (one at a time) all get to run
    done = drive_scheduler(sched, [r["id"] for r in runs], timeout=60)
    assert all(r["state"] == "succeeded" for r in done)
    assert get_job(agent["id"])["state"] == "running"
    (Path(get_job(agent["id"])["run_dir"]) / "go").touch()
    (finished,) = drive_scheduler(sched, [agent["id"]], timeout=60)
    assert finished["state"] == "succeeded"


def test_supervisors_have_a_cap_of_their_own(workspace: Path) -> None:
    agents = [submit_job("agent", ["bash", "-c", HOLD], meta={"agent_id": f"a{i}"}) for i in range(3)]
    run = submit_job("idea_run", ["bash", "-c", "sleep 0.1"])
    sched = Scheduler(gpus=[], limits={"local": 1, SUPERVISORS: 2}, poll_interval=0.05)
    drive_scheduler(sched, [run["id"]], timeout=60)
    states = [get_job(a["id"])["state"] for a in agents]
    assert sorted(states) == ["queued", "running", "running"], states
    for a in agents:
        (Path(get_job(a["id"])["run_dir"]) / "go").touch()
    done = drive_scheduler(sched, [a["id"] for a in agents], timeout=60)
    assert all(j["state"] == "succeeded" for j in done)
    assert "supervisors" in Scheduler(gpus=[]).limits  # on by default


def test_a_closed_pipe_is_no_traceback(workspace: Path) -> None:
    Store().table("agents").insert({"id": "abc123", "state": "finished", "direction": "x", "created": 1.0,
                                    "budgets": {}, "usage": {}})
    for argv in (["agent", "list"], ["jobs", "list"], ["--help"]):
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *argv], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before the command writes (`| head -0`)
        _, err = proc.communicate(timeout=120)
        text = err.decode()
        assert "Traceback" not in text and "BrokenPipeError" not in text, (argv, text)
        assert proc.returncode in (0, 141), (argv, proc.returncode, text)


def test_an_agent_keeps_at_most_max_in_flight_runs(workspace: Path) -> None:
    from core.agent.budgets import Budgets, Usage
    from core.agent.tools import ToolContext, run_tool
    from core.agent.tools.jobs import MAX_IN_FLIGHT

    folder = workspace / "ideas" / "agent_p"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text("def run_experiment(cfg):\n    return {}\n")
    make_dataset(workspace, "tiny")
    ctx = ToolContext(agent_id="p", idea_name="agent_p", folder=folder, run_dir=workspace / "runs" / "j",
                      budgets=Budgets(), usage=Usage())
    live = [submit_job("idea_run", ["true"], meta={"agent_id": "p", "seed": s}) for s in range(MAX_IN_FLIGHT - 1)]
    submit_job("idea_run", ["true"], meta={"agent_id": "someone_else"})  # others' runs do not count
    out = run_tool(ctx, "run_idea", {"seeds": [1, 2], "data_dir": "data/tiny"}, "u1")
    assert out.is_error and f"limit of {MAX_IN_FLIGHT} in flight" in out.text and "wait" in out.text
    Store().table("jobs").update(live[0]["id"], {"state": "succeeded"})  # one finished: room for two
    out = run_tool(ctx, "run_idea", {"seeds": [1, 2], "data_dir": "data/tiny"}, "u2")
    assert not out.is_error, out.text
    assert out.text.count("(queued)") == 2
