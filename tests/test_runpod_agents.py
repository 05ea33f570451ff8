"""Agents on the runpod executor, against the local stand-ins (``tests.runpod_stand_ins``: moto for S3, a
RunPod API stand-in whose pods are containers on the local Docker engine) and a scripted Messages API.

The agent loop runs here as a job (its Anthropic key never leaves this machine); each shell call runs on
its own pod, with the agent's idea folder uploaded and the pod's copy brought back."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from core.agent.launcher import launch_agent, list_agents
from core.control.jobs import get_job
from core.control.scheduler import Scheduler
from core.sandbox.writeback import WritebackRefused, apply_writeback
from tests.conftest import drive_scheduler, pilot_wait_until
from tests.fakes.anthropic_server import FakeAnthropic, tool_results, tool_use, turn, turn_index

pytest.register_assert_rewrite("tests.runpod_stand_ins")
from tests.runpod_stand_ins import ANTHROPIC_KEY, World  # noqa: E402

pytest_plugins = ["tests.docker_engine", "tests.runpod_stand_ins"]
pytestmark = pytest.mark.timeout(180)

COMMAND = ("mkdir -p notes && echo written-on-the-pod > notes/hello.txt && rm gone.txt && cat notes/hello.txt "
           "&& cat kept.txt")


def script(i: int, body: dict[str, Any]) -> Any:
    if turn_index(body) == 0:
        return turn(tool_use("s1", "run_shell", {"command": COMMAND, "timeout_s": 120}))
    return turn(tool_use("f1", "finish", {"summary": "wrote a note on a pod"}))


def test_two_agents_run_their_shell_calls_on_two_pods_and_get_their_folders_back(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAnthropic(script, api_key=ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.start())
    try:
        agents = [launch_agent(f"Direction {n}.", executor="runpod", max_turns=5, budget_usd=0.1) for n in (1, 2)]
        assert [a["sandbox"] for a in agents] == ["runpod", "runpod"]
        folders = [world.ws / "ideas" / a["idea"] for a in agents]
        for folder in folders:  # what the pod must see, and a file the pod deletes
            folder.mkdir(parents=True)
            (folder / "kept.txt").write_text("from-the-trusted-side\n")
            (folder / "gone.txt").write_text("deleted on the pod\n")
        started = time.monotonic()
        done = drive_scheduler(Scheduler(gpus=[], poll_interval=0.1), [a["job_id"] for a in agents], timeout=150)
        elapsed = time.monotonic() - started
    finally:
        fake.stop()
    logs = [Path(j["run_dir"], "stdout.log").read_text(errors="replace") for j in done]
    assert [j["state"] for j in done] == ["succeeded", "succeeded"], logs
    by_id = {a["id"]: a for a in list_agents()}
    assert [by_id[a["id"]]["state"] for a in agents] == ["finished", "finished"], logs
    for folder in folders:
        assert (folder / "notes" / "hello.txt").read_text() == "written-on-the-pod\n"
        assert (folder / "kept.txt").read_text() == "from-the-trusted-side\n" and not (folder / "gone.txt").exists()
    results = [r for body in fake.requests for r in tool_results(body).values()]
    assert len(results) == 2 and all("written-on-the-pod\nfrom-the-trusted-side" in r for r in results), results
    assert all(r.startswith("[exit code 0]") for r in results), results
    pods = world.fake.created()
    assert len(pods) == 2 and len({p["id"] for p in pods}) == 2
    assert {p["name"].rsplit("-", 2)[-2] for p in pods} == {j["id"] for j in done}  # one pod per agent's call
    overlap = _overlap(pods)
    print(f"two agents, one shell call each on its own pod: {elapsed:.1f} s; the pods overlapped {overlap:.1f} s")
    assert overlap > 0, "the two agents' pods did not run at the same time"
    world.assert_clean()  # no pod left, no secret (the Anthropic key included) in any request, pod or object
    assert not list(world.ws.joinpath("ideas").glob(".*writeback*"))  # no staging folder left behind
    assert all((get_job(j["id"]) or {}).get("executor") == "runpod" for j in done)


def _overlap(pods: list[dict[str, Any]]) -> float:
    """How long the two pods were both alive (the stand-in's created and terminated times)."""
    spans = [(float(p["created"]), float(p["terminated"] or time.time())) for p in pods]
    return min(end for _, end in spans) - max(start for start, _ in spans)


async def test_the_tui_agents_pane_lists_agents_on_runpod(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.app import W2SApp

    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never called: the agents stay queued
    agents = [launch_agent(f"Direction {n}.", executor="runpod", max_turns=5, budget_usd=0.1) for n in (1, 2)]
    app = W2SApp(start_service=False, poll_interval=0.2, demo_cache=False)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await pilot_wait_until(pilot, lambda: {a["id"] for a in agents} <= set(app.agents_pane.agents), 20)
    assert world.fake.created() == []


def _tarball(entries: dict[str, bytes | None], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def test_a_writeback_replaces_the_folder_and_refuses_links_and_escapes(tmp_path: Path) -> None:
    folder = tmp_path / "agent_x"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    assert apply_writeback(_tarball({"sub": None, "sub/new.txt": b"new", "run.py": b"x = 1\n"}), folder) == 3
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["run.py", "sub", "sub/new.txt"]
    for bad, why in ((_tarball({"../evil.txt": b"x"}), "escapes"), (_tarball({"/abs.txt": b"x"}), "escapes"),
                     (_tarball({"ok.txt": b"x"}, link="link"), "not a regular file"), (b"not a tarball", "unpacked")):
        with pytest.raises(WritebackRefused, match=why):
            apply_writeback(bad, folder)
        assert (folder / "run.py").read_text() == "x = 1\n" and not (folder / "ok.txt").exists()  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["agent_x"]  # no staging folder left
