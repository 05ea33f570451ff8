"""Run one seed of an idea: the trusted side builds and stages, the idea runs in a sandbox.

``run_seed`` (trusted, in the job's process):

1. reads the idea's ``DEFAULTS`` from its source (idea code never runs in this process) and
   resolves the config the seed runs with;
2. builds the weak/ceiling baselines it needs through ``core.run.baselines`` (cached, reused);
3. stages the idea's inputs in a fresh temporary folder: the label-free ``train_unlabel``/``test``
   rows cut to train_size/test_size, the label-free ``train_label`` rows (the weak judge's training
   ids), the weak model's P(class 1) for this seed as ids + numbers (a stripped copy, not the cache
   file: no accuracies, no label distributions) and the config;
4. runs ``python -m core.run.sandboxed_idea`` inside the sandbox (``core.sandbox``): mounts are the
   staged inputs, the library code (``<repo>/core``, ``<repo>/ideas``; never the repo root, which
   holds ``labeled_data/`` and ``.w2s/`` in the demo), the idea's folder (all read-only) and one
   fresh output folder (read-write); the environment carries no token and no secret. Progress and
   log lines are relayed; on timeout, cancel or any error the sandbox's process tree is killed.
   The weak-judge channel (``core.run.judge_service``) is answered from the same poll loop: requests
   in ``<out>/judge/``, replies in a folder mounted read-only (not for the runpod sandbox, whose pod
   shares no folder with this machine: the idea's client fails with one line there);
5. reads the predictions back (a regular file, size-capped, every value a probability), checks they
   name only staged test rows, and hands them to ``finalise``: the caller's scorer. The idea's own
   numbers are never used.

Scoring lives above this layer: ``core.app.seed_job`` passes the referee (``final_score``), which
writes the seed result with ``w2s_source: "referee"``, or marks it unverified when the sandbox did not
isolate (``W2S_UNSAFE_NO_SANDBOX=1``). ``python -m core.app.seed_job`` is the job entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import core
from core.common.config import RunConfig
from core.common.errors import UserError
from core.data.datasets import LABEL_REVEALING
from core.results.cache import WEAK_ARTIFACTS
from core.run import experiment
from core.run.baselines import ensure_ceiling, ensure_weak_artifacts, missing_baselines
from core.run.ideas import IdeaInfo, check_idea, packaged_ideas_dir
from core.run.judge_client import OFF_ENV, REPLIES_ENV, REQUESTS_DIR, REQUESTS_ENV, RUNPOD_OFF
from core.run.judge_service import JudgeChannel, JudgeService, label_free_train_label
from core.run.resolve import prepare_config
from core.run.sandboxed_idea import ERROR_FILE, EVENTS_FILE, MAX_MESSAGE, PREDICTIONS_FILE, check_predictions
from core.sandbox.base import Mount, Sandbox, SandboxSpec, kill_tree
from core.sandbox.select import default_sandbox

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]
OUT_DIR = "idea_out"  # the sandbox's one writable folder, inside the run folder
REPLIES_DIR = "judge_replies"  # the weak judge's replies (read-only inside), kept in the run folder
# sandboxes on another machine: no folder is shared, so the judge channel cannot work there
REMOTE_SANDBOXES: dict[str, str] = {"runpod": RUNPOD_OFF}
MAX_PREDICTIONS_BYTES = 256 * 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024  # relayed per poll
# Passed through from the runner's environment when set: thread counts and the GPU pinning only.
PASSED_ENV = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES", "TOKENIZERS_PARALLELISM",
)


class IdeaFailed(UserError):
    """The idea's sandboxed process failed, timed out or wrote unusable predictions."""


@dataclass(frozen=True)
class Submission:
    """One seed's predictions, as the trusted side hands them to the scorer."""

    run_id: str
    idea: str
    cfg: RunConfig
    predictions: dict[str, float]
    test_ids: tuple[str, ...]  # the staged test rows (all of test unless test_size caps it)
    isolated: bool  # False in the unsafe debugging mode: the result is unverified and never ranked
    sandbox: str
    wall_time: float
    # what the idea asked of the weak-judge service (judges trained, texts predicted, requests,
    # refused); None where the sandbox had no judge channel
    judge_calls: dict[str, int] | None = None


Finaliser = Callable[[Submission], dict[str, Any]]


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


# --------------------------------------------------------------------------------------------
# staging


