"""File tools: list, read, write and edit files in the agent's own idea folder, or start it from TEMPLATE.

Reads also reach a read-only library: ``@core/...`` (the idea SDK and engine), ``@ideas/...`` (the
packaged ideas), ``@workspace/...`` (the workspace's ideas, other agents' included) and
``@findings`` (the shared findings, one virtual file each), so an agent learns the API and what
others tried without shell tricks.

They run in the trusted loop process, so they confine themselves: a write goes through
:func:`resolve_inside` and :func:`write_text` (only the agent's own folder, never through a symlink
or hard link), a read or listing through :func:`resolve_readable` (its folder and the label-free
``data/``). Symlinks the agent's shell made are judged by where they point.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.agent.tools.context import (
    ToolContext,
    ToolError,
    relative,
    resolve_inside,
    resolve_readable,
    write_text,
)
from core.common.errors import UserError
from core.control import findings
from core.control.store import Store
from core.run.ideas import new_idea

FINDINGS_ROOT = "@findings"

WRITE_CAP = 1_000_000  # characters one write_file may store
LIST_CAP = 500  # entries one list_files shows


def list_files(ctx: ToolContext, path: str = ".", recursive: bool = True) -> str:
    if not ctx.folder.exists() and _names_own_folder(ctx, path):  # a new agent, before its first write
        return f"(empty: ideas/{ctx.idea_name}/ has no files yet; start_from_template or write_file)"
    if str(path).rstrip("/") == FINDINGS_ROOT:
        rows = findings.list_findings(Store())
        return "\n".join(f"{FINDINGS_ROOT}/{f.get('id')}  {f.get('title')}  (by {f.get('author')}, run "
                         f"{f.get('run')})" for f in rows[:LIST_CAP]) or "(no findings yet)"
    target = resolve_readable(ctx, path)
    if target.is_file():
        return f"{relative(ctx, target)}  {target.stat().st_size} bytes"
    lines = []
    walker = sorted(target.rglob("*")) if recursive else sorted(target.iterdir())
    for item in walker:
        if "__pycache__" in item.parts or item.name.endswith(".pyc"):
            continue
        if item.is_symlink():
            lines.append(f"{item.relative_to(target)}  (symlink, not followed)")
            continue
        kind = "/" if item.is_dir() else f"  {item.stat().st_size} bytes"
        lines.append(f"{item.relative_to(target)}{kind}")
        if len(lines) >= LIST_CAP:
            lines.append("[... more entries cut ...]")
            break
    return "\n".join(lines) or "(empty)"


def _names_own_folder(ctx: ToolContext, path: str) -> bool:
    """Whether ``path`` is the agent's folder itself (``.``, ``./``, or its absolute path)."""
    if not isinstance(path, str) or not path.strip():
        return False
    candidate = Path(path)
    return os.path.normpath(candidate if candidate.is_absolute() else ctx.folder / candidate) == \
        os.path.normpath(ctx.folder)


def _finding_text(path: str) -> str:
    """A finding as a virtual file: every field and its comments, as JSON."""
    ident = path.split("/", 1)[1].strip("/") if "/" in path else ""
    try:
        doc = findings.get(Store(), ident)
    except findings.FindingNotFound:
        raise ToolError(f"{path}: no such finding (list_files {FINDINGS_ROOT})") from None
    return json.dumps(doc, indent=1, default=str, ensure_ascii=False)


def read_file(ctx: ToolContext, path: str, start_line: int = 1, max_lines: int = 400) -> str:
    if isinstance(path, str) and path.startswith(FINDINGS_ROOT + "/"):
        text = _finding_text(path)
    else:
        target = resolve_readable(ctx, path)
        if not target.is_file():
            raise ToolError(f"{path}: not a file")
        text = target.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    start = max(1, int(start_line))
    chunk = lines[start - 1 : start - 1 + max(1, int(max_lines))]
    body = "\n".join(f"{start + i:5d}  {line}" for i, line in enumerate(chunk))
    more = len(lines) - (start - 1 + len(chunk))
    if more > 0:
        body += f"\n[... {more} more lines; read again with start_line={start + len(chunk)}]"
    return body or "(empty file)"


def write_file(ctx: ToolContext, path: str, content: str) -> str:
    if not isinstance(content, str):
        raise ToolError("content must be a string")
    if len(content) > WRITE_CAP:
        raise ToolError(f"content too large ({len(content)} > {WRITE_CAP} characters)")
    target = resolve_inside(ctx, path)
    if target.is_dir():
        raise ToolError(f"{path}: is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, content)
    return f"wrote {relative(ctx, target)} ({len(content)} characters)"


def edit_file(ctx: ToolContext, path: str, old_text: str, new_text: str, replace_all: bool = False) -> str:
    target = resolve_inside(ctx, path, must_exist=True)
    if not target.is_file():
        raise ToolError(f"{path}: not a file")
    text = target.read_text(encoding="utf-8")
    count = text.count(old_text) if old_text else 0
    if count == 0:
        raise ToolError(f"{path}: old_text not found (read the file and copy the text exactly)")
    if count > 1 and not replace_all:
        raise ToolError(f"{path}: old_text occurs {count} times; add context or set replace_all")
    text = text.replace(old_text, new_text) if replace_all else text.replace(old_text, new_text, 1)
    write_text(target, text)
    return f"edited {relative(ctx, target)} ({count if replace_all else 1} replacement(s))"


def start_from_template(ctx: ToolContext) -> str:
    """Copy TEMPLATE into the agent's folder (once)."""
    if (ctx.folder / "run.py").exists():
        raise ToolError(f"ideas/{ctx.idea_name}/run.py already exists; edit it instead")
    if ctx.folder.exists():
        if any(ctx.folder.iterdir()):
            raise ToolError(f"ideas/{ctx.idea_name}/ is not empty; TEMPLATE not copied")
        ctx.folder.rmdir()
    try:
        dest = new_idea(ctx.idea_name)
    except UserError as exc:
        raise ToolError(str(exc)) from None
    files = ", ".join(sorted(p.name for p in dest.iterdir() if p.name != "__pycache__"))
    return f"copied TEMPLATE into ideas/{ctx.idea_name}/ ({files}); read run.py next"
