"""The label-free steps of unsupervised elicitation on small hand-made rows: flipped pairs, the
consistency fix, confidence balancing and demonstration sampling (core.run.elicitation)."""

from __future__ import annotations

import numpy as np
import pytest

from core.run import elicitation as ue


def binary_rows() -> list[dict]:
    # q1: three candidates, x and z say the same thing (same key); q2: two candidates; a loner
    return [
        {"id": "a", "question": "q1", "choice": "4", "consistency_id": "q1", "consistency_key": "x"},
        {"id": "b", "question": "q1", "choice": "5", "consistency_id": "q1", "consistency_key": "y"},
        {"id": "c", "question": "q1", "choice": "four", "consistency_id": "q1", "consistency_key": "x"},
        {"id": "d", "question": "q2", "choice": "7", "consistency_id": "q2", "consistency_key": "u"},
        {"id": "e", "question": "q2", "choice": "8", "consistency_id": "q2", "consistency_key": "v"},
        {"id": "f", "question": "q3", "choice": "9"},
    ]


def test_groups_follow_consistency_id_and_a_row_without_one_is_alone() -> None:
    assert ue.consistency_groups(binary_rows()) == [[0, 1, 2], [3, 4], [5]]


def test_consistency_fix_gives_the_best_key_class_1_and_every_other_key_class_0() -> None:
    rows = binary_rows()
    p1 = np.array([0.3, 0.6, 0.9, 0.8, 0.7, 0.4])
    labels = ue.consistency_fix(rows, ue.consistency_groups(rows), p1)
    # q1: key x holds the highest P (0.9 on c), so a and c (same key) are 1 and b is 0
    # q2: both looked true; only the likelier (d) stays 1; the loner keeps its own prediction
    assert labels.tolist() == [1, 0, 1, 1, 0, 0]
    groups = ue.consistency_groups(rows)
    assert ue.consistency_rate(rows, groups, (p1 > 0.5).astype(int)) == pytest.approx(1 / 3)
    assert ue.consistency_rate(rows, groups, labels) == 1.0


def test_rows_without_a_key_are_keys_of_their_own() -> None:
    """The reference's math-equivalence fallback reads ``answer``, which our label-free view strips."""
    rows = [{"question": "q", "choice": c, "consistency_id": "g"} for c in ("1", "1.0", "2")]
    labels = ue.consistency_fix(rows, ue.consistency_groups(rows), np.array([0.9, 0.8, 0.1]))
    assert labels.tolist() == [1, 0, 0]  # exactly one true answer per question


def test_flipped_pairs_are_fixed_to_opposite_classes() -> None:
    pairs = [{"id": "p", "prompt": "hi", "first": "kind", "second": "rude"},
             {"id": "q", "prompt": "yo", "first": "meh", "second": "great"}]
    work, originals = ue.augment_flipped(pairs)
    assert originals == [0, 2] and len(work) == 4
    assert (work[1]["first"], work[1]["second"]) == ("rude", "kind")
    assert [r["consistency_key"] for r in work] == ["A>B", "B>A", "A>B", "B>A"]
    groups = ue.consistency_groups(work)
    assert groups == [[0, 1], [2, 3]]
    # inconsistent raw scores (both orders prefer B for the first pair): the likelier reading wins
    p1 = np.array([0.7, 0.6, 0.2, 0.9])
    labels = ue.consistency_fix(work, groups, p1)
    assert labels.tolist() == [1, 0, 0, 1]
    assert ue.consistency_rate(work, groups, labels) == 1.0


