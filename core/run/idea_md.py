"""Idea.md, the menu of research directions: one parser for the CLI, the TUI, the API and agents."""

from __future__ import annotations

import re
from pathlib import Path

from core.common.errors import UserError
from core.common.workspace import paths


def idea_md_path() -> Path:
    """The workspace's own Idea.md if it has one, else the packaged menu."""
    local = paths().root / "Idea.md"
    if local.is_file():
        return local
    return Path(__file__).resolve().parent.parent.parent / "Idea.md"


def idea_md_sections(text: str) -> list[tuple[str, str]]:
    """``(title, body)`` for each ``## N. Title`` section, in order (the number is dropped)."""
    out = []
    for part in re.split(r"^## +", text, flags=re.MULTILINE)[1:]:
        title, _, body = part.partition("\n")
        out.append((re.sub(r"^\d+\.\s*", "", title.strip()), body.strip()))
    return out


def directions() -> list[tuple[str, str]]:
    """``(title, direction)`` per section, the direction being "Title" plus its paragraph (what an
    agent is given); empty when there is no Idea.md."""
    path = idea_md_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [(title, f"{title}\n\n{body}".strip()) for title, body in idea_md_sections(text)]


def direction_from_idea_md(number: int) -> str:
    """Direction N (1-based) of Idea.md as "Title" plus its paragraph."""
    path = idea_md_path()
    if not path.is_file():
        raise UserError(f"{path}: missing, so --idea-md cannot pick a direction")
    sections = idea_md_sections(path.read_text(encoding="utf-8"))
    if not 1 <= number <= len(sections):
        raise UserError(f"{path}: --idea-md must be 1..{len(sections)}, got {number}")
    title, body = sections[number - 1]
    return f"{title}\n\n{body}"


def expand_direction(text: str) -> str:
    """A direction given as an Idea.md heading ("3. Title" or "Title", as the TUI's picker sends
    it) becomes the whole entry, so the agent gets the paragraph and not just the title."""
    wanted = text.strip()
    for number, (title, direction) in enumerate(directions(), 1):
        if wanted in (title, f"{number}. {title}"):
            return direction
    return text
