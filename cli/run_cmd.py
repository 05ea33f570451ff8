"""``w2s run --idea NAME --seeds 42,43,44 [RunConfig flags] [--idea-param VALUE ...]``.

Builds the missing baselines, runs each seed in its own process (one after another on CPU, one per
GPU in parallel) with the idea's code in the sandbox, has the referee score and cache every seed and
prints the idea's leaderboard rows (the operator's view; each seed's own result.json holds only its
state and rounded public accuracy). With a control service running, the seeds are submitted as jobs
instead (``--local`` runs them here anyway).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.common.config import (
    ConfigError,
    RunConfig,
    add_run_config_arguments,
    run_config_from_args,
    validate_run_config,
)
from core.common.errors import UserError

OWN_FLAGS: list[str] = []  # w2s run's own flags (besides RunConfig's), for "did you mean"


class _ResolvedHelp(argparse.Action):
    """``-h``: the help with the defaults a run really trains with on the given (or default) dataset,
    e.g. the demo pair at 1 epoch, lr 0.001, batch 8 on demo data, beside RunConfig's own defaults.
    Resolving loads the model registry (seconds), so only asking for help pays for it."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        try:
            from core.app.run_checks import resolved_defaults

            data_dir = getattr(namespace, "rc_data_dir", None) or RunConfig().data_dir
            resolved = resolved_defaults(data_dir)
        except Exception:  # noqa: BLE001 - help must print even when the registry cannot load
            resolved = {}
        base = RunConfig()
        for action in parser._actions:
            name = action.dest.removeprefix("rc_")
            if action.dest.startswith("rc_") and name in resolved and resolved[name] != getattr(base, name):
                action.help = (f"default: {resolved[name]!r} on {data_dir} here "
                               f"(RunConfig: {getattr(base, name)!r})")
        parser.print_help()
        parser.exit()


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="run an idea over seeds (builds missing baselines, caches, prints leaderboard rows)",
        description="Flags that are neither RunConfig fields nor parameters the idea declares (its DEFAULTS, "
                    "or names its code reads from cfg.extra) are refused with the closest valid flag; "
                    "idea parameters enter the cache key. A seed already in the results cache is not run "
                    "again unless --rerun. Defaults shown are what trains on --data-dir here.",
        add_help=False,
    )
    run.add_argument("-h", "--help", action=_ResolvedHelp, help="show this help (with resolved defaults) and exit")
    run.add_argument("--idea", required=True, help="idea name (see `w2s ideas list`)")
    run.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 42,43,44 (default: --seed)")
    run.add_argument("--local", action="store_true", help="run here even when a control service is running")
    run.add_argument("--no-wait", action="store_true", help="with a service: submit the jobs and return")
    run.add_argument("--executor", default=None, metavar="NAME",
                     help="where the seeds run: local, docker or runpod here, any executor through a service "
                          "(default: the service's --executor, else local)")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON")
    run.add_argument("--dry-run", action="store_true",
                     help="print the resolved config, the cache key and which seeds are cached; run nothing")
    run.add_argument("--rerun", action="store_true",
                     help="run seeds that are already cached again (their cached results are replaced)")
    add_run_config_arguments(run)
    run.set_defaults(func=_run)
    OWN_FLAGS[:] = [o for a in run._actions for o in a.option_strings if o.startswith("--")]


def _config(args: argparse.Namespace, unknown: list[str]) -> RunConfig:
    """The flags as a RunConfig, validated at once (``--lr -1`` fails here, not 46 s later in torch)."""
    try:
        cfg = run_config_from_args(args, unknown)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        return validate_run_config(cfg)
    except ConfigError as exc:
        raise exc.as_flag() from None


def _service_running() -> bool:
    from core.app.views import service_status

    try:
        return bool(service_status()["running"])
    except Exception:  # noqa: BLE001 - a broken service file means "no service"
        return False


