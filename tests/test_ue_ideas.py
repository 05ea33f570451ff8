"""ue_zeroshot and ue_fewshot end to end: a real seed run through the sandbox and the referee, on a
tiny binary dataset with consistency groups (the demo models; fake cached baselines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.app.seed_job import run_seed
from core.common.config import RunConfig
from core.results.cache import read_predictions, result_key, result_path
from core.run import experiment
from core.run.resolve import prepare_config
from tests.conftest import make_dataset
from tests.tiny_w2s import fake_baselines, tiny_config

GOOD = ["wonderful", "delightful", "lovely", "excellent", "brilliant", "cheerful", "splendid", "perfect",
        "pleasant", "superb", "joyful", "marvelous"]
BAD = ["awful", "horrible", "dreadful", "miserable", "nasty", "hateful", "rotten", "cruel", "gloomy",
       "tragic", "hostile", "terrible"]


def grouped_splits() -> dict[str, list[dict]]:
    """Each question offers a positive and a negative review; the positive one is true."""
    def rows(split: str, pairs: list[tuple[str, str]]) -> list[dict]:
        out = []
        for g, (good, bad) in enumerate(pairs):
            for k, (word, label) in enumerate(((good, True), (bad, False))[:: 1 if g % 2 else -1]):
                out.append({"id": f"{split}-{g}-{k}", "question": "The rating went up after one review. Which?",
                            "choice": f"A review that said: {word}.", "label": label, "subset": "s",
                            "consistency_id": f"{split}-{g}", "consistency_key": "xy"[k]})
        return out

    pairs = list(zip(GOOD, BAD, strict=True))
    return {"train_label": rows("tl", pairs[:4]), "train_unlabel": rows("tu", pairs[4:10]),
            "test": rows("te", pairs[10:])}


def test_ue_zeroshot_runs_in_the_sandbox_and_the_referee_scores_it(workspace: Path) -> None:
    make_dataset(workspace, splits=grouped_splits())
    cfg = prepare_config(tiny_config(), defaults={})
    fake_baselines(workspace, cfg, [42])
    run_dir = workspace / "runs" / "ue-1"
    lines: list[str] = []
    result = run_seed("ue_zeroshot", cfg, log=lines.append, run_id="ue-1", run_dir=run_dir)
    stored = json.loads(Path(result["path"]).read_text())
    assert Path(result["path"]) == result_path("tiny", "ue_zeroshot", result_key(cfg), 42)
    assert stored["w2s_source"] == "referee" and stored["idea_name"] == "ue_zeroshot"
    assert result_key(cfg).endswith("_e1_lr0.001_bs8_schlinear")  # no idea parameters: the reference's key shape
    kept = read_predictions("tiny", "ue_zeroshot", result_key(cfg), 42)
    assert kept is not None and len(kept) == 4
    assert any("elicit zeroshot" in ln for ln in lines)
    notes = json.loads((run_dir / "idea_out" / "idea_output.json").read_text())
    (stage,) = notes["labeling_logs"]
    assert stage["stage"] == "zeroshot" and stage["consistency"] == 1.0 and stage["class_1_share"] == 0.5
    assert notes["n_train"] == 12 and notes["labeling_time"] > 0


def test_ue_fewshot_rounds_and_demo_labels_from_the_weak_model(workspace: Path) -> None:
    make_dataset(workspace, splits=grouped_splits())
    cfg = prepare_config(tiny_config(train_size=8, test_size=4, extra={"num_demos": "2-4", "demo_labels": "weak"}))
    fake_baselines(workspace, cfg, [42])
    run_dir = workspace / "runs" / "ue-2"
    result = run_seed("ue_fewshot", cfg, run_id="ue-2", run_dir=run_dir)
    assert result["scored"] is False  # size-capped smoke run: predictions kept, nothing ranked
    notes = json.loads((run_dir / "idea_out" / "idea_output.json").read_text())
    assert [s["stage"] for s in notes["labeling_logs"]] == ["zeroshot", "fewshot_2", "fewshot_4"]
    assert all(s["consistency"] == 1.0 for s in notes["labeling_logs"])
    assert notes["balance_info"] == {"balanced": False} and notes["n_train"] == 8
    assert len(json.loads((run_dir / "idea_out" / "predictions.json").read_text())) == 4


def test_elicited_labels_on_the_pretrained_encoder_beat_chance(workspace: Path) -> None:
    """Called directly (no sandbox): MiniLM's zero-shot labels on the grouped reviews, by id."""
    splits = make_dataset(workspace, splits=grouped_splits())
    cfg = prepare_config(RunConfig(data_dir="data/tiny", seed=42))
    data = experiment.load_label_free(cfg)
    got = experiment.elicit_labels(cfg, data)
    truth = np.array([int(r["label"]) for r in splits["train_unlabel"]])
    assert [r["id"] for r in splits["train_unlabel"]] == data.train_ids
    assert (got.labels == truth).mean() >= 0.75
    assert got.labels.reshape(-1, 2).sum(1).tolist() == [1] * 6  # one true review per question
    assert got.p1.shape == (12,) and len(got.rows) == len(got.targets) == 12
