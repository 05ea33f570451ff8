"""One seed of an idea as a trusted process: the idea runs sandboxed, the referee scores it.

``python -m core.app.seed_job --idea NAME --config-json JSON [--run-dir DIR]`` is what every idea
run executes (a service job, or ``w2s run --local``). It calls ``core.run.runner.run_seed`` with the
referee as its finaliser:

- isolated run (the sandbox): ``core.referee.service.final_score`` scores the predictions on the
  public part and the private holdout and writes the seed result (``w2s_source: "referee"``); the
  predictions are kept beside it as ``predictions_seed_<s>.json.gz`` (``core.results.cache``) so
  ``w2s verify`` can rescore it. The run id is the job id, or the run folder's name for a local run.
- unsandboxed run (``W2S_UNSAFE_NO_SANDBOX=1``): scored the same way but written with
  ``w2s_source: "unverified (not isolated)"``; the leaderboard shows it apart and never ranks it, and
  it never replaces a referee-scored seed.
- size-capped (smoke) run: not scored and not written; its predictions stay in the run folder.

What the run folder's ``result.json``, ``progress.json`` and the job log (``stdout.log``) say is
readable by agents, so they carry only the state and the referee's rounded public accuracy
(:func:`public_summary`), never the full-test or private accuracy or a PGR. The operator sees those
on the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from core.common.atomic import atomic_write_json
from core.common.config import RunConfig
from core.common.errors import UserError
from core.common.workspace import paths
from core.control.store import Store, default_store
from core.referee import service as referee
from core.results.cache import read_result, result_path, write_predictions, write_result
from core.results.leaderboard import REFEREE_SOURCE
from core.run import runner
from core.sandbox.base import UNVERIFIED_LABEL, Sandbox, SandboxUnavailable

NOT_SCORED = "not scored"
SMOKE_REASON = ("size-capped smoke run (train_size/test_size): not scored or ranked; its predictions "
                "stay in the run folder (a ranked run uses every row)")


def _key_and_path(result: dict[str, Any]) -> tuple[str, Path]:
    key = str(result["hyperparam_config_key"])
    return key, result_path(str(result["dataset_name"]), str(result["idea_name"]), key, int(result["seed"]))


def _unverified(sub: runner.Submission) -> dict[str, Any]:
    """Score an unsandboxed run for the operator's eyes; written apart from ranked results."""
    from core.results.cache import result_key

    cfg = sub.cfg
    scores = referee.rescore(cfg.dataset, sub.predictions)
    key = result_key(cfg)
    result: dict[str, Any] = {
        "idea_name": sub.idea,
        "weak_model": cfg.weak_model,
        "strong_model": cfg.strong_model,
        "transfer_acc": scores["private_acc"],
        **scores,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "hyperparam_config_key": key,
        "dataset_name": cfg.dataset,
        "run_id": sub.run_id,
        "cached_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "w2s_source": UNVERIFIED_LABEL,
    }
    if sub.judge_calls:
        result["judge_calls"] = dict(sub.judge_calls)
    existing = read_result(cfg.dataset, sub.idea, key, cfg.seed) or {}
    if existing.get("w2s_source") == REFEREE_SOURCE:
        return {**result, "scored": True, "path": None,
                "note": f"not cached: a referee-scored seed {cfg.seed} exists for this key"}
    path = write_result(cfg.dataset, sub.idea, key, cfg.seed, result)
    write_predictions(cfg.dataset, sub.idea, key, cfg.seed, sub.predictions)
    return {**result, "scored": True, "path": str(path)}


def referee_finaliser(store: Store | None = None) -> runner.Finaliser:
    """The trusted scorer ``run_seed`` hands predictions to (see the module docstring)."""

    def finalise(sub: runner.Submission) -> dict[str, Any]:
        cfg = sub.cfg
        base = {"idea_name": sub.idea, "dataset_name": cfg.dataset, "seed": cfg.seed, "run_id": sub.run_id,
                "wall_time": sub.wall_time, "judge_calls": sub.judge_calls}
        if cfg.train_size is not None or cfg.test_size is not None:
            return {**base, "scored": False, "w2s_source": NOT_SCORED, "note": SMOKE_REASON}
        if not sub.isolated:
            return {**base, **_unverified(sub)}
        result = referee.final_score(store or default_store(), sub.run_id, cfg.dataset, sub.predictions,
                                     idea=sub.idea, cfg=cfg, judge_calls=sub.judge_calls)
        key, path = _key_and_path(result)
        write_predictions(cfg.dataset, sub.idea, key, cfg.seed, sub.predictions)
        return {**base, **result, "scored": True, "path": str(path)}

    return finalise


def run_seed(
    idea: str,
    cfg: RunConfig,
    progress: runner.ProgressFn | None = None,
    log: runner.LogFn | None = None,
    *,
    run_id: str | None = None,
    run_dir: Path | None = None,
    sandbox: Sandbox | None = None,
    store: Store | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """One seed end to end, scored by the referee; the full result (the operator's view)."""
    run_id = run_id or f"direct-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    return runner.run_seed(idea, cfg, referee_finaliser(store), run_id=run_id, progress=progress, log=log,
                           sandbox=sandbox, run_dir=run_dir, timeout_s=timeout_s)


