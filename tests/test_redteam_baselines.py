"""Red team: an idea cannot move the baselines its PGR is measured against (issue 13, items 5-6).

Each attack drives the trusted steps of a seed run for real on the tiny dataset with the demo models:
the runner's baseline calls (``missing_baselines``, ``ensure_weak_artifacts``, ``ensure_ceiling`` with the
idea's config, as ``core.run.runner.run_seed`` makes them), the weak labels it stages for the idea
(``experiment.weak_soft_labels``, unstaged), the PGR baselines (``fixed_baselines``), the result write
under ``result_key`` (as the finaliser does) and the leaderboard. Each fails on the previous behaviour:

- an idea's own lr/epochs retrained teacher and ceiling with them (new keys, other means);
- every new idea seed built and added a weak and a ceiling seed to the means;
- ``train_size``/``test_size`` were not in the key: a smoke run overwrote the full-size result and
  was ranked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.common.config import RunConfig
from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, list_keys, result_key, result_path, write_result
from core.results.leaderboard import leaderboard
from core.results.pgr import compute_pgr, fixed_baselines
from core.run import experiment
from core.run.baselines import ensure_ceiling, ensure_weak_artifacts, missing_baselines
from core.run.resolve import prepare_config
from tests.conftest import make_dataset
from tests.tiny_w2s import fake_baselines, tiny_config

PINNED_SEEDS = [42, 43, 44]  # the demo registry's pin


@pytest.fixture
def pinned_ws(workspace: Path) -> Path:
    """Tiny data and the pinned baselines cached (weak 0.6, ceiling 0.9)."""
    make_dataset(workspace)
    fake_baselines(workspace, prepare_config(tiny_config()), PINNED_SEEDS)
    return workspace


def run_seed(idea: str, cfg: RunConfig) -> dict[str, Any]:
    """The trusted side of one seed: baselines for the idea's config, the weak labels staged for it,
    an idea that predicts their mean, PGR against the baselines, the result under its key."""
    missing_baselines(cfg)
    if cfg.weak_model:
        ensure_weak_artifacts(cfg)
    ensure_ceiling(cfg)
    data = experiment.load_label_free(cfg)
    p1 = float(experiment.weak_soft_labels(cfg, data.train_ids).mean())  # what the runner stages
    transfer = 0.7 if p1 >= 0 else 0.0
    b = fixed_baselines(cfg.dataset, cfg)
    key = result_key(cfg)
    result = {
        "idea_name": idea, "weak_model": cfg.weak_model, "strong_model": cfg.strong_model,
        "transfer_acc": transfer, "pgr": compute_pgr(transfer, b)[0],
        "fixed_weak_baseline": b.weak_acc, "fixed_strong_baseline": b.strong_acc,
        "fixed_baseline_seeds": {"weak": b.n_weak, "strong": b.n_strong},
        "fixed_baseline_keys": {"weak": b.weak_key, "strong": b.strong_key},
        "config": cfg.to_dict(), "seed": cfg.seed, "hyperparam_config_key": key, "w2s_source": "referee",
    }
    return {**result, "path": str(write_result(cfg.dataset, idea, key, cfg.seed, result))}


def _stamps(ws: Path) -> dict[str, int]:
    base = ws / "cache_results"
    return {str(p.relative_to(base)): p.stat().st_mtime_ns
            for group in (WEAK_ARTIFACTS, TRAIN_CEILING) for p in base.glob(f"tiny_{group}/*/seed_*.json")}


def test_own_lr_and_epochs_do_not_change_the_baselines(pinned_ws: Path):
    before = _stamps(pinned_ws)
    cfg = prepare_config(tiny_config(lr=0.05, epochs=3, batch_size=4))
    result = run_seed("attack", cfg)
    assert (result["fixed_weak_baseline"], result["fixed_strong_baseline"]) == (pytest.approx(0.6), pytest.approx(0.9))
    assert result["fixed_baseline_seeds"] == {"weak": 3, "strong": 3}
    assert result["fixed_baseline_keys"]["weak"] == "demo_weak_e1_lr0.001_bs8_schlinear"
    # nothing was trained with the idea's hyperparameters: the only producer keys are the pinned ones
    assert list_keys("tiny", WEAK_ARTIFACTS) == ["demo_weak_e1_lr0.001_bs8_schlinear"]
    assert list_keys("tiny", TRAIN_CEILING) == ["demo_strong_e1_lr0.001_bs8_schlinear"]
    assert _stamps(pinned_ws) == before
    row = next(r for r in leaderboard("tiny")["rows"] if r["idea"] == "attack")
    assert (row["weak_acc"], row["strong_acc"]) == (pytest.approx(0.6), pytest.approx(0.9))
    assert row["baseline_pin"]["seeds"] == PINNED_SEEDS and row["key"] == result_key(cfg)


def test_adding_a_seed_does_not_move_the_baselines(pinned_ws: Path):
    cfg = prepare_config(tiny_config())
    before = fixed_baselines("tiny", cfg)
    result = run_seed("attack", cfg.replace(seed=45))  # not a pinned seed
    after = fixed_baselines("tiny", cfg)
    assert (after.weak_acc, after.strong_acc, after.n_weak, after.n_strong) == (
        before.weak_acc, before.strong_acc, 3, 3)
    assert result["fixed_baseline_seeds"] == {"weak": 3, "strong": 3}
    # the idea trained on the weak labels of its own seed (pinned hyperparameters), built for it,
    # marked unpinned; no ceiling was built for it
    weak45 = json.loads(result_path("tiny", WEAK_ARTIFACTS, before.weak_key, 45).read_text())
    assert weak45["pinned"] is False and weak45["config"]["lr"] == 1e-3 and weak45["config"]["max_ctx"] == 256
    assert not result_path("tiny", TRAIN_CEILING, before.strong_key, 45).exists()
    baselines = {b["producer"]: b for b in leaderboard("tiny")["baselines"]}
    assert baselines[WEAK_ARTIFACTS]["n_seeds"] == 3 and baselines[WEAK_ARTIFACTS]["n_unpinned"] == 1
    assert baselines[WEAK_ARTIFACTS]["acc_mean"] == pytest.approx(0.6)


def test_smoke_run_is_not_ranked_and_keeps_the_full_size_key(pinned_ws: Path):
    cfg = prepare_config(tiny_config())
    full = run_seed("attack", cfg)
    full_file = Path(full["path"])
    full_bytes = full_file.read_bytes()
    baseline_stamps = _stamps(pinned_ws)
    smoke = run_seed("attack", cfg.replace(train_size=6, test_size=5))
    assert Path(smoke["path"]) != full_file and smoke["hyperparam_config_key"].endswith("_test_size5_train_size6")
    assert full_file.read_bytes() == full_bytes  # the full-size result is untouched
    # smoke baselines were built under keys of their own; the full-size baselines are untouched
    stamps = _stamps(pinned_ws)
    assert {k: v for k, v in stamps.items() if k in baseline_stamps} == baseline_stamps
    assert all("_train_size6" in k for k in set(stamps) - set(baseline_stamps))
    rows = {r["key"]: r for r in leaderboard("tiny")["rows"] if r["idea"] == "attack"}
    smoke_row, full_row = rows[smoke["hyperparam_config_key"]], rows[full["hyperparam_config_key"]]
    assert smoke_row["size_capped"] and smoke_row["pgr_mean"] is None and "never ranked" in smoke_row["pgr_reason"]
    assert not full_row["size_capped"] and full_row["pgr_mean"] is not None
    # a smoke result written under a full-size key before sizes joined the key is not ranked either
    legacy = {**json.loads(full_bytes), "config": {**json.loads(full_bytes)["config"], "train_size": 6}}
    full_file.write_text(json.dumps(legacy))
    legacy_row = next(r for r in leaderboard("tiny")["rows"] if r["key"] == full["hyperparam_config_key"])
    assert legacy_row["size_capped"] and legacy_row["pgr_mean"] is None