def _without_labels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in LABEL_REVEALING} for r in rows]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def stage_inputs(cfg: RunConfig, folder: Path, weak: dict[str, Any] | None) -> experiment.LabelFreeData:
    """Write what the idea may read into ``folder``; returns the staged rows (their ids name what the
    idea may predict, and what the weak judge may be asked about).

    Rows come from the label-free view (``cfg.data_dir``), cut to the config's sizes, label fields
    dropped again; weak labels are this seed's ids + P(class 1) only, taken from ``weak`` (the weak
    artifacts ``core.run.baselines`` built or reused for this seed), never the file itself.
    """
    data = experiment.read_label_free(experiment.resolve_data_dir(cfg.data_dir), cfg)
    _write_jsonl(folder / experiment.TRAIN_FILE, _without_labels(data.train))
    _write_jsonl(folder / experiment.TEST_FILE, _without_labels(data.test))
    try:  # the weak judge's training rows; a workspace with cached baselines only may lack them
        _write_jsonl(folder / experiment.TRAIN_LABEL_FILE, _without_labels(label_free_train_label(cfg)))
    except UserError:
        pass
    if weak is not None:
        p1 = experiment.soft_labels_of(cfg, weak, data.train_ids)
        weak = {"dataset": cfg.dataset, "seed": cfg.seed, "weak_model": cfg.weak_model,
                "ids": data.train_ids, "p1": [float(p) for p in p1]}
        (folder / experiment.WEAK_FILE).write_text(json.dumps(weak), encoding="utf-8")
    (folder / experiment.CONFIG_FILE).write_text(cfg.to_json(), encoding="utf-8")
    return data


# --------------------------------------------------------------------------------------------
# the sandbox


def repo_root() -> Path:
    return Path(core.__file__).resolve().parent.parent


def _hf_hub_cache() -> Path | None:
    """The host's Hugging Face model cache (read-only inside), if there is one: models, never datasets."""
    value = os.environ.get("HF_HUB_CACHE")
    if value:
        hub = Path(value)
    else:
        home = os.environ.get("HF_HOME")
        hub = Path(home) / "hub" if home else Path.home() / ".cache" / "huggingface" / "hub"
    return hub if hub.is_dir() else None


def idea_folder(info: IdeaInfo) -> Path:
    """The idea's real folder; refused when it is (or sits behind) a link out of the ideas folders,
    since a bind mount follows links on the host."""
    real = info.path.resolve()
    roots = [packaged_ideas_dir().resolve(), (info.path.parent).resolve()]
    if info.path.is_symlink() or not any(real.parent == r for r in roots) or not real.is_dir():
        raise UserError(f"idea {info.name!r}: {info.path} must be a plain folder, not a link")
    return real


def sandbox_spec(
    info: IdeaInfo, inputs: Path, out: Path, empty: Path, replies: Path | None = None, judge_off: str | None = None,
) -> SandboxSpec:
    """What the idea's process gets: the mounts and environment described in the module docstring.
    ``replies``: the weak judge's reply folder (read-only inside); ``judge_off``: why there is none."""
    repo = repo_root()
    folder = idea_folder(info)
    packaged = packaged_ideas_dir().resolve()
    mounts = [Mount(inputs), Mount(out, writable=True), Mount(repo / "core"), Mount(packaged)]
    if not folder.is_relative_to(packaged):
        mounts.append(Mount(folder))
    demo = repo / "core" / "data" / "demo"
    if demo.is_dir():  # the demo generator computes labels: hidden behind an empty folder
        mounts.append(Mount(empty, target=demo))
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(repo),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        experiment.INPUTS_ENV: str(inputs),
    }
    if replies is not None:
        mounts.append(Mount(replies))
        env[REPLIES_ENV] = str(replies)
        env[REQUESTS_ENV] = str(out / REQUESTS_DIR)
    elif judge_off:
        env[OFF_ENV] = judge_off
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    hub = _hf_hub_cache()
    if hub is not None:
        mounts.append(Mount(hub))
        env["HF_HUB_CACHE"] = str(hub)
    command = [sys.executable, "-m", "core.run.sandboxed_idea", "--idea", info.name, "--idea-dir", str(folder),
               "--out", str(out)]
    return SandboxSpec(command, mounts, env, cwd=Path("/tmp"), out=out)


