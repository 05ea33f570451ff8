"""Run several seeds of an idea, each in its own process, so one failing seed never stops the rest.

Locally: one seed after another on CPU; in parallel across GPUs with at most one seed per GPU
(``CUDA_VISIBLE_DEVICES`` pins each child). Each seed gets a run folder ``runs/<id>/`` laid out like
a job's (command.json, stdout.log, progress.json, result.json, exit_status) so a failure can be
reported with its log path. Each child is ``python -m core.app.seed_job``: the idea runs in the
sandbox and the referee scores it (a local run's run id is its folder's name). When the control
service runs, seeds are submitted as ``idea_run`` jobs instead and followed through
``core.control.jobs``. Idea code never runs in this process: the idea is checked from its source.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_json, atomic_write_text
from core.common.config import RunConfig
from core.common.job_types import TERMINAL_STATES
from core.common.workspace import WORKSPACE_ENV, paths
from core.control.jobs import get_job
from core.control.submit import resolve_run_config, runner_command, submit_idea_runs
from core.run.ideas import check_idea
from core.run.resolve import prepare_config


@dataclass
class SeedRun:
    """State of one seed as ``w2s run`` follows it."""

    seed: int
    run_dir: Path
    state: str = "queued"  # queued | running | succeeded | failed | cancelled
    progress: float = 0.0
    message: str = ""
    gpu: str | None = None
    job_id: str | None = None
    exit_code: int | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.run_dir / "stdout.log"

    @property
    def error(self) -> str:
        """The child's one-line reason, else the last line of its log."""
        if self.result.get("error"):
            return str(self.result["error"])
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        last = lines[-1] if lines else ""
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by signal {-self.exit_code}" + (f" (last log line: {last})" if last else "")
        return last


Event = Callable[[SeedRun], None]


def run_config(idea: str, cfg: RunConfig, *, as_jobs: bool, cuda: bool) -> RunConfig:
    """The configuration ``w2s run`` shows and runs with. Jobs record what every front end resolves
    (``resolve_run_config``); a local run also applies the idea's ``DEFAULTS``. The idea is checked
    from its source either way (never imported here), so a broken ``run.py`` is reported before
    anything starts."""
    _, defaults = check_idea(idea)
    if as_jobs:
        return resolve_run_config(cfg, cuda=cuda)
    return prepare_config(cfg, defaults, cuda=cuda)


def _new_run_dir(idea: str, cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return paths().runs / f"local-{stamp}-{secrets.token_hex(3)}-{cfg.dataset}-{idea}-s{cfg.seed}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _repo_root() -> Path:
    import core

    return Path(core.__file__).resolve().parent.parent


def _launch(idea: str, cfg: RunConfig, run: SeedRun, executor: str = "local") -> subprocess.Popen:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    cmd = runner_command(idea, cfg, run.run_dir)
    atomic_write_json(run.run_dir / "command.json", {"command": cmd, "cwd": str(_repo_root()), "gpu": run.gpu})
    env = dict(os.environ)
    for name in ("W2S_JOB_ID", "W2S_RUN_TOKEN"):  # a local run is its own run, named by its folder
        env.pop(name, None)
    env[WORKSPACE_ENV] = str(paths().root)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_repo_root()), env.get("PYTHONPATH", "")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if run.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = run.gpu
    if executor == "docker":  # the seed's trusted side here, its idea in a container
        env["W2S_SANDBOX"] = "docker"
    if executor == "runpod":  # the seed's trusted side here, its idea on a pod (cost.json in its run folder)
        env.update(W2S_SANDBOX="runpod", W2S_RUN_DIR=str(run.run_dir))
    log = open(run.log_path, "ab")  # noqa: SIM115 - handed to the child, closed after it exits
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(_repo_root()))
    finally:
        log.close()


def run_local(
    idea: str, cfg: RunConfig, seeds: Sequence[int], gpus: Sequence[str] | None = None,
    on_event: Event | None = None, poll_s: float = 0.5, executor: str = "local",
) -> list[SeedRun]:
    """Run each seed as ``python -m core.app.seed_job``; one slot per GPU, or a single slot on CPU.
    ``executor="docker"``: each seed's idea runs in a Docker container instead of the local sandbox."""
    slots: list[str | None] = list(gpus) if gpus else [None]
    runs = [SeedRun(s, _new_run_dir(idea, cfg.replace(seed=s))) for s in seeds]
    pending = list(runs)
    active: dict[int, tuple[SeedRun, subprocess.Popen]] = {}
    notify = on_event or (lambda r: None)
    while pending or active:
        for slot_index, slot in enumerate(slots):
            if slot_index in active or not pending:
                continue
            run = pending.pop(0)
            run.gpu, run.state = slot, "running"
            active[slot_index] = (run, _launch(idea, cfg.replace(seed=run.seed), run, executor))
            notify(run)
        time.sleep(poll_s)
        for slot_index, (run, proc) in list(active.items()):
            prog = _read_json(run.run_dir / "progress.json")
            if prog and (prog.get("progress"), prog.get("message")) != (run.progress, run.message):
                run.progress = float(prog.get("progress") or 0.0)
                run.message = str(prog.get("message") or "")
                notify(run)
            code = proc.poll()
            if code is None:
                continue
            del active[slot_index]
            run.exit_code = code
            run.result = _read_json(run.run_dir / "result.json")
            run.state = "succeeded" if code == 0 else "failed"
            atomic_write_text(run.run_dir / "exit_status", f"{code}\n")
            notify(run)
    return runs


def run_as_jobs(
    idea: str, cfg: RunConfig, seeds: Sequence[int], gpus: int | None = None, on_event: Event | None = None,
    wait: bool = True, poll_s: float = 1.0, source: str = "cli", executor: str | None = None,
) -> list[SeedRun]:
    """Submit one ``idea_run`` job per seed to the control service and (optionally) follow them."""
    notify = on_event or (lambda r: None)
    runs: list[SeedRun] = []
    for job in submit_idea_runs(idea, cfg, seeds, source=source, executor=executor, gpus=gpus):
        seed = int(job["meta"]["seed"])
        run = SeedRun(seed, Path(job.get("run_dir") or paths().runs / job["id"]), job_id=job["id"])
        run.state = job.get("state", "queued")
        runs.append(run)
        notify(run)
    while wait and any(r.state not in TERMINAL_STATES for r in runs):
        time.sleep(poll_s)
        for run in runs:
            if run.state in TERMINAL_STATES:
                continue
            job = get_job(str(run.job_id)) or {}
            state = job.get("state", run.state)
            prog = job.get("progress")
            changed = state != run.state or (prog is not None and prog != run.progress)
            run.state = state
            run.progress = float(prog) if prog is not None else run.progress
            if state in TERMINAL_STATES:
                run.exit_code = job.get("exit_code")
                run.result = _read_json(run.run_dir / "result.json")
            if changed:
                notify(run)
    return runs
