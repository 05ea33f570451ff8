"""Accuracy metrics and seed statistics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from core.results.metrics import compute_metrics, seed_stats


def test_compute_metrics_counts_and_distributions():
    pred = [1, 0, 1, 1, 0]
    gold = [1, 1, 1, 0, 0]
    subsets = ["a", "a", "b", "b", "b"]
    m = compute_metrics(pred, gold, subsets, "binary")
    assert m["correct"] == 3 and m["total"] == 5
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["pred_distribution"] == {"0": 2, "1": 3}
    assert m["label_distribution"] == {"0": 2, "1": 3}
    assert m["format"] == "binary"
    a, b = m["per_subset"]["a"], m["per_subset"]["b"]
    assert (a["correct"], a["total"], a["accuracy"]) == (1, 2, 0.5)
    assert (b["correct"], b["total"]) == (2, 3)
    assert b["accuracy"] == pytest.approx(2 / 3)
    assert b["pred_distribution"] == {"0": 1, "1": 2}
    assert b["label_distribution"] == {"0": 2, "1": 1}


def test_compute_metrics_without_subsets_and_empty():
    m = compute_metrics([0, 0], [0, 1])
    assert m["per_subset"] == {} and m["accuracy"] == 0.5
    assert m["pred_distribution"] == {"0": 2}
    empty = compute_metrics([], [])
    assert empty["accuracy"] is None and empty["total"] == 0


def test_compute_metrics_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        compute_metrics([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="subset"):
        compute_metrics([0, 1], [0, 1], ["a"])


def test_seed_stats_hand_values():
    s = seed_stats([1.0, 2.0, 3.0, 4.0])
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(2.5)
    assert s["sd"] == pytest.approx(math.sqrt(5 / 3))  # n-1 denominator
    assert s["sem"] == pytest.approx(math.sqrt(5 / 3) / 2)
    # Student t, 3 degrees of freedom: t_0.975 = 3.182446305...
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert s["ci95"][0] == pytest.approx(2.5 - half, abs=1e-9)
    assert s["ci95"][1] == pytest.approx(2.5 + half, abs=1e-9)


def test_seed_stats_two_values_and_degenerate_cases():
    s = seed_stats([0.30, 0.40])
    # sd = 0.0707107, sem = 0.05, t_0.975(1) = 12.7062047
    assert s["sd"] == pytest.approx(0.07071067811865474)
    assert s["sem"] == pytest.approx(0.05)
    assert s["ci95"][1] - s["mean"] == pytest.approx(12.706204736174698 * 0.05)
    one = seed_stats([0.7])
    assert one == {"n": 1, "mean": 0.7, "sd": None, "sem": None, "ci95": None}
    none = seed_stats([None, float("nan")])
    assert none["n"] == 0 and none["mean"] is None
    assert seed_stats([0.5, None, 0.5])["sd"] == 0.0
