"""Store latency at 10k jobs: p50/p99 of add, update, finish (archive move), list, cold load.

Usage: ``uv run python bench/store_bench.py [--jobs 10000] [--ops 300] [--no-split]``.
Job documents are shaped like the ones ``core.control.jobs.submit_job`` writes (history included).
``--no-split`` keeps every job in the hot file, to show what the archive split buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from core.control import store as store_mod
from core.control.store import Store


def job_doc(i: int, state: str) -> dict:
    t = 1_780_000_000.0 + i
    history = [{"state": s, "time": t, "reason": r} for s, r in (
        ("queued", "submitted"), ("starting", "claimed by scheduler (attempt 1)"), ("running", "started"))]
    if state == "succeeded":
        history.append({"state": "succeeded", "time": t + 60, "reason": "exit code 0"})
    return {
        "id": f"{i:08x}", "kind": "run", "name": f"vanilla_w2s seed {i % 5}", "state": state,
        "executor": "local", "gpus": [0] if state == "running" else [], "gpus_requested": 1, "created": t,
        "started": t + 1, "finished": t + 60 if state == "succeeded" else None, "exit_code": 0,
        "history": history, "run_dir": f"/home/me/ws/runs/{i:08x}",
        "meta": {"idea": "vanilla_w2s", "dataset": "demo-math", "seed": i % 5}, "progress": 1.0,
        "attempt": 1, "max_retries": 0, "retry_at": None, "eval_budget": 20, "handle": None,
        "cancel_requested": False, "_rev": 4,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--no-split", action="store_true")
    args = parser.parse_args()
    if args.no_split:
        store_mod.ARCHIVE_RULES.pop("jobs", None)
    root = Path(tempfile.mkdtemp(prefix="w2s-store-bench-"))
    finished = [job_doc(i, "succeeded") for i in range(args.jobs)]
    seg = len(finished) if args.no_split else store_mod.ARCHIVE_SEGMENT_DOCS
    for n, start in enumerate(range(0, len(finished), seg)):
        name = "jobs.json" if args.no_split else f"jobs.archive-{n:04d}.json"
        chunk = {doc["id"]: doc for doc in finished[start:start + seg]}
        (root / name).write_bytes(orjson.dumps({"_schema": 1, "jobs": chunk}))
    size_mb = sum(p.stat().st_size for p in root.glob("jobs*.json")) / 1e6
    target = "jobs.json" if args.no_split else "archive segments"

    t0 = time.perf_counter()
    table = Store(root).table("jobs")
    assert len(table) == args.jobs
    cold = (time.perf_counter() - t0) * 1000

    base = args.jobs + 1
    add = timed(lambda i: table.insert({**job_doc(base + i, "queued"), "_rev": 1}), args.ops)
    ids = [f"{base + i:08x}" for i in range(args.ops)]
    update = timed(lambda i: table.update(ids[i], {"state": "running", "progress": 0.5}), args.ops)
    finish = timed(lambda i: table.update(ids[i], {"state": "succeeded", "progress": 1.0}), args.ops)
    get = timed(lambda i: table.get(ids[i]), args.ops)
    n_list = max(10, args.ops // 10)
    list_all = timed(lambda i: table.all(), n_list)
    list_hot = timed(lambda i: table.hot(), args.ops)
    list_recent = timed(lambda i: table.recent(100), args.ops)
    probe = root / "fsync-probe"
    fsync_only = []
    for _ in range(args.ops):
        t0 = time.perf_counter()
        with open(probe, "wb") as fh:
            fh.write(b"x" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_only.append(time.perf_counter() - t0)

    print(f"store bench: {args.jobs} finished jobs ({size_mb:.1f} MB {target}), {args.ops} ops each, "
          f"split={'off' if args.no_split else 'on'}")
    print(f"cold load + count: {cold:.1f} ms")
    for name, values in (("add", add), ("update", update), ("finish (archive move)", finish),
                         ("get", get), ("list all", list_all), ("list active", list_hot),
                         ("list newest 100", list_recent), ("raw 4 KiB write+fsync", fsync_only)):
        print(f"{name:<22} p50 {pct(values, 0.5):8.2f} ms   p99 {pct(values, 0.99):8.2f} ms   "
              f"mean {statistics.mean(values) * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
