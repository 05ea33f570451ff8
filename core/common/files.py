"""Reading files that other processes are still appending to: job logs and JSONL transcripts.

One reader each, shared by every front end (CLI, TUI, web API, agent tools), so a half-written
line or a broken record is treated the same way everywhere.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

MAX_LOG_CHUNK = 1 << 20
UNPARSED_TEXT_CAP = 2000


def read_log_file(path: Path, offset: int = 0, max_bytes: int = MAX_LOG_CHUNK) -> tuple[str, int]:
    """Text from byte ``offset`` (at most ``max_bytes``), never splitting a UTF-8 character."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return "", offset
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(data, final=False)
    pending = len(decoder.getstate()[0])
    return text, max(0, offset) + len(data) - pending


def tail_jsonl(path: Path, offset: int = 0, max_bytes: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Complete JSONL records appended since ``offset``, and the offset to continue from.

    A half-written last line waits for the next call. A line that is not a JSON object becomes
    ``{"type": "unparsed", "text": ...}`` (cut to 2000 characters) so a viewer can still show it;
    ``max_bytes`` bounds one read (the caller polls again from the returned offset).
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read() if max_bytes is None else fh.read(max_bytes)
    except (FileNotFoundError, IsADirectoryError):
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    records: list[dict[str, Any]] = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            records.append(obj)
        else:
            records.append({"type": "unparsed", "text": line.decode("utf-8", "replace")[:UNPARSED_TEXT_CAP]})
    return records, max(0, offset) + end + 1
