"""PGR against pinned baselines: means over the pinned producer seeds, n/a with a reason."""

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
from core.results.pins import REFERENCE_SEEDS, write_pin

CFG = RunConfig(data_dir="data/toy", weak_model="org/Weak-0.5B", strong_model="org/Strong-4B", epochs=2)
SPEC = {"epochs": 2, "lr": 1e-4, "batch_size": 32, "lr_schedule": "linear"}  # CFG's training part


def _seed_producers(root: Path, weak: list[float], strong: list[float], strong_field: str = "strong_acc",
                    seeds: list[int] | None = None):
    """Producer files under CFG's keys, and a pin of those hyperparameters and seeds 42..."""
    for i, acc in enumerate(weak):
        write_result("toy", "weak_artifacts", weak_artifacts_key(CFG), 42 + i, {"weak_acc": acc}, root)
    for i, acc in enumerate(strong):
        write_result("toy", "train_ceiling", ceiling_key(CFG), 42 + i, {strong_field: acc}, root)
    pinned = seeds or list(range(42, 42 + max(len(weak), len(strong))))
    write_pin("toy", CFG.weak_model, CFG.strong_model, SPEC, pinned, force=True, root=root)


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


def test_fixed_baselines_average_the_pinned_seeds(tmp_path: Path):
    root = tmp_path / "cache_results"
    _seed_producers(root, [0.50, 0.52, 0.60], [0.80, 0.70], strong_field="strong_gt_acc")
    b = fixed_baselines("toy", CFG, root)
    assert b.weak_acc == pytest.approx(0.54) and b.n_weak == 3
    assert b.strong_acc == pytest.approx(0.75) and b.n_strong == 2  # strong_gt_acc accepted
    assert b.weak_key == "org_Weak_0_5B_e2_lr0.0001_bs32_schlinear"
    assert b.strong_key == "org_Strong_4B_e2_lr0.0001_bs32_schlinear"
    assert b.pin["seeds"] == [42, 43, 44] and b.pin["origin"] == "pinned" and b.n_pinned == 3
    # the idea's own hyperparameters never pick other baselines
    other = fixed_baselines("toy", CFG.replace(lr=1e-5, epochs=9, batch_size=2, loss="logconf"), root)
    assert (other.weak_acc, other.strong_acc, other.weak_key) == (b.weak_acc, b.strong_acc, b.weak_key)
    # a seed outside the pin is never counted
    write_result("toy", "weak_artifacts", weak_artifacts_key(CFG), 99, {"weak_acc": 0.0}, root)
    assert fixed_baselines("toy", CFG, root).weak_acc == pytest.approx(0.54)
    # a smoke config looks for the smoke build's keys, never the full-size means
    smoke = fixed_baselines("toy", CFG.replace(train_size=5), root)
    assert smoke.weak_acc is None and smoke.weak_key.endswith("_schlinear_train_size5")
    assert compute_pgr(0.6, smoke)[0] is None


def test_default_pin_is_the_reference_spec(tmp_path: Path):
    root = tmp_path / "cache_results"
    ref = RunConfig(data_dir="data/math")  # the reference pair and spec
    for seed in (42, 57, 58):  # 58 is not one of the reference's 16 seeds
        write_result("math", "weak_artifacts", weak_artifacts_key(ref), seed, {"weak_acc": 0.5 + seed / 1000}, root)
    b = fixed_baselines("math", ref.replace(lr=3e-4, epochs=1), root)
    assert b.pin["origin"] == "reference spec" and tuple(b.pin["seeds"]) == REFERENCE_SEEDS
    assert b.weak_key == "Qwen_Qwen1_5_0_5B_Chat_e5_lr0.0001_bs32_schlinear"
    assert b.n_weak == 2 and b.weak_acc == pytest.approx(0.5 + 49.5 / 1000)


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
    # an idea key with other hyperparameters is still measured against the pinned baselines
    other = baselines_for_key("toy", result_key(CFG.replace(lr=0.3, epochs=7)), root)
    assert (other.weak_acc, other.strong_acc) == (0.5, 0.9)
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


def test_idea_without_weak_model_uses_the_pinned_weak_model(tmp_path: Path):
    root = tmp_path / "cache_results"
    _seed_producers(root, [0.5, 0.6], [0.9])
    zero_shot = CFG.replace(weak_model=None, extra={"task_type": "binary"})
    key = result_key(zero_shot)
    assert key == "org_Strong_4B_e2_lr0.0001_bs32_schlinear_task_typebinary"
    b = baselines_for_key("toy", key, root)
    assert b.weak_acc == pytest.approx(0.55) and b.weak_key == weak_artifacts_key(CFG)
    assert fixed_baselines("toy", zero_shot, root).weak_acc == pytest.approx(0.55)
    # a second pinned weak model for the same strong model makes the choice ambiguous: n/a, no guess
    write_pin("toy", "org/Other-1B", CFG.strong_model, SPEC, [42], root=root)
    write_result("toy", "weak_artifacts", weak_artifacts_key(CFG.replace(weak_model="org/Other-1B")), 42,
                 {"weak_acc": 0.3}, root)
    ambiguous = baselines_for_key("toy", key, root)
    assert ambiguous.weak_acc is None and compute_pgr(0.7, ambiguous)[0] is None
