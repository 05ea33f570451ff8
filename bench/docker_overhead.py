"""What the Docker sandbox costs: container start overhead per sandboxed command, and one demo seed's
wall time in Docker vs the local sandbox (bwrap), measured in the same run.

    DOCKER_HOST=unix:///... uv run python bench/docker_overhead.py [--starts 20] [--dataset demo-math]
                                                                  [--seed 42] [--idea vanilla_w2s] [--no-seed]

1. Start overhead: ``--starts`` runs of a trivial command (``/bin/true``, then ``python -c pass`` with
   the project's interpreter) through ``DockerSandbox.run`` and ``BwrapSandbox.run``, alternating;
   p50/p90 of each, and the difference (what Docker adds per job). Goal (issue P2): <= 2 s per job.
2. One seed: a fresh temporary workspace with the dataset (label-free view + labels for the referee)
   and the demo archive's cached baselines, then ``core.app.seed_job.run_seed`` for the idea with the
   bwrap sandbox and with the Docker sandbox (the idea trains in the container), one after the
   other (``--docker-first`` swaps them); wall time of each. Goal: Docker within 10% of local.
   ``W2S_DOCKER_CGROUP=/`` puts the container beside the host's processes (see
   ``core.sandbox.docker_config`` on CPU weight).

Figures are printed, not asserted. The offline image must exist (``w2s image build --offline``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_overhead(starts: int) -> None:
    from core.sandbox.base import SandboxSpec
    from core.sandbox.bwrap import BwrapSandbox
    from core.sandbox.docker import DockerSandbox

    boxes = {"bwrap": BwrapSandbox(), "docker": DockerSandbox()}
    for name, box in boxes.items():
        problem = box.problem()
        if problem:
            raise SystemExit(f"{name}: {problem}")
    env = {"PATH": "/usr/bin:/bin"}
    for label, command in (("/bin/true", ["/bin/true"]), ("python -c pass", [sys.executable, "-c", "pass"])):
        times: dict[str, list[float]] = {name: [] for name in boxes}
        for _ in range(starts):
            for name, box in boxes.items():
                t0 = time.perf_counter()
                done = box.run(SandboxSpec(command, env=env), timeout=120)
                times[name].append(time.perf_counter() - t0)
                if done.returncode != 0:
                    raise SystemExit(f"{name}: {label} exited {done.returncode}: {done.stderr[-300:]!r}")
        p50 = {name: statistics.median(ts) for name, ts in times.items()}
        print(f"start overhead, {label}, {starts} runs each:")
        for name, ts in times.items():
            print(f"  {name:<7} p50 {p50[name]:6.3f} s   p90 {_quantile(ts, 0.9):6.3f} s   min {min(ts):6.3f} s")
        print(f"  docker adds {p50['docker'] - p50['bwrap']:+.3f} s per sandboxed command (p50)   goal <= 2 s")


def seed_walltime(dataset: str, seed: int, idea: str, docker_first: bool) -> None:
    ws = Path(tempfile.mkdtemp(prefix="w2s-docker-bench-"))
    for name in ("data", "labeled_data"):
        shutil.copytree(REPO / name / dataset, ws / name / dataset)
    os.environ["W2S_WORKSPACE"] = str(ws)
    from core.app.seed_job import run_seed
    from core.common.config import RunConfig
    from core.results.archive import ensure_demo_cache
    from core.sandbox.bwrap import BwrapSandbox
    from core.sandbox.docker import DockerSandbox

    ensure_demo_cache()  # the demo baselines: both runs train only the idea's student
    cfg = RunConfig(data_dir=f"data/{dataset}", seed=seed)
    walls: dict[str, float] = {}
    order = [("local (bwrap)", BwrapSandbox()), ("docker", DockerSandbox())]
    try:
        for name, box in reversed(order) if docker_first else order:
            lines: list[str] = []
            t0 = time.time()
            result = run_seed(idea, cfg, log=lines.append, run_id=f"bench-{name.split()[0]}", sandbox=box)
            walls[name] = time.time() - t0
            print(f"  {name:<14} {walls[name]:7.1f} s   transfer acc {result['transfer_acc']:.4f}", flush=True)
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    local, docker = walls["local (bwrap)"], walls["docker"]
    print(f"  docker / local = {docker / local:.3f} ({(docker - local):+.1f} s)   goal <= 1.10")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--dataset", default="demo-math")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--idea", default="vanilla_w2s")
    ap.add_argument("--no-seed", action="store_true", help="only the start overhead")
    ap.add_argument("--no-starts", action="store_true", help="only the seed")
    ap.add_argument("--docker-first", action="store_true", help="run the docker seed before the local one")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; DOCKER_HOST="
          f"{os.environ.get('DOCKER_HOST', '(default)')}; W2S_DOCKER_CGROUP={os.environ.get('W2S_DOCKER_CGROUP', '')}",
          flush=True)
    if not args.no_starts:
        start_overhead(args.starts)
    if not args.no_seed:
        print(f"one {args.dataset} seed {args.seed} of {args.idea} (baselines cached), same run:", flush=True)
        seed_walltime(args.dataset, args.seed, args.idea, args.docker_first)
    return 0


if __name__ == "__main__":
    sys.exit(main())
