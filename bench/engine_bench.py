"""Engine vs a bare PyTorch loop: examples/s for training and scoring on the same model, batch
size and rows (goal: engine >= 0.95x the bare loop). Prints figures; asserts nothing.

    uv run python bench/engine_bench.py [--model demo-strong] [--rows 256] [--batch-size 16] [--repeats 3]

Both sides start from the same freshly loaded model (LoRA r=32 on all linear layers unless
--lora-r 0) and the same token ids (the engine's prompt encoder), so the difference is the
engine's own overhead: batching, collation, loss, scheduler, clipping, progress reporting.
The bare loop pads each batch to its longest row too (dynamic padding) and uses plain AdamW.
Runs alternate (engine, bare, engine, bare, ...). Two figures per side: the best wall-clock rate of
the repeats, and the rate per CPU-second of this process (``time.process_time``), which a shared,
oversubscribed machine disturbs far less than wall time; set ``W2S_TORCH_THREADS=1`` to make the CPU
figure cleaner still (no spin-waiting worker threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.common.config import RunConfig  # noqa: E402
from core.engine.hf_backend import Progress, collate, load, predict, set_threads, train  # noqa: E402
from core.engine.models import resolve_model  # noqa: E402


def bench_rows(n: int) -> tuple[str, list[dict]]:
    """Rows of the demo-math set when present, else synthetic ones of a similar length."""
    path = Path("labeled_data/demo-math/train_unlabel.jsonl")
    if path.is_file():
        from core.data.datasets import load_split

        split = load_split(path)
        return split.fmt, split.rows[:n]
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        a, b = rng.integers(1, 99, 2)
        rows.append({"id": str(i), "question": f"Ann has {a} apples and buys {b} more. How many now?" * 2,
                     "choice": str(a + b + rng.integers(0, 2)), "label": bool(i % 2)})
    return "binary", rows


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def bare_train(module: torch.nn.Module, seqs: list[list[int]], targets: torch.Tensor, pad: int,
               bs: int, lr: float, epochs: int) -> None:
    """The reference loop: batches in order, forward, cross-entropy, backward, AdamW step."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    module.train()
    for _ in range(epochs):
        for s in range(0, len(seqs), bs):
            ids, mask = collate(seqs[s : s + bs], pad, torch.device("cpu"))
            logits = module(ids, mask)
            loss = torch.nn.functional.cross_entropy(logits, targets[s : s + bs].long())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)


def bare_score(module: torch.nn.Module, seqs: list[list[int]], pad: int, bs: int) -> None:
    module.eval()
    with torch.inference_mode():
        for s in range(0, len(seqs), bs):
            ids, mask = collate(seqs[s : s + bs], pad, torch.device("cpu"))
            torch.softmax(module(ids, mask), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="demo-strong")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lora-r", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    set_threads()
    fmt, rows = bench_rows(args.rows)
    cfg = RunConfig(batch_size=args.batch_size, epochs=args.epochs, lr=1e-3, lora_r=args.lora_r, max_ctx=256,
                    extra={"device": "cpu"})
    spec = resolve_model(args.model)
    quiet = lambda m: None  # noqa: E731
    targets = torch.tensor([float(r.get("label", 0)) for r in rows])
    names = ("engine_train", "bare_train", "engine_score", "bare_score")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}

    def record(name: str, clock: Clock, n: int) -> None:
        wall[name].append(n / clock.wall)
        cpu[name].append(n / max(clock.cpu, 1e-9))

    n_train = args.rows * cfg.epochs
    for rep in range(args.repeats):
        loaded = load(spec, cfg, fmt, quiet)
        seqs = loaded.encoder.encode_many(rows)
        bar = Progress(3 * len(seqs) * cfg.epochs, None, "bench")
        with Clock() as c:
            train(loaded, seqs, targets.numpy(), None, cfg, bar, quiet)
        record("engine_train", c, n_train)
        with Clock() as c:
            predict(loaded, seqs, args.batch_size)
        record("engine_score", c, len(seqs))
        loaded = load(spec, cfg, fmt, quiet)
        with Clock() as c:
            bare_train(loaded.module, seqs, targets, loaded.pad_id, args.batch_size, cfg.lr, cfg.epochs)
        record("bare_train", c, n_train)
        with Clock() as c:
            bare_score(loaded.module, seqs, loaded.pad_id, args.batch_size)
        record("bare_score", c, len(seqs))
        print(f"repeat {rep + 1} (wall ex/s): " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in wall.items()), flush=True)
    lengths = [len(s) for s in seqs]
    print(f"model {args.model} ({'LoRA r=' + str(args.lora_r) if args.lora_r else 'full'}), {len(rows)} {fmt} rows "
          f"(mean {np.mean(lengths):.0f} tokens), batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for what in ("train", "score"):
        e, b = f"engine_{what}", f"bare_{what}"
        we, wb = max(wall[e]), max(wall[b])
        ce, cb = statistics.median(cpu[e]), statistics.median(cpu[b])
        print(f"{what:5s} examples/s  best wall: engine {we:.1f} bare {wb:.1f} ratio {we / wb:.2f}x | "
              f"per CPU-second (median): engine {ce:.1f} bare {cb:.1f} ratio {ce / cb:.2f}x")

if __name__ == "__main__":
    main()
