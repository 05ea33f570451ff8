"""The agent's transcript: one JSONL file per run, the only record the loop needs to resume.

Every event is one line, appended and fsynced before the loop acts on it. A ``kill -9`` can at
worst leave one half-written last line, which readers skip and the next writer cuts off. Big tool
results are stored whole in ``tool_outputs/<tool_use_id>.txt`` beside the transcript and cut short
in the line, with a pointer; resume reads the whole copy back so the model sees the same text.
Images a tool returned (PNG) are stored there too and sent back as image blocks. A ``compact``
event records a compaction (:mod:`core.agent.compaction`); replay applies it to the messages.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.agent import compaction
from core.agent.prices import add_usage
from core.common.atomic import atomic_write_text
from core.common.files import tail_jsonl

TRANSCRIPT_NAME = "transcript.jsonl"
OUTPUTS_DIR = "tool_outputs"
LINE_CAP = 4000  # characters of a tool result kept inline in the transcript


class Transcript:
    """Append-only writer. Opening repairs a torn last line left by a crash."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _repair_tail(self.path)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        event = {"time": time.time(), **event}
        line = json.dumps(event, default=str, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        return event

    def store_tool_output(self, tool_use_id: str, text: str) -> tuple[str, str | None]:
        """Inline text for the transcript and, when cut, the relative path of the whole copy."""
        if len(text) <= LINE_CAP:
            return text, None
        rel = f"{OUTPUTS_DIR}/{_safe_name(tool_use_id)}.txt"
        atomic_write_text(self.path.parent / rel, text)
        note = f"\n[... {len(text) - LINE_CAP} more characters; full text in {rel}]"
        return text[:LINE_CAP] + note, rel

    def store_images(self, tool_use_id: str, images: list[bytes]) -> list[str]:
        """Each PNG a tool returned, stored beside the transcript; their relative paths."""
        out = []
        for n, data in enumerate(images):
            rel = f"{OUTPUTS_DIR}/{_safe_name(tool_use_id)}_{n}.png"
            (self.path.parent / OUTPUTS_DIR).mkdir(parents=True, exist_ok=True)
            with open(self.path.parent / rel, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            out.append(rel)
        return out


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:120] or "output"


def _repair_tail(path: Path) -> None:
    """Cut a trailing partial line (no newline) so the next append starts on a fresh line."""
    if not path.is_file():
        return
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        block = 4096
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                fh.truncate(start + idx + 1)
                return
            pos = start
        fh.truncate(0)


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events from byte ``offset`` on, and the offset to continue from (for tailing).

    Lines that are not events (see ``tail_jsonl``) are left out: a replay rebuilds messages from
    real events only; viewers that want to show them call ``tail_jsonl`` directly."""
    records, end = tail_jsonl(Path(path), offset)
    return [r for r in records if r.get("type") != "unparsed"], end


def iter_events(path: Path) -> Iterator[dict[str, Any]]:
    events, _ = read_events(path)
    yield from events


@dataclass
class Replay:
    """What a transcript says about a run: the messages to send next and what is still owed."""

    started: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    open_calls: list[dict[str, Any]] = field(default_factory=list)  # tool_use blocks of the open turn
    open_results: dict[str, dict[str, Any]] = field(default_factory=dict)  # their recorded results
    open_started: set[str] = field(default_factory=set)  # ids of open calls that began (tool_call event)
    turns: int = 0
    cost_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    evals: int = 0
    elapsed_s: float = 0.0
    stopped: dict[str, Any] | None = None
    nudges: int = 0
    wrap_up: dict[str, Any] | None = None  # the wrap_up event, once a budget ran out
    compactions: int = 0

    @property
    def pending_calls(self) -> list[dict[str, Any]]:
        """Tool calls of the open turn that have no recorded result."""
        return [c for c in self.open_calls if c["id"] not in self.open_results]

    @property
    def interrupted_calls(self) -> list[dict[str, Any]]:
        """Pending calls that had begun when the loop died: their effects may be half done (an
        orphaned command, submitted jobs), so resume records them as interrupted, never re-runs them."""
        return [c for c in self.pending_calls if c["id"] in self.open_started]


def image_block(png: bytes) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                        "data": base64.b64encode(png).decode("ascii")}}


def result_block(tool_use_id: str, content: str, is_error: bool, images: list[bytes] | None = None
                 ) -> dict[str, Any]:
    """A ``tool_result`` block; with images its content is the text then one image block each
    (the Messages API accepts images in tool results)."""
    body: str | list[dict[str, Any]] = content
    if images:
        body = [{"type": "text", "text": content}, *(image_block(png) for png in images)]
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": body, "is_error": is_error}


def _images(run_dir: Path, event: dict[str, Any]) -> list[bytes]:
    out = []
    for rel in event.get("images") or []:
        path = run_dir / str(rel)
        if path.is_file():
            out.append(path.read_bytes())
    return out


def _full_content(run_dir: Path, event: dict[str, Any]) -> str:
    rel = event.get("full_path")
    if rel:
        full = run_dir / rel
        if full.is_file():
            return full.read_text(encoding="utf-8")
    return str(event.get("content", ""))


def replay(path: Path) -> Replay:
    """Rebuild the conversation from the transcript. The open turn is the last assistant message
    whose tool calls are not all answered; ``pending_calls`` are the ones still to run."""
    path = Path(path)
    out = Replay()
    open_calls: list[dict[str, Any]] = []
    results: dict[str, dict[str, Any]] = {}
    started: set[str] = set()

    def close_turn() -> None:
        if open_calls:
            blocks = []
            for call in open_calls:
                res = results.get(call["id"]) or result_block(call["id"], "tool call lost", True)
                blocks.append(res)
            out.messages.append({"role": "user", "content": blocks})
        open_calls.clear()
        results.clear()
        started.clear()

    for ev in iter_events(path):
        kind = ev.get("type")
        out.elapsed_s = max(out.elapsed_s, float(ev.get("elapsed_s") or 0.0))
        if kind == "start" and out.started is None:
            out.started = ev
        elif kind == "user":
            close_turn()
            out.messages.append({"role": "user", "content": ev["content"]})
            out.nudges = out.nudges + 1 if ev.get("nudge") else 0
        elif kind == "assistant":
            close_turn()
            content = ev.get("content") or []
            out.messages.append({"role": "assistant", "content": content})
            open_calls.extend(b for b in content if b.get("type") == "tool_use")
            if open_calls:
                out.nudges = 0
            out.turns += 1
            out.cost_usd += float(ev.get("cost_usd") or 0.0)
            out.tokens = add_usage(out.tokens, ev.get("usage") or {})
        elif kind == "tool_call":
            started.add(str(ev.get("id")))
        elif kind == "tool_result":
            text = _full_content(path.parent, ev)
            results[ev["id"]] = result_block(ev["id"], text, bool(ev.get("is_error")), _images(path.parent, ev))
            if ev.get("evaluation"):
                out.evals += 1
        elif kind == "stop":
            out.stopped = ev
        elif kind == "wrap_up" and out.wrap_up is None:
            out.wrap_up = ev
        elif kind == "compact" and out.messages:
            close_turn()
            record = compaction.Compaction(int(ev.get("dropped_turns") or 0), int(ev.get("kept_messages") or 0),
                                           str(ev.get("summary") or ""))
            out.messages = compaction.apply(out.messages, record)
            out.compactions += 1
    out.open_calls = list(open_calls)
    out.open_results = dict(results)
    out.open_started = set(started)
    return out



def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_event(ev: dict[str, Any], width: int = 300) -> str:
    """One human-readable line per event (the CLI and the TUI show transcripts with it)."""
    kind = ev.get("type")
    stamp = time.strftime("%H:%M:%S", time.localtime(float(ev.get("time") or 0)))
    if kind == "assistant":
        texts = [b.get("text", "") for b in ev.get("content") or [] if b.get("type") == "text"]
        usage = ev.get("usage") or {}
        cached = usage.get("cache_read_input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
        cache = f" +{cached} cache" if cached else ""
        cost = (f"[in {usage.get('input_tokens', 0)}{cache} out {usage.get('output_tokens', 0)} "
                f"${float(ev.get('cost_usd') or 0):.4f} total ${float(ev.get('total_cost_usd') or 0):.4f}]")
        return f"{stamp} turn {ev.get('turn')} {cost} {_short(' '.join(texts), width)}".rstrip()
    if kind == "tool_call":
        return f"{stamp}   -> {ev.get('name')}({_short(ev.get('input') or {}, width)})"
    if kind == "tool_result":
        flag = "ERROR " if ev.get("is_error") else ""
        return f"{stamp}   <- {ev.get('name')}: {flag}{_short(ev.get('content') or '', width)}"
    if kind == "state":
        reason = f" ({ev['reason']})" if ev.get("reason") else ""
        return f"{stamp} state: {ev.get('state')}{reason}"
    if kind == "api_retry":
        return (f"{stamp} api {ev.get('kind')}: retry {ev.get('attempt')} in {ev.get('wait_s')}s "
                f"({ev.get('error')})")
    if kind == "start":
        return (f"{stamp} start agent {ev.get('agent_id')} model {ev.get('model')} "
                f"budgets {_short(ev.get('budgets'))}")
    if kind == "resume":
        cut = len(ev.get("interrupted_calls") or [])
        rerun = len(ev.get("pending_calls") or []) - cut
        return (f"{stamp} resume after turn {ev.get('turn')} ({cut} interrupted call(s) not re-run, "
                f"{rerun} not yet started)")
    if kind == "user":
        return f"{stamp} user: {_short(ev.get('content') or '', width)}"
    if kind == "compact":
        return (f"{stamp} context compacted before turn {int(ev.get('turn') or 0) + 1}: "
                f"{ev.get('dropped_turns')} turns in a note, {ev.get('kept_messages')} messages kept "
                f"({ev.get('reason')})")
    if kind == "report":
        return f"{stamp} research log ({ev.get('path')}):\n{ev.get('text') or ''}"
    if kind == "wrap_up":
        return f"{stamp} wrap-up: {ev.get('reason')}; {ev.get('turns')} turns left to share findings and finish"
    if kind == "stop":
        summary = f" summary: {_short(ev['summary'], width)}" if ev.get("summary") else ""
        return f"{stamp} stop ({ev.get('state')}): {ev.get('reason')}{summary}"
    return f"{stamp} {kind}: {_short(ev, width)}"
