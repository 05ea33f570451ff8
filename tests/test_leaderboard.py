"""``w2s leaderboard`` over the imported reference archive, checked by independent recomputation,
and over small crafted caches (local runs, n/a PGR, ordering)."""

from __future__ import annotations

import json
import statistics
import tarfile
from pathlib import Path, PurePosixPath

import pytest
from scipy import stats

from core.results.archive import import_archive
from core.results.cache import write_result
from core.results.leaderboard import ROW_KEYS, leaderboard, leaderboard_rows
from core.results.pins import write_pin
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def reference_ws(tmp_path_factory, reference_archive: Path) -> Path:
    """A workspace with the reference archive imported once for this module."""
    ws = tmp_path_factory.mktemp("ref_ws")
    import_archive(reference_archive, root=ws / "cache_results")
    return ws


def _raw(archive: Path) -> dict[tuple[str, str, str], list[dict]]:
    """(dataset, idea, key) -> seed dicts, read straight from the tarball (top-level tree only)."""
    out: dict[tuple[str, str, str], list[dict]] = {}
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            parts = PurePosixPath(m.name).parts
            if m.isfile() and len(parts) == 4 and parts[1] != "cache_results":
                ds, idea = parts[1].split("_", 1)
                out.setdefault((ds, idea, parts[2]), []).append(json.loads(tf.extractfile(m).read()))
    return out


def _expected(raw, ds: str) -> dict[tuple[str, str], dict]:
    """PGR per row recomputed by hand: fixed baselines = means over all producer seeds."""
    def seeds_of(idea: str) -> list[dict]:
        return [d for (s, i, _), seeds in raw.items() if s == ds and i == idea for d in seeds]

    weak = statistics.fmean(d["weak_acc"] for d in seeds_of("weak_artifacts"))
    strong = statistics.fmean(d.get("strong_acc", d.get("strong_gt_acc")) for d in seeds_of("train_ceiling"))
    out = {}
    for (s, idea, key), seeds in raw.items():
        if s != ds or idea in ("weak_artifacts", "train_ceiling"):
            continue
        pgrs = [(d["transfer_acc"] - weak) / (strong - weak) for d in seeds]
        sem = statistics.stdev(pgrs) / len(pgrs) ** 0.5
        half = stats.t.ppf(0.975, len(pgrs) - 1) * sem
        out[(idea, key)] = {
            "n": len(pgrs),
            "pgr": statistics.fmean(pgrs),
            "sem": sem,
            "half": half,
            "weak": weak,
            "strong": strong,
            "transfer": statistics.fmean(d["transfer_acc"] for d in seeds),
        }
    return out


def test_reference_math_leaderboard_json(reference_ws, reference_archive, monkeypatch, capsys):
    monkeypatch.setenv("W2S_WORKSPACE", str(reference_ws))
    assert run_cli("leaderboard", "--dataset", "math", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"rows", "baselines"}
    rows = doc["rows"]
    vanilla = next(r for r in rows if r["idea"] == "vanilla_w2s")
    assert vanilla["n_seeds"] == 5
    assert vanilla["pgr_mean"] == pytest.approx(0.338, abs=0.001)  # the reference's published figure
    expected = _expected(_raw(reference_archive), "math")
    assert {(r["idea"], r["key"]) for r in rows} == set(expected)
    for r in rows:
        assert list(r)[: len(ROW_KEYS)] == list(ROW_KEYS)
        e = expected[(r["idea"], r["key"])]
        assert r["dataset"] == "math" and r["n_seeds"] == e["n"] and r["source"] == "imported"
        assert r["pgr_mean"] == pytest.approx(e["pgr"], abs=1e-12)
        assert r["pgr_sem"] == pytest.approx(e["sem"], abs=1e-12)
        assert r["pgr_ci95"] == pytest.approx([e["pgr"] - e["half"], e["pgr"] + e["half"]], abs=1e-12)
        assert r["transfer_acc"] == pytest.approx(e["transfer"], abs=1e-12)
        assert (r["weak_acc"], r["strong_acc"]) == (pytest.approx(e["weak"]), pytest.approx(e["strong"]))
        assert (r["n_weak"], r["n_strong"]) == (16, 16)
    assert [r["pgr_mean"] for r in rows] == sorted((r["pgr_mean"] for r in rows), reverse=True)
    producers = {(b["producer"], b["n_seeds"]) for b in doc["baselines"]}
    assert producers == {("weak_artifacts", 16), ("train_ceiling", 16)}