class _Display:
    """Progress per seed: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, seeds: list[int], enabled: bool):
        self.enabled = enabled
        self.last: dict[int, tuple[str, int]] = {}
        self.progress = None
        self.tasks: dict[int, Any] = {}
        if enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("seed {task.fields[seed]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(), TextColumn("{task.description}"),
            )
            for s in seeds:
                self.tasks[s] = self.progress.add_task("queued", total=1.0, seed=s)
            self.progress.start()

    def __call__(self, run) -> None:
        if not self.enabled:
            return
        where = f" gpu {run.gpu}" if run.gpu is not None else ""
        what = f"{run.state}{where} {run.message}".strip()
        if self.progress is not None:
            self.progress.update(self.tasks[run.seed], completed=run.progress, description=what[:60])
            return
        bucket = (run.state, int(run.progress * 10))
        if self.last.get(run.seed) != bucket:
            self.last[run.seed] = bucket
            print(f"seed {run.seed}: {run.state}{where} {int(run.progress * 100)}% {run.message}".rstrip(), flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _print_rows(dataset: str, idea: str) -> list[dict[str, Any]]:
    """This idea's leaderboard rows with the baselines they are measured against (B's renderer)."""
    from rich.console import Console

    from cli.leaderboard_cmd import render
    from core.app.views import leaderboard

    doc = leaderboard(dataset=dataset)
    rows = [r for r in doc["rows"] if r.get("idea") == idea]
    used = {(r.get("weak_key"), r.get("strong_key")) for r in rows}
    keys = {k for pair in used for k in pair if k}
    baselines = [b for b in doc["baselines"] if b.get("key") in keys]
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 180))
    print()
    render({"rows": rows, "baselines": baselines}, console)
    return rows


def _executor(name: str | None, use_service: bool) -> str:
    """The executor the seeds run on. Without a service only ``local`` and ``docker`` run here (the
    seed's trusted process on this machine, its idea in bwrap or in a container); docker is checked
    at once (engine, image) so a missing engine is one line, not a failed seed."""
    from core.control.service import default_executor
    from core.sandbox.select import executor_problem
    from executors import executor_names

    name = name or (default_executor() if use_service else "local")
    if name not in executor_names():
        raise UserError(f"--executor: unknown executor {name!r} (known: {', '.join(executor_names())})")
    if use_service:
        return name
    if name not in ("local", "docker", "runpod"):
        raise UserError(f"--executor {name}: needs the control service (`w2s serve --detach`); "
                        "without one, seeds run here with --executor local, docker or runpod")
    # the seeds' trusted side runs here, their ideas in a container or on a pod: checked at once
    problem = executor_problem(name)
    if problem:
        raise UserError(f"--executor {name}: {problem}")
    return name


def _scored_line(seed: int, summary: dict[str, Any]) -> str:
    """The operator's line for a scored seed, from the cached result the summary points at (the
    seed's own result.json holds only the rounded public accuracy)."""
    from core.app.run_checks import seed_line

    try:
        from pathlib import Path

        result = json.loads(Path(str(summary.get("path"))).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        result = None
    if not isinstance(result, dict):
        return f"seed {seed}: ok  {summary.get('state')}  public acc {summary.get('public_acc')} (rounded)"
    return f"{seed_line(seed, result)}  -> {summary.get('path')}"


def _dry_run(idea: str, cfg: RunConfig, seeds: list[int], cached: dict[int, dict[str, Any]], as_json: bool) -> int:
    """What a run would train and write, without running anything."""
    from core.app.run_checks import seed_key, seed_line

    key = seed_key(idea, cfg)
    if as_json:
        print(json.dumps({"idea": idea, "config": cfg.to_dict(), "key": key, "seeds": seeds,
                          "cached": sorted(cached)}, indent=2))
        return 0
    print(f"dry run: {idea} on {cfg.dataset}, nothing is run")
    for name, value in cfg.to_dict().items():
        print(f"  {name:<28} {value!r}")
    print(f"  cache key: {key}")
    for seed in seeds:
        print(f"  {seed_line(seed, cached[seed]) + ' · cached' if seed in cached else f'seed {seed}: would run'}")
    return 0


def _run(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.app import run_checks
    from core.app.jobs import check_dataset, parse_seeds
    from core.app.seed_runs import run_as_jobs, run_config, run_local
    from core.app.views import ensure_demo_cache
    from core.control.gpu import visible_gpus

    cfg = _config(args, unknown)
    run_checks.check_parameters(args.idea, cfg.extra, OWN_FLAGS)  # --epoch, --dry-rnu: refused, never trained
    try:
        seeds = parse_seeds(args.seeds, cfg.seed)
    except UserError as exc:
        raise UserError(f"--{exc}") from None
    check_dataset(cfg)
    gpus = visible_gpus()
    use_service = _service_running() and not args.local
    executor = _executor(args.executor, use_service)
    cfg = run_config(args.idea, cfg, as_jobs=use_service, cuda=bool(gpus))
    ensure_demo_cache()
    cached = run_checks.cached_seeds(args.idea, cfg, seeds)
    if args.dry_run:
        return _dry_run(args.idea, cfg, seeds, cached, args.json)
    if cached and not args.rerun:
        for seed, result in cached.items():
            if not args.json:
                print(f"{run_checks.seed_line(seed, result)} · cached {result.get('cached_at') or ''}, not run "
                      "again (--rerun replaces it)", flush=True)
        seeds = [s for s in seeds if s not in cached]
        if not seeds:
            if args.json:
                print(json.dumps([{"seed": s, "state": "cached", "result": {k: cached[s].get(k) for k in (
                    "transfer_acc", "pgr", "w2s_source", "cached_at")}} for s in cached], indent=2))
            else:
                _print_rows(cfg.dataset, args.idea)
            return 0
    elif cached and not args.json:
        for seed, result in cached.items():
            print(f"seed {seed}: cached {result.get('cached_at') or ''} ({result.get('w2s_source') or 'imported'}); "
                  "--rerun: its result is replaced by this run's", flush=True)
    display = _Display(seeds, enabled=not args.json)
    if not args.json:
        how = "as service jobs" if use_service else (f"on GPUs {','.join(gpus)}" if gpus else "on CPU, one at a time")
        how += f" on the {executor} executor" if executor != "local" else ""
        print(f"running {args.idea} on {cfg.dataset} ({cfg.weak_model} -> {cfg.strong_model}), seeds "
              f"{','.join(map(str, seeds))} {how}", flush=True)
    try:
        if use_service:
            runs = run_as_jobs(args.idea, cfg, seeds, gpus=1 if gpus else 0, on_event=display,
                               wait=not args.no_wait, executor=executor)
        else:
            runs = run_local(args.idea, cfg, seeds, gpus=gpus, on_event=display, executor=executor)
    finally:
        display.close()
    failed = [r for r in runs if r.state in ("failed", "cancelled")]
    if args.json:
        print(json.dumps([
            {"seed": r.seed, "state": r.state, "job_id": r.job_id, "run_dir": str(r.run_dir),
             "log": str(r.log_path), "exit_code": r.exit_code, "result": r.result} for r in runs
        ], indent=2))
        return 1 if failed else 0
    for r in runs:
        if r.state == "succeeded":
            res = r.result
            if res.get("state") == "not scored":
                print(f"seed {r.seed}: ok, not scored ({res.get('note')})  run folder: {r.run_dir}")
            else:
                print(_scored_line(r.seed, res))
        elif r.state in ("failed", "cancelled"):
            print(f"seed {r.seed}: {r.state} (exit {r.exit_code}): {r.error}  log: {r.log_path}")
        else:
            print(f"seed {r.seed}: {r.state} (job {r.job_id}; follow with `w2s jobs logs {r.job_id} -f`)")
    if any(r.state == "succeeded" for r in runs):
        _print_rows(cfg.dataset, args.idea)
    return 1 if failed else 0
