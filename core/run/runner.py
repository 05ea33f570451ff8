"""Run one seed of an idea end to end (trusted side) and cache the scored result.

``run_seed`` builds the weak/ceiling baselines the seed needs (cached, reused when present), calls
the idea's ``run_experiment(cfg)``, scores its ``test_predictions`` with ``core.results.scoring``, computes
PGR against the fixed baselines (``core.results.pgr``) and writes
``cache_results/<ds>_<idea>/<key>/seed_<s>.json``. The idea never sees a label.

``python -m core.run.runner --idea NAME --config-json JSON [--run-dir DIR]`` runs one seed as a job; it
writes ``progress.json`` and ``result.json`` into its run folder. ``core.app.seed_runs`` launches these.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_json
from core.common.config import RunConfig
from core.common.errors import UserError
from core.common.workspace import paths
from core.results.cache import WEAK_ARTIFACTS, result_key, write_result
from core.run.baselines import ensure_ceiling, ensure_weak_artifacts, missing_baselines
from core.run.ideas import idea_defaults, load_idea
from core.run.resolve import prepare_config

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]
SOURCE = "local run"


def _spans(weights: list[tuple[str, float]]) -> dict[str, tuple[float, float]]:
    total = sum(w for _, w in weights) or 1.0
    out, at = {}, 0.0
    for name, w in weights:
        out[name] = (at / total, (at + w) / total)
        at += w
    return out


def _scaled(progress: ProgressFn | None, span: tuple[float, float], label: str) -> ProgressFn | None:
    if progress is None:
        return None
    lo, hi = span

    def fn(frac: float, message: str) -> None:
        progress(lo + (hi - lo) * max(0.0, min(1.0, frac)), f"{label}: {message}" if message else label)

    return fn


def _check_predictions(out: Any, idea: str) -> dict[str, float]:
    if not isinstance(out, dict) or not isinstance(out.get("test_predictions"), dict):
        raise UserError(f"idea {idea!r}: run_experiment must return a dict with 'test_predictions' {{id: prob}}")
    preds = out["test_predictions"]
    if not preds:
        raise UserError(f"idea {idea!r}: test_predictions is empty")
    return preds


def run_seed(
    idea: str, cfg: RunConfig, progress: ProgressFn | None = None, log: LogFn | None = None
) -> dict[str, Any]:
    """Baselines (if missing) -> idea -> score -> PGR -> cache. Returns the cached result (+ ``path``)."""
    from core.results.pgr import compute_pgr, fixed_baselines
    from core.results.scoring import score_predictions
    from core.run import experiment

    module = load_idea(idea)
    cfg = prepare_config(cfg, idea_defaults(module))
    say = log or (lambda m: print(m, flush=True))
    todo = missing_baselines(cfg)
    spans = _spans([(name, 1.0) for name in todo] + [("idea", 1.0)])
    if cfg.weak_model:
        say(f"seed {cfg.seed}: weak artifacts ({cfg.weak_model}) {'building' if WEAK_ARTIFACTS in todo else 'cached'}")
        weak, _, _ = ensure_weak_artifacts(
            cfg, _scaled(progress, spans.get(WEAK_ARTIFACTS, (0, 0)), "weak"), log
        )
    else:
        weak = None
    say(f"seed {cfg.seed}: ceiling ({cfg.strong_model}) {'building' if 'train_ceiling' in todo else 'cached'}")
    ceiling, _, _ = ensure_ceiling(cfg, _scaled(progress, spans.get("train_ceiling", (0, 0)), "ceiling"), log)

    say(f"seed {cfg.seed}: running idea {idea}")
    start = time.time()
    with experiment.reporting(_scaled(progress, spans["idea"], idea), log):
        out = module.run_experiment(cfg)
    elapsed = time.time() - start
    preds = _check_predictions(out, idea)
    try:
        test_eval = score_predictions(cfg.dataset, preds, split="test", ids=list(preds))
    except ValueError as exc:
        raise UserError(f"idea {idea!r}: predictions rejected: {exc}") from None

    baselines = fixed_baselines(cfg.dataset, cfg)
    transfer_acc = test_eval["accuracy"]
    pgr, reason = compute_pgr(transfer_acc, baselines)
    stats = {k: v for k, v in out.items() if k != "test_predictions"}
    key = result_key(cfg)
    weak_acc = weak.get("weak_acc") if weak else None
    result: dict[str, Any] = {
        **stats,
        "idea_name": idea,
        "weak_model": cfg.weak_model,
        "strong_model": cfg.strong_model,
        "weak_acc": weak_acc,
        "hard_weak_label_acc": weak.get("hard_label_acc") if weak else None,
        "strong_acc": ceiling.get("strong_acc"),
        "transfer_acc": transfer_acc,
        "pgr": pgr,
        "pgr_na_reason": reason,
        "fixed_weak_baseline": baselines.weak_acc,
        "fixed_strong_baseline": baselines.strong_acc,
        "fixed_baseline_seeds": {"weak": baselines.n_weak, "strong": baselines.n_strong},
        "fixed_baseline_keys": {"weak": baselines.weak_key, "strong": baselines.strong_key},
        "training_time": stats.get("training_time", elapsed),
        "wall_time": elapsed,
        "config": cfg.to_dict(),
        "detailed_eval": {
            "weak": {"final_eval": {"accuracy": weak_acc}},
            "strong": {"final_eval": test_eval},
            "ceiling": ceiling.get("detailed_eval", {}).get("ceiling", {"final_eval": {}}),
            "test": {"final_eval": test_eval},
        },
        "cached_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seed": cfg.seed,
        "hyperparam_config_key": key,
        "dataset_name": cfg.dataset,
        "w2s_source": SOURCE,
    }
    path = write_result(cfg.dataset, idea, key, cfg.seed, result)
    say(
        f"seed {cfg.seed}: transfer {transfer_acc:.4f}  weak {weak_acc}  ceiling {ceiling.get('strong_acc')}  "
        f"pgr {pgr if pgr is not None else 'n/a (' + str(reason) + ')'}  -> {path}"
    )
    return {**result, "path": str(path)}


class _ProgressFile:
    """Throttled writer of ``runs/<id>/progress.json`` that the UI and ``w2s run`` read."""

    def __init__(self, run_dir: Path | None):
        self.path = run_dir / "progress.json" if run_dir else None
        self.last = 0.0

    def __call__(self, frac: float, message: str) -> None:
        now = time.time()
        if self.path is None or (now - self.last < 0.5 and frac < 1.0):
            return
        self.last = now
        try:
            atomic_write_json(self.path, {"progress": round(frac, 4), "message": message}, indent=None)
        except OSError:
            pass


def _run_dir(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    job = os.environ.get("W2S_JOB_ID")
    return paths().runs / job if job else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.run.runner", description="Run one seed of an idea.")
    parser.add_argument("--idea", required=True)
    parser.add_argument("--config-json", required=True, help="RunConfig as JSON (RunConfig.to_json())")
    parser.add_argument("--run-dir", default=None, help="folder for progress.json/result.json")
    args = parser.parse_args(argv)
    run_dir = _run_dir(args.run_dir)
    if run_dir:
        run_dir.mkdir(parents=True, exist_ok=True)
    progress = _ProgressFile(run_dir)
    summary: dict[str, Any] = {"idea": args.idea, "ok": False}
    code = 1
    try:
        cfg = RunConfig.from_dict(json.loads(args.config_json))
        summary.update(dataset=cfg.dataset, seed=cfg.seed)
        result = run_seed(args.idea, cfg, progress=progress, log=lambda m: print(m, flush=True))
        progress(1.0, "done")
        summary.update(
            ok=True,
            path=result["path"],
            key=result["hyperparam_config_key"],
            transfer_acc=result["transfer_acc"],
            weak_acc=result["weak_acc"],
            strong_acc=result["strong_acc"],
            pgr=result["pgr"],
        )
        code = 0
    except UserError as exc:
        print(f"w2s: error: {exc}", file=sys.stderr, flush=True)
        summary["error"] = str(exc)
    except Exception as exc:  # the job's log keeps the traceback; the summary keeps one line
        traceback.print_exc()
        summary["error"] = f"{type(exc).__name__}: {exc}"
    if run_dir:
        atomic_write_json(run_dir / "result.json", summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
