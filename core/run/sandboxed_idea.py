"""The idea's side of a run, executed inside the sandbox: ``python -m core.run.sandboxed_idea``.

Why a separate entry point: idea code is untrusted, so it never runs in the trusted runner's
process. Here it sees only what the runner mounted (``core.run.runner.sandbox_spec``): the staged
inputs (``$W2S_IDEA_INPUTS``, read-only: label-free rows, the weak P(class 1) of this seed, the
config), the idea's folder and the library (read-only) and one fresh writable output folder. There
is no label to read and no token or secret in the environment.

It loads the idea, calls ``run_experiment(cfg)`` (the SDK in ``core.run.experiment`` reads the
staged inputs), streams progress and log lines to ``events.jsonl`` (the runner relays them) and
writes ``predictions.json`` ``{id: P(class 1)}``. Whatever else the idea returns goes to
``idea_output.json``: the idea's own claims, kept for the researcher and never ranked. A failure
writes ``error.json`` (one line) and a traceback on stderr. No score is computed here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from core.common.atomic import atomic_write_json
from core.common.config import RunConfig
from core.common.errors import UserError
from core.run import experiment
from core.run.ideas import load_idea_from

EVENTS_FILE = "events.jsonl"
PREDICTIONS_FILE = "predictions.json"
ERROR_FILE = "error.json"
NOTES_FILE = "idea_output.json"
MAX_MESSAGE = 2000  # characters of one progress or log line
MAX_LOG_LINES = 20_000  # a runaway loop cannot fill the disk through the relay
PROGRESS_EVERY_S = 0.25


def check_predictions(out: Any, idea: str) -> dict[str, float]:
    """``out["test_predictions"]`` as ``{id: P(class 1)}``; UserError naming the first bad entry.

    Used on both sides: here on what ``run_experiment`` returned, and by the trusted runner on the
    file this process wrote (which the idea could have rewritten)."""
    preds = out.get("test_predictions") if isinstance(out, Mapping) else None
    if not isinstance(preds, Mapping):
        raise UserError(f"idea {idea!r}: run_experiment must return a dict with 'test_predictions' {{id: prob}}")
    if not preds:
        raise UserError(f"idea {idea!r}: test_predictions is empty")
    clean: dict[str, float] = {}
    for rid, value in preds.items():
        if not isinstance(rid, str):
            raise UserError(f"idea {idea!r}: test_predictions: id {str(rid)[:40]!r} is not a string")
        try:
            p = float(value)
        except (TypeError, ValueError):
            raise UserError(f"idea {idea!r}: test_predictions[{rid[:40]!r}]: not a number") from None
        if not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise UserError(f"idea {idea!r}: test_predictions[{rid[:40]!r}]: {p} is not a probability in [0, 1]")
        clean[rid] = p
    return clean


class _Events:
    """Progress and log lines for the runner, one JSON object per line."""

    def __init__(self, path: Path):
        self.fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        self.last = 0.0
        self.lines = 0

    def _write(self, doc: dict[str, Any]) -> None:
        self.fh.write(json.dumps(doc) + "\n")
        self.fh.flush()

    def progress(self, frac: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and frac < 1.0:
            return
        self.last = now
        self._write({"progress": float(frac), "message": str(message)[:MAX_MESSAGE]})

    def log(self, message: str) -> None:
        self.lines += 1
        if self.lines <= MAX_LOG_LINES:
            self._write({"log": str(message)[:MAX_MESSAGE]})


def _notes(out: Mapping[str, Any]) -> dict[str, Any]:
    """What the idea returned besides its predictions, as JSON (str() for anything else)."""
    rest = {k: v for k, v in out.items() if k != "test_predictions"}
    return json.loads(json.dumps(rest, default=str))


def run(idea: str, idea_dir: Path, out_dir: Path) -> int:
    inputs = experiment.staged_inputs()
    if inputs is None:
        raise UserError(f"${experiment.INPUTS_ENV} is not set: this entry point runs inside the runner's sandbox")
    cfg = RunConfig.from_dict(json.loads((inputs / experiment.CONFIG_FILE).read_text(encoding="utf-8")))
    events = _Events(out_dir / EVENTS_FILE)
    module = load_idea_from(idea, idea_dir)
    with experiment.reporting(events.progress, events.log):
        out = module.run_experiment(cfg)
    preds = check_predictions(out, idea)
    atomic_write_json(out_dir / PREDICTIONS_FILE, preds, indent=None)
    try:
        atomic_write_json(out_dir / NOTES_FILE, _notes(out))
    except (TypeError, ValueError, OSError):
        pass  # the idea's notes are a courtesy; the predictions are what counts
    events.progress(1.0, "predictions written")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.run.sandboxed_idea", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--idea", required=True)
    parser.add_argument("--idea-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        return run(args.idea, args.idea_dir, args.out)
    except UserError as exc:
        message = str(exc)
        print(f"w2s: error: {message}", file=sys.stderr, flush=True)
        code = 2
    except Exception as exc:  # the job log keeps the traceback; error.json keeps one line
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        code = 1
    try:
        atomic_write_json(args.out / ERROR_FILE, {"error": message[:MAX_MESSAGE]})
    except OSError:
        pass
    return code


if __name__ == "__main__":
    sys.exit(main())
