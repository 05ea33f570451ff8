"""Context management: fold old turns into a summary note so a long run fits the model's window.

The loop compacts when the last prompt came near the window, or when the API refused one as too
long. The note is written by the loop, not the model (no extra call, nothing to go wrong): one
line per old turn (what the model said, each tool call and the start of its result), the agent's
own ``NOTES.md`` (the prompt tells it to keep durable notes there) and its jobs as the store sees
them. The briefing stays first; the newest turns that fit a share of the window (``KEEP_SHARES``,
smaller each time a prompt is still too long) stay verbatim, so a compaction leaves room for many
turns before the next one (each compaction rewrites the prompt cache). The note rolls: the next
compaction starts from the previous note's lines, keeping the newest when it grows past its cap
(a tenth of the window at most).

The conversation after a compaction is ``[user: briefing + note] + the kept messages``, so roles
still alternate and every kept ``tool_use`` still has its ``tool_result``. The note's first line
says how many turns it covers; the Messages API stand-in counts turns with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MARKER = "[context compacted: the first {n} turns are summarized below; the newest turns follow verbatim]"
MARKER_RE = re.compile(r"\[context compacted: the first (\d+) turns")
HISTORY_HEADING = "## Earlier turns (one line each; the loop wrote these)"
NOTES_HEADING = "## Your notes (NOTES.md, as it is now)"
JOBS_HEADING = "## Your jobs (from the job store, now)"
KEEP_SHARES = (0.3, 0.12, 0.04, 0.0)  # of the window kept verbatim: first try, then less while too long
HISTORY_CAP = 16_000  # characters of turn lines the note keeps (the newest), at most
CHARS_PER_TOKEN = 4  # the estimate used to size what is kept (the API's count decides the rest)
NOTES_CAP = 6_000
JOBS_CAP = 3_000
TEXT_CHARS = 240
ARGS_CHARS = 160
RESULT_CHARS = 200


@dataclass(frozen=True)
class Compaction:
    """One compaction, as the transcript records it and replay re-applies it."""

    dropped_turns: int  # turns the note covers, counting earlier compactions
    kept_messages: int  # messages kept verbatim from the end
    summary: str


def _flat(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        parts = ["[image]" if b.get("type") == "image" else str(b.get("text", "")) for b in content
                 if isinstance(b, dict)]
        content = " ".join(parts)
    flag = "ERROR " if block.get("is_error") else ""
    return flag + _flat(str(content or ""), RESULT_CHARS)


def turn_lines(messages: list[dict[str, Any]], first_turn: int) -> list[str]:
    """One line per assistant message of ``messages`` (numbered from ``first_turn``), with the
    results its tool calls got from the next message."""
    lines: list[str] = []
    number = first_turn
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        content = message.get("content") or []
        results: dict[str, dict[str, Any]] = {}
        if i + 1 < len(messages) and isinstance(messages[i + 1].get("content"), list):
            results = {str(b.get("tool_use_id")): b for b in messages[i + 1]["content"]
                       if isinstance(b, dict) and b.get("type") == "tool_result"}
        said = " ".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
        parts = [f"turn {number}:"]
        if said.strip():
            parts.append(_flat(said, TEXT_CHARS))
        for block in content:
            if block.get("type") != "tool_use":
                continue
            res = results.get(str(block.get("id")))
            outcome = f" -> {_result_text(res)}" if res else ""
            parts.append(f"[{block.get('name')}({_flat(block.get('input') or {}, ARGS_CHARS)}){outcome}]")
        lines.append(" ".join(parts))
        number += 1
    return lines


def briefing_and_history(first: dict[str, Any]) -> tuple[str, list[str], int]:
    """The briefing text of the first message, the turn lines of an earlier note, and how many
    turns that note covered."""
    content = first.get("content")
    if isinstance(content, str):
        return content, [], 0
    texts = [str(b.get("text", "")) for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
    briefing = texts[0] if texts else ""
    note = "\n".join(texts[1:])
    found = MARKER_RE.search(note)
    if not found:
        return briefing, [], 0
    history = note.split(HISTORY_HEADING, 1)[1] if HISTORY_HEADING in note else ""
    history = history.split("\n## ", 1)[0]
    return briefing, [line for line in history.splitlines() if line.strip()], int(found.group(1))


def _capped_lines(lines: list[str], cap: int) -> list[str]:
    """The newest lines that fit ``cap`` characters, with a line saying how many were left out."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > cap:
            break
        kept.append(line)
        size += len(line) + 1
    kept.reverse()
    cut = len(lines) - len(kept)
    return ([f"({cut} older lines left out)"] if cut else []) + kept


def _section(heading: str, text: str, cap: int) -> str:
    text = text.strip()
    if len(text) > cap:
        text = text[:cap] + f"\n[... {len(text) - cap} more characters]"
    return f"{heading}\n{text or '(none)'}"


def estimate_tokens(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str)) // CHARS_PER_TOKEN


def _cut(messages: list[dict[str, Any]], keep_tokens: int) -> int:
    """Where the kept tail starts: the oldest assistant turn from which the rest fits
    ``keep_tokens``, folding one turn at least (``len(messages)`` keeps nothing)."""
    assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    size = 0
    cut = len(messages)
    for i in range(len(messages) - 1, 0, -1):
        size += estimate_tokens(messages[i])
        if size > keep_tokens:
            break
        if i in assistants:
            cut = i
    return max(cut, assistants[1]) if len(assistants) > 1 else len(messages)


def compact(
    messages: list[dict[str, Any]], keep_tokens: int, notes: str = "", jobs: str = "",
    history_chars: int = HISTORY_CAP,
) -> tuple[list[dict[str, Any]], Compaction] | None:
    """The compacted conversation and the record of it, or None when there is no turn to fold."""
    if not messages or not any(m.get("role") == "assistant" for m in messages):
        return None
    cut = _cut(messages, keep_tokens)
    briefing, history, before = briefing_and_history(messages[0])
    folded = messages[1:cut]
    new_lines = turn_lines(folded, before + 1)
    dropped = before + len(new_lines)
    summary = "\n\n".join([
        MARKER.format(n=dropped),
        "Your conversation grew too long for the model's context, so its older turns were folded into this "
        "note. Files, jobs and findings are unchanged; read them again with your tools when you need detail.",
        _section(NOTES_HEADING, notes, NOTES_CAP),
        _section(JOBS_HEADING, jobs, JOBS_CAP),
        HISTORY_HEADING + "\n" + "\n".join(_capped_lines(history + new_lines, min(HISTORY_CAP, history_chars))),
    ])
    record = Compaction(dropped_turns=dropped, kept_messages=len(messages) - cut, summary=summary)
    return apply(messages, record), record


def apply(messages: list[dict[str, Any]], record: Compaction) -> list[dict[str, Any]]:
    """The conversation after ``record``: the briefing with the note, then the kept messages.
    Replay calls this with the recorded note, so a resumed run sends exactly what the loop sent."""
    briefing, _, _ = briefing_and_history(messages[0])
    first = {"role": "user", "content": [{"type": "text", "text": briefing},
                                         {"type": "text", "text": record.summary}]}
    kept = messages[len(messages) - record.kept_messages:] if record.kept_messages else []
    return [first, *kept]
