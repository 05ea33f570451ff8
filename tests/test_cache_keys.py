"""Cache keys, byte for byte, against every key folder of the reference archive.

Each key is rebuilt with ``core.results.cache`` from the hyperparameters its seed files record. What the
files do not record is stated here: the lr schedule of idea runs (the reference only ran
``linear``, which the weak-artifact files do record), three critic parameters, and for the three
empty folders (no files at all) the one parameter that differs from the reference defaults.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import PurePosixPath

from core.common.config import RunConfig
from core.results.cache import (
    ceiling_key,
    parse_key,
    read_result,
    result_key,
    training_suffix_of,
    weak_artifacts_key,
    write_result,
)

# Critic parameters that are part of its key but absent from its seed files.
CRITIC_UNRECORDED = {"grpo_kl_penalty": 0.02, "grpo_max_steps": 50, "sft_critic_num_samples": 3000}
ZERO_SHOT = "Qwen_Qwen3_4B_Base_e5_lr0.0001_bs32_schlinear_task_type"
EMPTY_FOLDERS = {
    # (group, key) -> how the key is made, from RunConfig defaults (= the reference's models)
    ("math_ue_zeroshot", ZERO_SHOT + "binary"): lambda: result_key(
        RunConfig(weak_model=None, extra={"task_type": "binary"})
    ),
    ("chat_ue_zeroshot", ZERO_SHOT + "preference"): lambda: result_key(
        RunConfig(weak_model=None, extra={"task_type": "preference"})
    ),
    ("chat_weak_artifacts", "Qwen_Qwen1_5_0_5B_Chat_e5_lr0.0001_bs4_schlinear"): lambda: weak_artifacts_key(
        RunConfig(batch_size=4)
    ),
}


def _key_folders(archive) -> tuple[dict[tuple[str, str], list[dict]], set[tuple[str, str]]]:
    """(group, key) -> parsed seed files, for the top-level tree and the stale nested one."""
    files: dict[tuple[str, str], list[dict]] = {}
    folders: set[tuple[str, str]] = set()
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            parts = PurePosixPath(m.name).parts[1:]
            if parts and parts[0] == "cache_results":
                parts = parts[1:]
            if m.isdir() and len(parts) == 2:
                folders.add((parts[0], parts[1]))
            if m.isfile() and len(parts) == 3:
                files.setdefault((parts[0], parts[1]), []).append(json.loads(tf.extractfile(m).read()))
    return files, folders


def _config_from_seed(idea: str, d: dict) -> RunConfig:
    c = d.get("config", {})
    extra = {}
    if "confidence_thresholds" in d:
        thresholds = d["confidence_thresholds"]
        extra = {"conf_high": thresholds["high"], "conf_low": thresholds["low"]}
    if idea == "critic":
        extra = {"grpo_lr": c["grpo_lr"], **CRITIC_UNRECORDED}
    return RunConfig(
        strong_model=d.get("strong_model") or RunConfig.strong_model,
        weak_model=d.get("weak_model"),
        epochs=c.get("epochs", c.get("sft_epochs", d.get("epochs"))),
        lr=c.get("lr", d.get("lr")),
        batch_size=c.get("batch_size", d.get("batch_size")),
        lr_schedule=d.get("scheduler", "linear"),
        loss=c.get("loss", "xent"),
        extra=extra,
    )


def _rebuild(group: str, d: dict) -> str:
    idea = group.split("_", 1)[1]
    cfg = _config_from_seed(idea, d)
    if idea == "weak_artifacts":
        return weak_artifacts_key(cfg)
    if idea == "train_ceiling":
        return ceiling_key(cfg)
    return result_key(cfg)


def test_every_reference_key_folder_is_rebuilt_byte_for_byte(reference_archive):
    files, folders = _key_folders(reference_archive)
    assert len(folders) == 27 and len(files) == 24  # 21 top-level + 6 nested; 3 empty
    checked = set()
    for (group, key), seeds in files.items():
        for d in seeds:
            assert d["hyperparam_config_key"] == key
            assert _rebuild(group, d) == key, (group, d.get("seed"))
        checked.add((group, key))
    for (group, key), make in EMPTY_FOLDERS.items():
        assert (group, key) not in files
        assert make() == key
        checked.add((group, key))
    assert checked == folders


def test_parse_key_splits_every_reference_key(reference_archive):
    _, folders = _key_folders(reference_archive)
    for _, key in folders:
        parts = parse_key(key)
        assert parts is not None, key
        loss = "" if parts.loss == "xent" else f"_loss{parts.loss}"
        assert f"{parts.models}_{parts.training}{loss}{parts.extra_suffix}" == key
    critic = parse_key(
        "Qwen_Qwen3_4B_Base_Qwen_Qwen1_5_0_5B_Chat_e5_lr0.0001_bs32_schlinear"
        "_grpo_kl_penalty0.02_grpo_lr1e-05_grpo_max_steps50_sft_critic_num_samples3000"
    )
    assert critic.models == "Qwen_Qwen3_4B_Base_Qwen_Qwen1_5_0_5B_Chat"
    assert (critic.epochs, critic.lr, critic.batch_size, critic.schedule) == (5, "0.0001", 32, "linear")
    assert critic.extra_suffix.startswith("_grpo_kl_penalty0.02")


def test_key_details_loss_schedule_and_extra_order():
    cfg = RunConfig(lr=1e-5, lr_schedule="constant_with_warmup", loss="logconf", extra={"b": 2, "a": "x"})
    key = result_key(cfg)
    assert key == (
        "Qwen_Qwen3_4B_Base_Qwen_Qwen1_5_0_5B_Chat_e5_lr1e-05_bs32_schconstant_with_warmup_losslogconf_ax_b2"
    )
    parts = parse_key(key)
    assert (parts.schedule, parts.loss, parts.extra_suffix, parts.lr) == (
        "constant_with_warmup",
        "logconf",
        "_ax_b2",
        "1e-05",
    )
    assert parts.training == training_suffix_of(cfg)
    assert ceiling_key(cfg) == "Qwen_Qwen3_4B_Base_e5_lr1e-05_bs32_schconstant_with_warmup"
    assert parse_key("no_hyperparameters_here") is None


def test_reads_never_create_folders(tmp_path):
    root = tmp_path / "cache_results"
    assert read_result("math", "vanilla_w2s", "k", 42, root) is None
    assert not root.exists()
    write_result("math", "vanilla_w2s", "k", 42, {"transfer_acc": 0.5}, root)
    assert read_result("math", "vanilla_w2s", "k", 42, root) == {"transfer_acc": 0.5}
    assert [p.name for p in (root / "math_vanilla_w2s" / "k").iterdir()] == ["seed_42.json"]


def test_sizes_join_the_key_as_the_reference_does():
    """The reference adds ``train_size``/``test_size`` to a run's extra parameters (sorted with them)."""
    full = RunConfig(extra={"conf_low": 0.25})
    smoke = full.replace(train_size=50, test_size=20)
    assert result_key(smoke) == result_key(full) + "_test_size20_train_size50"
    assert result_key(full.replace(extra={"z": 1}, train_size=8)) == result_key(full.replace(extra={})) + "_train_size8_z1"
    # producers: a smoke build has keys of its own; full-size keys are unchanged
    assert weak_artifacts_key(smoke) == "Qwen_Qwen1_5_0_5B_Chat_e5_lr0.0001_bs32_schlinear_test_size20_train_size50"
    assert ceiling_key(smoke.replace(test_size=None)) == "Qwen_Qwen3_4B_Base_e5_lr0.0001_bs32_schlinear_train_size50"
    assert weak_artifacts_key(full) == "Qwen_Qwen1_5_0_5B_Chat_e5_lr0.0001_bs32_schlinear"
    # an idea parameter named like a size never makes a smoke key look full size
    sneaky = full.replace(extra={"train_size": None}, train_size=5)
    assert result_key(sneaky).endswith("_train_size5")
    parts = parse_key(result_key(smoke))
    assert parts.sizes == {"test_size": 20, "train_size": 50} and parts.size_capped
    assert not parse_key(result_key(full)).size_capped


def test_speed_only_extras_stay_out_of_the_key():
    """``extra.compile`` changes speed, not results: with it off the run finds the same rows."""
    plain = RunConfig(extra={"task_type": "binary"})
    assert result_key(plain.replace(extra={"task_type": "binary", "compile": "off"})) == result_key(plain)
    assert result_key(plain.replace(extra={"task_type": "preference"})) != result_key(plain)
