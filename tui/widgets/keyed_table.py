"""A DataTable kept in sync with a list of keyed rows by touching only what changed.

Why: rebuilding a table on every poll costs seconds at 10k rows and loses the cursor. ``sync`` removes
rows that left, updates only changed cells, appends new rows and re-sorts only when the order changed.

Flexible columns (:class:`Flex`) share the width the fixed ones leave: each gets what its longest
value needs while there is room, so a name is cut only when the pane really is too narrow, and then
where it says least (``cut="middle"`` keeps the end of ``vanilla_w2s demo-math seed 42``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from tui.format import shorten, shorten_middle, tail


@dataclass(frozen=True)
class Flex:
    """A column sized to its content within the room left; its cells are plain text (not markup)."""

    min: int = 8
    cut: str = "end"  # where an over-long value is cut: "end", "middle" or "start"
    keep: bool = False  # never cut: the column takes its longest value even when the table must then
    # scroll sideways (an idea's name is what a row is; its key can be read in the details line)


def _cut(text: str, width: int, how: str) -> str:
    if how == "middle":
        return shorten_middle(text, width)
    if how == "start":
        return tail(" ".join(text.split()), width)
    return shorten(text, width)


@dataclass
class SyncStats:
    added: int = 0
    removed: int = 0
    cells_updated: int = 0
    resorted: bool = False


class KeyedTable(DataTable):
    """Columns are ``(key, label, width)`` (``width``: cells, or a :class:`Flex`); rows are
    ``(row_key, cells)`` in the order to show."""

    def __init__(self, columns: Sequence[tuple[str, str, int | Flex | None]], **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
        self._column_spec = list(columns)
        self._flex = {i: w for i, (_, _, w) in enumerate(columns) if isinstance(w, Flex)}
        self._widths = {i: (w.min if isinstance(w, Flex) else w) for i, (_, _, w) in enumerate(columns)}
        self._cells: dict[str, tuple] = {}  # as given (flex cells in full)
        self._shown: dict[str, tuple] = {}  # as drawn (flex cells cut to their width)
        self._order: list[str] = []

    def on_mount(self) -> None:
        for i, (key, label, _) in enumerate(self._column_spec):
            self.add_column(label, key=key, width=self._widths[i])

    def on_resize(self) -> None:
        self._fit()

    @property
    def selected_key(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def full_cells(self, key: str) -> tuple | None:
        """A row's cells as given to :meth:`sync` (flex cells uncut)."""
        return self._cells.get(key)

    # ------------------------------------------------------------ flexible widths

    def flex_widths(self, available: int) -> dict[int, int]:
        """Width per flex column for a table ``available`` cells wide: natural widths while they fit;
        else ``keep`` columns still get theirs, then the others leftmost first, each at least its
        minimum (what does not fit scrolls sideways)."""
        pad = 2 * self.cell_padding
        fixed = sum(int(w) + pad for i, (_, _, w) in enumerate(self._column_spec) if i not in self._flex)
        room = available - fixed - pad * len(self._flex)
        natural = {
            i: max([len(self._column_spec[i][1]), spec.min, *(len(str(c[i])) for c in self._cells.values())])
            for i, spec in self._flex.items()
        }
        widths = {i: natural[i] for i, spec in self._flex.items() if spec.keep}
        room -= sum(widths.values())
        rest = [i for i in sorted(self._flex) if i not in widths]
        for n, i in enumerate(rest):
            later_min = sum(self._flex[j].min for j in rest[n + 1:])
            widths[i] = max(self._flex[i].min, min(natural[i], room - later_min))
            room -= widths[i]
        return widths

    def _fit(self) -> None:
        """Resize the flex columns to the table's width and redraw the cells that changed."""
        if not self._flex or not self.is_mounted:
            return
        available = self.scrollable_content_region.width or self.size.width
        if available <= 0:
            return
        widths = self.flex_widths(available)
        if all(self._widths[i] == w for i, w in widths.items()):
            return
        self._widths.update(widths)
        for i, w in widths.items():
            self.columns[ColumnKey(self._column_spec[i][0])].width = w
        column_keys = [c[0] for c in self._column_spec]
        for key, cells in self._cells.items():
            if key not in self._shown:
                continue  # being added by sync, drawn at the new widths there
            shown = self._render(cells)
            for i in self._flex:
                if shown[i] != self._shown[key][i]:
                    self.update_cell(key, column_keys[i], shown[i])
            self._shown[key] = shown
        self._require_update_dimensions = True
        self.refresh()

    def _render(self, cells: tuple) -> tuple:
        if not self._flex:
            return cells
        return tuple(
            escape(_cut(str(c), self._widths[i], self._flex[i].cut)) if i in self._flex else c
            for i, c in enumerate(cells)
        )

    # ------------------------------------------------------------ rows

    def sync(self, rows: Sequence[tuple[str, tuple]]) -> SyncStats:
        stats = SyncStats()
        selected = self.selected_key
        wanted = {key for key, _ in rows}
        for key in [k for k in self._order if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
            del self._shown[key]
            stats.removed += 1
        order = [k for k in self._order if k in wanted]
        column_keys = [c[0] for c in self._column_spec]
        new_rows = [(key, cells) for key, cells in rows if self._cells.get(key) != cells]
        for key, cells in new_rows:
            self._cells[key] = cells
        if new_rows and self._flex:
            self._fit()  # a longer name may widen its column (and redraw the others)
        for key, cells in new_rows:
            shown = self._render(cells)
            old = self._shown.get(key)
            if old is None:
                self.add_row(*shown, key=key)
                order.append(key)
                stats.added += 1
            else:
                for col, before, after in zip(column_keys, old, shown, strict=True):
                    if before != after:
                        self.update_cell(key, col, after)
                        stats.cells_updated += 1
            self._shown[key] = shown
        desired = [key for key, _ in rows]
        if order != desired:
            rank = {self._shown[k]: i for i, k in reversed(list(enumerate(desired)))}
            self.sort(key=lambda values: rank.get(tuple(values), len(rank)))
            stats.resorted = True
        self._order = desired
        if selected is not None and selected in wanted and stats.resorted:
            self.move_cursor(row=self.get_row_index(selected), animate=False)
        return stats
