"""The reference archive's ue_zeroshot and critic rows reach the leaderboard as they are: every seed,
their folder's idea (some files name another method), PGR recomputed against the fixed baselines,
which reproduces the stored per-seed PGR where the archive has one."""

from __future__ import annotations

import json
import statistics
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from core.results.archive import import_archive
from core.results.leaderboard import leaderboard_rows

# the leaderboard's figures (ue_zeroshot beats vanilla's 0.338 on math), as ue_zeroshot/README.md quotes them
PUBLISHED = {("math", "ue_zeroshot"): 0.586, ("code", "ue_zeroshot"): 0.144, ("chat", "ue_zeroshot"): 0.027,
             ("math", "critic"): 0.260, ("chat", "critic"): -0.038}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, reference_archive: Path) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ref") / "cache_results"
    import_archive(reference_archive, root=root)
    raw: dict[tuple[str, str], list[dict]] = {}
    with tarfile.open(reference_archive) as tf:
        for m in tf.getmembers():
            parts = PurePosixPath(m.name).parts
            if m.isfile() and len(parts) == 4 and parts[1] != "cache_results":
                ds, idea = parts[1].split("_", 1)
                if idea in ("ue_zeroshot", "critic"):
                    raw.setdefault((ds, idea), []).append(json.loads(tf.extractfile(m).read()))  # type: ignore[union-attr]
    return root, raw


@pytest.mark.parametrize("dataset", ["math", "code", "chat"])
@pytest.mark.parametrize("idea", ["ue_zeroshot", "critic"])
def test_reference_rows_show_with_every_seed_and_their_published_pgr(imported, dataset, idea) -> None:
    root, raw = imported
    seeds = raw[(dataset, idea)]
    rows = [r for r in leaderboard_rows(dataset, root=root) if r["idea"] == idea]
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["source"] == "imported" and row["n_seeds"] == len(seeds)
    assert row["transfer_acc"] == pytest.approx(statistics.fmean(d["transfer_acc"] for d in seeds))
    weak, strong = row["weak_acc"], row["strong_acc"]
    per_seed = [(d["transfer_acc"] - weak) / (strong - weak) for d in seeds]
    assert row["pgr_mean"] == pytest.approx(statistics.fmean(per_seed), abs=1e-12)
    stored = [d["pgr"] for d in seeds if d.get("pgr") is not None]
    if stored:  # the archive's own per-seed PGR: its fixed baselines are ours up to ~0.0015 in the
        # ceiling (code's files say 0.6950 where the 16 ceiling seeds average 0.6936), values rounded
        assert row["pgr_mean"] == pytest.approx(statistics.fmean(stored), abs=1.5e-3)
    if (dataset, idea) in PUBLISHED:
        assert round(row["pgr_mean"], 3) == pytest.approx(PUBLISHED[(dataset, idea)], abs=0.0015)
    if idea == "ue_zeroshot":  # these files carry another method's idea_name; the folder decides
        assert any(d.get("idea_name") != "ue_zeroshot" for d in seeds)
