"""Store fault campaign: damage each store file five ways, run the real CLI, count what was lost.

Usage: ``uv run python bench/store_fault_campaign.py``. For each file (jobs hot file, a jobs archive
segment, agents, tokens) and each fault (0 bytes, cut in half, garbage, a JSON list, deleted), a
fresh workspace is filled through the job queue, the file is damaged, and ``w2s jobs list --all
--json`` runs as a real process, then a fresh process reads every table. Prints one row per case:
detected (a one-line notice or error), recovered, acknowledged writes lost (goal 0), tracebacks
shown (goal 0).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
FAULTS = {
    "zero": lambda p: p.write_bytes(b""),
    "half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p: p.write_bytes(b"\x00\xffnot json\n" * 20),
    "json-list": lambda p: p.write_bytes(b"[1, 2, 3]"),
    "delete": lambda p: p.unlink(),
}
TARGETS = ("jobs.json", "jobs.archive-0000.json", "agents.json", "tokens.json")

FILL = """
from core.control.jobs import submit_job
from core.control.store import Store
from core.common.workspace import paths
store = Store(paths().state)
jobs = [submit_job("command", ["true"], name=f"j{i}", store=store)["id"] for i in range(5)]
for j in jobs[:2]:
    store.table("jobs").update(j, {"state": "succeeded", "exit_code": 0})
agents = [store.table("agents").insert({"name": f"a{i}"}) for i in range(3)]
store.table("agents").update(agents[0], {"name": "renamed"})
tokens = [store.table("tokens").insert({"token_hash": f"h{i}"}) for i in range(3)]
store.table("tokens").update(tokens[0], {"token_hash": "h0-new"})
import orjson; print(orjson.dumps({"jobs": jobs, "agents": agents, "tokens": tokens}).decode())
"""
READ = """
from core.control.store import Store
from core.common.workspace import paths
import orjson
store = Store(paths().state)
print(orjson.dumps({t: {d["id"]: d for d in store.table(t).all()} for t in ("jobs", "agents", "tokens")}).decode())
"""


def _py(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)


def case(target: str, fault: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "W2S_WORKSPACE": tmp}
        acked = orjson.loads(_py(FILL, env).stdout.strip().splitlines()[-1])
        FAULTS[fault](Path(tmp) / ".w2s" / target)
        cli = subprocess.run([sys.executable, "-m", "cli.main", "jobs", "list", "--all", "--json"],
                             cwd=REPO, env=env, capture_output=True, text=True)
        after = _py(READ, env)
        said = [line for line in (cli.stderr + after.stderr).splitlines() if line.startswith("w2s: ")]
        tracebacks = (cli.stderr + after.stderr).count("Traceback")
        lost = 0
        if after.returncode == 0:
            state = orjson.loads(after.stdout.strip().splitlines()[-1])
            lost += sum(i not in state[t] for t, ids in acked.items() for i in ids)
            lost += state["agents"].get(acked["agents"][0], {}).get("name") != "renamed"  # the last update
            lost += state["tokens"].get(acked["tokens"][0], {}).get("token_hash") != "h0-new"
        else:
            lost = -1  # not readable: reported, nothing overwritten
        return {"target": target, "fault": fault, "detected": bool(said), "recovered": after.returncode == 0,
                "lost": lost, "tracebacks": tracebacks, "said": said[0][:110] if said else ""}


def main() -> int:
    rows = [case(t, f) for t in TARGETS for f in FAULTS]
    print(f"{'file':24} {'fault':10} {'detected':9} {'recovered':10} {'acked lost':11} {'tracebacks':10} message")
    for r in rows:
        print(f"{r['target']:24} {r['fault']:10} {r['detected']!s:9} {r['recovered']!s:10} "
              f"{r['lost']!s:11} {r['tracebacks']!s:10} {r['said']}")
    print(f"\nfaults tried: {len(rows)}; detected: {sum(bool(r['detected']) for r in rows)}; "
          f"recovered: {sum(bool(r['recovered']) for r in rows)}; acknowledged writes lost: "
          f"{sum(max(0, int(r['lost'])) for r in rows)} (goal 0); tracebacks shown: "  # type: ignore[call-overload]
          f"{sum(int(r['tracebacks']) for r in rows)} (goal 0)")  # type: ignore[call-overload]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
