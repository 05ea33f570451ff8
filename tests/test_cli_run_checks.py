"""``w2s run`` checks what it will do before anything starts: no prefix matching, unknown flags named
with the closest valid one, ``--dry-run`` that trains nothing, defaults that say what trains, cached
seeds kept (``--rerun`` replaces them) and a per-seed line whose numbers add up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.app.run_checks import seed_key, seed_line
from core.common.config import RunConfig
from core.common.errors import UserError
from core.control.jobs import list_jobs
from core.results.cache import read_result, result_path, write_result
from core.run.resolve import prepare_config
from tests.conftest import make_dataset, run_cli
from tui import data

REFEREE_ROW = {  # a seed as the referee writes it (core.referee.service._final_locked), numbers made up
    "transfer_acc": 0.888, "public_acc": 0.9, "private_acc": 0.888, "pgr": 0.41304347826086957,
    "weak_acc": 0.838, "strong_acc": 0.959, "fixed_weak_baseline": 0.838, "fixed_strong_baseline": 0.959,
    "baselines": {"n_weak": 3, "n_strong": 3}, "w2s_source": "referee", "cached_at": "2026-11-27 10:00:00",
}


@pytest.fixture
def ws(workspace: Path) -> Path:
    make_dataset(workspace, "tiny")
    return workspace


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


@pytest.mark.parametrize(("flags", "says"), [
    (["--epoch", "2"], "--epoch: unknown flag"),
    (["--dry-rnu"], "did you mean --dry-run?"),
    (["--conf-lo", "0.3"], "not a parameter of idea 'vanilla_w2s' (its DEFAULTS declare: none)"),
    (["--extra", "bogus=1"], "--bogus: unknown flag"),
])
def test_unknown_flags_are_refused_before_anything_starts(ws, capsys, flags, says):
    start = time.monotonic()
    assert run_cli("run", "--idea", "vanilla_w2s", "--data-dir", "data/tiny", "--local", *flags) == 1
    err = _err(capsys)
    assert err.startswith("w2s: error: ") and says in err, err
    if flags[0] == "--epoch":
        assert err.endswith("did you mean --epochs?"), err  # never silently --epochs (prefix matching)
    assert time.monotonic() - start < 10 and list_jobs() == [] and not (ws / "runs").exists()


def test_parameters_the_idea_declares_or_reads_are_accepted(ws, capsys):
    # conf_low: train_only_on_confident_labels' DEFAULTS; log_every: read by the engine by name
    code = run_cli("run", "--idea", "train_only_on_confident_labels", "--data-dir", "data/tiny", "--dry-run",
                   "--conf-low", "0.3", "--log-every", "5", "--json")
    assert code == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["extra"] == {"conf_low": 0.3, "conf_high": 0.75, "log_every": 5}
    assert out["key"].endswith("_conf_high0.75_conf_low0.3_log_every5")


def test_dry_run_shows_what_trains_and_runs_nothing(ws, capsys):
    assert run_cli("run", "--idea", "vanilla_w2s", "--data-dir", "data/tiny", "--seeds", "42,43", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "nothing is run" in out and "seed 42: would run" in out and "seed 43: would run" in out
    shown = dict(line.split(None, 1) for line in out.splitlines()[1:] if line.startswith("  ") and ":" not in line)
    assert shown["weak_model"] == "'demo-weak'" and shown["strong_model"] == "'demo-strong'"
    assert shown["epochs"] == "1" and shown["lr"] == "0.001" and shown["batch_size"] == "8"
    assert "cache key: demo_strong_demo_weak_e1_lr0.001_bs8" in out
    assert list_jobs() == [] and not (ws / "runs").exists()


def test_help_shows_the_defaults_that_train_here(ws, capsys):
    with pytest.raises(SystemExit) as done:
        run_cli("run", "--help")
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--weak-model RC_WEAK_MODEL default: 'demo-weak' on data/demo-math here (RunConfig: " \
           "'Qwen/Qwen1.5-0.5B-Chat')" in out
    assert "--epochs RC_EPOCHS default: 1 on data/demo-math here (RunConfig: 5)" in out
    assert "--lr RC_LR default: 0.001 on data/demo-math here (RunConfig: 0.0001)" in out
    assert "--batch-size RC_BATCH_SIZE default: 8 on data/demo-math here (RunConfig: 32)" in out


def test_no_verb_takes_an_abbreviated_flag(ws, capsys):
    with pytest.raises(SystemExit) as done:
        run_cli("jobs", "list", "--lim", "5")
    assert done.value.code == 2 and "unrecognized arguments: --lim 5" in capsys.readouterr().err


def test_a_cached_seed_is_shown_not_overwritten_and_rerun_says_it_replaces(ws, capsys):
    cfg = prepare_config(RunConfig(data_dir="data/tiny"), cuda=False)
    key = seed_key("vanilla_w2s", cfg)
    path = write_result("tiny", "vanilla_w2s", key, 42, {**REFEREE_ROW, "seed": 42})
    before = path.read_bytes()
    assert run_cli("run", "--idea", "vanilla_w2s", "--data-dir", "data/tiny", "--seeds", "42") == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("seed 42:"))
    assert line == ("seed 42: referee · transfer 0.888 (private holdout) · PGR 0.413 = (0.888 - 0.838) / "
                    "(0.959 - 0.838) · fixed baselines weak 0.838, ceiling 0.959 over 3/3 seeds · cached "
                    "2026-11-27 10:00:00, not run again (--rerun replaces it)")
    assert path.read_bytes() == before and not (ws / "runs").exists()
    assert "0.41304347826086957" not in out
    # a dry run with --rerun says it would run; the cache is untouched either way
    assert run_cli("run", "--idea", "vanilla_w2s", "--data-dir", "data/tiny", "--seeds", "42,43", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "PGR 0.413" in out and "· cached" in out and "seed 43: would run" in out
    assert read_result("tiny", "vanilla_w2s", key, 42)["pgr"] == REFEREE_ROW["pgr"]


def test_the_seed_line_adds_up():
    line = seed_line(7, {**REFEREE_ROW, "pgr": (0.888 - 0.838) / (0.959 - 0.838)})
    transfer, weak, ceiling = 0.888, 0.838, 0.959
    shown = float(line.split("PGR ", 1)[1].split(" ", 1)[0])
    assert shown == round((transfer - weak) / (ceiling - weak), 3)
    assert "PGR n/a (ceiling <= weak)" in seed_line(7, {"transfer_acc": 0.5, "pgr": None,
                                                       "pgr_reason": "ceiling <= weak"})


def test_tui_refuses_typos_and_cached_seeds_unless_rerun(ws):
    with pytest.raises(UserError, match=r"options: --epoch: unknown flag.*did you mean --epochs\?"):
        data.parse_run_options("--epoch 2", "vanilla_w2s")
    cfg = prepare_config(RunConfig(data_dir="data/tiny"), cuda=False)
    write_result("tiny", "vanilla_w2s", seed_key("vanilla_w2s", cfg), 42, {**REFEREE_ROW, "seed": 42})
    with pytest.raises(UserError, match=r"seeds: 42 already cached .*--rerun"):
        data.submit_runs("vanilla_w2s", "tiny", [42, 43], "local", "")
    assert list_jobs() == []
    ids = data.submit_runs("vanilla_w2s", "tiny", [42, 43], "local", "--rerun")
    assert len(ids) == 2


def test_jobs_show_records_what_trains(ws, capsys):
    ids = data.submit_runs("vanilla_w2s", "tiny", [44], "local", "")
    assert run_cli("jobs", "show", ids[0]) == 0
    config = json.loads(capsys.readouterr().out)["meta"]["config"]
    assert (config["weak_model"], config["strong_model"]) == ("demo-weak", "demo-strong")
    assert (config["epochs"], config["lr"], config["batch_size"]) == (1, 0.001, 8)
    assert not result_path("tiny", "vanilla_w2s", seed_key("vanilla_w2s", RunConfig.from_dict(config)), 44).exists()
