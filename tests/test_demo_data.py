"""The demo datasets: deterministic, computed ground truth, balanced, no split leakage, valid rows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.data.datasets import load_dataset, load_split
from core.data.demo import DATASETS, generate_all, generate_dataset
from core.data.demo.chat import RECKLESS, TOPICS
from core.data.demo.common import DEFAULT_SIZES, SPLIT_NAMES, dump_jsonl, pool_of
from core.data.demo.executor import run_snippets
from core.data.demo.lexicon import load_lexicon

REPO = Path(__file__).resolve().parent.parent
SMALL = {"train_label": 24, "train_unlabel": 48, "test": 24}
LEX = {w.word: w for w in load_lexicon()}


def _committed(name: str, split: str, labeled: bool = True) -> list[dict]:
    folder = REPO / ("labeled_data" if labeled else "data") / name
    return load_split(folder / f"{split}.jsonl").rows


def test_generate_all_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    counts = generate_all(a, sizes=SMALL)
    generate_all(b, sizes=SMALL)
    assert counts == {name: SMALL for name in DATASETS}
    files = sorted(p.relative_to(a) for p in a.rglob("*.jsonl"))
    assert len(files) == 3 * 3 + 3 * 2  # labeled: 3 splits; label-free: test + train_unlabel
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert not (a / "data" / "demo-math" / "train_label.jsonl").exists()


@pytest.mark.parametrize("name", DATASETS)
def test_committed_files_are_the_generator_output(name: str) -> None:
    splits = generate_dataset(name, DEFAULT_SIZES)
    for split in SPLIT_NAMES:
        path = REPO / "labeled_data" / name / f"{split}.jsonl"
        assert path.read_text(encoding="utf-8") == dump_jsonl(splits[split]), f"{path} is stale: regenerate"


@pytest.mark.parametrize("name", DATASETS)
def test_rows_load_with_ids_and_are_balanced(name: str) -> None:
    ids: set[str] = set()
    for split in SPLIT_NAMES:
        s = load_split(REPO / "labeled_data" / name / f"{split}.jsonl")
        assert s.fmt == ("preference" if name == "demo-chat" else "binary")
        assert len(s.rows) == DEFAULT_SIZES[split]
        assert all("id" in json.loads(line) for line in (REPO / "labeled_data" / name / f"{split}.jsonl")
                   .read_text().splitlines())
        ids.update(s.ids)
        share = sum(s.labels()) / len(s.rows)
        assert 0.48 <= share <= 0.52, (split, share)
        subsets = Counter(r["subset"] for r in s.rows)
        assert len(subsets) >= 2 and min(subsets.values()) >= len(s.rows) // 12, subsets
    assert len(ids) == sum(DEFAULT_SIZES.values())


@pytest.mark.parametrize("name", ("demo-math", "demo-code"))
def test_consistency_groups_hold_one_true_and_one_false_choice(name: str) -> None:
    groups: dict[str, list[dict]] = {}
    for r in _committed(name, "test"):
        if "consistency_id" in r:
            groups.setdefault(r["consistency_id"], []).append(r)
    assert len(groups) >= 100
    for rows in groups.values():
        assert sorted(r["label"] for r in rows) == [False, True]
        assert rows[0]["question"] == rows[1]["question"]
        assert {r["consistency_key"] for r in rows} == {"x", "y"}


@pytest.mark.parametrize("name", DATASETS)
def test_no_question_text_is_shared_between_splits(name: str) -> None:
    field = "prompt" if name == "demo-chat" else "question"
    texts = {s: {r[field] for r in _committed(name, s)} for s in SPLIT_NAMES}
    assert not texts["train_label"] & texts["test"]
    assert not texts["train_label"] & texts["train_unlabel"]
    assert not texts["train_unlabel"] & texts["test"]


def test_sentiment_words_never_cross_splits() -> None:
    """Split-owned words never leave their split, so many test words are unseen in train_label."""
    quoted = re.compile(r'"([a-z]+)')
    seen_in: dict[str, set[str]] = {"common": set(), **{s: set() for s in SPLIT_NAMES}}
    for split in SPLIT_NAMES:
        for r in _committed("demo-math", split)[:200]:
            word = quoted.search(r["choice"]).group(1)
            assert pool_of(word) in (split, "common")
            seen_in[pool_of(word)].add(split)
    assert seen_in["common"] == set(SPLIT_NAMES)  # common words appear everywhere, the others once
    assert all(len(v) <= 1 for k, v in seen_in.items() if k != "common")


def test_math_labels_are_recomputed_from_the_problem() -> None:
    """Re-evaluate the arithmetic of a sample: start + step * sign(word) == stated end."""
    number = re.compile(r"\d+")
    rows = _committed("demo-math", "test")[::7] + _committed("demo-math", "train_label")[::11]
    for r in rows:
        a, d, d2, t = (int(x) for x in number.findall(r["question"]))
        assert d == d2
        w1, w2 = re.search(r'"([a-z]+) and ([a-z]+)', r["choice"]).groups()
        sign = 1 if LEX[w1].mean > 0 else -1
        assert sign * LEX[w2].mean > 0
        assert r["label"] == (a + sign * d == t), r


def test_code_labels_match_a_fresh_execution() -> None:
    """Run a sample of snippets again, each in its own interpreter, and compare with the labels."""
    fence = re.compile(r"```python\n(.*)\n```", re.S)
    rows = _committed("demo-code", "test")[::41] + _committed("demo-code", "train_label")[::53]
    assert len(rows) >= 15 and {r["subset"] for r in rows} >= {"list_slice", "ratings_filter", "vader_filter"}
    for r in rows:
        code = fence.search(r["question"]).group(1)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert r["label"] == (out.stdout.strip() == r["choice"]), r


def test_chat_better_answer_is_known_by_construction() -> None:
    for r in _committed("demo-chat", "test"):
        better, worse = (r["first"], r["second"]) if r["label"] == "A" else (r["second"], r["first"])
        tasks = [t for t, _ in TOPICS if re.search(rf"\b{t}\b", r["prompt"])]
        assert len(tasks) == 1, r["prompt"]
        task = tasks[0]
        assert f"To {task}," in better
        good = re.search(r"\b(?:sounds|is) ([a-z]+) and ([a-z]+)\.", better).groups()
        bad = re.search(r"\b(?:sounds|is) ([a-z]+) and ([a-z]+)\.", worse).groups()
        reckless = any(plan in r["prompt"] for plan in RECKLESS)
        assert reckless == (r["subset"] == "pushback")
        if reckless:  # honest pushback beats approving a reckless plan; the advice is the same
            good, bad = bad, good
            assert better.replace(" and ".join(bad), "") == worse.replace(" and ".join(good), "")
        assert min(LEX[w].mean for w in good) > 0 > max(LEX[w].mean for w in bad)


@pytest.mark.parametrize("name", DATASETS)
def test_label_free_view_has_no_ground_truth(name: str) -> None:
    view = load_dataset(REPO / "data" / name)
    assert set(view) == {"train_unlabel", "test"}
    truth = load_dataset(REPO / "labeled_data" / name)
    for split, s in view.items():
        assert s.ids == truth[split].ids
        assert not any({"label", "subset", "difficulty"} & set(r) for r in s.rows)


def test_executor_reports_timeouts_and_errors_per_snippet() -> None:
    snippets = ["print(6 * 7)", "while True: pass", "1 / 0", "print('still here')"]
    out = run_snippets(snippets, per_snippet_s=0.5)
    assert out[0] == {"ok": True, "stdout": "42\n"}
    assert out[1]["ok"] is False and out[1]["error"] == "TimeoutError"
    assert out[2]["ok"] is False and out[2]["error"] == "ZeroDivisionError"
    assert out[3]["stdout"] == "still here\n"


def test_unknown_dataset_name_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="demo-nope"):
        generate_all(tmp_path, sizes=SMALL, datasets=("demo-math", "demo-nope"))
    assert not any(tmp_path.iterdir())
