"""Submit-to-running latency of the Slurm executor on the cluster this machine talks to.

``uv run python bench/slurm_latency.py [--runs 10]`` queues ``--runs`` trivial jobs (``executor="slurm"``)
one after another in a temporary workspace and drives a real scheduler (ticking every 50 ms). For each
it prints, in milliseconds from ``submit_job``: when ``sbatch`` returned (the job is in Slurm's queue
and the w2s job is running), when Slurm said RUNNING, and when the command itself started on the node
(it writes its own clock time first thing). Then p50 and max of each. Needs ``sbatch`` to answer
(``.ci/services/slurm.sh`` starts a one-node cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_run(marker_cmd: list[str]) -> dict[str, float]:
    from core.control.jobs import get_job, submit_job
    from core.control.scheduler import Scheduler

    sched = Scheduler(gpus=[], poll_interval=0.05)
    t0 = time.time()
    job = submit_job("bench", marker_cmd, executor="slurm")
    marker = Path(job["run_dir"]) / "started_at"
    out: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while "command" not in out or "slurm_running" not in out:
        sched.tick()
        current = get_job(job["id"]) or {}
        handle = current.get("handle") or {}
        if "sbatch" not in out and handle.get("slurm_job_id"):
            submitted = next(h["time"] for h in current["history"] if h["state"] == "running")
            out["sbatch"] = (submitted - t0) * 1000
        if "slurm_running" not in out and handle.get("slurm_job_id"):
            state = subprocess.run(["squeue", "-h", "-j", str(handle["slurm_job_id"]), "-o", "%T"],
                                   capture_output=True, text=True).stdout.strip()
            if state == "RUNNING":
                out["slurm_running"] = (time.time() - t0) * 1000
        if "command" not in out and marker.exists() and marker.read_text().strip():
            out["command"] = (float(marker.read_text()) - t0) * 1000
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job['id']} did not start within 120 s: {current.get('progress_message')}")
        time.sleep(0.02)
    while (get_job(job["id"]) or {}).get("state") == "running":  # let it finish: the next run gets the node
        sched.tick()
        time.sleep(0.05)
    slurm_id = str(((get_job(job["id"]) or {}).get("handle") or {}).get("slurm_job_id"))
    while subprocess.run(["squeue", "-h", "-j", slurm_id], capture_output=True, text=True).stdout.strip():
        time.sleep(0.05)  # and Slurm has finished it too (COMPLETING holds the node)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--gap", type=float, default=0.0, help="seconds to wait between runs (node idle)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="w2s-slurm-bench-") as ws:
        os.environ["W2S_WORKSPACE"] = ws
        os.environ.setdefault("W2S_SLURM_SQUEUE_TTL", "0")
        cmd = ["bash", "-c", 'date +%s.%N > "$W2S_RUN_DIR/started_at"; sleep 1']  # RUNNING long enough to see
        rows = []
        for i in range(args.runs):
            row = one_run(cmd)
            rows.append(row)
            time.sleep(args.gap)
            print(json.dumps({"run": i + 1, **{k: round(v, 1) for k, v in row.items()}}), flush=True)
    for key, label in (("sbatch", "submit_job -> sbatch returned (w2s: running)"),
                       ("slurm_running", "submit_job -> squeue says RUNNING (polled every ~20 ms + squeue's own time)"),
                       ("command", "submit_job -> the command's first instruction on the node")):
        values = [r[key] for r in rows]
        print(f"{label}: p50 {statistics.median(values):.0f} ms, max {max(values):.0f} ms (n={len(values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
