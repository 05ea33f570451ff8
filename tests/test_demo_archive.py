"""The committed ``cache_results.tar.gz``: complete, built from the demo data in this checkout, and
what a fresh workspace shows and reuses: pinned baselines, and idea rows the referee scored, each
with its predictions kept so that ``w2s verify`` rescores it.

These fail when someone regenerates the demo data without rebuilding the archive
(``uv run python bench/build_demo_archive.py``): the archived weak models and ceilings would then
describe other data, and ``w2s run`` would silently rebuild them.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from core.results.archive import DEMO_ARCHIVE, ensure_demo_cache
from core.results.cache import parse_key
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parent.parent
DATASETS = ("demo-chat", "demo-code", "demo-math")
IDEAS = ("vanilla_w2s", "train_only_on_confident_labels", "ue_zeroshot", "ue_fewshot", "critic")  # the five methods
GROUPS = ("weak_artifacts", "train_ceiling", *IDEAS)
SEEDS = (42, 43, 44)


def _members() -> dict[str, bytes]:
    with tarfile.open(DEMO_ARCHIVE) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture
def demo_workspace(workspace: Path) -> Path:
    """A fresh workspace holding this checkout's demo data and nothing cached."""
    for name in ("data", "labeled_data"):
        for ds in DATASETS:
            shutil.copytree(REPO / name / ds, workspace / name / ds)
    return workspace


def test_archive_holds_every_dataset_group_and_seed_once():
    found: dict[tuple[str, str], list[int]] = {}
    members = _members()
    for name, data in members.items():
        top, folder, key, seed_file = name.split("/")
        if seed_file.startswith("predictions_"):
            assert name.replace("predictions_", "").removesuffix(".gz") in members, name  # beside its seed
            continue
        assert top == "cache_results" and seed_file.startswith("seed_")
        ds, group = next((d, folder[len(d) + 1 :]) for d in DATASETS if folder.startswith(d + "_"))
        assert parse_key(key) is not None, name
        result = json.loads(data)
        assert result["seed"] == int(seed_file[5:-5]) and result["dataset_name"] == ds
        found.setdefault((ds, group), []).append(result["seed"])
        if group not in GROUPS[:2]:  # idea rows: scored by the referee, predictions kept to re-verify
            assert result["w2s_source"] == "referee", name
            assert name.replace("seed_", "predictions_seed_") + ".gz" in members, name
    assert sorted(found) == sorted((ds, g) for ds in DATASETS for g in GROUPS)
    assert all(len(set(seeds)) == len(seeds) and set(seeds) <= set(SEEDS) for seeds in found.values()), found
    # the baselines and vanilla_w2s ran for every seed (an idea's seed may fail, e.g. a filter that
    # keeps no rows; then it has no file)
    assert all(sorted(found[ds, g]) == list(SEEDS) for ds in DATASETS for g in GROUPS[:3]), found


def test_fresh_workspace_reuses_the_archived_baselines(demo_workspace):
    from core.common.config import RunConfig
    from core.run.baselines import missing_baselines
    from core.run.ideas import find_idea, static_defaults
    from core.run.resolve import prepare_config

    assert ensure_demo_cache() is True
    for ds in DATASETS:
        for idea in ("vanilla_w2s", "train_only_on_confident_labels"):
            cfg = prepare_config(RunConfig(data_dir=f"data/{ds}"), static_defaults(find_idea(idea)), cuda=False)
            for seed in SEEDS:
                assert missing_baselines(cfg.replace(seed=seed)) == [], (ds, idea, seed)


@pytest.mark.parametrize("dataset", DATASETS)
def test_fresh_workspace_leaderboard_is_populated_from_the_archive(demo_workspace, dataset, capsys):
    archived = {
        name: json.loads(data) for name, data in _members().items()
        if name.split("/")[1].startswith(dataset + "_") and name.endswith(".json")
    }
    assert run_cli("leaderboard", "--dataset", dataset, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["idea"]: r for r in doc["rows"]}
    assert set(rows) == set(IDEAS)
    for idea, row in rows.items():
        seeds = [r for name, r in archived.items() if name.split("/")[1] == f"{dataset}_{idea}"]
        assert row["n_seeds"] == len(seeds) and row["source"] == "referee" and row["ranked"], row
        mean_transfer = sum(r["transfer_acc"] for r in seeds) / len(seeds)
        assert row["transfer_acc"] == pytest.approx(mean_transfer)
        assert row["weak_acc"] < row["strong_acc"] and row["pgr_mean"] is not None, row


def test_every_archived_referee_row_verifies_against_this_checkouts_labels(demo_workspace, capsys):
    """The kept predictions rescore to exactly the accuracies the archive claims."""
    assert ensure_demo_cache() is True
    assert run_cli("verify", "--json") == 0, capsys.readouterr().out
