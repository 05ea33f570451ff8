"""The launch-a-run dialog: idea, dataset, seeds, executor, RunConfig options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.common.errors import UserError
from tui import data


@dataclass
class RunRequest:
    idea: str
    dataset: str
    seeds: list[int]
    executor: str
    options: str


class LaunchRunScreen(ModalScreen[RunRequest | None]):
    """Validates everything before dismissing, so a bad field is named here and nothing is submitted."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="launch_run_cancel"),
        Binding("ctrl+s", "submit", "Launch", id="launch_run_submit"),
    ]

    def __init__(self, ideas: list[str], datasets: list[str], executors: list[str], **defaults: Any) -> None:
        super().__init__()
        self.ideas, self.datasets, self.executors = ideas, datasets, executors
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        d = self.defaults
        idea = d.get("idea") if d.get("idea") in self.ideas else (self.ideas[0] if self.ideas else Select.NULL)
        ds = d.get("dataset") if d.get("dataset") in self.datasets else (
            self.datasets[0] if self.datasets else Select.NULL
        )
        with Vertical(classes="dialog"):
            yield Static("[b]Launch a run[/]  [dim](one job per seed · enter or ctrl+s: launch · esc: cancel)[/]",
                         classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("idea")
                yield Select([(i, i) for i in self.ideas], value=idea, id="run-idea", prompt="no ideas found",
                             allow_blank=not self.ideas, compact=True)
            with Horizontal(classes="form-row"):
                yield Label("dataset")
                yield Select([(x, x) for x in self.datasets], value=ds, id="run-dataset",
                             prompt="none in data/ (w2s data prepare)", allow_blank=not self.datasets,
                             compact=True)
            with Horizontal(classes="form-row"):
                yield Label("seeds")
                yield Input(value=str(d.get("seeds", "42")), id="run-seeds", compact=True,
                            placeholder="42,43,44 or 42-44")
            with Horizontal(classes="form-row"):
                yield Label("executor")
                yield Select([(x, x) for x in self.executors], value=self.executors[0], id="run-executor",
                             allow_blank=False, compact=True)
            with Horizontal(classes="form-row"):
                yield Label("options")
                yield Input(value=str(d.get("options", "")), id="run-options", compact=True,
                            placeholder="RunConfig flags: --epochs 1 --train-size 64")
            yield Static("", id="run-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch", id="launch", variant="success", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#run-seeds", Input).focus()

    def request(self) -> RunRequest:
        idea = self.query_one("#run-idea", Select).value
        dataset = self.query_one("#run-dataset", Select).value
        if not isinstance(idea, str):
            raise UserError("idea: choose an idea (ideas/<name>/run.py)")
        if not isinstance(dataset, str):
            raise UserError("dataset: choose a dataset (prepare one with `w2s data prepare`)")
        seeds = data.parse_seeds(self.query_one("#run-seeds", Input).value)
        options = self.query_one("#run-options", Input).value
        data.parse_run_options(options, idea)  # named error now rather than a failed job later
        executor = str(self.query_one("#run-executor", Select).value)
        return RunRequest(idea, dataset, seeds, executor, options)

    def action_submit(self) -> None:
        try:
            req = self.request()
        except UserError as exc:
            self.query_one("#run-error", Static).update(escape(str(exc)))
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
