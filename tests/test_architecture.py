"""The layout's rules that import-linter contracts cannot state: no import cycle among project
modules, no run-time (``importlib``) load of a project module from core, and the service's
scheduler process never loading a front end or a UI/web framework."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping

import grimp

from tests.conftest import REPO

PROJECT_PACKAGES = ("core", "executors", "ideas", "web", "tui", "cli")

# Dynamic imports core may make, by file: ideas are plugins loaded by path; the engine probes
# optional third-party SDKs. Anything else must be a plain import statement the contracts can see.
DYNAMIC_IMPORT_ALLOWED = {
    "core/run/ideas.py": {"spec_from_file_location"},
    "core/engine/backends.py": {"import_module"},
}
DYNAMIC_IMPORTS = {"import_module", "__import__", "spec_from_file_location"}
SDK_PROBES = {"importable", "_importable", "import_module"}  # in backends.py: what they may name

SCHEDULER_PROCESS_MODULES = (
    "core.control.scheduler",
    "core.control.jobs",
    "core.referee.service",
    "core.agent.launcher",
    "core.app.seed_runs",
)
FRONT_END_ROOTS = ("web", "tui", "cli", "flask", "textual", "werkzeug", "waitress")


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (the import graph is deep enough to hit
    Python's recursion limit); each component sorted, in no particular order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(graph.get(root, ()))))
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def _cycle_in(component: list[str], graph: Mapping[str, set[str]]) -> list[str]:
    """One concrete cycle through the component's first module (for a readable failure message)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth-first inside the component, back to start
        nxt_frontier = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if succ not in parents:
                    parents[succ] = node
                    nxt_frontier.append(succ)
        frontier = nxt_frontier
    return component


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports, counting imports inside functions (grimp reads every
    import statement). Only explicit imports are edges: Python also runs a parent package's
    ``__init__`` before a child, but counting that would make every package that imports its own
    submodules a cycle."""
    graph = grimp.build_graph(*PROJECT_PACKAGES, include_external_packages=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}


def test_strongly_connected_finds_cycles_and_ignores_trees():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    comps = sorted(strongly_connected(graph))
    assert ["a", "b", "c"] in comps and ["d"] in comps and ["f"] in comps
    assert _cycle_in(["a", "b", "c"], {k: set(v) for k, v in graph.items()}) == ["a", "b", "c", "a"]
    chain = {str(i): {str(i + 1)} for i in range(5000)}  # deeper than the recursion limit
    assert len(strongly_connected(chain)) == 5001


def test_no_import_cycle_among_project_modules():
    graph = import_graph()
    assert "core.control.scheduler" in graph and "web.service" in graph, "grimp did not see the project"
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    cycles += [[m] for m, deps in graph.items() if m in deps]
    message = "\n".join(
        f"{len(c)} modules: {', '.join(c)}\n    e.g. {' -> '.join(_cycle_in(c, graph))}" for c in cycles
    )
    assert not cycles, f"import cycles among project modules:\n{message}"


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def test_core_loads_no_project_module_at_run_time():
    problems = []
    for path in sorted((REPO / "core").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        allowed = DYNAMIC_IMPORT_ALLOWED.get(rel, set())
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _called_name(node)
            if name in DYNAMIC_IMPORTS and name not in allowed:
                problems.append(f"{rel}:{node.lineno}: {name}(...)")
            if rel == "core/engine/backends.py" and name in SDK_PROBES:
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                            and arg.value.split(".")[0] in PROJECT_PACKAGES:
                        problems.append(f"{rel}:{node.lineno}: probes project module {arg.value!r}")
    assert not problems, "run-time imports of project modules in core (write a plain import):\n" + "\n".join(
        problems)


def test_the_scheduler_process_loads_no_front_end():
    """What ``python -m web.service`` runs beside Flask (scheduler, jobs, referee, agent launcher,
    seed runs) loads no front end, whatever way it imports: checked in a fresh interpreter, so
    ``importlib`` loads at import time count too (imports inside functions are what the
    import-linter contracts and the cycle test above read)."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(SCHEDULER_PROCESS_MODULES)!r}:\n"
        "    importlib.import_module(name)\n"
        f"roots = {list(FRONT_END_ROOTS)!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in roots)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the scheduler process loaded front-end modules: {loaded}"
