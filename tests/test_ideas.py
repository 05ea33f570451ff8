"""Idea discovery and creation: `w2s ideas list` / `w2s ideas new`, workspace overrides, DEFAULTS
(read from the source: trusted processes never run idea code)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.common.errors import UserError
from core.results.cache import result_key
from core.run.ideas import check_idea, find_idea, idea_defaults, list_ideas, load_idea, static_defaults
from core.run.resolve import prepare_config
from tests.conftest import run_cli
from tests.tiny_w2s import tiny_config


def test_packaged_ideas_listed_without_template(workspace, capsys):
    names = {i.name: i for i in list_ideas()}
    assert {"vanilla_w2s", "train_only_on_confident_labels"} <= set(names)
    assert "TEMPLATE" not in names
    assert names["vanilla_w2s"].source == "packaged"
    assert run_cli("ideas", "list", "--json") == 0
    listed = {i["name"] for i in json.loads(capsys.readouterr().out)}
    assert "vanilla_w2s" in listed and "TEMPLATE" not in listed


def test_new_idea_copies_template_and_is_listed(workspace, capsys):
    assert run_cli("ideas", "new", "my_idea") == 0
    assert "ideas/my_idea" in capsys.readouterr().out
    run_py = workspace / "ideas" / "my_idea" / "run.py"
    assert run_py.is_file()
    assert "run_experiment" in run_py.read_text()
    assert "# my_idea" in (workspace / "ideas" / "my_idea" / "README.md").read_text()
    info = {i.name: i for i in list_ideas()}["my_idea"]
    assert info.source == "workspace"
    assert callable(load_idea("my_idea").run_experiment)
    # a second time is refused and leaves the folder as it was
    run_py.write_text(run_py.read_text() + "\n# edited\n")
    assert run_cli("ideas", "new", "my_idea") == 1
    assert "already exists" in capsys.readouterr().err
    assert run_py.read_text().endswith("# edited\n")


@pytest.mark.parametrize("bad", ["My_Idea", "../evil", "1idea", "has-dash", "", "weak_artifacts",
                                 "train_ceiling", "vanilla_w2s", "a" * 65])
def test_new_idea_refuses_bad_names(workspace, bad, capsys):
    assert run_cli("ideas", "new", bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("w2s: error:") and "Traceback" not in err
    assert not (workspace / "ideas").exists() or not any((workspace / "ideas").iterdir())


def test_workspace_idea_overrides_packaged(workspace):
    folder = workspace / "ideas" / "vanilla_w2s"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text('"""my fork"""\nMARK = 7\ndef run_experiment(cfg):\n    return {}\n')
    info = {i.name: i for i in list_ideas()}["vanilla_w2s"]
    assert info.source == "workspace" and info.description == "my fork"
    assert load_idea("vanilla_w2s").MARK == 7


def test_unknown_idea_and_idea_without_function(workspace):
    with pytest.raises(UserError, match="unknown idea"):
        load_idea("nope")
    folder = workspace / "ideas" / "broken"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text("x = 1\n")
    with pytest.raises(UserError, match="run_experiment"):
        load_idea("broken")


def test_confident_defaults_enter_the_key_like_the_reference(workspace):
    module = load_idea("train_only_on_confident_labels")
    assert idea_defaults(module) == {"conf_low": 0.25, "conf_high": 0.75}
    cfg = prepare_config(tiny_config(), idea_defaults(module))
    assert result_key(cfg).endswith("_conf_high0.75_conf_low0.25")
    user = prepare_config(tiny_config(extra={"conf_low": 0.3}), idea_defaults(module))
    assert user.extra == {"conf_low": 0.3, "conf_high": 0.75}
    assert result_key(user).endswith("_conf_high0.75_conf_low0.3")


def test_confident_mask_drops_the_uncertain_band():
    module = load_idea("train_only_on_confident_labels")
    p = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    assert module.confident_mask(p, 0.25, 0.75).tolist() == [True, False, False, False, True]


def test_demo_pair_replaces_default_models(workspace):
    from core.common.config import RunConfig

    cfg = prepare_config(RunConfig(data_dir="data/demo-math"), cuda=True)
    assert (cfg.weak_model, cfg.strong_model) == ("demo-weak", "demo-strong")
    gpu = prepare_config(RunConfig(data_dir="data/math"), cuda=True)
    assert gpu.strong_model == RunConfig().strong_model
    assert prepare_config(cfg) == cfg  # idempotent: the child process recomputes it


def test_defaults_are_read_from_source_without_running_the_idea(workspace):
    for name in ("vanilla_w2s", "train_only_on_confident_labels"):
        assert static_defaults(find_idea(name)) == idea_defaults(load_idea(name))
    folder = workspace / "ideas" / "noisy"
    folder.mkdir(parents=True)
    marker = workspace / "ran"
    (folder / "run.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nDEFAULTS: dict = {{'k': 1, 'name': 'a'}}\n"
        "def run_experiment(cfg):\n    return {}\n"
    )
    from core.app.seed_runs import run_config

    info, defaults = check_idea("noisy")
    assert defaults == {"k": 1, "name": "a"} and info.path == folder
    cfg = run_config("noisy", tiny_config(), as_jobs=False, cuda=False)
    assert cfg.extra == {"k": 1, "name": "a"}
    assert not marker.exists()  # neither check_idea nor `w2s run`'s config step imported it


@pytest.mark.parametrize(("code", "message"), [
    ("DEFAULTS = dict(a=1)\ndef run_experiment(cfg):\n    pass\n", "literal dict"),
    ("DEFAULTS = [1]\ndef run_experiment(cfg):\n    pass\n", "dict with string keys"),
    ("def run_experiment(cfg)\n    pass\n", "syntax error"),
    ("x = 1\n", "run_experiment"),
])
def test_check_idea_refuses_what_it_cannot_read_statically(workspace, code, message):
    folder = workspace / "ideas" / "odd"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(code)
    with pytest.raises(UserError, match=message):
        check_idea("odd")
