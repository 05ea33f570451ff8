"""The Leaderboard pane: one dataset at a time, PGR mean ± 95% CI, the baselines line, sortable."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from tui import data
from tui.format import num, pgr_cell, shorten
from tui.widgets.keyed_table import KeyedTable

LB_COLUMNS = [
    ("rank", "#", 2),
    ("idea", "idea", 16),
    ("pgr", "PGR ± CI95", 14),
    ("n", "n", 3),
    ("transfer", "transfer", 8),
    ("weak", "weak", 5),
    ("strong", "ceiling", 7),
    ("source", "source", 9),
    ("key", "key", 28),
]
# sort name -> (row -> sort value, descending?)
SORTS: dict[str, tuple[Any, bool]] = {
    "pgr": (lambda r: _f(r.get("pgr_mean")), True),
    "transfer": (lambda r: _f(r.get("transfer_acc")), True),
    "seeds": (lambda r: _f(r.get("n_seeds")), True),
    "idea": (lambda r: str(r.get("idea", "")), False),
    "source": (lambda r: str(r.get("source", "")), False),
}


def _f(value: Any) -> float:
    try:
        return float(value) if value is not None else float("-inf")
    except (TypeError, ValueError):
        return float("-inf")


def row_key(row: dict[str, Any]) -> str:
    return f"{row.get('dataset')}|{row.get('idea')}|{row.get('key')}"


def lb_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(row["rank"]) if row.get("rank") else "[dim]-[/]",  # '-': shown apart, never ranked
        escape(shorten(row.get("idea", ""), 16)),
        pgr_cell(row.get("pgr_mean"), row.get("pgr_ci95")),
        str(row.get("n_seeds", "-")),
        num(row.get("transfer_acc")),
        num(row.get("weak_acc")),
        num(row.get("strong_acc")),
        escape(str(row.get("source", ""))),
        escape(tail(str(row.get("key", "")), 28)),
    )


def tail(text: str, width: int) -> str:
    """Keys share long model prefixes; their ends (training settings, idea parameters) tell them apart."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def row_details(row: dict[str, Any]) -> str:
    seeds = ",".join(str(s) for s in row.get("seeds") or [])
    parts = [f"key {row.get('key')}", f"seeds {seeds or row.get('n_seeds', '-')}"]
    if row.get("pgr_reason"):
        parts.append(f"PGR n/a: {row['pgr_reason']}")
    return " · ".join(parts)


def baselines_text(dataset: str, rows: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> str:
    """``baselines: weak 0.612 (16 seeds) · ceiling 0.801 (16 seeds)`` for the shown dataset.

    Rows carry the fixed baselines they were scored against; without rows, the producers' own lines.
    """
    seen: list[tuple] = []
    for r in rows:
        pair = (r.get("weak_acc"), r.get("n_weak"), r.get("strong_acc"), r.get("n_strong"))
        if pair not in seen and (pair[0] is not None or pair[2] is not None):
            seen.append(pair)
    if not seen:
        mine = [b for b in baselines if str(b.get("dataset")) == dataset]
        weak = next((b for b in mine if b.get("producer") == "weak_artifacts"), None)
        ceil = next((b for b in mine if b.get("producer") == "train_ceiling"), None)
        if weak or ceil:
            seen.append((
                weak and weak.get("acc_mean"), weak and weak.get("n_seeds"),
                ceil and ceil.get("acc_mean"), ceil and ceil.get("n_seeds"),
            ))
    parts = []
    for weak, n_weak, strong, n_strong in seen[:2]:
        part = f"weak {num(weak)}{_seeds(n_weak)} · ceiling {num(strong)}{_seeds(n_strong)}"
        parts.append(part)
    more = f" (+{len(seen) - 2} more settings)" if len(seen) > 2 else ""
    return "baselines: " + (" | ".join(parts) + more if parts else "none cached yet")


def _seeds(n: Any) -> str:
    return "" if not n else f" ({n} seed{'s' if n != 1 else ''})"


class LeaderboardPane(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Leaderboard"
        self.rows: list[dict[str, Any]] = []
        self.baselines: list[dict[str, Any]] = []
        self.datasets: list[str] = []
        self.dataset: str | None = None
        self.sort_name = "pgr"
        self.filter_text = ""
        self.available = False

    def compose(self) -> ComposeResult:
        yield Static("loading leaderboard…", id="lb-head", classes="pane-note")
        yield Static("", id="lb-baselines", classes="pane-note")
        yield Input(placeholder="filter ideas (enter: apply, esc: clear)", id="lb-search", classes="hidden")
        yield KeyedTable(LB_COLUMNS, id="lb-table")
        yield Static("", id="lb-details", classes="pane-note")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#lb-table", KeyedTable)

    def apply_feed(self, feed: data.Feed) -> None:
        self.available = feed.available
        if not feed.available:
            self.query_one("#lb-head", Static).update(escape(feed.note))
            return
        self.rows = feed.items
        self.baselines = feed.extra.get("baselines", [])
        self.datasets = feed.extra.get("datasets", []) or sorted({str(r.get("dataset")) for r in self.rows})
        if self.dataset not in self.datasets:
            self.dataset = self.datasets[0] if self.datasets else None
        self.redraw()

    def next_dataset(self) -> str | None:
        if self.datasets:
            i = self.datasets.index(self.dataset) if self.dataset in self.datasets else -1
            self.dataset = self.datasets[(i + 1) % len(self.datasets)]
            self.redraw()
        return self.dataset

    def cycle_sort(self) -> str:
        names = list(SORTS)
        self.sort_name = names[(names.index(self.sort_name) + 1) % len(names)]
        self.redraw()
        return self.sort_name

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self.redraw()

    def visible_rows(self) -> list[dict[str, Any]]:
        rows = [r for r in self.rows if str(r.get("dataset")) == self.dataset]
        if self.filter_text:
            rows = [r for r in rows if self.filter_text.lower() in str(r.get("idea", "")).lower()]
        value, descending = SORTS[self.sort_name]
        rows = sorted(rows, key=value, reverse=descending)
        return sorted(rows, key=lambda r: not r.get("rank"))  # rows shown apart stay below the ranked ones

    def redraw(self) -> None:
        head = self.query_one("#lb-head", Static)
        if not self.available:
            return
        if self.dataset is None:
            head.update("No results yet. Press [b]r[/] to launch a run; rows appear as seeds finish.")
            self.query_one("#lb-baselines", Static).update("")
            self.table.sync([])
            return
        switcher = " ".join(f"[reverse] {escape(d)} [/]" if d == self.dataset else escape(d) for d in self.datasets)
        extra = f" · filter {escape(repr(self.filter_text))}" if self.filter_text else ""
        head.update(f"dataset {switcher}  [dim](d: next · s: sort by {self.sort_name}{extra})[/]")
        rows = self.visible_rows()
        self.query_one("#lb-baselines", Static).update(escape(baselines_text(self.dataset, rows, self.baselines)))
        self.table.sync([(row_key(r), lb_cells(r)) for r in rows])
        self._show_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "lb-table":
            self._show_details()

    def _show_details(self) -> None:
        key = self.table.selected_key
        row = next((r for r in self.rows if row_key(r) == key), None) if key else None
        self.query_one("#lb-details", Static).update(escape(row_details(row)) if row else "")

    def open_search(self) -> None:
        box = self.query_one("#lb-search", Input)
        box.remove_class("hidden")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "lb-search":
            self.set_filter(event.value)
            self.table.focus()

    def close_search(self) -> None:
        box = self.query_one("#lb-search", Input)
        box.value = ""
        box.add_class("hidden")
        self.set_filter("")
        self.table.focus()
