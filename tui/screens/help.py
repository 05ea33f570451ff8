"""``?``: every key binding (after the keymap file is applied) and where the keymap lives."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keymap import ACTIONS, display_key, keymap_candidates


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help_close")]

    def __init__(self, keys: dict[str, str], readonly: bool) -> None:
        super().__init__()
        self.keys = keys
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        lines = ["[b]w2s control center: keys[/]", ""]
        for action in ACTIONS:
            key = display_key(self.keys.get(action.id, action.key))
            text = action.description + (" (off: --readonly)" if self.readonly and action.mutating else "")
            lines.append(f"  [b]{escape(key):>8}[/]  {escape(text):<44} [dim]{action.id}[/]")
        lines += [
            "",
            "  [b]  ctrl+p[/]  Command palette (every action by name)",
            "  [b]     esc[/]  Close a dialog or clear a search",
            "  [b]tab/arrows[/] Move between and within widgets",
            "",
            "Remap keys by binding id in " + escape(" or ".join(str(p) for p in keymap_candidates())) + ":",
            '  [keys]\n  launch_run = "ctrl+r"',
            "",
            "Quitting leaves jobs and agents running; the control service keeps scheduling them.",
            "[dim]esc / q / ? to close[/]",
        ]
        with Vertical(classes="dialog help-dialog"):
            with VerticalScroll():
                yield Static("\n".join(lines))
