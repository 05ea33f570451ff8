"""Run small Python snippets for real, in a separate process with timeouts, and capture stdout.

Why: demo-code's ground truth must be what the code actually prints, never a typed answer. One
worker subprocess runs a batch (each snippet in a fresh namespace, a per-snippet alarm), which is
fast enough to execute thousands of snippets; the whole batch also has a wall-clock timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

_WORKER = r"""
import contextlib, io, json, signal, sys

def _alarm(signum, frame):
    raise TimeoutError("snippet timed out")

signal.signal(signal.SIGALRM, _alarm)
per_snippet = float(sys.argv[1])
snippets = json.load(sys.stdin)
results = []
for src in snippets:
    buf = io.StringIO()
    signal.setitimer(signal.ITIMER_REAL, per_snippet)
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(src, "<snippet>", "exec"), {"__name__": "__snippet__"})
        results.append({"ok": True, "stdout": buf.getvalue()})
    except BaseException as exc:  # a failing snippet is a result, not a crash of the batch
        results.append({"ok": False, "stdout": buf.getvalue(), "error": type(exc).__name__})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
json.dump(results, sys.stdout)
"""


class SnippetError(RuntimeError):
    """The worker process itself failed (not one snippet)."""


def run_snippets(
    snippets: Sequence[str], per_snippet_s: float = 5.0, batch_timeout_s: float = 600.0
) -> list[dict]:
    """Execute each snippet; return ``{"ok", "stdout", "error"?}`` per snippet, same order."""
    if not snippets:
        return []
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT")}
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _WORKER, str(per_snippet_s)],
        input=json.dumps(list(snippets)),
        capture_output=True,
        text=True,
        timeout=batch_timeout_s,
        env=env,
    )
    if proc.returncode != 0:
        raise SnippetError(f"snippet worker exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    results = json.loads(proc.stdout)
    if len(results) != len(snippets):
        raise SnippetError(f"worker returned {len(results)} results for {len(snippets)} snippets")
    return results
