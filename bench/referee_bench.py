"""Referee throughput and latency: N concurrent clients POST /api/evaluate over real HTTP.

Builds a throwaway workspace (a labelled binary test split of ``--rows`` rows plus cached
baselines), starts ``w2s``'s app under waitress in a separate process, issues one run token with a
budget large enough for the run, and has ``--clients`` threads send full-length prediction lists
back to back for ``--seconds``. Every call is a real scored, budget-charged, audit-logged
evaluation. Prints requests/s and latency percentiles; ``--json`` writes them to a file.

    uv run python bench/referee_bench.py --clients 16 --seconds 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_workspace(ws: Path, rows: int) -> str:
    """A dataset named ``bench`` with ``rows`` test rows and cached baselines; returns its name."""
    from core.common.config import RunConfig
    from core.results.cache import ceiling_key, weak_artifacts_key, write_result

    rng = random.Random(0)
    name = "bench"
    for folder, labels in ((ws / "labeled_data" / name, True), (ws / "data" / name, False)):
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "test.jsonl", "w", encoding="utf-8") as fh:
            for i in range(rows):
                row = {"id": f"b{i:06d}", "question": f"q{i}", "choice": f"c{i}"}
                if labels:
                    row.update(label=rng.random() < 0.5, subset=f"s{i % 3}")
                fh.write(json.dumps(row) + "\n")
    cfg = RunConfig(data_dir=f"data/{name}")
    for seed in (42, 43):
        cache = ws / "cache_results"
        write_result(name, "weak_artifacts", weak_artifacts_key(cfg), seed, {"weak_acc": 0.6}, cache)
        write_result(name, "train_ceiling", ceiling_key(cfg), seed, {"strong_acc": 0.8}, cache)
    return name


def serve(threads: int) -> None:
    """Child process: serve the app on a free port and print its URL."""
    from web.app import create_app
    from web.server import serve_in_thread

    srv = serve_in_thread(create_app(dashboard=False), threads=threads)
    print(srv.url, flush=True)
    try:
        srv.thread.join()
    except KeyboardInterrupt:
        srv.stop()


def client(
    host: str, port: int, body: bytes, token: str, stop_at: float, lat: list[float], errors: list[str]
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/evaluate", body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            continue
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            errors.append(f"{resp.status} {payload[:200]!r}")
        else:
            lat.append(elapsed)
    conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rows", type=int, default=1263, help="test rows (the reference chat test has 1263)")
    parser.add_argument("--server-threads", type=int, default=8, help="waitress threads (w2s serve uses 8)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.server_threads)
        return 0

    with tempfile.TemporaryDirectory(prefix="w2s-bench-") as tmp:
        ws = Path(tmp)
        os.environ["W2S_WORKSPACE"] = str(ws)
        dataset = build_workspace(ws, args.rows)
        from core.control.store import Store
        from core.control.tokens import issue_run_token

        token = issue_run_token(Store(), "bench-run", 10**9)
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--server-threads", str(args.server_threads)],
            stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            url = child.stdout.readline().strip()
            host, port = url.removeprefix("http://").split(":")
            preds = [random.Random(1).random() for _ in range(args.rows)]
            body = json.dumps({"dataset": dataset, "split": "test", "predictions": preds}).encode()
            warm: list[float] = []
            client(host, int(port), body, token, time.perf_counter() + args.warmup, warm, [])
            import psutil

            server_proc = psutil.Process(child.pid)
            cpu0 = server_proc.cpu_times()
            lat: list[float] = []
            errors: list[str] = []
            stop_at = time.perf_counter() + args.seconds
            started = time.perf_counter()
            threads = [
                threading.Thread(target=client, args=(host, int(port), body, token, stop_at, lat, errors))
                for _ in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            cpu1 = server_proc.cpu_times()
            server_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        finally:
            child.terminate()
            child.wait(timeout=10)
        n_logged = len(Store(ws / ".w2s").table("evaluations"))
    figures = {
        "clients": args.clients,
        "rows": args.rows,
        "server_threads": args.server_threads,
        "seconds": round(wall, 2),
        "requests": len(lat),
        "errors": len(errors),
        "req_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 1) if lat else None,
        "p99_ms": round(percentile(lat, 0.99) * 1000, 1) if lat else None,
        "max_ms": round(max(lat) * 1000, 1) if lat else None,
        "server_cpu_ms_per_req": round(server_cpu / len(lat) * 1000, 2) if lat else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "evaluations_logged": n_logged,
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    print(json.dumps(figures, indent=2))
    if errors:
        print("first errors:", errors[:3], file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
