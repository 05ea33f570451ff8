"""Dataset rows in the reference format, with stable ids.

Two row formats:
- preference (chat): ``{"prompt", "first", "second", "label": "A"|"B", "subset", "difficulty"?}``
- binary (math, code): ``{"question", "choice", "label": bool, "subset", "difficulty"?,
  "consistency_id"?, "consistency_key"?, "answer"?}``

Every row gets an id: its ``id`` field when present, else a hash of its *content* fields only, so
the labelled row and its label-free view share one id and predictions stay aligned by id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Format = Literal["preference", "binary"]
SPLITS = ("train_label", "train_unlabel", "test")

PREFERENCE_CONTENT = ("prompt", "first", "second")
BINARY_CONTENT = ("question", "choice")
LABEL_FREE_DROP = ("label", "subset", "difficulty")
PREFERENCE_LABELS = ("A", "B")


def detect_format(row: dict[str, Any]) -> Format | None:
    if all(k in row for k in PREFERENCE_CONTENT):
        return "preference"
    if all(k in row for k in BINARY_CONTENT):
        return "binary"
    return None


def content_fields(fmt: Format) -> tuple[str, ...]:
    return PREFERENCE_CONTENT if fmt == "preference" else BINARY_CONTENT


def row_id(row: dict[str, Any], fmt: Format | None = None) -> str:
    """The row's ``id`` field, else a 16-hex content hash (label/subset/difficulty excluded)."""
    if row.get("id") not in (None, ""):
        return str(row["id"])
    fmt = fmt or detect_format(row)
    if fmt is None:
        raise ValueError("row has neither preference nor binary fields")
    payload = json.dumps([fmt, *[row.get(k) for k in content_fields(fmt)]], ensure_ascii=False)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def label_to_int(row: dict[str, Any], fmt: Format) -> int:
    """Class index used everywhere: preference A=0, B=1; binary False=0, True=1."""
    label = row["label"]
    if fmt == "preference":
        return PREFERENCE_LABELS.index(label)
    return int(bool(label))


@dataclass
class Split:
    """One loaded split: rows (with ``id`` filled in) and their format."""

    name: str
    fmt: Format
    rows: list[dict[str, Any]]

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    @property
    def has_labels(self) -> bool:
        return bool(self.rows) and all("label" in r for r in self.rows)

    def labels(self) -> list[int]:
        return [label_to_int(r, self.fmt) for r in self.rows]


def iter_jsonl(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) streaming; tolerates a UTF-8 BOM and CRLF line ends."""
    with open(path, encoding="utf-8-sig", newline=None) as fh:
        for lineno, line in enumerate(fh, start=1):
            yield lineno, line.rstrip("\r\n")


def load_split(path: Path) -> Split:
    """Load a split file, assigning ids. Raises ``ValueError('file:line: field: message')``."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    fmt: Format | None = None
    for lineno, text in iter_jsonl(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: json: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: row: expected a JSON object")
        this = detect_format(row)
        if this is None:
            raise ValueError(f"{path}:{lineno}: row: neither preference nor binary fields")
        if fmt is None:
            fmt = this
        elif this != fmt:
            raise ValueError(f"{path}:{lineno}: row: {this} row in a {fmt} file")
        row["id"] = row_id(row, fmt)
        rows.append(row)
    if fmt is None:
        raise ValueError(f"{path}:1: file: empty dataset file")
    return Split(path.stem, fmt, rows)


def load_dataset(folder: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    """Load the splits present in ``folder`` (missing ones are skipped)."""
    folder = Path(folder)
    out = {}
    for name in splits:
        p = folder / f"{name}.jsonl"
        if p.is_file():
            out[name] = load_split(p)
    return out


# Fields the label-free view never carries: the label itself, the grouping that reveals it
# (subset, difficulty), and ``answer`` (for binary rows it names the correct choice).
LABEL_REVEALING = ("label", "subset", "difficulty", "answer")
LABEL_FREE_SPLITS = ("train_unlabel", "test")


def label_free_row(row: dict[str, Any], fmt: Format) -> dict[str, Any]:
    """The row as ideas and agents see it: explicit ``id`` first, no label-revealing fields."""
    out: dict[str, Any] = {"id": row_id(row, fmt)}
    out.update({k: v for k, v in row.items() if k not in LABEL_REVEALING and k != "id"})
    return out
