"""A bounded, searchable log tail: one ``write_lines`` per refresh, follow/pause, a filter."""

from __future__ import annotations

from collections import deque

from textual.widgets import Log


class LogView(Log):
    """Keeps the last ``max_lines`` lines; with a filter set it shows only the lines containing it."""

    def __init__(self, max_lines: int = 5000, **kwargs) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, **kwargs)
        self.retained: deque[str] = deque(maxlen=max_lines)
        self.filter_text = ""
        self.unseen = 0  # lines that arrived while paused

    @property
    def following(self) -> bool:
        return self.auto_scroll

    def set_following(self, follow: bool) -> None:
        self.auto_scroll = follow
        if follow:
            self.unseen = 0
            self.scroll_end(animate=False, x_axis=False, force=True)

    def add_lines(self, lines: list[str]) -> None:
        """Append one batch; the batch is cut to what the view keeps before any work is done on it."""
        if not lines:
            return
        cap = self.retained.maxlen or len(lines)
        if len(lines) > cap:
            lines = lines[-cap:]
        self.retained.extend(lines)
        if not self.auto_scroll:
            self.unseen += len(lines)
        if self.filter_text:
            needle = self.filter_text.lower()
            lines = [line for line in lines if needle in line.lower()]
            if not lines:
                return
        self.write_lines(lines, scroll_end=False)
        if self.auto_scroll:
            # force: with overflow auto, scrolling is "not allowed" until the next layout shows a scrollbar
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def on_resize(self) -> None:
        if self.auto_scroll:
            self.scroll_end(animate=False, x_axis=False, force=True)

    def reset(self) -> None:
        self.retained.clear()
        self.unseen = 0
        self.clear()

    def set_filter(self, text: str) -> int:
        """Show only retained lines containing ``text`` (case-insensitive); returns the match count."""
        self.filter_text = text.strip()
        self.clear()
        if self.filter_text:
            needle = self.filter_text.lower()
            shown = [line for line in self.retained if needle in line.lower()]
        else:
            shown = list(self.retained)
        if shown:
            self.write_lines(shown, scroll_end=False)
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        return len(shown)