def test_code_critic_with_null_stored_pgr_still_ranks(reference_ws, reference_archive):
    raw = _raw(reference_archive)
    critic = next(v for (ds, idea, _), v in raw.items() if ds == "code" and idea == "critic")
    assert all(d["pgr"] is None for d in critic)  # the quirk this guards
    rows = leaderboard_rows("code", root=reference_ws / "cache_results")
    row = next(r for r in rows if r["idea"] == "critic")
    e = _expected(raw, "code")[("critic", row["key"])]
    assert row["n_seeds"] == 5 and row["pgr_mean"] == pytest.approx(e["pgr"], abs=1e-12)
    assert row["pgr_reason"] is None


def test_all_datasets_and_table_output(reference_ws, monkeypatch, capsys):
    doc = leaderboard(root=reference_ws / "cache_results")
    assert {r["dataset"] for r in doc["rows"]} == {"chat", "code", "math"} and len(doc["rows"]) == 12
    assert [r["dataset"] for r in doc["rows"]] == sorted(r["dataset"] for r in doc["rows"])
    assert all(r["idea"] not in ("weak_artifacts", "train_ceiling") for r in doc["rows"])
    monkeypatch.setenv("W2S_WORKSPACE", str(reference_ws))
    assert run_cli("leaderboard", "--dataset", "math") == 0
    out = capsys.readouterr().out
    assert out.index("Baselines") < out.index("Leaderboard")
    assert "vanilla_w2s" in out and "0.338 ± 0.030" in out and "0.5360" in out and "0.7176" in out


def test_local_runs_na_rows_and_empty_cache(workspace, monkeypatch, capsys):
    import core.results.archive

    monkeypatch.setattr(core.results.archive, "DEMO_ARCHIVE", workspace / "no-demo-archive.tar.gz")
    root = workspace / "cache_results"
    assert run_cli("leaderboard") == 0
    assert "no cached results" in capsys.readouterr().out
    w, s = "W_e1_lr0.1_bs2_schlinear", "S_e1_lr0.1_bs2_schlinear"
    spec = {"epochs": 1, "lr": 0.1, "batch_size": 2, "lr_schedule": "linear"}
    write_pin("toy", "W", "S", spec, [1, 2], root=root)  # baselines are the pinned ones
    for seed, acc in ((1, 0.5), (2, 0.7)):
        write_result("toy", "weak_artifacts", w, seed, {"weak_acc": acc}, root)
    write_result("toy", "train_ceiling", s, 1, {"strong_gt_acc": 0.8}, root)
    run = {"transfer_acc": 0.7, "pgr": None, "strong_model": "S", "weak_model": "W"}
    run["w2s_source"] = "local run"
    write_result("toy", "mine", "S_W_e1_lr0.1_bs2_schlinear", 1, run, root)
    write_result("toy", "mine", "S_W_e1_lr0.1_bs2_schlinear", 2, {**run, "transfer_acc": 0.75}, root)
    write_result("toy", "theirs", "S_W_e1_lr0.1_bs2_schlinear", 1, {"transfer_acc": 0.65}, root)
    write_result("toy", "mine", "S_W_e9_lr0.1_bs2_schlinear", 1, run, root)  # e9: still the pinned baselines
    orphan_run = {**run, "weak_model": "X"}
    write_result("toy", "mine", "S_X_e1_lr0.1_bs2_schlinear", 1, orphan_run, root)  # pair X->S: nothing built
    write_result("toy", "broken", "S_W_e1_lr0.1_bs2_schlinear", 1, {"note": "no transfer"}, root)
    rows = leaderboard_rows("toy", root)
    assert [(r["idea"], r["key"][2:6]) for r in rows] == [
        ("mine", "W_e1"), ("mine", "W_e9"), ("theirs", "W_e1"), ("broken", "W_e1"), ("mine", "X_e1")
    ]
    mine, e9, theirs, broken, orphan = rows
    assert e9["pgr_mean"] == pytest.approx(0.5) and e9["weak_key"] == w  # its own epochs change nothing
    assert mine["pgr_mean"] == pytest.approx(0.625) and mine["source"] == "local run"
    assert mine["pgr_sem"] == pytest.approx(0.125) and mine["n_seeds"] == 2  # pgrs 0.5, 0.75
    assert theirs["pgr_mean"] == pytest.approx(0.25) and theirs["source"] == "imported"
    assert theirs["pgr_sem"] is None and theirs["pgr_ci95"] is None  # one seed: spread unknown
    assert broken["pgr_mean"] is None and broken["n_seeds"] == 0 and "no seed" in broken["pgr_reason"]
    assert orphan["pgr_mean"] is None and "no weak baseline" in orphan["pgr_reason"]
    monkeypatch.setenv("W2S_WORKSPACE", str(workspace))
    assert run_cli("leaderboard", "--dataset", "toy") == 0
    out = capsys.readouterr().out
    assert "PGR n/a: no weak baseline" in out and "local run" in out
