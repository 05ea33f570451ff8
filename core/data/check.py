"""``w2s data check``: validate dataset files line by line, streaming.

Every problem is reported as ``file:line: field: message``; nothing is loaded whole, so a 100 MB
file costs one line of memory plus a set of row ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.datasets import (
    PREFERENCE_LABELS,
    SPLITS,
    Format,
    detect_format,
    iter_jsonl,
    row_id,
)

TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array"}
OPTIONAL_TYPES: dict[str, tuple[type, ...]] = {
    "difficulty": (int, float, str),
    "consistency_id": (int, str),
    "consistency_key": (str,),
    "answer": (str, int, float, bool, list),
    "id": (str, int),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "preference": ("prompt", "first", "second"),
    "binary": ("question", "choice"),
}


@dataclass(frozen=True)
class Problem:
    """One finding; ``severity`` is ``error`` (exit 1) or ``warning``."""

    file: Path
    line: int
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}: {self.field}: {prefix}{self.message}"


@dataclass
class FileSummary:
    path: Path
    fmt: Format | None = None
    rows: int = 0
    labeled_rows: int = 0


def _type_name(value: Any) -> str:
    return {dict: "object", type(None): "null", **TYPE_NAMES}.get(
        type(value), type(value).__name__
    )


def _check_row(path: Path, lineno: int, row: dict[str, Any], fmt: Format) -> Iterator[Problem]:
    for name in REQUIRED[fmt]:
        value = row.get(name)
        if not isinstance(value, str):
            yield Problem(path, lineno, name, f"expected a string, got {_type_name(value)}")
    if "label" in row:
        label = row["label"]
        if fmt == "preference" and label not in PREFERENCE_LABELS:
            yield Problem(path, lineno, "label", f"must be \"A\" or \"B\", got {json.dumps(label)}")
        if fmt == "binary" and not isinstance(label, bool):
            yield Problem(path, lineno, "label", f"must be true or false, got {json.dumps(label)}")
        if "subset" not in row:
            yield Problem(path, lineno, "subset", "missing (required on labelled rows)")
    if "subset" in row and not isinstance(row["subset"], str):
        yield Problem(path, lineno, "subset", f"expected a string, got {_type_name(row['subset'])}")
    for name, types in OPTIONAL_TYPES.items():
        if name in row and row[name] is not None:
            value = row[name]
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                expected = " or ".join(TYPE_NAMES[t] for t in types)
                yield Problem(path, lineno, name, f"expected {expected}, got {_type_name(value)}")


def check_file(path: Path, summary: FileSummary | None = None) -> list[Problem]:
    """Validate one JSONL split file; returns every problem found (streaming)."""
    path = Path(path)
    summary = summary or FileSummary(path)
    problems: list[Problem] = []
    if not path.is_file():
        return [Problem(path, 0, "file", "not found")]
    seen: dict[str, int] = {}
    first_label_line: int | None = None
    first_unlabeled_line: int | None = None
    try:
        for lineno, text in iter_jsonl(path):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(Problem(path, lineno, "json", f"invalid JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(row, dict):
                problems.append(Problem(path, lineno, "row", f"expected a JSON object, got {_type_name(row)}"))
                continue
            fmt = detect_format(row)
            if fmt is None:
                missing = _closest_missing(row)
                problems.append(Problem(path, lineno, missing, "missing (row is neither preference nor binary)"))
                continue
            if summary.fmt is None:
                summary.fmt = fmt
            elif fmt != summary.fmt:
                problems.append(Problem(path, lineno, "row", f"{fmt} row in a {summary.fmt} file (mixed formats)"))
                continue
            summary.rows += 1
            row_problems = list(_check_row(path, lineno, row, fmt))
            problems.extend(row_problems)
            if "label" in row:
                summary.labeled_rows += 1
                first_label_line = first_label_line or lineno
            else:
                first_unlabeled_line = first_unlabeled_line or lineno
            if any(p.field in ("prompt", "first", "second", "question", "choice", "id") for p in row_problems):
                continue
            rid = row_id(row, fmt)
            if rid in seen:
                problems.append(Problem(path, lineno, "id", f"duplicate id {rid!r} (first on line {seen[rid]})"))
            else:
                seen[rid] = lineno
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, 0, "file", f"not UTF-8 ({exc.reason} at byte {exc.start})"))
        return problems
    if summary.rows == 0 and not any(p.severity == "error" for p in problems):
        problems.append(Problem(path, 1, "file", "empty file (no rows)"))
    if first_label_line and first_unlabeled_line:
        line = max(first_label_line, first_unlabeled_line)
        problems.append(Problem(path, line, "label", "some rows have labels and some do not"))
    return problems


def _closest_missing(row: dict[str, Any]) -> str:
    """Name the field a half-formed row most likely lacks (for a useful message)."""
    for fmt in ("preference", "binary"):
        fields = REQUIRED[fmt]
        if any(f in row for f in fields):
            return next(f for f in fields if f not in row)
    return "question"


def check_path(path: Path) -> list[Problem]:
    """Check a split file or a dataset folder (its three split files, one format across them)."""
    path = Path(path)
    if path.is_file():
        return check_file(path)
    if not path.is_dir():
        return [Problem(path, 0, "path", "no such file or folder")]
    problems: list[Problem] = []
    summaries: list[FileSummary] = []
    present = [s for s in SPLITS if (path / f"{s}.jsonl").is_file()]
    for required in ("train_unlabel", "test"):
        if required not in present:
            problems.append(Problem(path / f"{required}.jsonl", 0, "file", "missing split file"))
    for split in present:
        summary = FileSummary(path / f"{split}.jsonl")
        problems.extend(check_file(summary.path, summary))
        summaries.append(summary)
    formats = {s.fmt for s in summaries if s.fmt}
    if len(formats) > 1:
        detail = ", ".join(f"{s.path.name}={s.fmt}" for s in summaries if s.fmt)
        problems.append(Problem(path, 0, "format", f"split files disagree on the row format ({detail})"))
    if not problems:
        problems.extend(_cross_split_overlap(summaries))
    return problems


def _cross_split_overlap(summaries: list[FileSummary]) -> list[Problem]:
    """Rows shared between splits leak test items into training: worth a warning."""
    owners: dict[str, Path] = {}
    out: list[Problem] = []
    for summary in summaries:
        for lineno, text in iter_jsonl(summary.path):
            if not text.strip():
                continue
            rid = row_id(json.loads(text))
            other = owners.setdefault(rid, summary.path)
            if other != summary.path and len(out) < 20:
                out.append(Problem(summary.path, lineno, "id", f"row also in {other.name}", "warning"))
    return out
