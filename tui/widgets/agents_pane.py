"""The Agents pane: the agents table, budget bars and the selected agent's live transcript."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, RichLog, Static
from textual.worker import get_current_worker

from tui import data
from tui.format import bar, money, shorten
from tui.widgets.keyed_table import Flex, KeyedTable

MAX_EVENTS = 5000  # transcript records kept for re-filtering; the file keeps everything
RESULT_LINES = 3  # lines of a tool result shown collapsed (e: expand all)
EXPANDED_LINES = 200  # and expanded (the rest: the file the result names, or the transcript)
AGENT_COLUMNS = [
    ("state", "state", 22),
    ("cost", "cost", 9),
    ("turns", "turns", 5),
    ("direction", "direction", Flex(16)),
    ("id", "id", 8),
]
AGENT_STATE_STYLE = {
    "running": "[bold cyan]running[/]",
    "waiting (rate limited)": "[yellow]waiting (rate limited)[/]",
    "succeeded": "[green]succeeded[/]",
    "finished": "[green]finished[/]",
    "stopped": "[magenta]stopped[/]",
    "failed": "[bold red]failed[/]",
}
# budget name -> (usage names to look for, how to print a value)
BUDGETS = {
    "usd": (("cost_usd", "usd"), lambda v: f"${float(v):.2f}"),
    "turns": (("turns",), lambda v: str(int(v))),
    "evals": (("evals", "evaluations"), lambda v: str(int(v))),
    "evaluations": (("evaluations", "evals"), lambda v: str(int(v))),
    "wall_s": (("wall_s", "elapsed_s"), lambda v: f"{float(v) / 60:.0f}m"),
    "tokens": (("tokens",), lambda v: str(int(v))),
}

BUDGET_LABELS = {"usd": "USD", "wall_s": "time", "evals": "evals", "turns": "turns"}


def agent_usage(agent: dict[str, Any], name: str) -> float | None:
    usage = agent.get("usage") or {}
    names, _ = BUDGETS.get(name, ((name,), str))
    for candidate in names:
        if candidate in usage and usage[candidate] is not None:
            return float(usage[candidate])
    if name == "usd" and agent.get("cost_usd") is not None:
        return float(agent["cost_usd"])
    return None


def evals_used(agent: dict[str, Any]) -> float | None:
    """Evaluations spent: what the referee charged the agent's pool (its runs included), or the
    agent's own count while that is higher (the ledger is read once per poll)."""
    own = agent_usage(agent, "evals")
    charged = agent.get("evals_charged")
    if charged is None:
        return own
    return max(float(charged), own or 0.0)


def budget_lines(agent: dict[str, Any]) -> list[str]:
    """``usd    ██████░░░░ $0.61 / $1.00`` for each budget the agent has."""
    out = []
    for raw_name, limit in (agent.get("budgets") or {}).items():
        if limit in (None, 0):
            continue
        name = raw_name.removeprefix("max_")
        used = evals_used(agent) if name in ("evals", "evaluations") else agent_usage(agent, name)
        _, show = BUDGETS.get(name, ((), lambda v: f"{v}"))
        try:
            fraction = (used or 0.0) / float(limit)
            text = f"{show(used or 0)} / {show(limit)}"
        except (TypeError, ValueError, ZeroDivisionError):
            fraction, text = 0.0, f"{used} / {limit}"
        label = BUDGET_LABELS.get(name, name)
        out.append(f"{label:<6} {bar(fraction, 12)} {text}")
    return out


def agent_cells(agent: dict[str, Any]) -> tuple[str, ...]:
    state = str(agent.get("state", "?"))
    turns = agent_usage(agent, "turns")
    return (
        AGENT_STATE_STYLE.get(state, escape(state)),
        money(agent_usage(agent, "usd")),
        "-" if turns is None else str(int(turns)),
        " ".join(str(agent.get("direction", "")).split()),  # plain text: the flex column cuts and escapes
        escape(str(agent.get("id", ""))),
    )


TOKEN_NAMES = (  # usage field -> how the per-turn line names it
    ("input_tokens", "in"),
    ("cache_read_input_tokens", "cache read"),
    ("cache_creation_input_tokens", "cache write"),
    ("output_tokens", "out"),
)


def token_text(usage: dict[str, Any]) -> str:
    """``in 210 · cache read 48,120 · cache write 1,900 · out 310``: cached prompt tokens are most of
    an agent's tokens and cost, so they are shown beside the fresh ones."""
    parts = []
    for key, label in TOKEN_NAMES:
        value = usage.get(key)
        if isinstance(value, int | float) and (value or key in ("input_tokens", "output_tokens")):
            parts.append(f"{label} {int(value):,}")
    return " · ".join(parts)


