"""Wall time of one full demo seed on CPU: weak artifacts + ceiling + vanilla_w2s transfer.

    uv run python bench/demo_seed_bench.py [--dataset demo-math] [--seed 42] [--idea vanilla_w2s]
                                           [--epochs N] [--lr X] [--batch-size N]

Runs in a fresh temporary workspace (copies of the repo's data/ and labeled_data/ for the dataset)
through ``core.app.seed_job.run_seed`` (idea sandboxed, referee-scored), so nothing is reused from a
cache. Prints each stage's wall time and the accuracies. Goal (issue P2): <= 3 minutes on 2 CPU cores. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="demo-math")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--idea", default="vanilla_w2s")
    ap.add_argument("--epochs", type=int, default=None, help="override the registry's demo default")
    ap.add_argument("--lr", type=float, default=None, help="override the registry's demo default")
    ap.add_argument("--batch-size", type=int, default=None, help="override the registry's demo default")
    args = ap.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="w2s-seed-bench-"))
    for name in ("data", "labeled_data"):
        shutil.copytree(REPO / name / args.dataset, ws / name / args.dataset)
    os.environ["W2S_WORKSPACE"] = str(ws)

    import torch

    from core.app.seed_job import run_seed
    from core.common.config import RunConfig

    stages: list[tuple[float, str]] = []
    last = [""]

    def log(line: str) -> None:
        stages.append((time.time(), line))
        if line.startswith("seed ") and line != last[0]:
            print(f"[{time.time() - t0:6.1f}s] {line}", flush=True)
            last[0] = line

    t0 = time.time()
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size)) if v is not None}
    cfg = RunConfig(data_dir=f"data/{args.dataset}", seed=args.seed, **overrides)
    result = run_seed(args.idea, cfg, log=log)
    total = time.time() - t0
    marks = [t for t, line in stages if line.startswith("seed ")]
    names = ["weak artifacts", "ceiling", args.idea]
    print(f"\n{args.dataset} seed {args.seed} on {os.cpu_count()} CPU cores (torch threads {torch.get_num_threads()}):")
    for name, a, b in zip(names, marks, marks[1:] + [t0 + total], strict=False):
        print(f"  {name:<28} {b - a:7.1f} s")
    print(f"  {'total (incl. imports)':<28} {total:7.1f} s   goal <= 180 s")
    print(f"  weak {result['weak_acc']:.4f}  ceiling {result['strong_acc']:.4f}  transfer {result['transfer_acc']:.4f}"
          f"  PGR {result['pgr']}")
    shutil.rmtree(ws, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
