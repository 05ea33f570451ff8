"""PGR against fixed baselines: means over all cached producer seeds, n/a with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.common.config import RunConfig
from core.results.cache import ceiling_key, result_key, weak_artifacts_key, write_result
from core.results.pgr import (
    Baselines,
    baselines_for_key,
    compute_pgr,
    fixed_baselines,
    pgr_fields,
    split_models,
)

CFG = RunConfig(data_dir="data/toy", weak_model="org/Weak-0.5B", strong_model="org/Strong-4B", epochs=2)


def _seed_producers(root: Path, weak: list[float], strong: list[float], strong_field: str = "strong_acc"):
    for i, acc in enumerate(weak):
        write_result("toy", "weak_artifacts", weak_artifacts_key(CFG), 42 + i, {"weak_acc": acc}, root)
    for i, acc in enumerate(strong):
        write_result("toy", "train_ceiling", ceiling_key(CFG), 42 + i, {strong_field: acc}, root)


def test_compute_pgr_hand_values():
    b = Baselines(0.5, 3, 0.8, 2, "w", "s")
    assert compute_pgr(0.65, b) == (pytest.approx(0.5), None)
    assert compute_pgr(0.8, b)[0] == pytest.approx(1.0)
    assert compute_pgr(0.4, b)[0] == pytest.approx(-1 / 3)


@pytest.mark.parametrize(
    ("transfer", "baselines", "reason"),
    [
        (0.6, Baselines(0.7, 3, 0.7, 3, "w", "s"), "no gap to recover"),
        (0.6, Baselines(0.8, 3, 0.7, 3, "w", "s"), "ceiling 0.7000 <= weak 0.8000"),
        (0.6, Baselines(None, 0, 0.7, 3, "wk", "s"), "weak_artifacts seeds for wk)"),
        (0.6, Baselines(0.5, 3, None, 0, "w", "sk"), "no ceiling baseline"),
        (None, Baselines(0.5, 3, 0.7, 3, "w", "s"), "no transfer accuracy"),
    ],
)
def test_pgr_is_na_with_a_reason(transfer, baselines, reason):
    pgr, why = compute_pgr(transfer, baselines)
    assert pgr is None and reason in why


def test_fixed_baselines_average_every_seed(tmp_path: Path):
    root = tmp_path / "cache_results"
    _seed_producers(root, [0.50, 0.52, 0.60], [0.80, 0.70], strong_field="strong_gt_acc")
    b = fixed_baselines("toy", CFG, root)
    assert b.weak_acc == pytest.approx(0.54) and b.n_weak == 3
    assert b.strong_acc == pytest.approx(0.75) and b.n_strong == 2  # strong_gt_acc accepted
    assert b.weak_key == "org_Weak_0_5B_e2_lr0.0001_bs32_schlinear"
    assert b.strong_key == "org_Strong_4B_e2_lr0.0001_bs32_schlinear"
    other = fixed_baselines("toy", CFG.replace(lr=1e-5), root)  # other hyperparameters: nothing cached
    assert other.weak_acc is None and other.n_weak == 0 and other.weak_key.endswith("_lr1e-05_bs32_schlinear")
    assert compute_pgr(0.6, other)[0] is None


def test_pgr_fields_record_baselines_and_counts(tmp_path: Path):
    root = tmp_path / "cache_results"
    _seed_producers(root, [0.5, 0.5], [0.9])
    fields = pgr_fields(0.7, fixed_baselines("toy", CFG, root))
    assert fields["pgr"] == pytest.approx(0.5) and fields["pgr_reason"] is None
    assert fields["fixed_weak_baseline"] == 0.5 and fields["fixed_strong_baseline"] == 0.9
    assert fields["baselines"]["n_weak"] == 2 and fields["baselines"]["n_strong"] == 1


def test_idea_key_maps_onto_producer_keys(tmp_path: Path):
    root = tmp_path / "cache_results"
    _seed_producers(root, [0.5], [0.9])
    key = result_key(CFG.replace(extra={"conf_low": 0.25}))
    assert key == "org_Strong_4B_org_Weak_0_5B_e2_lr0.0001_bs32_schlinear_conf_low0.25"
    # the ceiling key already in the cache tells where the strong slug ends
    assert split_models("toy", key, root) == ("org_Strong_4B", "org_Weak_0_5B")
    b = baselines_for_key("toy", key, root)
    assert (b.weak_acc, b.strong_acc) == (0.5, 0.9)
    # without any ceiling cached, the strong model named in the seed file decides
    empty = tmp_path / "empty"
    assert split_models("toy", key, empty, strong_model="org/Strong-4B") == ("org_Strong_4B", "org_Weak_0_5B")
    assert split_models("toy", key, empty, weak_model="org/Weak-0.5B") == ("org_Strong_4B", "org_Weak_0_5B")
    assert split_models("toy", key, empty) is None
    assert split_models("toy", "not-a-key", root) is None


def test_idea_without_weak_model_uses_the_only_matching_weak_baseline(tmp_path: Path):
    root = tmp_path / "cache_results"
    _seed_producers(root, [0.5, 0.6], [0.9])
    zero_shot = CFG.replace(weak_model=None, extra={"task_type": "binary"})
    key = result_key(zero_shot)
    assert key == "org_Strong_4B_e2_lr0.0001_bs32_schlinear_task_typebinary"
    b = baselines_for_key("toy", key, root)
    assert b.weak_acc == pytest.approx(0.55) and b.weak_key == weak_artifacts_key(CFG)
    assert fixed_baselines("toy", zero_shot, root).weak_acc == pytest.approx(0.55)
    # a second weak model with the same training part makes the choice ambiguous: n/a, no guess
    other_weak = CFG.replace(weak_model="org/Other-1B")
    write_result("toy", "weak_artifacts", weak_artifacts_key(other_weak), 42, {"weak_acc": 0.3}, root)
    ambiguous = baselines_for_key("toy", key, root)
    assert ambiguous.weak_acc is None and compute_pgr(0.7, ambiguous)[0] is None