def result_lines(body: str, limit: int) -> list[str]:
    """The lines of a tool result worth showing: a shell's ``[exit code 0]`` header is dropped (a
    non-zero code is kept), blank lines skipped, at most ``limit`` lines of 200 characters."""
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if lines and lines[0].strip() == "[exit code 0]":
        lines = lines[1:]
    return [shorten(ln, 200) for ln in lines[:limit]]


def render_event(event: dict[str, Any], expanded: bool = False) -> list[str]:
    """Markup lines for one transcript record (core.agent's JSONL): assistant text in full, tool calls on
    one line, tool results in their first lines (all of them when ``expanded``), a per-turn line with
    every kind of token and the cost, state changes."""
    kind = str(event.get("type") or "")
    if kind == "assistant":
        lines = []
        content = event.get("content") or []
        for block in content if isinstance(content, list) else [{"type": "text", "text": str(content)}]:
            if isinstance(block, dict) and block.get("type") == "text" and str(block.get("text", "")).strip():
                lines.append(f"[b]assistant[/] {escape(str(block['text']).strip())}")
        usage = event.get("usage") or {}
        tokens = token_text(usage if isinstance(usage, dict) else {})
        total = event.get("total_cost_usd")
        cost = f"{_usd(event.get('cost_usd'))}" + (f" (total {_usd(total)})" if total is not None else "")
        lines.append(f"[dim]── turn {event.get('turn', '?')} · {tokens} · {cost}[/]")
        return lines
    if kind == "tool_call":
        args = event.get("input", {})
        arg_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        return [f"[cyan]▸ {escape(str(event.get('name', '?')))}[/] {escape(shorten(arg_text, 100))}"]
    if kind == "tool_result":
        body = event.get("content", "")
        body = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        tag = "[red]error[/]" if event.get("is_error") else "result"
        more = f", full: {event['full_path']}" if event.get("full_path") else ""
        total = body.count("\n") + 1
        shown = result_lines(body, EXPANDED_LINES if expanded else RESULT_LINES)
        hint = "" if expanded or total <= len(shown) + 1 else ", e: expand"
        out = [f"  [dim]↳ {tag} ({total} lines{escape(more)}{hint})[/]"]
        out += [f"    [dim]{escape(line)}[/]" for line in shown]
        return out
    if kind in ("state", "stop"):
        reason = event.get("reason") or ""
        lines = [f"[yellow]● {escape(str(event.get('state', kind)))}[/] {escape(str(reason))}"]
        if kind == "stop" and event.get("summary"):
            lines.append(f"[b]summary[/] {escape(str(event['summary']))}")
        return lines
    if kind == "api_retry":
        return [f"[yellow]⏳ {escape(str(event.get('kind', 'retry')))}: waiting {event.get('wait_s', '?')}s "
                f"(attempt {event.get('attempt', '?')})[/]"]
    if kind == "user":
        text = str(event.get("content", ""))
        label = "nudge" if event.get("nudge") else "prompt"
        return [f"[dim]{label} ({len(text)} chars): {escape(shorten(text, 70))}[/]"]
    if kind == "start":
        return [f"[dim]● start · model {escape(str(event.get('model', '?')))} · "
                f"{escape(shorten(event.get('direction', ''), 60))}[/]"]
    if kind == "resume":
        return [f"[yellow]● resumed at turn {event.get('turn', '?')}[/]"]
    return [f"[dim]{escape(kind or 'event')}: {escape(shorten(json.dumps(event, default=str), 100))}[/]"]


def _usd(value: Any) -> str:
    try:
        return f"${float(value):.4f}"
    except (TypeError, ValueError):
        return "$-"