def test_binary_balancing_drops_the_least_confident_of_the_majority() -> None:
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    conf = np.array([0.9, 0.55, 0.8, 0.6, 0.95, 0.7, 0.9, 0.9, 0.9, 0.9])
    b = ue.balance_by_confidence("binary", labels, conf)
    # majority 6 vs 4: keep int(4 * 1.1) = 4 of class 1, the four most confident
    assert b.keep.tolist() == [0, 2, 4, 5, 6, 7, 8, 9]
    assert not b.flip.any() and b.info["removed"] == 2
    assert (b.info["final_count_0"], b.info["final_count_1"]) == (4, 4)
    # within the threshold nothing moves; one empty class cannot be balanced against
    near = ue.balance_by_confidence("binary", np.array([1] * 11 + [0] * 10), np.ones(21))
    assert len(near.keep) == 21 and not near.info["balanced"]
    empty = ue.balance_by_confidence("binary", np.ones(5, dtype=int), np.ones(5))
    assert len(empty.keep) == 5 and "empty" in empty.info["note"]


def test_preference_balancing_flips_instead_of_dropping() -> None:
    labels = np.array([0, 0, 1, 0, 0, 0, 0, 1])
    b = ue.balance_by_confidence("preference", labels, np.full(8, 0.8))
    assert len(b.keep) == 8  # nothing lost
    assert b.flip.tolist() == [True, True, False, False, False, False, False, False]  # (6 - 2) // 2 first ones
    assert (b.info["final_count_0"], b.info["final_count_1"]) == (4, 4)
    flipped = ue.flip_pair({"prompt": "p", "first": "a", "second": "b"})
    assert (flipped["first"], flipped["second"]) == ("b", "a")


def test_confidences_are_the_probability_of_the_assigned_label() -> None:
    np.testing.assert_allclose(ue.confidences(np.array([0.8, 0.3, 0.3]), np.array([1, 0, 1])), [0.8, 0.7, 0.3])


def test_demos_are_balanced_outside_the_own_group_and_seeded() -> None:
    rows = [{"consistency_id": f"g{i // 2}"} for i in range(20)]
    groups = ue.consistency_groups(rows)
    labels = np.array([1, 0] * 10)
    picks = ue.sample_demos(labels, groups, 4, seed=3)
    assert len(picks) == 20
    for i, demos in enumerate(picks):
        idx = [j for j, _ in demos]
        assert len(idx) == len(set(idx)) == 4
        assert all(j // 2 != i // 2 for j in idx)  # never the row itself or its group mate
        assert sorted(lab for _, lab in demos) == [0, 0, 1, 1]
        assert all(labels[j] == lab for j, lab in demos)
    assert ue.sample_demos(labels, groups, 4, seed=3) == picks
    assert ue.sample_demos(labels, groups, 4, seed=4) != picks
    # one class only: k demonstrations anyway; an odd k fills the remainder
    ones = ue.sample_demos(np.ones(20, dtype=int), groups, 3, seed=0)
    assert all(len(d) == 3 for d in ones)
    assert all(len(d) == 3 for d in ue.sample_demos(labels, groups, 3, seed=0))
    # more demonstrations than candidates: as many as there are
    assert all(len(d) == 2 for d in ue.sample_demos(labels[:4], ue.consistency_groups(rows[:4]), 16, seed=0))


@pytest.mark.parametrize(("value", "expected"),
                         [("2-4-16", [2, 4, 16]), ("2_4_16", [2, 4, 16]), ("2,4", [2, 4]), (4, [4]), ([8], [8])])
def test_demo_schedule(value, expected) -> None:
    assert ue.parse_schedule(value) == expected


@pytest.mark.parametrize("bad", ["", "two", "0-4", 0])
def test_bad_demo_schedule_is_one_line(bad) -> None:
    with pytest.raises(ValueError, match="num_demos"):
        ue.parse_schedule(bad)


def test_the_command_lines_2_4_16_is_refused_with_a_hint() -> None:
    from core.common.config import parse_scalar

    value = parse_scalar("2_4_16")  # what `--num-demos 2_4_16` becomes
    with pytest.raises(ValueError, match="2416 demonstrations.*2-4-16"):
        ue.parse_schedule(value)
    assert ue.parse_schedule(parse_scalar("2-4-16")) == [2, 4, 16]
