"""RunConfig is the one source of defaults; CLI flags are generated from it; extras pass through."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from core.common.config import RunConfig, add_run_config_arguments, parse_unknown_flags, run_config_from_args


def parse(*argv: str) -> RunConfig:
    parser = argparse.ArgumentParser()
    add_run_config_arguments(parser)
    ns, unknown = parser.parse_known_args(list(argv))
    return run_config_from_args(ns, unknown)


def test_defaults_follow_the_reference() -> None:
    cfg = RunConfig()
    assert (cfg.weak_model, cfg.strong_model) == ("Qwen/Qwen1.5-0.5B-Chat", "Qwen/Qwen3-4B-Base")
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.lr_schedule) == (32, 5, 1e-4, "linear")
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.max_ctx) == (32, 32, 0.0, 8192)
    assert cfg.train_size is None and cfg.load_in_4bit is False and cfg.backend == "auto"


def test_every_field_has_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_run_config_arguments(parser)
    flags = {a for action in parser._actions for a in action.option_strings}
    for f in fields(RunConfig):
        assert "--" + f.name.replace("_", "-") in flags


def test_flags_are_typed_and_unset_flags_keep_defaults() -> None:
    cfg = parse("--epochs", "2", "--lr", "3e-4", "--train-size", "100", "--load-in-4bit", "true")
    assert cfg.epochs == 2 and cfg.lr == pytest.approx(3e-4) and cfg.train_size == 100 and cfg.load_in_4bit
    assert cfg.batch_size == 32
    assert parse("--train-size", "none").train_size is None


def test_choices_are_enforced() -> None:
    with pytest.raises(SystemExit):
        parse("--lr-schedule", "exponential")


def test_unknown_flags_and_extra_go_to_extra() -> None:
    cfg = parse("--conf-low", "0.3", "--extra", "conf_high=0.8", "--use-thing")
    assert cfg.extra == {"conf_low": 0.3, "conf_high": 0.8, "use_thing": True}
    assert parse_unknown_flags(["--name=abc"]) == {"name": "abc"}


def test_from_dict_round_trip_and_unknown_keys() -> None:
    cfg = RunConfig(epochs=3, extra={"a": 1})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict({"epochs": 1, "mystery": 2}).extra == {"mystery": 2}
    assert RunConfig(data_dir="data/demo-math/").dataset == "demo-math"


# ------------------------------------------------------------------------- one validation of RunConfig


def test_validation_names_the_field_and_refuses_bad_values() -> None:
    from core.common.config import ConfigError, validate_run_config

    bad = {"epochs": 0, "lr": -1.0, "batch_size": 0, "train_size": 0, "test_size": -3, "warmup_ratio": 1.5,
           "top_p": 0.0, "lora_dropout": -0.1, "max_ctx": 0, "num_samples": 0}
    for name, value in bad.items():
        with pytest.raises(ConfigError, match=rf"^{name}: must be") as info:
            validate_run_config(RunConfig(**{name: value}), check_data=False)
        assert info.value.field == name
    for name, value, says in (("lr", "abc", "expected a number"), ("lr", float("nan"), "finite"),
                              ("lr", float("inf"), "finite"), ("epochs", 1.5, "whole number"),
                              ("epochs", True, "whole number"), ("lr_schedule", "exp", "expected one of"),
                              ("load_in_4bit", "yes", "true or false"), ("strong_model", "", "name a model"),
                              ("extra", [1], "an object")):
        with pytest.raises(ConfigError, match=rf"^{name}: .*{says}"):
            validate_run_config(RunConfig(**{name: value}), check_data=False)
    assert validate_run_config(RunConfig(lr=1), check_data=False).lr == 1.0  # a JSON int is a fine float
    assert validate_run_config(RunConfig(weak_model=None, train_size=None, temperature=0.0), check_data=False)


def test_unknown_keys_are_refused_when_strict() -> None:
    from core.common.config import ConfigError

    with pytest.raises(ConfigError, match="mystery: unknown RunConfig field"):
        RunConfig.from_dict({"epochs": 1, "mystery": 2}, strict=True)
    assert RunConfig.from_dict({"extra": {"mystery": 2}}, strict=True).extra == {"mystery": 2}


def test_data_dir_must_be_a_prepared_dataset_under_data(tmp_path) -> None:
    from core.common.config import ConfigError, check_data_dir

    (tmp_path / "data" / "ok").mkdir(parents=True)
    (tmp_path / "data" / "ok" / "test.jsonl").write_text("{}\n")
    (tmp_path / "data" / "empty").mkdir()
    (tmp_path / "labeled_data" / "ok").mkdir(parents=True)
    (tmp_path / "labeled_data" / "ok" / "test.jsonl").write_text("{}\n")
    assert check_data_dir("data/ok/", tmp_path) == tmp_path / "data" / "ok"
    assert check_data_dir(str(tmp_path / "data" / "ok"), tmp_path) == tmp_path / "data" / "ok"
    for bad, says in (("../../etc", "under"), ("data/../labeled_data/ok", "labeled_data"),
                      ("labeled_data/ok", "labeled_data"), ("data", "under"), ("/etc", "under"),
                      ("data/empty", "no test.jsonl"), ("", "give a dataset")):
        with pytest.raises(ConfigError, match=says):
            check_data_dir(bad, tmp_path)
