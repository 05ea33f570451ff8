"""``core`` and ``executors`` stay headless: importing every module works with textual and flask blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

BLOCKER = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("textual", "flask"):
                raise ImportError(f"blocked import of {name}")
            return None

    sys.meta_path.insert(0, Block())
    imported = []
    for package in ("core", "executors"):
        mod = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(mod.__path__, prefix=package + "."):
            if info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
    print(len(imported))
    """
)


def test_core_never_imports_textual_or_flask() -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCKER], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip()) >= 5
