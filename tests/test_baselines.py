"""Baseline producers: weak artifacts aligned by row id, ceiling, caching and reuse (tiny data, real engine)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from core.common.config import RunConfig
from core.common.errors import UserError
from core.data.datasets import load_split
from core.results.cache import WEAK_ARTIFACTS, read_result, weak_artifacts_key, write_result
from core.run import experiment
from core.run.baselines import data_fingerprint, ensure_ceiling, ensure_weak_artifacts, missing_baselines
from tests.conftest import make_dataset
from tests.tiny_w2s import tiny_config


@pytest.fixture
def tiny(workspace):
    make_dataset(workspace)
    return workspace


def test_weak_artifacts_reference_format_with_ids(tiny):
    cfg = tiny_config()
    assert missing_baselines(cfg) == ["weak_artifacts", "train_ceiling"]
    result, path, built = ensure_weak_artifacts(cfg)
    assert built and path.is_file()
    stored = json.loads(path.read_text())
    unlabel = load_split(tiny / "labeled_data" / "tiny" / "train_unlabel.jsonl")
    assert stored["ids"] == unlabel.ids
    soft = np.array(stored["soft_labels"])
    assert soft.shape == (len(unlabel.rows), 2)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    # hard_label_acc is the accuracy of argmax(soft) against train_unlabel ground truth
    expected = np.mean((soft[:, 1] > 0.5).astype(int) == np.array(unlabel.labels()))
    assert stored["hard_label_acc"] == pytest.approx(expected)
    final = stored["detailed_eval"]["weak"]["final_eval"]
    assert stored["weak_acc"] == final["accuracy"] and final["total"] == 10
    assert stored["idea_name"] == WEAK_ARTIFACTS and stored["w2s_source"] == "local run"
    assert stored["hyperparam_config_key"] == weak_artifacts_key(cfg) == path.parent.name
    for field in ("weak_model", "dataset_name", "seed", "epochs", "batch_size", "lr", "scheduler",
                  "training_time", "config", "cached_at"):
        assert field in stored
    assert missing_baselines(cfg) == ["train_ceiling"]
    # reused, not rebuilt
    again, _, built_again = ensure_weak_artifacts(cfg)
    assert not built_again and again["cached_at"] == stored["cached_at"]


def test_soft_labels_stay_aligned_by_id_after_shuffling(tiny):
    cfg = tiny_config()
    result, _, _ = ensure_weak_artifacts(cfg)
    by_id = dict(zip(result["ids"], (p1 for _, p1 in result["soft_labels"]), strict=True))
    view = tiny / "data" / "tiny" / "train_unlabel.jsonl"
    lines = view.read_text().splitlines()
    random.Random(3).shuffle(lines)
    view.write_text("\n".join(lines) + "\n")
    data = experiment.load_label_free(cfg)
    assert data.train_ids != result["ids"]  # the order really changed
    assert all("label" not in r and "subset" not in r for r in data.train + data.test)
    got = experiment.weak_soft_labels(cfg, data.train_ids)
    np.testing.assert_allclose(got, [by_id[i] for i in data.train_ids])


def test_files_without_ids_follow_line_order_and_foreign_ids_are_refused(tiny):
    cfg = tiny_config()
    ids = load_split(tiny / "data" / "tiny" / "train_unlabel.jsonl").ids
    soft = [[1 - i / 20, i / 20] for i in range(len(ids))]
    key = weak_artifacts_key(cfg)
    write_result("tiny", WEAK_ARTIFACTS, key, 42, {"weak_acc": 0.5, "soft_labels": soft})  # reference style
    np.testing.assert_allclose(experiment.weak_soft_labels(cfg, ids[::-1]), [s[1] for s in soft][::-1])
    write_result("tiny", WEAK_ARTIFACTS, key, 42, {"weak_acc": 0.5, "soft_labels": soft[:3], "ids": ids[:3]})
    with pytest.raises(UserError, match="lack"):
        experiment.weak_soft_labels(cfg, ids)


def test_ceiling_is_built_once_and_ignores_idea_parameters(tiny):
    cfg = tiny_config(loss="logconf", extra={"conf_low": 0.2})
    result, path, built = ensure_ceiling(cfg)
    assert built
    assert result["strong_acc"] == result["detailed_eval"]["ceiling"]["final_eval"]["accuracy"]
    assert result["config"]["loss"] == "xent" and result["config"]["extra"] == {}
    assert result["weak_model"] is None and result["strong_model"] == "demo-strong"
    mtime = path.stat().st_mtime_ns
    _, _, built_again = ensure_ceiling(tiny_config())
    assert not built_again and path.stat().st_mtime_ns == mtime
    assert read_result("tiny", "train_ceiling", path.parent.name, 42)["strong_acc"] == result["strong_acc"]
    # regenerated ground truth under the same key: the stale ceiling is not reused
    assert result["data_fingerprint"] == data_fingerprint("tiny")
    test_file = tiny / "labeled_data" / "tiny" / "test.jsonl"
    test_file.write_text(test_file.read_text().replace('"label": true', '"label": false', 1))
    assert missing_baselines(tiny_config()) == ["weak_artifacts", "train_ceiling"]
    # imported files carry no fingerprint and stay trusted
    stored = json.loads(path.read_text())
    del stored["data_fingerprint"]
    path.write_text(json.dumps(stored))
    assert "train_ceiling" not in missing_baselines(tiny_config())


def test_missing_labeled_data_is_a_user_error(workspace):
    with pytest.raises(UserError, match="labeled_data"):
        ensure_weak_artifacts(tiny_config(data_dir="data/absent"))


def test_producers_train_with_the_pin_not_the_idea_config(tiny):
    from core.engine.models import DEMO_RECOMMENDED
    from core.results.pins import DEMO_FIXED, DEMO_HYPERPARAMETERS
    from core.run.baselines import baseline_config

    assert {**DEMO_HYPERPARAMETERS, **DEMO_FIXED} == DEMO_RECOMMENDED  # the pin is the demo registry's
    idea = tiny_config(lr=0.3, epochs=4, batch_size=2, warmup_ratio=0.5, max_ctx=16, loss="logconf",
                       extra={"conf_low": 0.1}, seed=45, train_size=6)
    b = baseline_config(idea)
    assert (b.lr, b.epochs, b.batch_size, b.max_ctx, b.warmup_ratio, b.loss, b.extra) == (
        1e-3, 1, 8, 256, RunConfig().warmup_ratio, "xent", {})
    assert (b.seed, b.train_size, b.dataset, b.weak_model) == (45, 6, "tiny", "demo-weak")
    assert baseline_config(b) == b


def test_unpinned_seed_gets_no_ceiling_and_build_stays_in_the_pin(tiny, capsys):
    from core.run.baselines import build_pinned
    from tests.conftest import run_cli
    from tests.tiny_w2s import fake_baselines

    cfg = tiny_config()
    fake_baselines(tiny, cfg, [42, 43, 44])
    placeholder, folder, built = ensure_ceiling(cfg.replace(seed=99))
    assert not built and placeholder["strong_acc"] is None and placeholder["pinned"] is False
    assert not (folder / "seed_99.json").exists()
    assert missing_baselines(cfg.replace(seed=99)) == ["weak_artifacts"]
    assert [r["built"] for r in build_pinned(cfg)] == [False] * 6  # all pinned seeds cached
    with pytest.raises(UserError, match="not pinned"):
        build_pinned(cfg, [99])
    with pytest.raises(UserError, match="full size"):
        build_pinned(cfg.replace(train_size=5))
    # pin two seeds from the CLI: show reports the pin and what is built
    args = ("--dataset", "tiny", "--weak-model", "demo-weak", "--strong-model", "demo-strong")
    assert run_cli("baselines", "pin", *args, "--seeds", "42,43") == 0
    assert run_cli("baselines", "pin", *args, "--lr", "0.01") == 1  # replacing needs --force
    assert "--force" in capsys.readouterr().err
    assert run_cli("baselines", "show", "--dataset", "tiny", "--json") == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["seeds"] == [42, 43] and shown["origin"] == "pinned" and shown["lr"] == 1e-3
    assert shown["built"] == {"weak_artifacts": [42, 43], "train_ceiling": [42, 43]}
    assert run_cli("baselines", "pin", *args, "--seeds", "42,42") == 1
