"""``w2s data check`` / ``prepare``: every bad input gives file:line: field: message, exit 1."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from core.data.check import check_file, check_path
from core.data.datasets import load_split, row_id
from core.data.prepare import prepare_dataset
from tests.conftest import make_dataset, run_cli

GOOD_BINARY = {"question": "2+2?", "choice": "4", "label": True, "subset": "arith"}


def write_lines(path: Path, lines: list[str | dict], raw_prefix: bytes = b"", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(x if isinstance(x, str) else json.dumps(x) for x in lines) + newline
    path.write_bytes(raw_prefix + text.encode("utf-8"))
    return path


def binary_row(i: int, label: bool = True, **kw) -> dict:
    return {"question": f"question {i}", "choice": f"choice {i}", "label": label, "subset": "s", **kw}


def labeled_folder(root: Path, n: int = 6) -> Path:
    """``root/labeled_data/ds``: three valid binary splits of ``n`` rows, no label-free view yet."""
    offsets = {"train_label": 0, "train_unlabel": 100, "test": 200}
    make_dataset(root, "ds", {s: [binary_row(o + i, i % 2 == 0) for i in range(n)] for s, o in offsets.items()},
                 view=False)
    return root / "labeled_data" / "ds"


def messages(problems) -> list[str]:
    return [str(p) for p in problems]


def test_good_folder_passes(tmp_path: Path, capsys) -> None:
    folder = labeled_folder(tmp_path)
    assert check_path(folder) == []
    assert run_cli("data", "check", str(folder)) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ("{not json", "json", "invalid JSON"),
        (json.dumps({"choice": "x", "label": True, "subset": "s"}), "question", "missing"),
        (json.dumps({"question": 3, "choice": "x", "label": True, "subset": "s"}), "question", "expected a string"),
        (json.dumps({"question": "q", "choice": "x", "label": "yes", "subset": "s"}), "label", "true or false"),
        (json.dumps({"question": "q", "choice": "x", "label": True, "subset": 4}), "subset", "expected a string"),
        (json.dumps({"question": "q", "choice": "x", "label": True}), "subset", "missing"),
        (json.dumps({"question": "q", "choice": "x", "label": True, "subset": "s", "consistency_id": True}),
         "consistency_id", "expected"),
        ("[1, 2]", "row", "JSON object"),
    ],
)
def test_bad_line_is_reported_with_file_line_field(tmp_path: Path, line: str, field: str, fragment: str) -> None:
    path = write_lines(tmp_path / "test.jsonl", [binary_row(1), line, binary_row(2)])
    problems = check_file(path)
    assert len(problems) == 1, messages(problems)
    text = str(problems[0])
    assert text.startswith(f"{path}:2: {field}: "), text
    assert fragment in text


def test_preference_label_outside_allowed_set(tmp_path: Path) -> None:
    rows = [{"prompt": "p", "first": "a", "second": f"b{i}", "label": lab, "subset": "s"}
            for i, lab in enumerate(["A", "C", "B"])]
    path = write_lines(tmp_path / "test.jsonl", rows)
    assert messages(check_file(path)) == [f'{path}:2: label: must be "A" or "B", got "C"']


def test_cli_prints_one_line_per_problem_and_exits_1(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "test.jsonl", [binary_row(1), "{oops", binary_row(2, label="no")])
    assert run_cli("data", "check", str(path)) == 1
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines == [f"{path}:2: json: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
                     f'{path}:3: label: must be true or false, got "no"']
    assert "Traceback" not in out.err


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text("")
    assert messages(check_file(path)) == [f"{path}:1: file: empty file (no rows)"]


def test_duplicate_ids_explicit_and_content_hash(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "test.jsonl",
        [binary_row(1, id="a"), binary_row(2, id="a"), binary_row(3), binary_row(3, label=False)],
    )
    found = messages(check_file(path))
    assert found == [
        f"{path}:2: id: duplicate id 'a' (first on line 1)",
        f"{path}:4: id: duplicate id '{row_id(binary_row(3))}' (first on line 3)",
    ]


def test_mixed_formats_in_one_file(tmp_path: Path) -> None:
    pref = {"prompt": "p", "first": "a", "second": "b", "label": "A", "subset": "s"}
    path = write_lines(tmp_path / "test.jsonl", [binary_row(1), pref])
    assert messages(check_file(path)) == [f"{path}:2: row: preference row in a binary file (mixed formats)"]


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "test.jsonl", [binary_row(1), binary_row(2)], raw_prefix=b"\xef\xbb\xbf",
                       newline="\r\n")
    assert check_file(path) == []
    split = load_split(path)
    assert [r["question"] for r in split.rows] == ["question 1", "question 2"]


def test_folder_missing_split_and_format_disagreement(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    write_lines(folder / "test.jsonl", [binary_row(1)])
    write_lines(folder / "train_label.jsonl", [{"prompt": "p", "first": "a", "second": "b", "label": "B",
                                               "subset": "s"}])
    found = messages(check_path(folder))
    assert f"{folder / 'train_unlabel.jsonl'}:0: file: missing split file" in found
    assert any("split files disagree on the row format" in m for m in found)


def test_partially_labelled_file_is_an_error(tmp_path: Path) -> None:
    unlabeled = {"question": "q9", "choice": "c9"}
    path = write_lines(tmp_path / "test.jsonl", [binary_row(1), unlabeled])
    assert messages(check_file(path)) == [f"{path}:2: label: some rows have labels and some do not"]


def test_large_file_is_streamed(tmp_path: Path) -> None:
    """A 100 MB file is checked without holding it in memory."""
    path = tmp_path / "test.jsonl"
    filler = "x" * 900
    with open(path, "w") as fh:
        i = 0
        while fh.tell() < 100 * 1024 * 1024:
            fh.write(json.dumps({"question": f"q{i} {filler}", "choice": "c", "label": bool(i % 2),
                                 "subset": "s"}) + "\n")
            i += 1
    tracemalloc.start()
    problems = check_file(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problems == []
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_prepare_strips_labels_and_keeps_ids(tmp_path: Path) -> None:
    src = labeled_folder(tmp_path)
    dst = tmp_path / "data" / "ds"
    assert run_cli("data", "prepare", str(src), str(dst)) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["test.jsonl", "train_unlabel.jsonl"]
    for split in ("test", "train_unlabel"):
        labeled = load_split(src / f"{split}.jsonl")
        free = [json.loads(line) for line in (dst / f"{split}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in free] == labeled.ids
        for row in free:
            assert not {"label", "subset", "difficulty", "answer"} & row.keys()
    assert check_path(dst) == []


def test_prepare_refuses_bad_source_and_writes_nothing(tmp_path: Path, capsys) -> None:
    src = labeled_folder(tmp_path)
    write_lines(src / "test.jsonl", [binary_row(1), "{broken"])
    dst = tmp_path / "data" / "ds"
    assert run_cli("data", "prepare", str(src), str(dst)) == 1
    err = capsys.readouterr().err
    assert err.startswith("w2s: error: ") and f"{src / 'test.jsonl'}:2: json:" in err
    assert not dst.exists()


def test_prepare_ids_match_between_views(tmp_path: Path) -> None:
    src = labeled_folder(tmp_path)
    dst = tmp_path / "data" / "ds"
    prepare_dataset(src, dst)
    assert load_split(dst / "test.jsonl").ids == load_split(src / "test.jsonl").ids


# ------------------------------------------------------------------ prepare never destroys ground truth


def test_prepare_refuses_labeled_data_and_folders_holding_labels(tmp_path: Path, capsys) -> None:
    src = labeled_folder(tmp_path)
    other = tmp_path / "labeled_data" / "other"
    write_lines(other / "train_label.jsonl", [binary_row(1), binary_row(2, False)])
    before = (other / "train_label.jsonl").read_bytes()
    assert run_cli("data", "prepare", str(src), str(other)) == 1  # the demo-math -> demo-code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refused" in err and "labeled_data/" in err
    assert (other / "train_label.jsonl").read_bytes() == before and sorted(p.name for p in other.iterdir()) == [
        "train_label.jsonl"]
    holder = tmp_path / "data" / "holder"  # outside labeled_data/, but a split in it carries labels
    write_lines(holder / "test.jsonl", [binary_row(5)])
    assert run_cli("data", "prepare", str(src), str(holder)) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "test.jsonl holds labels" in err
    assert json.loads((holder / "test.jsonl").read_text())["label"] is True


def test_prepare_refuses_a_file_destination_in_one_line(tmp_path: Path, capsys) -> None:
    src = labeled_folder(tmp_path)
    target = tmp_path / "data" / "afile"
    target.parent.mkdir(parents=True)
    target.write_text("keep me\n")
    assert run_cli("data", "prepare", str(src), str(target)) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"w2s: error: {target}: is a file, not a folder; give a folder such as data/math"
    assert target.read_text() == "keep me\n"


def test_prepare_replaces_a_view_whole_and_leaves_no_temp_folders(tmp_path: Path) -> None:
    src = labeled_folder(tmp_path)
    dst = tmp_path / "data" / "ds"
    write_lines(dst / "test.jsonl", [{"id": "old", "question": "q", "choice": "c"}])
    (dst / "README.md").write_text("notes\n")
    counts = prepare_dataset(src, dst)
    assert counts == {"train_unlabel": 6, "test": 6}
    assert sorted(p.name for p in dst.iterdir()) == ["README.md", "test.jsonl", "train_unlabel.jsonl"]
    assert load_split(dst / "test.jsonl").ids == load_split(src / "test.jsonl").ids
    assert sorted(p.name for p in dst.parent.iterdir()) == ["ds"]  # no .ds.prepare-* / .ds.old-* left
