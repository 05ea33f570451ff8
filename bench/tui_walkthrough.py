"""A walk through the real ``w2s-tui`` in tmux, as a user over SSH would take it, with timings.

    uv run python bench/tui_walkthrough.py [--size 120x40] [--keep]

In a throwaway workspace (a tiny dataset, cached fake baselines, and a workspace ``vanilla_w2s`` that
prints 40 steps in ~6 s instead of training) it starts ``w2s-tui --port 0`` in a tmux pane (which
starts the real control service, scheduler and dashboard), then: launch a run from the dialog,
follow its log, filter the log, see the "succeeded" notification, launch a second seed, cancel it,
retry it, see it finish, quit. Each key's latency is the time from ``tmux send-keys`` until the
screen shows its effect (``capture-pane`` polled every 10 ms, so a sample includes ~5-10 ms of
polling). Prints first paint, every step, and p50/p99 of the key latencies; exit 1 when a step
does not happen within its timeout. ``tests/test_tui_walkthrough.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUICK_IDEA = '''
"""Prints as it goes and predicts a constant: a run of a few seconds, for the walk-through."""
import time
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    for step in range(40):
        print(f"quick step {step}", flush=True)
        time.sleep(0.15)
    return {"test_predictions": {r["id"]: (0.9 if i % 2 else 0.2) for i, r in enumerate(data.test)}}
'''
TINY_FLAGS = "--weak-model demo-weak --strong-model demo-strong --epochs 1 --batch-size 8 --lr 0.001 --max-ctx 64"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)] if values else float("nan")


class StepFailed(AssertionError):
    pass


class Tmux:
    """One detached session on a private tmux server (its own socket, no user config: a server the
    user or another program runs could impose its window size); keys in, screen text out."""

    def __init__(self, command: str, width: int, height: int) -> None:
        self.name = f"w2swalk{os.getpid()}"
        self.base = ["tmux", "-L", self.name, "-f", "/dev/null"]
        subprocess.run([*self.base, "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        command], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", self.name], capture_output=True,
                              text=True).stdout

    def alive(self) -> bool:
        return subprocess.run([*self.base, "has-session", "-t", self.name], capture_output=True).returncode == 0

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.name, *(["-l"] if literal else []), "--", *keys],
                       check=True)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def flat(screen: str) -> str:
    """The screen as one line of words: a toast may wrap its text."""
    return " ".join(screen.replace("▌", " ").replace("▐", " ").split())


class Walk:
    def __init__(self, tmux: Tmux) -> None:
        self.tmux = tmux
        self.steps: list[tuple[str, float]] = []
        self.key_ms: list[float] = []

    def wait(self, what: str, pred: Callable[[str], Any], timeout: float) -> float:
        start = time.perf_counter()
        toasts: list[str] = []  # notifications seen meanwhile (they are gone when a step fails)
        while True:
            screen = self.tmux.screen()
            if pred(screen):
                return time.perf_counter() - start
            for line in screen.splitlines():
                if "▌" in line and line.split("▌", 1)[1].strip() and line.split("▌", 1)[1] not in toasts:
                    toasts.append(line.split("▌", 1)[1])
            if time.perf_counter() - start > timeout:
                seen = "\n".join(t.strip() for t in toasts[-12:])
                raise StepFailed(f"{what}: not seen within {timeout:.0f}s; notifications meanwhile:\n{seen}\n"
                                 f"the screen:\n{screen}")
            time.sleep(0.01)

    def key(self, what: str, keys: list[str], pred: Callable[[str], Any], timeout: float = 10.0,
            literal: bool = False) -> float:
        """Send ``keys`` and time until ``pred`` holds on the screen: one key latency sample."""
        start = time.perf_counter()
        self.tmux.keys(*keys, literal=literal)
        self.wait(what, pred, timeout)
        took = time.perf_counter() - start
        self.key_ms.append(took * 1000)
        self.steps.append((what, took))
        return took

    def until(self, what: str, pred: Callable[[str], Any], timeout: float) -> float:
        """Wait for something the user does not cause with a key (a job finishing)."""
        took = self.wait(what, pred, timeout)
        self.steps.append((what, took))
        return took


def workspace() -> Path:
    from tests.conftest import make_dataset
    from tests.tiny_w2s import fake_baselines, tiny_config

    ws = Path(tempfile.mkdtemp(prefix="w2s-walk-")) / "ws"
    ws.mkdir()
    os.environ["W2S_WORKSPACE"] = str(ws)
    make_dataset(ws)
    fake_baselines(ws, tiny_config(), [42, 43])
    idea = ws / "ideas" / "vanilla_w2s"  # a workspace idea overrides the packaged one: the dialog's default
    idea.mkdir(parents=True)
    (idea / "run.py").write_text(QUICK_IDEA)
    (ws / "cache_results" / ".keep").touch()  # a cache exists: the demo archive is not unpacked here
    return ws


def walk(ws: Path, width: int, height: int) -> dict[str, object]:
    env = f"W2S_WORKSPACE={ws} TERM=xterm-256color HF_HUB_OFFLINE=1 W2S_SCHED_POLL=0.2"
    start = time.perf_counter()
    tmux = Tmux(f"env -u COLORTERM -u COLUMNS -u LINES {env} {REPO / '.venv' / 'bin' / 'w2s-tui'} --port 0", width, height)
    w = Walk(tmux)
    try:
        first_paint = w.wait("first paint", lambda s: all(t in s for t in ("Agents", "Jobs", "Leaderboard")), 60)
        first_paint = time.perf_counter() - start
        w.until("control service attached", lambda s: "service http://127.0.0.1:" in s, 120)
        if width >= 120 and height >= 36:  # four panes: z gives Jobs the screen (narrower: one pane already)
            w.key("2 z: the Jobs pane alone", ["2", "z"], lambda s: "GPU" not in s.split("\n", 2)[-1]
                  and "No jobs yet" in s)
        else:
            w.key("2: the Jobs pane", ["2"], lambda s: "No jobs yet" in s)
        w.key("r: launch dialog", ["r"], lambda s: "Launch a run" in s)
        tmux.keys("Tab", "Tab")  # seeds -> executor -> options
        time.sleep(0.2)
        tmux.keys(TINY_FLAGS, literal=True)
        w.key("enter: dialog closes, 'Submitting' shown", ["Enter"], lambda s: "Submitting vanilla_w2s" in s)
        w.until("submitted (the first submit loads the model registry)", lambda s: "Submitted 1 job(s)" in s, 60)
        w.until("first log line of the run (queue, sandbox, start)", lambda s: "quick step" in s, 120)
        w.key("/: filter box", ["/"], lambda s: "filter the log as you type" in s)
        w.key("typing 'step 1' filters", ["step 1"], lambda s: "filter 'step 1':" in s, literal=True)
        w.key("enter: back to the table", ["Enter"], lambda s: "filter the log as you type" not in s)
        w.key("escape: filter cleared", ["Escape"], lambda s: "filter 'step 1'" not in s)
        w.until("notification: the run succeeded", lambda s: re.search(r"Job \w+ succeeded: vanilla_w2s", flat(s)),
                120)  # the toast may wrap its text (at 80 columns "tiny seed 42" is on its next line)

        w.key("r: dialog again (remembers the options)", ["r"], lambda s: "Launch a run" in s)
        tmux.keys("BSpace", "BSpace")
        time.sleep(0.1)
        tmux.keys("43", literal=True)
        w.key("enter: second seed submitted", ["Enter"], lambda s: "Submitted 1 job(s)" in s)
        w.until("second run running", lambda s: "1 running" in s, 120)
        tmux.keys("Up", "Up")  # the newest job is the top row
        w.key("c: cancel asks first", ["c"], lambda s: "Cancel job" in s and "seed 43" in s)
        second = re.search(r"Cancel job (\w+)", tmux.screen())
        second_id = second.group(1) if second else "?"
        w.key("y: cancelled", ["y"], lambda s: "cancelled" in s, timeout=30)
        w.key("R: retry asks first", ["R"], lambda s: "Retry job" in s)
        w.key("y: queued again", ["y"], lambda s: "Retrying job" in s, timeout=30)
        w.until("notification: the retried run succeeded", lambda s: f"Job {second_id} succeeded" in flat(s), 180)
        w.key("q: quit", ["q"], lambda s: not tmux.alive(), timeout=15)
    finally:
        tmux.kill()
        subprocess.run([str(REPO / ".venv" / "bin" / "w2s"), "serve", "--stop"], capture_output=True,
                       env={**os.environ, "W2S_WORKSPACE": str(ws)})
    return {"first_paint_s": round(first_paint, 2), "steps": [(n, round(t * 1000, 1)) for n, t in w.steps],
            "keys": len(w.key_ms), "key_p50_ms": round(pct(w.key_ms, 0.5), 1),
            "key_p99_ms": round(pct(w.key_ms, 0.99), 1), "key_max_ms": round(max(w.key_ms), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--size", default="120x40", help="tmux pane size, WxH (default 120x40)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway workspace")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("tmux") is None:
        print("tui_walkthrough: tmux is not installed", file=sys.stderr)
        return 2
    width, height = (int(x) for x in args.size.lower().split("x"))
    ws = workspace()
    try:
        result = walk(ws, width, height)
    except StepFailed as exc:
        print(f"tui_walkthrough: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(ws.parent, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"w2s-tui in tmux {width}x{height}: first paint {result['first_paint_s']} s")
    for name, ms in result["steps"]:  # type: ignore[attr-defined]
        print(f"  {ms:9.1f} ms  {name}")
    print(f"key latency over {result['keys']} keys: p50 {result['key_p50_ms']} ms, p99 {result['key_p99_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
