"""Measure whether weak-to-strong generalization shows on the demo datasets.

Two modes:
- ``--mode proxy`` (seconds): frozen MiniLM embeddings, mean-pooled, from the first N layers (the
  teacher) or all six (the student), each with a small numpy logistic regression on top. Used to
  tune the generators quickly.
- ``--mode engine`` (minutes on CPU): the real ``core.engine.train_and_predict`` with demo-weak and
  demo-strong: teacher on train_label -> labels train_unlabel -> student (transfer); ceiling on
  the ground truth of train_unlabel. All scored on test.

    uv run python bench/demo_data_probe.py --mode proxy --data labeled_data
    uv run python bench/demo_data_probe.py --mode engine --datasets demo-math --unlabel 1000

Prints teacher / ceiling / transfer accuracy and PGR per dataset (and per subset with -v).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.data.datasets import load_dataset  # noqa: E402


def _texts(rows: list[dict], fmt: str) -> list[str]:
    from core.engine.prompts import format_prompt

    return [format_prompt(r, fmt) for r in rows]


class Embedder:
    """Mean-pooled hidden states of MiniLM cut to ``layers`` layers (frozen)."""

    def __init__(self, layers: int | None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from core.engine.models import minilm_path

        path = str(minilm_path())
        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        if layers is not None:
            self.model.encoder.layer = self.model.encoder.layer[:layers]
        self.torch = torch

    def __call__(self, texts: list[str], batch: int = 64) -> np.ndarray:
        torch = self.torch
        out = []
        order = np.argsort([len(t) for t in texts])
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                idx = order[i : i + batch]
                enc = self.tok([texts[j] for j in idx], padding=True, truncation=True, max_length=256,
                               return_tensors="pt")
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((h * m).sum(1) / m.sum(1)).numpy())
        emb = np.zeros((len(texts), out[0].shape[1]), dtype=np.float32)
        emb[order] = np.concatenate(out)
        return emb


def fit_logreg(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 400) -> tuple[np.ndarray, float]:
    """Full-batch gradient descent logistic regression on standardized features (y in [0, 1])."""
    w = np.zeros(x.shape[1])
    b = 0.0
    lr = 0.5
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = p - y
        w -= lr * (x.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return w, b


def proxy(ds: dict, fmt: str, weak_layers: int) -> dict:
    """Teacher/ceiling/transfer accuracy with frozen embeddings + logistic regression."""
    tl, tu, te = ds["train_label"], ds["train_unlabel"], ds["test"]
    res = {}
    feats = {}
    for name, layers in (("weak", weak_layers), ("strong", None)):
        emb = Embedder(layers)
        f = {k: emb(_texts(s.rows, fmt)) for k, s in (("tl", tl), ("tu", tu), ("te", te))}
        mu, sd = f["tl"].mean(0), f["tl"].std(0) + 1e-6
        feats[name] = {k: (v - mu) / sd for k, v in f.items()}
    ytl, ytu, yte = (np.array(s.labels(), dtype=float) for s in (tl, tu, te))
    fw = feats["weak"]
    w, b = fit_logreg(fw["tl"], ytl)
    teach_u = (fw["tu"] @ w + b > 0).astype(float)
    res["weak_pred"] = fw["te"] @ w + b > 0
    fs = feats["strong"]
    w, b = fit_logreg(fs["tu"], ytu)
    res["ceil_pred"] = fs["te"] @ w + b > 0
    w, b = fit_logreg(fs["tu"], teach_u)
    res["transfer_pred"] = fs["te"] @ w + b > 0
    res["teacher_label_acc"] = float((teach_u == ytu).mean())
    return res


def engine(ds: dict, fmt: str, seed: int, log, teacher_only: bool = False) -> dict:
    """Teacher/ceiling/transfer predictions with the real training engine (demo models)."""
    from core.common.config import RunConfig
    from core.engine import train_and_predict

    cfg = RunConfig(seed=seed)
    tl, tu, te = ds["train_label"], ds["train_unlabel"], ds["test"]
    t0 = time.time()
    weak = train_and_predict("demo-weak", fmt, tl.rows, np.array(tl.labels(), dtype=float),
                             {"tu": tu.rows, "te": te.rows}, cfg)
    log(f"  teacher done {time.time() - t0:.0f}s")
    teach_u = (weak["tu"] > 0.5).astype(float)
    yu = np.array(tu.labels())
    if teacher_only:  # quick look: the teacher alone (the student columns repeat it)
        w = weak["te"] > 0.5
        return {"weak_pred": w, "transfer_pred": w, "ceil_pred": w,
                "teacher_label_acc": float(((weak["tu"] > 0.5) == yu).mean())}
    strong = train_and_predict("demo-strong", fmt, tu.rows, teach_u, {"te": te.rows}, cfg)
    log(f"  transfer done {time.time() - t0:.0f}s")
    ceil = train_and_predict("demo-strong", fmt, tu.rows, np.array(tu.labels(), dtype=float),
                             {"te": te.rows}, cfg)
    log(f"  ceiling done {time.time() - t0:.0f}s")
    return {"weak_pred": weak["te"] > 0.5, "transfer_pred": strong["te"] > 0.5, "ceil_pred": ceil["te"] > 0.5,
            "teacher_label_acc": float(((weak["tu"] > 0.5) == yu).mean())}


def summarize(name: str, ds: dict, res: dict, verbose: bool) -> dict:
    y = np.array(ds["test"].labels()).astype(bool)
    acc = {k: float((res[f"{k}_pred"] == y).mean()) for k in ("weak", "ceil", "transfer")}
    gap = acc["ceil"] - acc["weak"]
    pgr = (acc["transfer"] - acc["weak"]) / gap if gap > 0 else float("nan")
    out = {"dataset": name, **{k: round(v, 4) for k, v in acc.items()}, "pgr": round(pgr, 3),
           "teacher_label_acc_unlabel": round(res["teacher_label_acc"], 4)}
    print(json.dumps(out))
    if verbose:
        groups = defaultdict(list)
        for i, r in enumerate(ds["test"].rows):
            groups[(r.get("subset"), r.get("difficulty"))].append(i)
        for key in sorted(groups, key=str):
            idx = np.array(groups[key])
            cells = " ".join(f"{k}={float((res[f'{k}_pred'][idx] == y[idx]).mean()):.2f}"
                             for k in ("weak", "ceil", "transfer"))
            print(f"    {key[0]:>14} {key[1]:>7} n={len(idx):4d} {cells}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("proxy", "engine"), default="proxy")
    ap.add_argument("--data", default="labeled_data", help="folder holding labeled demo-* datasets")
    ap.add_argument("--datasets", default="demo-chat,demo-math,demo-code")
    ap.add_argument("--weak-layers", type=int, default=1)
    ap.add_argument("--unlabel", type=int, default=0, help="use only the first N train_unlabel rows")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--teacher-only", action="store_true", help="engine mode: train the teacher only")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("PROBE_THREADS", "1"))))
    for name in args.datasets.split(","):
        ds = load_dataset(Path(args.data) / name)
        if args.unlabel:
            ds["train_unlabel"].rows = ds["train_unlabel"].rows[: args.unlabel]
        fmt = ds["test"].fmt
        t0 = time.time()
        if args.mode == "proxy":
            res = proxy(ds, fmt, args.weak_layers)
        else:
            res = engine(ds, fmt, args.seed, lambda m: print(m, flush=True), args.teacher_only)
        summarize(name, ds, res, args.verbose)
        print(f"  ({time.time() - t0:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
