"""Regenerate the top-level ``cache_results.tar.gz`` and the five-method table of ``bench/README.md``.

    uv run python bench/build_demo_archive.py            # fresh workspace, all demo datasets, seeds 42-44
    uv run python bench/build_demo_archive.py --from-archive --workspace /tmp/w2s-five   # reuse the
                                                         # committed archive's baselines and rows

Runs the five methods (``vanilla_w2s``, ``train_only_on_confident_labels``, ``ue_zeroshot``,
``ue_fewshot``, ``critic``; ``--ideas`` picks some) on demo-chat, demo-code and demo-math through the
same code path as ``w2s run`` (``core.app.seed_runs.run_local``: baselines built first, one process per
seed), in a workspace holding only copies of the repo's ``data/`` and ``labeled_data/`` (and, with
``--from-archive``, the committed archive imported first, so its still-valid seeds are reused; pass
``--workspace`` to resume a partial build). It then prints the leaderboard's figures per dataset and
method as a markdown table (mean transfer, PGR mean ± SEM and its 95% t-interval over the seeds)
and writes the archive: only ``cache_results/...`` entries of the baselines and those ideas, sorted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.common.config import RunConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATASETS = ("demo-chat", "demo-code", "demo-math")
IDEAS = ("vanilla_w2s", "train_only_on_confident_labels", "ue_zeroshot", "ue_fewshot", "critic")
BASELINE_GROUPS = ("weak_artifacts", "train_ceiling")


def _prepare_workspace(ws: Path) -> None:
    for name in ("data", "labeled_data"):
        for ds in DATASETS:
            src, dst = REPO / name / ds, ws / name / ds
            if not dst.exists():
                shutil.copytree(src, dst)


def _still_valid(cached: dict | None, cfg: RunConfig) -> bool:
    """A cached idea result is kept only while its baselines still fit the data and it is newer than
    both of them (idea results carry no data fingerprint: a result made before the data changed and
    the baselines were rebuilt must be redone)."""
    from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, ceiling_key, read_result, weak_artifacts_key
    from core.run.baselines import missing_baselines

    if not cached or missing_baselines(cfg):
        return False
    if cached.get("w2s_source") != "referee":  # only referee-scored rows, with their predictions kept
        return False
    made = str(cached.get("cached_at", ""))
    for producer, key in ((WEAK_ARTIFACTS, weak_artifacts_key(cfg)), (TRAIN_CEILING, ceiling_key(cfg))):
        base = read_result(cfg.dataset, producer, key, cfg.seed) or {}
        if made < str(base.get("cached_at", "")):
            return False
    return True


def _run_all(ws: Path, seeds: list[int], datasets: list[str], ideas: list[str]) -> list[str]:
    os.environ["W2S_WORKSPACE"] = str(ws)
    from core.app.seed_runs import run_local
    from core.common.config import RunConfig
    from core.results.cache import predictions_path, read_result, result_key
    from core.run.ideas import find_idea, static_defaults
    from core.run.resolve import prepare_config

    failures = []
    for seed in seeds:  # seed by seed, vanilla first: every dataset's first result comes early
        for idea in ideas:
            for ds in datasets:
                cfg = prepare_config(RunConfig(data_dir=f"data/{ds}"), static_defaults(find_idea(idea)), cuda=False)
                cached = read_result(ds, idea, result_key(cfg), seed)
                kept = predictions_path(ds, idea, result_key(cfg), seed).is_file()
                if kept and _still_valid(cached, cfg.replace(seed=seed)):
                    print(f"{ds} {idea} seed {seed}: cached (transfer {cached.get('transfer_acc')})", flush=True)
                    continue
                start = time.time()
                runs = run_local(idea, cfg, [seed])
                for r in runs:
                    print(f"{ds} {idea} seed {r.seed}: {r.state} in {time.time() - start:.0f}s "
                          f"public acc {r.result.get('public_acc')} ({r.log_path})", flush=True)
                    if r.state != "succeeded":
                        failures.append(f"{ds} {idea} seed {r.seed}: {r.error} ({r.log_path})")
    return failures


def _add(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


def build_archive(ws: Path, out: Path, datasets: list[str], seeds: list[int], ideas: list[str]) -> dict[str, int]:
    """Tar ``cache_results/<ds>_<group>/<key>/seed_<s>.json`` for the demo groups, with the predictions
    kept beside referee-scored seeds (sorted, no mtimes)."""
    base = ws / "cache_results"
    files: list[Path] = []
    for ds in datasets:
        for group in (*BASELINE_GROUPS, *ideas):
            folder = base / f"{ds}_{group}"
            for f in sorted(folder.glob("*/seed_*.json")):
                if int(f.stem.split("_", 1)[1]) in seeds:
                    files.append(f)
                    kept = f.with_name(f"predictions_{f.name}.gz")  # referee rows stay re-verifiable
                    if kept.is_file():
                        files.append(kept)
    counts: dict[str, int] = {}
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=9) as tar:
        _add(tar, "cache_results", None)
        made: set[str] = set()
        for f in files:
            rel = f.relative_to(ws)
            for parent in reversed(rel.parents[:-2]):
                if str(parent) not in made:
                    made.add(str(parent))
                    _add(tar, str(parent), None)
            if f.suffix == ".json":
                json.loads(f.read_text())  # never ship a broken file
            _add(tar, str(rel), f.read_bytes())
            counts[rel.parts[1]] = counts.get(rel.parts[1], 0) + 1
    os.replace(tmp, out)
    return counts


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def table(ws: Path, datasets: list[str], ideas: list[str], weak_model: str = "demo-weak") -> str:
    """The leaderboard's own figures (``core.results.leaderboard``) for each dataset and method, the
    rows whose teacher is ``weak_model`` (PGR against the pinned 3-seed baselines)."""
    os.environ["W2S_WORKSPACE"] = str(ws)
    from core.results.leaderboard import leaderboard_rows

    lines = ["| data | method | seeds | weak | ceiling | transfer (mean ± SEM) | PGR (mean ± SEM) | PGR 95% CI |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for ds in datasets:
        rows: dict[str, dict] = {}
        for r in leaderboard_rows(ds, root=ws / "cache_results"):
            if (r.get("baseline_pin") or {}).get("weak_model") == weak_model.replace("-", "_"):
                rows.setdefault(r["idea"], r)
        for idea in ideas:
            r = rows.get(idea)
            if r is None:
                lines.append(f"| {ds} | {idea} | 0 | | | not run | | |")
                continue
            ci = r.get("pgr_ci95")
            ci_text = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "n/a"
            lines.append(
                f"| {ds} | {idea} | {r.get('n_seeds')} | {_fmt(r.get('weak_acc'))} | {_fmt(r.get('strong_acc'))} "
                f"| {_fmt(r.get('transfer_acc'))} ± {_fmt(r.get('transfer_sem'))} "
                f"| {_fmt(r.get('pgr_mean'), True)} ± {_fmt(r.get('pgr_sem'))} | {ci_text} |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=None, help="build here (default: a fresh temp folder)")
    ap.add_argument("--seeds", default="42,43,44")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--out", type=Path, default=REPO / "cache_results.tar.gz")
    ap.add_argument("--ideas", default=",".join(IDEAS), help="the methods to run (comma-separated)")
    ap.add_argument("--from-archive", action="store_true", help="import the committed archive into the workspace first")
    ap.add_argument("--archive-only", action="store_true", help="only pack what the workspace already has")
    ap.add_argument("--table-only", action="store_true", help="only print the table of what the workspace has")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = [d for d in args.datasets.split(",") if d]
    ideas = [i for i in args.ideas.split(",") if i]
    ws = (args.workspace or Path(f"/tmp/w2s-demo-archive-{os.getpid()}")).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    print(f"workspace: {ws}", flush=True)
    if args.table_only:
        print(table(ws, datasets, ideas))
        return 0
    failures: list[str] = []
    if not args.archive_only:
        _prepare_workspace(ws)
        if args.from_archive:
            os.environ["W2S_WORKSPACE"] = str(ws)
            from core.results.archive import import_archive

            committed = REPO / "cache_results.tar.gz"
            report = import_archive(committed, root=ws / "cache_results")
            print(f"imported {committed}: {report}", flush=True)
        failures = _run_all(ws, seeds, datasets, ideas)
    print(table(ws, datasets, ideas), flush=True)
    counts = build_archive(ws, args.out, datasets, seeds, ideas)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    for group, n in sorted(counts.items()):
        print(f"  {group}: {n} files")
    for line in failures:
        print(f"FAILED {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
