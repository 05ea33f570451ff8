"""Scoring predictions against ground truth in labeled_data/, aligned by row id."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.datasets import row_id
from core.results.scoring import score_predictions, to_class
from tests.conftest import make_dataset


@pytest.fixture
def binary_ds(workspace: Path) -> list[dict]:
    rows = [
        {"id": "r0", "question": "1+1?", "choice": "2", "label": True, "subset": "easy"},
        {"id": "r1", "question": "1+1?", "choice": "3", "label": False, "subset": "easy"},
        {"id": "r2", "question": "2*3?", "choice": "6", "label": True, "subset": "hard"},
        {"question": "2*3?", "choice": "5", "label": False, "subset": "hard"},  # content-hash id
    ]
    make_dataset(workspace, "tiny", {"test": rows}, view=False)
    return rows


def test_scores_by_id_whatever_the_order(binary_ds):
    hashed = row_id(binary_ds[3])
    preds = {hashed: 0.2, "r2": 0.9, "r1": 0.7, "r0": True}
    m = score_predictions("tiny", preds)
    assert (m["correct"], m["total"]) == (3, 4)
    assert m["accuracy"] == 0.75
    assert m["per_subset"]["easy"]["correct"] == 1 and m["per_subset"]["hard"]["correct"] == 2
    assert m["pred_distribution"] == {"0": 1, "1": 3}
    assert m["label_distribution"] == {"0": 2, "1": 2}
    assert m["coverage"] == 1.0 and m["n_split_rows"] == 4 and m["format"] == "binary"
    reordered = score_predictions("tiny", dict(reversed(list(preds.items()))))
    assert reordered["correct"] == m["correct"]


def test_list_predictions_need_matching_ids(binary_ds):
    m = score_predictions("tiny", [1, 0], ids=["r0", "r1"])
    assert m["accuracy"] == 1.0 and m["coverage"] == 0.5
    with pytest.raises(ValueError, match="3 predictions for 2 ids"):
        score_predictions("tiny", [1, 0, 1], ids=["r0", "r1"])
    with pytest.raises(ValueError, match="needs the matching list of ids"):
        score_predictions("tiny", [1, 0])


def test_ids_restrict_a_mapping(binary_ds):
    m = score_predictions("tiny", {"r0": 1, "r1": 1, "r2": 0}, ids=["r0"])
    assert m["total"] == 1 and m["accuracy"] == 1.0
    with pytest.raises(ValueError, match="have no prediction"):
        score_predictions("tiny", {"r0": 1}, ids=["r0", "r1"])


def test_unknown_ids_are_refused_without_revealing_labels(binary_ds):
    with pytest.raises(ValueError) as err:
        score_predictions("tiny", {"r0": 1, "nope": 0, "nada": 1})
    msg = str(err.value)
    assert "2 prediction ids" in msg and "'nope'" in msg
    assert "True" not in msg and "False" not in msg and "label" not in msg


def test_threshold_and_value_forms():
    assert to_class(0.5) == 0 and to_class(0.5000001) == 1
    assert to_class(True) == 1 and to_class("A") == 0 and to_class("B") == 1
    assert to_class([0.3, 0.7]) == 1 and to_class((0.5, 0.5)) == 0
    for bad in (2, "C", 1.5, float("nan"), None):
        with pytest.raises(ValueError):
            to_class(bad)


def test_bad_prediction_value_names_the_row(binary_ds):
    with pytest.raises(ValueError, match="id 'r1': integer prediction 7"):
        score_predictions("tiny", {"r0": 1, "r1": 7})


def test_preference_rows_and_missing_dataset(workspace: Path):
    rows = [
        {"id": "p0", "prompt": "hi", "first": "hello!", "second": "go away", "label": "A", "subset": "tone"},
        {"id": "p1", "prompt": "hi", "first": "meh", "second": "hi there!", "label": "B", "subset": "tone"},
    ]
    make_dataset(workspace, "prefs", {"test": rows}, view=False)
    m = score_predictions("prefs", {"p0": "A", "p1": 0.1})
    assert m["correct"] == 1 and m["format"] == "preference"
    with pytest.raises(ValueError, match="no ground truth"):
        score_predictions("absent", {"x": 1})
    with pytest.raises(ValueError, match="invalid dataset name"):
        score_predictions("../prefs", {"p0": 1})
    with pytest.raises(ValueError, match="unknown split"):
        score_predictions("prefs", {"p0": 1}, split="secret")
