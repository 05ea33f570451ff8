"""The Leaderboard pane: one dataset at a time, PGR mean ± 95% CI, the baselines line, sortable."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from core.common.atomic import atomic_write_json
from core.common.workspace import paths
from tui import data
from tui.format import num, pgr_cell
from tui.widgets.keyed_table import Flex, KeyedTable

LB_COLUMNS = [  # weak and ceiling are the dataset's fixed baselines: the line above the table and the
    ("rank", "#", 2),  # selected row's details show them, so the names and keys get the room
    ("idea", "idea", Flex(12, keep=True)),  # never cut: the table scrolls sideways (←/→) instead
    ("pgr", "PGR ± CI95", 14),
    ("n", "n", 3),
    ("transfer", "transfer", 10),
    ("source", "source", 10),
    ("key", "key", Flex(10, cut="start")),  # keys share model prefixes: their ends differ
]
# sort name -> (row -> sort value, descending by default?, column key it sorts)
SORTS: dict[str, tuple[Any, bool, str]] = {
    "pgr": (lambda r: _f(r.get("pgr_mean")), True, "pgr"),
    "transfer": (lambda r: _f(r.get("transfer_acc")), True, "transfer"),
    "seeds": (lambda r: _f(r.get("n_seeds")), True, "n"),
    "idea": (lambda r: str(r.get("idea", "")), False, "idea"),
    "source": (lambda r: str(r.get("source", "")), False, "source"),
}
SHORT_SOURCES = {"unverified (not isolated)": "unverified", "local run": "local"}
STATE_FILE = "tui.json"  # .w2s/tui.json: the leaderboard's dataset and sort, kept between starts


def _f(value: Any) -> float:
    try:
        return float(value) if value is not None else float("-inf")
    except (TypeError, ValueError):
        return float("-inf")


def row_key(row: dict[str, Any]) -> str:
    return f"{row.get('dataset')}|{row.get('idea')}|{row.get('key')}"


def lb_cells(row: dict[str, Any]) -> tuple[str, ...]:
    source = str(row.get("source", ""))
    return (
        str(row["rank"]) if row.get("rank") else "[dim]-[/]",  # '-': shown apart, never ranked
        str(row.get("idea", "")),  # plain text (flex columns escape after cutting)
        pgr_cell(row.get("pgr_mean"), row.get("pgr_ci95")),
        str(row.get("n_seeds", "-")),
        num(row.get("transfer_acc")),
        escape("+".join(SHORT_SOURCES.get(part, part) for part in source.split("+"))),
        str(row.get("key", "")),
    )


def load_view_state() -> dict[str, Any]:
    """The leaderboard's last dataset and sort (``.w2s/tui.json``); {} when absent or unreadable."""
    import json

    try:
        state = json.loads((paths().state / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    view = state.get("leaderboard") if isinstance(state, dict) else None
    return view if isinstance(view, dict) else {}


def save_view_state(view: dict[str, Any]) -> None:
    try:
        paths().state.mkdir(parents=True, exist_ok=True)
        atomic_write_json(paths().state / STATE_FILE, {"leaderboard": view})
    except OSError:
        pass  # a read-only workspace: the choice just is not remembered


def row_details(row: dict[str, Any]) -> str:
    seeds = ",".join(str(s) for s in row.get("seeds") or [])
    parts = [f"{row.get('idea')} · key {row.get('key')}", f"seeds {seeds or row.get('n_seeds', '-')}",
             f"weak {num(row.get('weak_acc'))} · ceiling {num(row.get('strong_acc'))} (fixed baselines)",
             f"source {row.get('source')}"]
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
        if n_weak == n_strong:  # the usual case, said once: the line fits a quarter of a 120-column screen
            part = f"weak {num(weak)} · ceiling {num(strong)}{_seeds(n_weak, ' each')}"
        else:
            part = f"weak {num(weak)}{_seeds(n_weak)} · ceiling {num(strong)}{_seeds(n_strong)}"
        parts.append(part)
    more = f" (+{len(seen) - 2} more settings)" if len(seen) > 2 else ""
    return "baselines: " + (" | ".join(parts) + more if parts else "none cached yet")


def _seeds(n: Any, each: str = "") -> str:
    return "" if not n else f" ({n} seed{'s' if n != 1 else ''}{each if n != 1 else ''})"


class LeaderboardPane(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Leaderboard"
        self.rows: list[dict[str, Any]] = []
        self.baselines: list[dict[str, Any]] = []
        self.datasets: list[str] = []
        self.dataset: str | None = None
        saved = load_view_state()
        self.dataset = saved.get("dataset") if isinstance(saved.get("dataset"), str) else None
        self.sort_name = saved.get("sort") if saved.get("sort") in SORTS else "pgr"
        self.reverse = bool(saved.get("reverse"))
        self.filter_text = ""
        self.available = False

    def compose(self) -> ComposeResult:
        yield Static("loading leaderboard…", id="lb-head", classes="pane-note")
        yield Static("", id="lb-baselines", classes="pane-note")
        yield Input(placeholder="filter ideas as you type (enter: done, esc: clear)", id="lb-search",
                    classes="hidden")
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
            self._remember()
            self.redraw()
        return self.dataset

    def cycle_sort(self) -> str:
        names = list(SORTS)
        self.sort_name = names[(names.index(self.sort_name) + 1) % len(names)]
        self.reverse = False
        self._remember()
        self.redraw()
        return self.sort_name

    def reverse_sort(self) -> bool:
        self.reverse = not self.reverse
        self._remember()
        self.redraw()
        return self.reverse

    def _remember(self) -> None:
        save_view_state({"dataset": self.dataset, "sort": self.sort_name, "reverse": self.reverse})

    def sort_arrow(self) -> str:
        """▼ for the column's natural order (best first), ▲ reversed."""
        _, descending, _ = SORTS[self.sort_name]
        return "▼" if descending != self.reverse else "▲"

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self.redraw()

    def visible_rows(self) -> list[dict[str, Any]]:
        rows = [r for r in self.rows if str(r.get("dataset")) == self.dataset]
        if self.filter_text:
            rows = [r for r in rows if self.filter_text.lower() in str(r.get("idea", "")).lower()]
        value, descending, _ = SORTS[self.sort_name]
        rows = sorted(rows, key=value, reverse=descending != self.reverse)
        return sorted(rows, key=lambda r: not r.get("rank"))  # rows shown apart stay below the ranked ones

    def redraw(self) -> None:
        head = self.query_one("#lb-head", Static)
        if not self.available:
            return
        if self.dataset is None:
            head.update("No results yet." if getattr(self.app, "readonly", False) else
                        "No results yet. Press [b]r[/] to launch a run; rows appear as seeds finish.")
            self.query_one("#lb-baselines", Static).update("")
            self.table.sync([])
            return
        switcher = " ".join(f"[reverse] {escape(d)} [/]" if d == self.dataset else escape(d) for d in self.datasets)
        extra = f" · filter {escape(repr(self.filter_text))}" if self.filter_text else ""
        order = " reversed" if self.reverse else ""
        head.update(f"{switcher}  [dim]d: next · s: sort ({self.sort_name}{order}) · S: reverse{extra}[/]")
        self._label_sorted_column()
        rows = self.visible_rows()
        self.query_one("#lb-baselines", Static).update(escape(baselines_text(self.dataset, rows, self.baselines)))
        self.table.sync([(row_key(r), lb_cells(r)) for r in rows])
        self._show_details()

    def _label_sorted_column(self) -> None:
        """The sorted column's header carries ▼ (best first) or ▲ (reversed)."""
        from rich.text import Text
        from textual.widgets.data_table import ColumnKey

        table = self.table
        sorted_key = SORTS[self.sort_name][2]
        for key, label, _ in LB_COLUMNS:
            column = table.columns.get(ColumnKey(key))
            if column is not None:
                column.label = Text(f"{label} {self.sort_arrow()}" if key == sorted_key else label)
        table.refresh()

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

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "lb-search":
            self.set_filter(event.value)

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