class AgentsPane(Vertical):
    """The app feeds it agent docs; it tails the selected agent's transcript file itself."""

    class TranscriptEvents(Message):
        def __init__(self, agent_id: str, events: list[dict[str, Any]]) -> None:
            super().__init__()
            self.agent_id = agent_id
            self.events = events

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Agents"
        self.agents: dict[str, dict[str, Any]] = {}
        self.shown_agent: str | None = None
        self.filter_text = ""
        self.expanded = False
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._tail_path: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("loading agents…", id="agents-summary", classes="pane-note")
        yield KeyedTable(AGENT_COLUMNS, id="agents-table")
        yield Static("", id="agent-budgets", classes="pane-note")
        yield Input(placeholder="search the transcript (enter: filter, esc: clear)", id="transcript-search",
                    classes="hidden")
        transcript = TranscriptLog(id="transcript", markup=True, wrap=True, max_lines=2000, min_width=20)
        transcript.rewrite = lambda: self.set_filter(self.filter_text)
        yield transcript

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#agents-table", KeyedTable)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Transcript records of the shown agent received so far."""
        return list(self._events)

    @property
    def selected_agent(self) -> dict[str, Any] | None:
        key = self.table.selected_key
        return self.agents.get(key) if key else None

    def apply_feed(self, feed: data.Feed) -> None:
        summary = self.query_one("#agents-summary", Static)
        if not feed.available:
            summary.update(escape(feed.note))
            return
        self.agents = {str(a.get("id")): a for a in feed.items}
        if not feed.items:
            readonly = getattr(self.app, "readonly", False)
            hint = "No agents yet." if readonly else "No agents yet. Press [b]a[/] to launch one (needs ANTHROPIC_API_KEY)."
            summary.update(hint if not feed.note else f"{hint} {escape(feed.note)}")
        else:
            running = sum(1 for a in feed.items if a.get("state") in ("running", "waiting (rate limited)"))
            n = len(feed.items)
            summary.update(f"{n} agent{'' if n == 1 else 's'} · {running} active")
        self.table.sync([(str(a.get("id")), agent_cells(a)) for a in feed.items])
        selected = self.table.selected_key
        if selected and selected != self.shown_agent:
            self.show_agent(selected)
        elif self.shown_agent in self.agents and self._tail_path is None:
            self._start_tail(self.shown_agent)  # its job (and transcript) may exist only now
        self._update_budgets()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "agents-table" and event.row_key.value:
            self.show_agent(event.row_key.value)

    def show_agent(self, agent_id: str) -> None:
        if agent_id == self.shown_agent:
            return
        self.shown_agent = agent_id
        self._events.clear()
        self._tail_path = None
        self.query_one("#transcript", RichLog).clear()
        self._start_tail(agent_id)
        self._update_budgets()

    def _start_tail(self, agent_id: str) -> None:
        agent = self.agents.get(agent_id)
        path = data.transcript_path(agent) if agent else None
        if path is not None:
            self._tail_path = str(path)
            self._tail_transcript(agent_id, str(path))

    @work(thread=True, group="transcript-tail", exclusive=True, exit_on_error=False)
    def _tail_transcript(self, agent_id: str, path: str) -> None:
        from pathlib import Path

        worker = get_current_worker()
        offset = 0
        while not worker.is_cancelled:
            events, offset = data.read_jsonl(Path(path), offset)
            if events:
                self.post_message(self.TranscriptEvents(agent_id, events))
            else:
                worker_sleep(worker, 0.3)

    def on_agents_pane_transcript_events(self, message: TranscriptEvents) -> None:
        if message.agent_id != self.shown_agent:
            return
        self._events.extend(message.events)
        self._write(message.events)

    def _write(self, events: list[dict[str, Any]]) -> None:
        log = self.query_one("#transcript", RichLog)
        needle = self.filter_text.lower()
        for event in events:
            for line in render_event(event, self.expanded):
                if not needle or needle in line.lower():
                    log.write(line)


    def _update_budgets(self) -> None:
        agent = self.agents.get(self.shown_agent or "")
        widget = self.query_one("#agent-budgets", Static)
        if agent is None:
            widget.update("")
            return
        lines = budget_lines(agent)
        reason = agent.get("stop_reason")
        if reason:
            lines.append(f"stopped: {reason}")
        widget.update(escape("\n".join(lines)))

    def toggle_expand(self) -> bool:
        """Tool results in full (up to 200 lines each) or their first lines; redraws the transcript."""
        self.expanded = not self.expanded
        self.set_filter(self.filter_text)
        return self.expanded

    def open_search(self) -> None:
        box = self.query_one("#transcript-search", Input)
        box.remove_class("hidden")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "transcript-search":
            return
        self.set_filter(event.value)
        self.table.focus()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self.query_one("#transcript", RichLog).clear()
        self._write(self._events)

    def close_search(self) -> None:
        box = self.query_one("#transcript-search", Input)
        box.value = ""
        box.add_class("hidden")
        self.set_filter("")
        self.table.focus()


class TranscriptLog(RichLog):
    """A RichLog that follows its newest line after it gets or changes its size, and whose lines are
    wrapped again at a new width (RichLog keeps them as wrapped when written, so a line written
    while the pane was wider was cut at its edge). ``rewrite`` is how its pane redraws it."""

    rewrite: Any = None

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if self.rewrite is not None and width and width != getattr(self, "_wrapped_at", width):
            self.rewrite()
        self._wrapped_at = width
        self.call_after_refresh(self.scroll_end, animate=False, immediate=True)


def worker_sleep(worker: Any, seconds: float) -> None:
    """Sleep in small steps so a cancelled tail thread ends promptly."""
    import time

    end = time.monotonic() + seconds
    while not worker.is_cancelled and time.monotonic() < end:
        time.sleep(0.05)