def check_outcome(idea: str, cfg: RunConfig, result: Any) -> None:
    """A seed succeeded only if the referee scored predictions (or it is a smoke run, never scored).

    Whatever path led here (an idea that ended with ``os._exit(0)``, a scorer that returned nothing),
    a seed without a scored result is a failure with one line, never "ok" with no numbers."""
    smoke = cfg.train_size is not None or cfg.test_size is not None
    if not isinstance(result, dict):
        raise UserError(f"idea {idea!r}: seed {cfg.seed} produced no result")
    if result.get("scored"):
        if not isinstance(result.get("public_acc"), int | float) or result.get("w2s_source") is None:
            raise UserError(f"idea {idea!r}: seed {cfg.seed} has no scored accuracy; nothing is counted")
    elif not smoke:
        raise UserError(f"idea {idea!r}: seed {cfg.seed} was not scored ({result.get('note') or 'no predictions'})")


def public_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What ``result.json`` and the job log may say: state and the rounded public accuracy only."""
    if not result.get("scored"):
        return {"state": NOT_SCORED, "note": result.get("note")}
    out: dict[str, Any] = {
        "state": "scored" if result.get("w2s_source") == REFEREE_SOURCE else "unverified",
        "source": result.get("w2s_source"),
        "public_acc": referee.quantize(result.get("public_acc")),
        "accuracy_step": referee.ACCURACY_STEP,
        "key": result.get("hyperparam_config_key"),
        "path": result.get("path"),
    }
    if result.get("note"):
        out["note"] = result["note"]
    return out


def summary_line(seed: int, summary: dict[str, Any]) -> str:
    if summary["state"] == NOT_SCORED:
        return f"seed {seed}: done, {NOT_SCORED} ({summary.get('note')})"
    acc = summary.get("public_acc")
    shown = "n/a" if acc is None else f"{acc:.2f}"
    how = "scored by the referee" if summary["state"] == "scored" else f"{UNVERIFIED_LABEL}, never ranked"
    return (f"seed {seed}: {how}: public accuracy {shown} (rounded to {referee.ACCURACY_STEP}); "
            "the leaderboard has the rest")


LOG_PROGRESS_EVERY_S = 10.0  # a progress line in the job's log at most this often (training is quiet)


class _ProgressFile:
    """Throttled writer of ``runs/<id>/progress.json`` that the UI and ``w2s run`` read; every
    ``LOG_PROGRESS_EVERY_S`` it also puts the message (``transfer: train epoch 1/1 loss 0.6021``) in
    the job's log, which otherwise says nothing between loading a model and the end of an epoch."""

    def __init__(self, run_dir: Path | None, log: Callable[[str], None] | None = None):
        self.path = run_dir / "progress.json" if run_dir else None
        self.last = 0.0
        self.log = log
        self.logged = (time.time(), "")

    def __call__(self, frac: float, message: str) -> None:
        now = time.time()
        if self.log is not None and message != self.logged[1] and now - self.logged[0] >= LOG_PROGRESS_EVERY_S:
            self.logged = (now, message)
            self.log(f"[progress] {frac * 100:.0f}% {message}")
        if self.path is None or (now - self.last < 0.5 and frac < 1.0):
            return
        self.last = now
        try:
            atomic_write_json(self.path, {"progress": round(frac, 4), "message": message[:200]}, indent=None)
        except OSError:
            pass


def _run_dir(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    job = os.environ.get("W2S_JOB_ID")
    return paths().runs / job if job else None


def run_id_for(run_dir: Path | None) -> str | None:
    """A job's run id is its job id; a local run's is its run folder's name."""
    return os.environ.get("W2S_JOB_ID") or (run_dir.name if run_dir else None)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_sandboxed, which kills the sandbox's tree


def main(argv: list[str] | None = None, log: Callable[[str], None] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.app.seed_job", description="Run one seed of an idea.",
                                     allow_abbrev=False)
    parser.add_argument("--idea", required=True)
    parser.add_argument("--config-json", required=True, help="RunConfig as JSON (RunConfig.to_json())")
    parser.add_argument("--run-dir", default=None, help="folder for progress.json/result.json")
    args = parser.parse_args(argv)
    say = log or (lambda m: print(m, flush=True))
    signal.signal(signal.SIGTERM, _terminate)
    run_dir = _run_dir(args.run_dir)
    if run_dir:
        run_dir.mkdir(parents=True, exist_ok=True)
    progress = _ProgressFile(run_dir, say)
    summary: dict[str, Any] = {"idea": args.idea, "ok": False, "state": "failed"}
    code = 1
    try:
        cfg = RunConfig.from_dict(json.loads(args.config_json))
        summary.update(dataset=cfg.dataset, seed=cfg.seed)
        result = run_seed(args.idea, cfg, progress=progress, log=say, run_id=run_id_for(run_dir), run_dir=run_dir)
        check_outcome(args.idea, cfg, result)
        progress(1.0, "done")
        summary.update(ok=True, **public_summary(result))
        say(summary_line(cfg.seed, summary))
        code = 0
    except (UserError, SandboxUnavailable) as exc:
        print(f"w2s: error: {exc}", file=sys.stderr, flush=True)
        summary["error"] = str(exc)
        if getattr(exc, "transient", False):  # e.g. no pod capacity for a while: the scheduler retries later
            summary["transient"] = True
    except referee.RefereeError as exc:
        print(f"w2s: error: referee: {exc.message}", file=sys.stderr, flush=True)
        summary["error"] = f"referee: {exc.message}"
    except SystemExit:  # cancelled: the sandbox is already stopped; say so and go
        summary.update(state="cancelled", error="stopped by a signal")
        if run_dir:
            atomic_write_json(run_dir / "result.json", summary)
        raise
    except Exception as exc:  # the job's log keeps the traceback; the summary keeps one line
        traceback.print_exc()
        summary["error"] = f"{type(exc).__name__}: {exc}"
    if run_dir:
        atomic_write_json(run_dir / "result.json", summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
