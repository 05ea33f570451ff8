"""Engine vs a bare PyTorch loop: examples/s for training and scoring on the same model, batch
size and rows (goal: engine >= 0.95x the bare loop). Prints figures; asserts nothing.

    uv run python bench/engine_bench.py [--model demo-strong] [--rows 256] [--batch-size 16] [--repeats 3]

Both sides start from the same freshly loaded model (LoRA r=32 on all linear layers unless
--lora-r 0) and the same token ids (the engine's prompt encoder), so the difference is the
engine's own overhead: batching, collation, loss, scheduler, clipping, progress reporting.
The bare loop pads each batch to its longest row too (dynamic padding) and uses plain AdamW.
Runs alternate (engine, bare, engine, bare, ...) and the median is reported, because a shared
machine's load drifts.
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

from core.config import RunConfig  # noqa: E402
from core.engine.hf_backend import Progress, collate, load, predict, set_threads, train  # noqa: E402
from core.engine.models import resolve_model  # noqa: E402


def bench_rows(n: int) -> tuple[str, list[dict]]:
    """Rows of the demo-math set when present, else synthetic ones of a similar length."""
    path = Path("labeled_data/demo-math/train_unlabel.jsonl")
    if path.is_file():
        from core.datasets import load_split

        split = load_split(path)
        return split.fmt, split.rows[:n]
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        a, b = rng.integers(1, 99, 2)
        rows.append({"id": str(i), "question": f"Ann has {a} apples and buys {b} more. How many now?" * 2,
                     "choice": str(a + b + rng.integers(0, 2)), "label": bool(i % 2)})
    return "binary", rows


def bare_train(module: torch.nn.Module, seqs: list[list[int]], targets: torch.Tensor, pad: int,
               bs: int, lr: float, epochs: int) -> float:
    """The reference loop: batches in order, forward, cross-entropy, backward, AdamW step."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    module.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for s in range(0, len(seqs), bs):
            ids, mask = collate(seqs[s : s + bs], pad, torch.device("cpu"))
            logits = module(ids, mask)
            loss = torch.nn.functional.cross_entropy(logits, targets[s : s + bs].long())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return len(seqs) * epochs / (time.perf_counter() - t0)


def bare_score(module: torch.nn.Module, seqs: list[list[int]], pad: int, bs: int) -> float:
    module.eval()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(seqs), bs):
            ids, mask = collate(seqs[s : s + bs], pad, torch.device("cpu"))
            torch.softmax(module(ids, mask), -1)
    return len(seqs) / (time.perf_counter() - t0)


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
    res: dict[str, list[float]] = {"engine_train": [], "bare_train": [], "engine_score": [], "bare_score": []}
    for rep in range(args.repeats):
        loaded = load(spec, cfg, fmt, quiet)
        seqs = loaded.encoder.encode_many(rows)
        bar = Progress(3 * len(seqs) * cfg.epochs, None, "bench")
        summary = train(loaded, seqs, targets.numpy(), None, cfg, bar, quiet)
        res["engine_train"].append(summary["train_examples_per_s"])
        t0 = time.perf_counter()
        predict(loaded, seqs, args.batch_size)
        res["engine_score"].append(len(seqs) / (time.perf_counter() - t0))
        loaded = load(spec, cfg, fmt, quiet)
        res["bare_train"].append(bare_train(loaded.module, seqs, targets, loaded.pad_id, args.batch_size,
                                            cfg.lr, cfg.epochs))
        res["bare_score"].append(bare_score(loaded.module, seqs, loaded.pad_id, args.batch_size))
        print(f"repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()), flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    lengths = [len(s) for s in seqs]
    print(f"model {args.model} ({'LoRA r=' + str(args.lora_r) if args.lora_r else 'full'}), {len(rows)} {fmt} rows "
          f"(mean {np.mean(lengths):.0f} tokens), batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores")
    print(f"training examples/s: engine {med['engine_train']:.1f}  bare {med['bare_train']:.1f}  "
          f"ratio {med['engine_train'] / med['bare_train']:.2f}x")
    print(f"scoring  examples/s: engine {med['engine_score']:.1f}  bare {med['bare_score']:.1f}  "
          f"ratio {med['engine_score'] / med['bare_score']:.2f}x")


if __name__ == "__main__":
    main()
