"""A damaged store file is detected, restored, said in one line, and never made a permanent loss.

Real files and real processes: the workspace is filled through the job queue (run folders
included), one store file is damaged the way a crash, a full disk or a careless ``>`` would, and
then ``w2s jobs list`` runs (in-process via ``run_cli``) and a fresh process reads the store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from core.control.store import Store
from tests.conftest import REPO, run_cli


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _half(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot json at all\n" * 20)


def _json_list(path: Path) -> None:
    path.write_bytes(b"[1, 2, 3]")


def _delete(path: Path) -> None:
    path.unlink()


FAULTS = {"zero": _zero, "half": _half, "garbage": _garbage, "json-list": _json_list, "delete": _delete}
TARGETS = ("jobs.json", "jobs.archive-0000.json", "agents.json")


def _fill(ws: Path) -> dict[str, set[str]]:
    """Queued and finished jobs (with run folders) and agents; every write here was acknowledged."""
    from core.control.jobs import submit_job

    store = Store(ws / ".w2s")
    jobs = [submit_job("command", ["true"], name=f"j{i}", store=store)["id"] for i in range(5)]
    for job_id in jobs[:2]:
        store.table("jobs").update(job_id, {"state": "succeeded", "exit_code": 0})
    agents = store.table("agents")
    agent_ids = [agents.insert({"name": f"a{i}"}) for i in range(3)]
    agents.update(agent_ids[0], {"name": "a0-renamed"})
    return {"jobs": set(jobs), "agents": set(agent_ids)}


def _notices(err: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Recovery notices: ``w2s: warning:`` lines on stderr, or log records where logging is set
    up (under pytest it always is; the campaign in bench/ checks the bare CLI's stderr)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith("w2s: warning: ") for line in lines), lines
    return lines + [r.getMessage() for r in caplog.records if r.name == "w2s.store"]


def _ids_in_fresh_process(ws: Path, table: str) -> set[str]:
    code = ("import sys, orjson; from pathlib import Path; from core.control.store import Store; "
            f"print(orjson.dumps(sorted(d['id'] for d in Store(Path({str(ws / '.w2s')!r})).table({table!r}).all())).decode())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(orjson.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("target", TARGETS)
def test_damaged_file_is_restored_and_nothing_acknowledged_is_lost(workspace, capsys, caplog, target, fault):
    acked = _fill(workspace)
    path = workspace / ".w2s" / target
    assert path.exists() and path.with_name(target + ".prev").exists()
    FAULTS[fault](path)

    assert run_cli("jobs", "list", "--all", "--json") == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    listed = {job["id"] for job in orjson.loads(captured.out)}
    assert listed == acked["jobs"]
    if target != "agents.json":  # agents are not read by `jobs list`
        said = _notices(captured.err, caplog)
        assert len(said) == 1 and target in said[0] and "\n" not in said[0]
    assert _ids_in_fresh_process(workspace, "agents") == acked["agents"]
    assert Store(workspace / ".w2s").table("agents").get(next(iter(acked["agents"]))) is not None
    renamed = [d for d in Store(workspace / ".w2s").table("agents").all() if d["name"] == "a0-renamed"]
    assert len(renamed) == 1  # the last acknowledged update survived, not just the document
    if fault != "delete":
        assert list(path.parent.glob(f"{target}.damaged-*")), "the damaged file is kept for inspection"

    # The next write does not make anything permanent: everything acknowledged is still there.
    from core.control.jobs import submit_job

    new = submit_job("command", ["true"], name="after", store=Store(workspace / ".w2s"))["id"]
    assert _ids_in_fresh_process(workspace, "jobs") == acked["jobs"] | {new}


def test_no_good_copy_is_reported_in_one_line_and_nothing_is_overwritten(workspace, capsys):
    acked = _fill(workspace)
    state = workspace / ".w2s"
    for name in ("agents.json", "agents.json.bak", "agents.json.prev"):
        _garbage(state / name)
    before = (state / "agents.json").read_bytes()
    from core.app.agents import list_agents
    from core.control.storage import StoreError

    with pytest.raises(StoreError, match="agents.json is damaged .*nothing was overwritten"):
        list_agents(store=Store(state))
    with pytest.raises(StoreError):
        Store(state).table("agents").insert({"name": "new"})
    assert (state / "agents.json").read_bytes() == before
    assert run_cli("jobs", "list", "--json") == 0  # other tables are unaffected
    assert {j["id"] for j in orjson.loads(capsys.readouterr().out)} == acked["jobs"]


def test_jobs_without_any_good_copy_are_rebuilt_from_run_folders(workspace, capsys, caplog):
    acked = _fill(workspace)
    state = workspace / ".w2s"
    for name in ("jobs.json", "jobs.json.bak", "jobs.json.prev"):
        _zero(state / name)
    assert run_cli("jobs", "list", "--all", "--json") == 0
    captured = capsys.readouterr()
    jobs = {job["id"]: job for job in orjson.loads(captured.out)}
    assert set(jobs) == acked["jobs"]
    queued = [j for j in jobs.values() if j["state"] == "queued"]
    assert len(queued) == 3 and all(j["rebuilt"] for j in queued)
    said = _notices(captured.err, caplog)
    assert "Traceback" not in captured.err and any("rebuilt 3 job(s)" in m for m in said)


def test_newer_schema_is_refused_not_recovered(tmp_path):
    table = Store(tmp_path).table("ideas")
    table.insert({"x": 1})
    (tmp_path / "ideas.json").write_bytes(orjson.dumps({"_schema": 99, "ideas": {}}))
    from core.control.storage import StoreError

    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path).table("ideas").all()
    assert orjson.loads((tmp_path / "ideas.json").read_bytes())["_schema"] == 99