def read_untrusted(path: Path, limit: int) -> bytes | None:
    """A file the sandbox wrote: None unless it is a regular file (no link, no fifo) within ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)[:limit]
    finally:
        os.close(fd)


class _Relay:
    """Tails the sandbox's ``events.jsonl`` (opened safely, read incrementally) into the callbacks."""

    def __init__(self, path: Path, progress: ProgressFn | None, log: LogFn):
        self.path, self.progress, self.log = path, progress, log
        self.fd: int | None = None
        self.buf = b""

    def pump(self) -> bool:
        """Relay what arrived since the last call (at most ``MAX_EVENT_BYTES``); True if anything did."""
        if self.fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                return False
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return False
            self.fd = fd
        chunk = os.read(self.fd, MAX_EVENT_BYTES)
        if not chunk:
            return False
        *lines, self.buf = (self.buf + chunk).split(b"\n")
        self.buf = self.buf[-MAX_MESSAGE * 4:]
        for line in lines:
            self._event(line)
        return True

    def _event(self, line: bytes) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        if "log" in doc:
            self.log(str(doc["log"])[:MAX_MESSAGE])
        elif "progress" in doc and self.progress is not None:
            try:
                frac = float(doc["progress"])
            except (TypeError, ValueError):
                return
            self.progress(max(0.0, min(1.0, frac)) if frac == frac else 0.0, str(doc.get("message", ""))[:MAX_MESSAGE])

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def stop_tree(proc: subprocess.Popen[bytes], grace: float = 0.0, sandbox: Sandbox | None = None) -> None:
    """``kill_tree`` (or the sandbox's own ``terminate``, which also removes what lives outside the
    process tree, e.g. a container), then wait until every process the sandbox had started is gone.

    Killing the launcher ends a pid namespace, but the kernel reaps its processes asynchronously, and
    in the unsafe mode a child may have left the process group: the tree seen before the kill is
    waited for, and whatever still runs is killed."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    except psutil.Error:
        tree = []
    if sandbox is not None:
        sandbox.terminate(proc, grace)
    else:
        kill_tree(proc, grace)
    _, alive = psutil.wait_procs(tree, timeout=5)
    for survivor in alive:
        try:
            survivor.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def run_sandboxed(
    sandbox: Sandbox, spec: SandboxSpec, out: Path, progress: ProgressFn | None, log: LogFn,
    timeout_s: float | None = None, service: JudgeChannel | None = None,
) -> int:
    """Start the idea's process, relay its events, wait; kill its whole tree on timeout, cancel
    (SIGTERM arrives as an exception) or any error. Returns its exit status. ``service`` (the weak
    judge's channel) is pumped in the same loop, more often, since an idea waits on each reply."""
    relay = _Relay(out / EVENTS_FILE, progress, log)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    poll = 0.25 if service is None else 0.05
    proc = sandbox.popen(spec)  # stdout/stderr: the runner's own (the job log)
    try:
        while True:
            try:
                proc.wait(timeout=poll)
                break
            except subprocess.TimeoutExpired:
                pass
            relay.pump()
            if service is not None:
                service.pump()
            if deadline is not None and time.monotonic() > deadline:
                stop_tree(proc, sandbox=sandbox)
                raise IdeaFailed(f"the idea ran past its time limit ({timeout_s:g} s) and was stopped")
        for _ in range(64):  # the rest of what it wrote before it exited (bounded)
            if not relay.pump():
                break
    finally:
        stop_tree(proc, grace=2.0, sandbox=sandbox)
        relay.close()
    return int(proc.returncode)


def _outcome(idea: str, out: Path, code: int) -> dict[str, float]:
    """The predictions the sandbox left, validated; IdeaFailed with its one-line reason otherwise."""
    if code != 0:
        raw = read_untrusted(out / ERROR_FILE, 64 * 1024)
        message = ""
        if raw:
            try:
                message = str(json.loads(raw).get("error", ""))[:MAX_MESSAGE]
            except (ValueError, AttributeError):
                message = ""
        if code < 0:
            raise IdeaFailed(f"idea {idea!r} was killed by signal {-code}" + (f": {message}" if message else ""))
        raise IdeaFailed(message or f"idea {idea!r} exited with status {code}")
    raw = read_untrusted(out / PREDICTIONS_FILE, MAX_PREDICTIONS_BYTES)
    if raw is None:
        raise IdeaFailed(f"idea {idea!r}: no predictions file (a regular {PREDICTIONS_FILE} under "
                         f"{MAX_PREDICTIONS_BYTES // 2**20} MiB)")
    try:
        preds = json.loads(raw)
    except ValueError:
        raise IdeaFailed(f"idea {idea!r}: {PREDICTIONS_FILE} is not JSON") from None
    return check_predictions({"test_predictions": preds}, idea)


def check_coverage(idea: str, preds: dict[str, float], test_ids: tuple[str, ...], capped: bool) -> None:
    """Predictions name only staged test rows, and every one of them unless the run is size-capped."""
    known = set(test_ids)
    unknown = [rid for rid in preds if rid not in known]
    if unknown:
        raise IdeaFailed(f"idea {idea!r}: predictions rejected: {len(unknown)} ids are not test rows "
                         f"(first: {unknown[0][:40]!r}); nothing was scored")
    missing = len(known) - len(preds)
    if missing and not capped:
        raise IdeaFailed(
            f"idea {idea!r}: partial submission refused: {missing} of {len(known)} test rows have no "
            "prediction; a run must predict every test row (nothing was scored or ranked)"
        )


def run_seed(
    idea: str,
    cfg: RunConfig,
    finalise: Finaliser,
    *,
    run_id: str,
    progress: ProgressFn | None = None,
    log: LogFn | None = None,
    sandbox: Sandbox | None = None,
    run_dir: Path | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Baselines (if missing) -> staged inputs -> the idea in the sandbox -> ``finalise``.

    Returns what ``finalise`` returns. ``run_dir`` keeps the sandbox's output folder
    (``idea_out/``: events, predictions, the idea's own notes); without it a temporary one is used.
    """
    info, defaults = check_idea(idea)
    cfg = prepare_config(cfg, defaults)
    say = log or (lambda m: print(m, flush=True))
    box = sandbox or default_sandbox()
    todo = missing_baselines(cfg)
    spans = _spans([(name, 1.0) for name in todo] + [("idea", 1.0)])
    if cfg.weak_model:
        say(f"seed {cfg.seed}: weak artifacts ({cfg.weak_model}) {'building' if WEAK_ARTIFACTS in todo else 'cached'}")
        weak, _, _ = ensure_weak_artifacts(cfg, _scaled(progress, spans.get(WEAK_ARTIFACTS, (0, 0)), "weak"), None)
    else:
        weak = None
    say(f"seed {cfg.seed}: ceiling ({cfg.strong_model}) {'building' if 'train_ceiling' in todo else 'cached'}")
    ensure_ceiling(cfg, _scaled(progress, spans.get("train_ceiling", (0, 0)), "ceiling"), None)

    temp = Path(tempfile.mkdtemp(prefix="w2s-seed-"))
    channel: JudgeChannel | None = None
    try:
        inputs, empty = temp / "inputs", temp / "empty"
        inputs.mkdir()
        empty.mkdir()
        out = (run_dir / OUT_DIR) if run_dir else temp / "out"
        if out.exists():
            shutil.rmtree(out)  # a retried job starts from a fresh output folder
        out.mkdir(parents=True)
        staged = stage_inputs(cfg, inputs, weak)
        test_ids = tuple(staged.test_ids)
        replies = None
        if box.name not in REMOTE_SANDBOXES:
            replies = (run_dir / REPLIES_DIR) if run_dir else temp / REPLIES_DIR
            if replies.exists():
                shutil.rmtree(replies)
            replies.mkdir(parents=True)
            replies.chmod(0o755)  # the Docker sandbox may run the idea as another uid
            (out / REQUESTS_DIR).mkdir()
            channel = JudgeChannel(JudgeService.for_run(cfg, staged.train_ids + staged.test_ids, say),
                                   out / REQUESTS_DIR, replies)
        spec = sandbox_spec(info, inputs, out, empty, replies, REMOTE_SANDBOXES.get(box.name))
        isolated = "isolated" if box.isolated else "NOT isolated: results are unverified and never ranked"
        say(f"seed {cfg.seed}: running idea {idea} in the sandbox ({box.name}, {isolated})")
        start = time.time()
        code = run_sandboxed(box, spec, out, _scaled(progress, spans["idea"], idea), say, timeout_s, channel)
        elapsed = time.time() - start
        preds = _outcome(idea, out, code)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    check_coverage(idea, preds, test_ids, capped=cfg.test_size is not None)
    say(f"seed {cfg.seed}: {len(preds)} predictions from the idea; handing them to the referee")
    calls = channel.service.counts.as_dict() if channel is not None else None
    if calls and calls["requests"]:
        say(f"seed {cfg.seed}: weak judge: {calls['judges']} judges trained, {calls['texts']} texts predicted "
            f"({calls['requests']} requests, {calls['refused']} refused)")
    return finalise(Submission(run_id, idea, cfg, preds, test_ids, box.isolated, box.name, elapsed, calls))
