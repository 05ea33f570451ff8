"""The runner: baselines built once and reused, scored idea results cached, failing seeds isolated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.common.errors import UserError
from core.results.cache import (
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    ceiling_key,
    result_key,
    result_path,
    weak_artifacts_key,
)
from core.run.resolve import prepare_config
from core.run.runner import run_seed
from tests.conftest import make_dataset, run_cli
from tests.tiny_w2s import fake_baselines, tiny_config

FLAKY = '''
from core.run import experiment

def run_experiment(cfg):
    if cfg.seed == 43:
        raise RuntimeError("seed 43 exploded on purpose")
    data = experiment.load_label_free(cfg)
    return {"test_predictions": {r["id"]: 0.9 for r in data.test}, "note": "constant"}
'''


def _idea(ws: Path, name: str, code: str) -> None:
    folder = ws / "ideas" / name
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(code)


def test_run_seed_builds_baselines_once_and_caches_scored_results(workspace):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config())  # what the seed really runs with (registry defaults filled in)
    result = run_seed("vanilla_w2s", cfg)
    path = Path(result["path"])
    assert path == result_path("tiny", "vanilla_w2s", result_key(cfg), 42)
    stored = json.loads(path.read_text())
    weak_file = result_path("tiny", WEAK_ARTIFACTS, weak_artifacts_key(cfg), 42)
    ceiling_file = result_path("tiny", TRAIN_CEILING, ceiling_key(cfg), 42)
    weak, ceiling = json.loads(weak_file.read_text()), json.loads(ceiling_file.read_text())
    assert stored["weak_acc"] == weak["weak_acc"] and stored["strong_acc"] == ceiling["strong_acc"]
    assert stored["fixed_weak_baseline"] == weak["weak_acc"]
    assert stored["fixed_baseline_seeds"] == {"weak": 1, "strong": 1}
    final = stored["detailed_eval"]["test"]["final_eval"]
    assert stored["transfer_acc"] == final["accuracy"] and final["total"] == 10
    assert set(final["per_subset"]) == {"c"}
    gap = ceiling["strong_acc"] - weak["weak_acc"]
    if gap > 0:
        assert stored["pgr"] == pytest.approx((stored["transfer_acc"] - weak["weak_acc"]) / gap)
    else:
        assert stored["pgr"] is None and stored["pgr_na_reason"]
    assert stored["w2s_source"] == "local run" and stored["idea_name"] == "vanilla_w2s"
    assert "test_predictions" not in stored

    stamps = (weak_file.stat().st_mtime_ns, ceiling_file.stat().st_mtime_ns)
    lines: list[str] = []
    # one short epoch leaves the tiny weak model unsure: keep every row not exactly at 0.5
    confident = cfg.replace(extra={"conf_low": 0.5, "conf_high": 0.5})
    other = run_seed("train_only_on_confident_labels", confident, log=lines.append)
    assert (weak_file.stat().st_mtime_ns, ceiling_file.stat().st_mtime_ns) == stamps  # reused
    assert any("cached" in ln for ln in lines)
    assert other["hyperparam_config_key"].endswith("_conf_high0.5_conf_low0.5")
    fs = other["filter_stats"]
    assert fs["kept_samples"] + fs["filtered_samples"] == fs["total_samples"] == 12
    assert other["n_train"] == fs["kept_samples"]


def test_bad_predictions_are_refused_and_nothing_is_cached(workspace):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config())
    fake_baselines(workspace, cfg, [42])
    _idea(workspace, "liar", "def run_experiment(cfg):\n    return {'test_predictions': {'nope': 1.0}}\n")
    with pytest.raises(UserError, match="predictions rejected"):
        run_seed("liar", cfg)
    assert not result_path("tiny", "liar", result_key(cfg), 42).exists()


def test_one_failing_seed_does_not_stop_the_others(workspace, capsys):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config())
    fake_baselines(workspace, cfg, [43, 44], weak_acc=0.6, strong_acc=0.9)
    _idea(workspace, "flaky", FLAKY)
    code = run_cli("run", "--idea", "flaky", "--seeds", "43,44", "--data-dir", "data/tiny", "--local",
                   "--weak-model", "demo-weak", "--strong-model", "demo-strong", "--epochs", "1",
                   "--batch-size", "8", "--lr", "0.001", "--max-ctx", "64")
    out = capsys.readouterr().out
    assert code == 1
    key = result_key(cfg)
    # seed 43 fails first; seed 44 still runs and is cached (a process per seed keeps them apart)
    stored = json.loads(result_path("tiny", "flaky", key, 44).read_text())
    assert stored["note"] == "constant" and stored["fixed_baseline_seeds"] == {"weak": 2, "strong": 2}
    assert stored["pgr"] == pytest.approx((stored["transfer_acc"] - 0.6) / 0.3)
    assert not result_path("tiny", "flaky", key, 43).exists()
    failed = [ln for ln in out.splitlines() if ln.startswith("seed 43: failed (exit 1)")]
    assert failed and "exploded on purpose" in failed[0]
    log = Path(failed[0].rsplit("log: ", 1)[1])
    assert log.is_file() and "exploded on purpose" in log.read_text()
    assert (log.parent / "exit_status").read_text().strip() == "1"
    assert json.loads((log.parent / "result.json").read_text())["ok"] is False
    assert "Leaderboard" in out and "flaky" in out.split("Leaderboard", 1)[1]


def test_run_cli_user_errors(workspace, capsys):
    assert run_cli("run", "--idea", "vanilla_w2s", "--data-dir", "data/none") == 1
    assert "no test.jsonl" in capsys.readouterr().err
    make_dataset(workspace)
    assert run_cli("run", "--idea", "vanilla_w2s", "--data-dir", "data/tiny", "--seeds", "4x") == 1
    assert "--seeds" in capsys.readouterr().err
    assert run_cli("run", "--idea", "ghost", "--data-dir", "data/tiny") == 1
    assert "unknown idea" in capsys.readouterr().err


def test_seeds_become_service_jobs(workspace):
    from core.app.seed_runs import run_as_jobs
    from core.control.jobs import get_job

    make_dataset(workspace)  # the submit path checks the dataset exists before queueing anything
    cfg = prepare_config(tiny_config())
    runs = run_as_jobs("vanilla_w2s", cfg, [42, 43], gpus=0, wait=False)
    assert [r.seed for r in runs] == [42, 43]
    for run in runs:
        job = get_job(run.job_id)
        assert job["kind"] == "idea_run" and job["state"] == "queued"
        assert job["meta"]["seed"] == run.seed and job["meta"]["idea"] == "vanilla_w2s"
        cmd = json.loads((Path(job["run_dir"]) / "command.json").read_text())["command"]
        assert cmd[1:5] == ["-m", "core.run.runner", "--idea", "vanilla_w2s"]
        assert json.loads(cmd[cmd.index("--config-json") + 1])["seed"] == run.seed
        assert run.log_path == Path(job["run_dir"]) / "stdout.log"
