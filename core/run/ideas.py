"""Idea discovery: packaged ideas (the ``ideas`` package) and workspace ideas (``<workspace>/ideas``).

An idea is a folder holding ``run.py`` with ``run_experiment(cfg: RunConfig) -> dict``. A workspace
idea with the same name as a packaged one overrides it, so a researcher can fork a method in place.
An idea may declare ``DEFAULTS = {name: value}``: its own parameters, merged into ``cfg.extra`` (user
values win) so they enter the results-cache key exactly like the reference archive's keys.

Idea code is untrusted: trusted processes (the runner, ``w2s run``, the submit path) never import it.
They read ``DEFAULTS`` and check for ``run_experiment`` from the source (:func:`static_defaults`,
:func:`check_idea`); only the sandboxed entry point (``core.run.sandboxed_idea``) and tests load it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from core.common.errors import UserError
from core.common.workspace import paths
from core.results.cache import BASELINE_PRODUCERS

TEMPLATE_NAME = "TEMPLATE"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class IdeaInfo:
    """One discoverable idea: where it lives and its one-line description."""

    name: str
    path: Path
    source: str  # "workspace" | "packaged"
    description: str


def packaged_ideas_dir() -> Path:
    import ideas

    return Path(ideas.__file__).resolve().parent


def template_dir() -> Path:
    return packaged_ideas_dir() / TEMPLATE_NAME


def _describe(folder: Path) -> str:
    """First non-heading line of the idea's README.md, else the run.py docstring's first line."""
    readme = folder / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8", errors="replace").splitlines():
            text = line.strip()
            if text and not text.startswith("#"):
                return text
    run = folder / "run.py"
    try:
        text = run.read_text(encoding="utf-8", errors="replace").lstrip()
    except OSError:
        return ""
    for quote in ('"""', "'''"):
        if text.startswith(quote):
            body = text[3:].split(quote, 1)[0].strip()
            return body.splitlines()[0] if body else ""
    return ""


def _scan(base: Path, source: str) -> dict[str, IdeaInfo]:
    found: dict[str, IdeaInfo] = {}
    if not base.is_dir():
        return found
    for folder in sorted(base.iterdir()):
        if not folder.is_dir() or folder.name == TEMPLATE_NAME or folder.name.startswith(("_", ".")):
            continue
        if (folder / "run.py").is_file():
            found[folder.name] = IdeaInfo(folder.name, folder, source, _describe(folder))
    return found


def list_ideas() -> list[IdeaInfo]:
    """Every idea by name; workspace ideas override packaged ones of the same name."""
    merged = _scan(packaged_ideas_dir(), "packaged")
    merged.update(_scan(paths().ideas, "workspace"))
    return [merged[name] for name in sorted(merged)]


def check_name(name: str) -> None:
    """Idea names become folder names and part of ``{dataset}_{idea}`` cache folders."""
    if not NAME_RE.match(name or ""):
        raise UserError(
            f"invalid idea name {name!r}: use lowercase letters, digits and '_', starting with a letter"
        )
    if name in BASELINE_PRODUCERS:
        raise UserError(f"invalid idea name {name!r}: reserved for the baseline producers")


def find_idea(name: str) -> IdeaInfo:
    for info in list_ideas():
        if info.name == name:
            return info
    known = ", ".join(i.name for i in list_ideas()) or "none"
    raise UserError(f"unknown idea {name!r} (known: {known}); create one with `w2s ideas new {name}`")


def load_idea(name: str) -> ModuleType:
    """Import ``run.py`` of the named idea (untrusted code: sandbox and tests only)."""
    return load_idea_from(name, find_idea(name).path)


def load_idea_from(name: str, folder: Path) -> ModuleType:
    """Import ``folder/run.py`` by path; its folder is importable while it loads."""
    run_py = folder / "run.py"
    module_name = f"w2s_idea_{name}"
    spec = importlib.util.spec_from_file_location(module_name, run_py)
    if spec is None or spec.loader is None:
        raise UserError(f"{run_py}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    finally:
        try:
            sys.path.remove(str(folder))
        except ValueError:
            pass
    if not callable(getattr(module, "run_experiment", None)):
        raise UserError(f"{run_py}: defines no run_experiment(cfg) function")
    return module


def idea_defaults(module: ModuleType) -> dict[str, Any]:
    defaults = getattr(module, "DEFAULTS", None) or {}
    if not isinstance(defaults, dict):
        raise UserError(f"{getattr(module, '__file__', module)}: DEFAULTS must be a dict")
    return dict(defaults)


def _parse(info: IdeaInfo) -> ast.Module:
    run_py = info.path / "run.py"
    try:
        return ast.parse(run_py.read_text(encoding="utf-8"), filename=str(run_py))
    except SyntaxError as exc:
        raise UserError(f"{run_py}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{run_py}: unreadable ({exc})") from None


def static_defaults(info: IdeaInfo) -> dict[str, Any]:
    """The idea's ``DEFAULTS`` read from its source without running it: a module-level literal dict
    (``DEFAULTS = {...}`` or ``DEFAULTS: dict[...] = {...}``), else {}."""
    run_py = info.path / "run.py"
    found: dict[str, Any] = {}
    for node in _parse(info).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEFAULTS" for t in node.targets):
            value: ast.expr | None = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "DEFAULTS":
            value = node.value
        else:
            continue
        if value is None:
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            raise UserError(f"{run_py}:{node.lineno}: DEFAULTS must be a literal dict (numbers, strings, ...)") from None
        if not isinstance(literal, dict) or not all(isinstance(k, str) for k in literal):
            raise UserError(f"{run_py}:{node.lineno}: DEFAULTS must be a dict with string keys")
        found = dict(literal)
    return found


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def check_idea(name: str) -> tuple[IdeaInfo, dict[str, Any]]:
    """The named idea and its ``DEFAULTS``, checked from source: it parses and defines
    ``run_experiment``. Runs none of its code."""
    info = find_idea(name)
    tree = _parse(info)
    if "run_experiment" not in _top_level_names(tree):
        raise UserError(f"{info.path / 'run.py'}: defines no run_experiment(cfg) function")
    return info, static_defaults(info)


def new_idea(name: str) -> Path:
    """Copy TEMPLATE into ``<workspace>/ideas/<name>/``; refuses bad names and existing folders."""
    check_name(name)
    dest = paths().ideas / name
    if dest.exists():
        raise UserError(f"{dest}: already exists")
    packaged = packaged_ideas_dir() / name
    if packaged.is_dir() and (packaged / "run.py").is_file():
        raise UserError(f"{name!r} is a packaged idea; pick another name (a workspace copy would shadow it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(template_dir(), tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    readme = tmp / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8").replace("TEMPLATE", name, 1)
        readme.write_text(text, encoding="utf-8")
    tmp.rename(dest)
    return dest
