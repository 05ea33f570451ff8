"""Every key binding of the control center, by id, and the keymap file that remaps them.

One table (:data:`ACTIONS`) feeds the app's bindings, the ``?`` help screen and the command palette, so
the three never disagree. A keymap file (``<workspace>/.w2s/keymap.toml`` first, else
``~/.config/w2s/keymap.toml``) maps binding ids to keys, e.g.::

    [keys]
    launch_run = "ctrl+r"
    cancel_job = "delete"

A top-level ``launch_run = "ctrl+r"`` (without the ``[keys]`` table) works too.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding

from core.common.errors import UserError
from core.common.workspace import paths


@dataclass(frozen=True)
class Action:
    """One thing a user can do: its binding id, default key, action string and help text."""

    id: str
    key: str
    action: str
    description: str  # the long form: help screen and command palette
    footer: str = ""  # a short label in the footer; empty: not in the footer
    mutating: bool = False  # launches or cancels something: off in --readonly
    key_display: str | None = None


ACTIONS: tuple[Action, ...] = (
    Action("pane_agents", "1", "show_pane('agents')", "Show the Agents pane"),
    Action("pane_jobs", "2", "show_pane('jobs')", "Show the Jobs pane"),
    Action("pane_gpu", "3", "show_pane('gpu')", "Show the GPU pane"),
    Action("pane_leaderboard", "4", "show_pane('leaderboard')", "Show the Leaderboard pane"),
    Action("zoom", "z", "toggle_zoom", "Zoom the current pane / show all four"),
    Action("launch_run", "r", "launch_run", "Launch a run (idea, dataset, seeds)", "Run", mutating=True),
    Action("launch_agent", "a", "launch_agent", "Launch a research agent", "Agent", mutating=True),
    Action("cancel_job", "c", "cancel_job", "Cancel the selected job", "Cancel", mutating=True),
    Action("retry_job", "R", "retry_job", "Retry the selected job", mutating=True),
    Action("stop_agent", "x", "stop_agent", "Stop the selected agent", mutating=True),
    Action("follow", "f", "toggle_follow", "Follow / pause the job log tail"),
    Action("search", "slash", "search", "Search the log, transcript or leaderboard", "Search", key_display="/"),
    Action("close_search", "escape", "close_search", "Clear the search"),
    Action("next_dataset", "d", "next_dataset", "Leaderboard: next dataset"),
    Action("sort", "s", "cycle_sort", "Leaderboard: next sort column"),
    Action("reverse_sort", "S", "reverse_sort", "Leaderboard: reverse the sort order"),
    Action("wrap", "w", "toggle_wrap", "Jobs: wrap / unwrap long log lines"),
    Action("expand", "e", "toggle_expand", "Agents: show tool results in full / folded"),
    Action("open_dashboard", "o", "open_dashboard", "Show (and copy) the web dashboard URL"),
    Action("refresh", "g", "refresh_now", "Refresh everything now"),
    Action("help", "question_mark", "help", "Help: every key", "Help", key_display="?"),
    Action("quit", "q", "quit", "Quit (jobs and agents keep running)", "Quit"),
)

ACTIONS_BY_ID = {a.id: a for a in ACTIONS}


def bindings() -> list[Binding]:
    """The app's bindings; each has an ``id`` so a keymap can remap it."""
    return [
        Binding(a.key, a.action, a.footer or a.description, show=bool(a.footer), id=a.id,
                key_display=a.key_display, tooltip=a.description)
        for a in ACTIONS
    ]


def keymap_candidates() -> list[Path]:
    return [paths().state / "keymap.toml", Path.home() / ".config" / "w2s" / "keymap.toml"]


def find_keymap_file() -> Path | None:
    for path in keymap_candidates():
        if path.is_file():
            return path
    return None


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """Read a keymap file into ``{binding_id: keys}``; a mistake is one line naming file:line: field."""
    path = path or find_keymap_file()
    if path is None:
        return {}
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the keymap as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise UserError(f"{path}:{line}: {str(exc).split(' (at line')[0]}") from None
    table = data.get("keys", data)
    if not isinstance(table, dict):
        raise UserError(f"{path}:{_line_of(text, 'keys')}: keys: expected a table of binding_id = \"key\"")
    keymap: dict[str, str] = {}
    for binding_id, keys in table.items():
        if binding_id == "keys" and isinstance(keys, dict):
            continue
        line = _line_of(text, binding_id)
        if binding_id not in ACTIONS_BY_ID:
            known = ", ".join(sorted(ACTIONS_BY_ID))
            raise UserError(f"{path}:{line}: {binding_id}: unknown binding id (known: {known})")
        if not isinstance(keys, str) or not keys.strip():
            raise UserError(f"{path}:{line}: {binding_id}: expected a key string such as \"ctrl+r\"")
        problem = _bad_key_spec(keys)
        if problem:
            raise UserError(f"{path}:{line}: {binding_id}: {problem}")
        keymap[binding_id] = ",".join(k.strip() for k in keys.split(","))
    owner: dict[str, str] = {}
    for action in ACTIONS:  # every key answers to one binding: a remap may not shadow another's key
        for key in resolved_keys(keymap)[action.id].split(","):
            other = owner.setdefault(key, action.id)
            if other != action.id:
                mine, theirs = (action.id, other) if action.id in keymap else (other, action.id)
                raise UserError(f"{path}:{_line_of(text, mine)}: {mine}: key {key!r} is already bound to {theirs} "
                                f"(remap {theirs} too, or choose another key)")
    return keymap


def _bad_key_spec(keys: str) -> str | None:
    """Why ``keys`` (comma-separated Textual key names, e.g. ``ctrl+r,f5``) is no key, or None."""
    for key in keys.split(","):
        key = key.strip()
        if not key:
            return f"{keys!r}: an empty key in the list (expected e.g. \"ctrl+r\" or \"r,f5\")"
        if any(c.isspace() for c in key) or not key.isprintable():
            return f"{keys!r}: {key!r} is not a key name (no spaces; e.g. \"ctrl+r\", \"f5\", \"space\")"
        if len(key) > 1 and any(not part for part in key.split("+")):
            return f"{keys!r}: {key!r} has an empty part around '+' (e.g. \"ctrl+r\")"
    return None


def load_keymap_or_defaults(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """The keymap, or the defaults and the one line saying why the file was not used (never raises
    for the file's content): a bad keymap must not keep the control center from starting."""
    try:
        return load_keymap(path), None
    except UserError as exc:
        return {}, f"{exc}; using the default keys"
    except OSError as exc:
        return {}, f"{path or find_keymap_file()}: unreadable ({exc.strerror}); using the default keys"


def resolved_keys(keymap: dict[str, str]) -> dict[str, str]:
    """The key each binding id answers to once the keymap is applied."""
    return {a.id: keymap.get(a.id, a.key) for a in ACTIONS}


def display_key(key: str) -> str:
    names = {"question_mark": "?", "slash": "/", "full_stop": "."}
    return ",".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def _line_of(text: str, name: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(name) and stripped[len(name) :].lstrip().startswith(("=", "]")):
            return number
        if stripped == f"[{name}]":
            return number
    return 1


def _line_from_message(message: str) -> int:
    import re

    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else 1
