"""What every tool shares: the context it may reach, its result type, path confinement, the output cap.

File tools run here, in the trusted loop process, so their path confinement lives here too: every
tool that takes a path (files, predictions to evaluate) resolves it (symlinks and ``..`` followed)
and refuses the same things the same way. Writes land only inside the agent's own idea folder;
reads also reach the label-free ``data/``. Code the agent writes never runs here: the shell runs in
a sandbox (``shell``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.agent.budgets import Budgets, Usage
from core.common.workspace import paths
from core.sandbox.base import Sandbox

OUTPUT_CAP = 20_000  # characters of any tool result the model sees
REPO = Path(__file__).resolve().parents[3]  # the checkout holding core/ and ideas/


class ToolError(Exception):
    """A refused or failed tool call; its message goes back to the model as an error result."""


class StopRequested(BaseException):
    """Raised (from a signal handler or a stop check) to end the loop cleanly; a BaseException, so
    a tool that waits long raises it through ``run_tool``'s catch-all."""


@dataclass
class ToolContext:
    """What the tools may reach: one agent's folder, its jobs, its run token, its budgets."""

    agent_id: str
    idea_name: str
    folder: Path
    run_dir: Path
    budgets: Budgets
    usage: Usage
    service_url: str | None = None
    run_token: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # non-secret settings for the shell
    sandbox: Sandbox | None = None  # where the shell runs; None: core.sandbox.default_sandbox()
    deadline: Callable[[], float] | None = None  # seconds of wall budget left
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic  # what long waits measure time with
    stop_check: Callable[[], bool] = lambda: False  # the operator asked the agent to stop
    poll_s: float = 2.0  # how often a long wait looks at the store
    transcript: Path | None = None  # the loop's transcript (the plot tool reads past evaluations)


@dataclass
class ToolOutcome:
    """A tool's answer plus what the loop must do about it (count an evaluation, finish, stop)."""

    text: str
    is_error: bool = False
    evaluation: bool = False  # a scored referee call (counts against the evaluation budget)
    finish: str | None = None  # the agent's final summary
    stop: str | None = None  # the loop must stop (reason)
    wrap_up: str | None = None  # a budget is spent: a few more turns to share and finish, then stop
    images: list[bytes] = field(default_factory=list)  # PNGs, sent as image blocks after the text


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(target: Path, root: Path) -> bool:
    return target == root or root in target.parents


def _resolve(ctx: ToolContext, rel: str) -> Path:
    """The real path ``rel`` names (relative to the agent's folder, or absolute), every symlink and
    ``..`` followed, so the checks below judge where a call really lands."""
    if not isinstance(rel, str) or not rel.strip():
        raise ToolError("path is required")
    if "\x00" in rel:
        raise ToolError("path contains a NUL byte")
    candidate = Path(rel)
    return _real(candidate if candidate.is_absolute() else _real(ctx.folder) / candidate)


def resolve_inside(ctx: ToolContext, rel: str, *, must_exist: bool = False) -> Path:
    """The real path of ``rel`` inside the agent's own folder, or ToolError: the only places a tool
    may write. Symlinks are followed before the check, so a link pointing at ``../../labeled_data``
    (or another idea, Idea.md, ``.w2s/``) is refused like the path itself. ``@`` paths name the
    read-only library and are refused too."""
    if isinstance(rel, str) and rel.startswith("@"):
        raise ToolError(f"refused: {rel!r} is in the read-only library; write in your folder ideas/{ctx.idea_name}/")
    target = _resolve(ctx, rel)
    if not _inside(target, _real(ctx.folder)):
        raise ToolError(f"refused: {rel!r} resolves outside your folder ideas/{ctx.idea_name}/")
    if must_exist and not target.exists():
        raise ToolError(f"{rel}: no such file or folder")
    return target


def library_roots() -> dict[str, Path]:
    """The read-only library the file tools show under ``@name`` paths: the idea SDK and engine
    (``@core``), the packaged ideas (``@ideas``) and the workspace's ideas, other agents' included
    (``@workspace``). A root that resolves into a hidden place is left out."""
    import ideas as packaged  # the packaged ideas folder, wherever the checkout is

    roots = {"@core": REPO / "core", "@ideas": Path(packaged.__file__).resolve().parent,
             "@workspace": paths().ideas}
    return {name: _real(root) for name, root in roots.items() if root.is_dir() and not _hidden(_real(root))}


def _hidden(path: Path) -> bool:
    """Whether ``path`` is (inside) ``labeled_data/``, ``.w2s/`` or ``runs/``, or is the workspace
    root or one of its ancestors: what no read may reach, whatever root it came through."""
    ws = paths()
    return _inside(_real(ws.root), path) or any(_inside(path, _real(p)) for p in (ws.labeled_data, ws.state, ws.runs))


def library_path(rel: str) -> Path | None:
    """The real path an ``@core/...``-style path names, or None when ``rel`` is not one."""
    if not isinstance(rel, str) or not rel.startswith("@"):
        return None
    head, _, rest = rel.partition("/")
    roots = library_roots()
    if head not in roots:
        raise ToolError(f"{head}: unknown library root (there are {', '.join(sorted(roots))} and @findings)")
    return _real(roots[head] / rest) if rest else roots[head]


def resolve_readable(ctx: ToolContext, rel: str) -> Path:
    """The real path of an existing ``rel`` in the agent's folder, the label-free ``data/`` or the
    read-only library (:func:`library_roots`), or ToolError. Never ``labeled_data/``, ``.w2s/``, a
    run folder or the workspace root, through a symlink or otherwise."""
    lib = library_path(rel)
    target = lib if lib is not None else _resolve(ctx, rel)
    roots = (_real(ctx.folder), _real(paths().data), *library_roots().values())
    if not any(_inside(target, root) for root in roots) or _hidden(target):
        raise ToolError(f"refused: {rel!r} resolves outside your folder ideas/{ctx.idea_name}/, "
                        f"the label-free {roots[1]}/ and the library (@core, @ideas, @workspace)")
    if not target.exists():
        raise ToolError(f"{rel}: no such file or folder")
    return target


def open_for_write(target: Path) -> int:
    """A descriptor to overwrite ``target`` (already checked by :func:`resolve_inside`) that cannot
    land elsewhere: no symlink as the last component, no hard link shared with a file outside."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if target.is_symlink():
        raise ToolError(f"refused: {target.name} is a symlink")
    if target.exists() and target.stat().st_nlink > 1:
        raise ToolError(f"refused: {target.name} is a hard link (its other name may be outside your folder)")
    try:
        return os.open(target, flags, 0o644)
    except OSError as exc:
        raise ToolError(f"cannot write {target.name}: {exc.strerror}") from None


def write_text(target: Path, text: str) -> None:
    """Write through :func:`open_for_write`."""
    with os.fdopen(open_for_write(target), "w", encoding="utf-8") as fh:
        fh.write(text)


def relative(ctx: ToolContext, path: Path) -> str:
    """``path`` as the agent names it: relative to its folder (absolute when it is in data/)."""
    root = _real(ctx.folder)
    if path == root:
        return "."
    return str(path.relative_to(root)) if root in path.parents else str(path)


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail of long output (errors usually sit at the end)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"
