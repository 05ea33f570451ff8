"""The launch-an-agent dialog: a direction from Idea.md or free text, executor, budgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.common.errors import UserError

FREE_TEXT = "__free_text__"


@dataclass
class AgentRequest:
    direction: str
    executor: str
    budgets: dict[str, Any] = field(default_factory=dict)


def _number(text: str, name: str, kind: type) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise UserError(f"{name}: {text!r} is not a number") from None
    if value <= 0:
        raise UserError(f"{name}: must be positive")
    return value


class LaunchAgentScreen(ModalScreen[AgentRequest | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="launch_agent_cancel"),
        Binding("ctrl+s", "submit", "Launch", id="launch_agent_submit"),
    ]

    def __init__(self, directions: list[tuple[str, str]], executors: list[str]) -> None:
        super().__init__()
        self.directions, self.executors = directions, executors

    def compose(self) -> ComposeResult:
        options = [(f"{i}. {title}", text) for i, (title, text) in enumerate(self.directions, start=1)]
        options.append(("free text (below)", FREE_TEXT))
        with Vertical(classes="dialog"):
            yield Static("[b]Launch a research agent[/]  [dim](enter or ctrl+s: launch · esc: cancel)[/]",
                         classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("direction")
                yield Select(options, value=options[0][1], id="agent-direction", allow_blank=False, compact=True)
            with Horizontal(classes="form-row"):
                yield Label("or text")
                yield Input(placeholder="free text, e.g. try confidence-weighted losses", id="agent-text",
                            compact=True)
            with Horizontal(classes="form-row"):
                yield Label("executor")
                yield Select([(x, x) for x in self.executors], value=self.executors[0], id="agent-executor",
                             allow_blank=False, compact=True)
            with Horizontal(classes="form-row"):
                yield Label("max USD")
                yield Input(value="2.00", id="agent-usd", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("max turns")
                yield Input(value="40", id="agent-turns", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("max evals")
                yield Input(value="20", id="agent-evals", compact=True)
            yield Static("", id="agent-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch", id="launch", variant="success", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def request(self) -> AgentRequest:
        text = self.query_one("#agent-text", Input).value.strip()
        chosen = self.query_one("#agent-direction", Select).value
        direction = text or (chosen if isinstance(chosen, str) and chosen != FREE_TEXT else "")
        if not direction:
            raise UserError("direction: pick one from Idea.md or type one")
        budgets = {
            "budget_usd": _number(self.query_one("#agent-usd", Input).value, "max USD", float),
            "max_turns": _number(self.query_one("#agent-turns", Input).value, "max turns", int),
            "max_evals": _number(self.query_one("#agent-evals", Input).value, "max evals", int),
        }
        return AgentRequest(direction, str(self.query_one("#agent-executor", Select).value), budgets)

    def action_submit(self) -> None:
        try:
            req = self.request()
        except UserError as exc:
            self.query_one("#agent-error", Static).update(escape(str(exc)))
            return
        self.dismiss(req)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_submit()
        else:
            self.dismiss(None)
