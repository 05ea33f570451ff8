"""The runner: baselines built once and reused, the idea run in the sandbox, its predictions scored by
the referee (never a number the idea computed), failing seeds isolated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.app.seed_job import run_seed
from core.common.errors import UserError
from core.referee.service import rescore
from core.results.cache import (
    TRAIN_CEILING,
    WEAK_ARTIFACTS,
    ceiling_key,
    read_predictions,
    result_key,
    result_path,
    weak_artifacts_key,
)
from core.run.resolve import prepare_config
from tests.conftest import make_dataset, run_cli
from tests.tiny_w2s import fake_baselines, tiny_config

FLAKY = '''
from core.run import experiment

def run_experiment(cfg):
    if cfg.seed == 43:
        raise RuntimeError("seed 43 exploded on purpose")
    data = experiment.load_label_free(cfg)
    return {"test_predictions": {r["id"]: 0.9 for r in data.test}, "note": "constant", "transfer_acc": 1.0}
'''

# Numbers about labels are not the idea's to know: inside a run the SDK hands it none.
PEEK = '''
from core.run import experiment

def run_experiment(cfg):
    weak = experiment.weak_artifacts(cfg)
    experiment.log(f"peek: {sorted(weak)} ceiling={experiment.ceiling_result(cfg)}")
    data = experiment.load_label_free(cfg)
    p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    experiment.log(f"peek: {len(p1)} weak labels, rows {sorted(data.test[0])}")
    return {"test_predictions": {r["id"]: 0.5 for r in data.test}}
'''


def _idea(ws: Path, name: str, code: str) -> None:
    folder = ws / "ideas" / name
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(code)


def test_run_seed_builds_baselines_once_and_the_referee_scores(workspace):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config())  # what the seed really runs with (registry defaults filled in)
    result = run_seed("vanilla_w2s", cfg, run_id="run-a")
    path = Path(result["path"])
    assert path == result_path("tiny", "vanilla_w2s", result_key(cfg), 42)
    stored = json.loads(path.read_text())
    assert stored["w2s_source"] == "referee" and stored["run_id"] == "run-a"
    assert stored["idea_name"] == "vanilla_w2s" and "test_predictions" not in stored
    weak_file = result_path("tiny", WEAK_ARTIFACTS, weak_artifacts_key(cfg), 42)
    ceiling_file = result_path("tiny", TRAIN_CEILING, ceiling_key(cfg), 42)
    weak, ceiling = json.loads(weak_file.read_text()), json.loads(ceiling_file.read_text())
    assert stored["fixed_weak_baseline"] == weak["weak_acc"] and stored["strong_acc"] == ceiling["strong_acc"]
    # the predictions are kept beside the result and rescore to exactly what was stored
    kept = read_predictions("tiny", "vanilla_w2s", result_key(cfg), 42)
    assert kept is not None and len(kept) == 10
    again = rescore("tiny", kept)
    assert (again["public_acc"], again["private_acc"]) == (stored["public_acc"], stored["private_acc"])
    assert stored["transfer_acc"] == stored["private_acc"]

    stamps = (weak_file.stat().st_mtime_ns, ceiling_file.stat().st_mtime_ns)
    lines: list[str] = []
    # one short epoch leaves the tiny weak model unsure: keep every row not exactly at 0.5
    confident = cfg.replace(extra={"conf_low": 0.5, "conf_high": 0.5})
    run_dir = workspace / "runs" / "run-b"
    other = run_seed("train_only_on_confident_labels", confident, log=lines.append, run_id="run-b", run_dir=run_dir)
    assert (weak_file.stat().st_mtime_ns, ceiling_file.stat().st_mtime_ns) == stamps  # reused
    assert any("cached" in ln for ln in lines)
    assert any("confident labels: kept" in ln for ln in lines)  # the idea's log lines are relayed
    assert other["hyperparam_config_key"].endswith("_conf_high0.5_conf_low0.5")
    # the idea's own numbers stay in its output folder, never in the ranked result
    assert "filter_stats" not in json.loads(Path(other["path"]).read_text())
    notes = json.loads((run_dir / "idea_out" / "idea_output.json").read_text())
    fs = notes["filter_stats"]
    assert fs["kept_samples"] + fs["filtered_samples"] == fs["total_samples"] == 12
    assert notes["n_train"] == fs["kept_samples"]


def test_inside_a_run_the_sdk_gives_no_label_statistics(workspace):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config())
    fake_baselines(workspace, cfg, [42])
    _idea(workspace, "peek", PEEK)
    lines: list[str] = []
    run_seed("peek", cfg, log=lines.append, run_id="peek-1")
    peeks = [ln for ln in lines if ln.startswith("peek:")]
    assert peeks[0] == "peek: ['ids', 'soft_labels', 'weak_model'] ceiling=None"
    assert peeks[1].startswith("peek: 12 weak labels") and "label" not in peeks[1].split("rows", 1)[1]


def test_bad_predictions_are_refused_and_nothing_is_cached(workspace):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config())
    fake_baselines(workspace, cfg, [42])
    _idea(workspace, "liar", "def run_experiment(cfg):\n    return {'test_predictions': {'nope': 1.0}}\n")
    with pytest.raises(UserError, match="predictions rejected"):
        run_seed("liar", cfg)
    assert not result_path("tiny", "liar", result_key(cfg), 42).exists()
    _idea(workspace, "nan", "def run_experiment(cfg):\n    return {'test_predictions': {'x': float('nan')}}\n")
    with pytest.raises(UserError, match="not a probability"):
        run_seed("nan", cfg)


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
    # seed 43 fails first; seed 44 still runs and is scored by the referee (a process per seed)
    stored = json.loads(result_path("tiny", "flaky", key, 44).read_text())
    assert stored["w2s_source"] == "referee" and "note" not in stored
    assert stored["transfer_acc"] == stored["private_acc"] != 1.0  # never the number the idea claimed
    assert stored["pgr"] == pytest.approx((stored["transfer_acc"] - 0.6) / 0.3)
    assert stored["run_id"].startswith("local-") and stored["run_id"].endswith("-flaky-s44")
    assert not result_path("tiny", "flaky", key, 43).exists()
    failed = [ln for ln in out.splitlines() if ln.startswith("seed 43: failed (exit 1)")]
    assert failed and "exploded on purpose" in failed[0]
    log = Path(failed[0].rsplit("log: ", 1)[1])
    assert log.is_file() and "exploded on purpose" in log.read_text()
    assert (log.parent / "exit_status").read_text().strip() == "1"
    assert json.loads((log.parent / "result.json").read_text())["ok"] is False
    ok = json.loads((result_path("tiny", "flaky", key, 44).parent.parent.parent.parent / "runs"
                     / stored["run_id"] / "result.json").read_text())
    assert ok["ok"] is True and ok["state"] == "scored" and ok["public_acc"] == round(ok["public_acc"], 2)
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
        assert cmd[1:5] == ["-m", "core.app.seed_job", "--idea", "vanilla_w2s"]
        assert json.loads(cmd[cmd.index("--config-json") + 1])["seed"] == run.seed
        assert run.log_path == Path(job["run_dir"]) / "stdout.log"


def test_a_size_capped_run_is_not_scored_or_cached(workspace):
    make_dataset(workspace)
    cfg = prepare_config(tiny_config(train_size=6, test_size=5))
    _idea(workspace, "smoke", FLAKY)
    run_dir = workspace / "runs" / "smoke-1"
    result = run_seed("smoke", cfg, run_id="smoke-1", run_dir=run_dir)
    assert result["scored"] is False and "size-capped" in result["note"]
    assert not (workspace / "cache_results" / "tiny_smoke").exists()
    assert len(json.loads((run_dir / "idea_out" / "predictions.json").read_text())) == 5  # kept in the run folder
