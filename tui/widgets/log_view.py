"""A bounded, searchable log tail drawn line by line: follow/pause, a filter, one cheap append per batch.

Why not Textual's ``Log``: it measures every new line's width in a thread worker per write and keeps an
unbounded render cache; at tens of thousands of lines per second that work, not the drawing, stalls
input. Here an append is a list extend plus a length check; only the visible rows are cleaned (ANSI
codes, carriage-return overwrites, control characters) when drawn.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def clean(line: str) -> str:
    """What a terminal would show: the text after the last carriage return, no escapes or controls."""
    if "\r" in line:
        parts = [p for p in line.split("\r") if p]
        line = parts[-1] if parts else ""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    return _CONTROL.sub("�", line.expandtabs())


def wrap_rows(line: str, width: int) -> list[str]:
    """One log line as screen rows ``width`` cells wide (cleaned first, so escapes take no room)."""
    text = clean(line)
    if width <= 0 or len(text) <= width:
        return [text]
    return [text[i : i + width] for i in range(0, len(text), width)]


class LogView(ScrollView, can_focus=True):
    """Keeps the last ``max_lines`` lines; with a filter set it shows only the lines containing it.

    Long lines wrap at the pane's edge (``wrap``, the default); unwrapped, the view scrolls sideways."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $text;
        overflow-y: auto;
        overflow-x: hidden;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(self, max_lines: int = 5000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.retained: deque[str] = deque(maxlen=max_lines)  # every kept line, filter or not
        self._shown: list[str] = []  # what is drawn (the retained lines matching the filter)
        self._width = 0
        self.filter_text = ""
        self.following = True
        self.unseen = 0  # lines that arrived while paused
        self.wrap = True  # overflow-x is hidden while wrapping (see set_wrap and DEFAULT_CSS)
        self._rows: list[str] = []  # wrapped screen rows of the shown lines (wrap on)
        self._row_counts: list[int] = []  # rows per shown line, so a trim drops rows without re-wrapping
        self._wrap_width = 0

    @property
    def lines(self) -> list[str]:
        """The lines on display, oldest first."""
        return self._shown

    def set_following(self, follow: bool) -> None:
        self.following = follow
        if follow:
            self.unseen = 0
            self._to_end()

    def add_lines(self, lines: list[str]) -> None:
        """Append one batch; the batch is cut to what the view keeps before any other work."""
        if not lines:
            return
        if len(lines) > self.max_lines:
            lines = lines[-self.max_lines :]
        self.retained.extend(lines)
        if not self.following:
            self.unseen += len(lines)
        if self.filter_text:
            needle = self.filter_text.lower()
            lines = [line for line in lines if needle in line.lower()]
            if not lines:
                return
        self._append(lines)

    def _append(self, lines: Iterable[str]) -> None:
        shown = self._shown
        before = len(shown)
        shown.extend(lines)
        trimmed = 0
        if len(shown) > self.max_lines + self.max_lines // 4:  # trim in steps: amortised O(1) per line
            trimmed = len(shown) - self.max_lines
            del shown[:trimmed]
        self._width = max(self._width, max(map(len, shown[max(before - trimmed, 0) :]), default=0))
        if self.wrap and self._wrap_width == self._content_width() and len(self._row_counts) == before:
            width = self._wrap_width
            for line in shown[max(before - trimmed, 0):]:  # only the new lines are wrapped
                rows = wrap_rows(line, width)
                self._rows.extend(rows)
                self._row_counts.append(len(rows))
            if trimmed:
                del self._rows[: sum(self._row_counts[:trimmed])]
                del self._row_counts[:trimmed]
            self.virtual_size = Size(width, len(self._rows))
        else:
            self._resize_virtual()
        if self.following:
            self._to_end()
        elif trimmed:  # keep the same text under the reader's eyes
            self.scroll_to(y=max(self.scroll_y - trimmed, 0), animate=False, force=True, immediate=True)
        self.refresh()

    def _to_end(self) -> None:
        # force: with overflow auto, scrolling is "not allowed" until the next layout shows a scrollbar
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _content_width(self) -> int:
        """Wrap width: the view's width less one column kept for the vertical scrollbar, so the bar
        appearing never makes a wrapped line one cell too wide (and a sideways bar appear)."""
        return max(self.size.width - 1, 1)

    def _resize_virtual(self) -> None:
        """Recompute what scrolls: wrapped rows at the current width, or the widest line. Before the
        first layout (no width yet) nothing is wrapped: the first resize does it."""
        if self.wrap and self.size.width <= 1:
            self._rows, self._row_counts, self._wrap_width = [], [], 0
            self.virtual_size = Size(0, 0)
        elif self.wrap:
            width = self._wrap_width = self._content_width()
            wrapped = [wrap_rows(line, width) for line in self._shown]
            self._rows = [row for rows in wrapped for row in rows]
            self._row_counts = [len(rows) for rows in wrapped]
            self.virtual_size = Size(width, len(self._rows))
        else:
            self._rows = []
            self._row_counts = []
            self.virtual_size = Size(self._width, len(self._shown))

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self.styles.overflow_x = "hidden" if wrap else "auto"
        self._resize_virtual()
        if self.following:
            self._to_end()
        self.refresh()

    def on_resize(self) -> None:
        if self.wrap and self._wrap_width != self._content_width():
            self._resize_virtual()
            self.refresh()
        if self.following:
            self.call_after_refresh(self._to_end)

    def reset(self) -> None:
        self.retained.clear()
        self._shown = []
        self._width = 0
        self.unseen = 0
        self._rows = []
        self._row_counts = []
        self.virtual_size = Size(0, 0)
        self.scroll_to(0, 0, animate=False, force=True, immediate=True)
        self.refresh()

    def set_filter(self, text: str) -> int:
        """Show only retained lines containing ``text`` (case-insensitive); returns the match count."""
        self.filter_text = text.strip()
        needle = self.filter_text.lower()
        self._shown = [line for line in self.retained if needle in line.lower()] if needle else list(self.retained)
        self._width = max(map(len, self._shown), default=0)
        self._resize_virtual()
        self._to_end()
        self.refresh()
        return len(self._shown)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if self.wrap:
            if index >= len(self._rows):
                return Strip.blank(width, style)
            return Strip([Segment(self._rows[index], style)]).extend_cell_length(width, style)
        if index >= len(self._shown):
            return Strip.blank(width, style)
        text = clean(self._shown[index])
        strip = Strip([Segment(text, style)]).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, style)
