"""Benchmarks of the control center (``w2s-tui``): first paint, log ingest, refresh cost at 10k jobs.

    uv run python bench/tui_bench.py [--lines 300000] [--jobs 10000] [--tmux]

Runs headless (Textual's test driver, a real event loop and compositor) in a throwaway workspace.
``--tmux`` also times a real ``w2s-tui`` start in a 120x40 tmux pane until the four titles show.
Numbers for bench/README.md ("TUI").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)] if values else float("nan")


class LagProbe:
    """A 10 ms UI-thread timer; the gaps between its ticks show how long input would have waited."""

    def __init__(self, app) -> None:
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = app.set_interval(0.01, self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        return {"p50_ms": pct(self.gaps, 0.5) * 1000, "max_ms": max(self.gaps, default=0) * 1000}


class KeyProbe:
    """Sends a real key event through the driver (as a keyboard would) and times until its action runs.

    Pilot.press also waits for the app to go idle, which never happens while a log pours in.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.samples: list[float] = []
        self._sent: float | None = None
        original = app.action_show_pane

        def timed(name: str) -> None:
            if self._sent is not None:
                self.samples.append((time.perf_counter() - self._sent) * 1000)
                self._sent = None
            original(name)

        app.action_show_pane = timed

    def press(self) -> None:
        from textual import events

        if self._sent is None:
            event = events.Key("2", "2")
            event.set_sender(self.app)
            self._sent = time.perf_counter()
            self.app._driver.send_message(event)


def make_app(**kw):
    from tui.app import W2SApp

    kw.setdefault("start_service", False)
    kw.setdefault("demo_cache", False)
    return W2SApp(**kw)


# ---------------------------------------------------------------- first paint


async def bench_first_paint() -> dict[str, float]:
    t0 = time.perf_counter()
    app = make_app(poll_interval=0.5)
    async with app.run_test(size=(160, 48)) as pilot:
        mounted = time.perf_counter() - t0
        await pilot.pause(0)
        painted = time.perf_counter() - t0
        while not {"jobs", "agents", "gpu", "leaderboard"} <= set(app.polls):
            await pilot.pause(0.01)
        data = time.perf_counter() - t0
    return {"mount_s": mounted, "first_frame_s": painted, "all_panes_loaded_s": data}


def bench_tmux_first_paint(ws: Path) -> float | None:
    if shutil.which("tmux") is None:
        return None
    session = f"w2sbench{os.getpid()}"
    env = f"W2S_WORKSPACE={ws} W2S_TUI_NO_SERVICE=1 TERM=xterm-256color"
    t0 = time.perf_counter()
    subprocess.run(["tmux", "new", "-d", "-s", session, "-x", "120", "-y", "40",
                    f"env {env} {REPO / '.venv' / 'bin' / 'w2s-tui'}"], check=True)
    try:
        while time.perf_counter() - t0 < 60:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            if all(title in screen for title in ("Agents", "Jobs", "GPU", "Leaderboard")):
                return time.perf_counter() - t0
            time.sleep(0.02)
        return None
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


# ---------------------------------------------------------------- log ingest


async def bench_log_widget_baseline(lines: int) -> float:
    """The issue's reference: Textual's Log.write_lines in 1000-line chunks, a refresh after each."""
    from textual.app import App
    from textual.widgets import Log

    class LogApp(App):
        def compose(self):
            yield Log()

    app = LogApp()
    text = [f"epoch 1 step {i} loss {1 / (i + 1):.6f} lr 1e-4 grad_norm 0.731" for i in range(lines)]
    async with app.run_test(size=(160, 48)) as pilot:
        log = app.query_one(Log)
        t0 = time.perf_counter()
        for i in range(0, lines, 1000):
            log.write_lines(text[i : i + 1000])
            await pilot.pause(0)
        return lines / (time.perf_counter() - t0)


def _submit_logger_job() -> tuple[str, Path]:
    from core.control import jobs as J

    job = J.submit_job("bench", [sys.executable, "-c", "pass"], name="log bench")
    return job["id"], Path(job["run_dir"]) / "stdout.log"


async def bench_log_ingest(lines: int, paced_rate: int, paced_seconds: float) -> dict[str, float]:
    """A writer thread floods a job's stdout.log; the pane tails it while a timer and key presses probe input."""
    from tui.widgets.jobs_pane import JobsPane

    job_id, log_file = _submit_logger_job()
    app = make_app(poll_interval=0.5)
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(JobsPane)
        while pane.tailed_job != job_id:
            await pilot.pause(0.01)
        await pilot.pause(0.2)

        # 1) burst: as fast as the writer can go
        chunk = 10_000
        payload = [
            "".join(f"epoch 1 step {i + j} loss {1 / (i + j + 1):.6f} lr 1e-4 grad_norm 0.731\n" for j in range(chunk))
            for i in range(0, lines, chunk)
        ]

        def write_all() -> None:
            with open(log_file, "a") as fh:
                for block in payload:
                    fh.write(block)
                    fh.flush()

        tailer = pane._tailer
        last = f"epoch 1 step {lines - 1} "
        probe = LagProbe(app)
        keys = KeyProbe(app)
        t0 = time.perf_counter()
        writer = threading.Thread(target=write_all)
        writer.start()
        # done when the newest line is on the pane: everything before it was read or knowingly skipped
        while not (pane.log_view.lines and pane.log_view.lines[-1].startswith(last)):
            keys.press()
            await asyncio.sleep(0.01)
            if time.perf_counter() - t0 > 120:
                break
        elapsed = time.perf_counter() - t0
        writer.join()
        lag = probe.stop()
        out.update({
            "burst_lines": lines,
            "burst_s": elapsed,
            "burst_lines_per_s": lines / elapsed,
            "burst_lines_parsed": tailer.lines_read,
            "burst_lines_drawn_batches_skipped": tailer.dropped,
            "burst_bytes_jumped": tailer.skipped_bytes,
            "burst_lag_p50_ms": lag["p50_ms"],
            "burst_lag_max_ms": lag["max_ms"],
            "burst_keys": len(keys.samples),
            "burst_key_p50_ms": pct(keys.samples, 0.5),
            "burst_key_max_ms": max(keys.samples, default=0),
        })

        # 2) paced: a steady producer at paced_rate lines/s for paced_seconds. Measured: how far the
        # newest line on screen trails the newest line written (staleness), and key-press latency.
        total = int(paced_rate * paced_seconds)
        step = max(paced_rate // 100, 1)  # one write every 10 ms
        written = [0]

        def write_paced() -> None:
            start = time.perf_counter()
            with open(log_file, "a") as fh:
                for n, i in enumerate(range(0, total, step)):
                    fh.write("".join(f"paced {i + j} loss 0.1234 lr 1e-4 grad_norm 0.731\n" for j in range(step)))
                    fh.flush()
                    written[0] = i + step
                    delay = start + (n + 1) * 0.01 - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)

        def shown_index() -> int:
            lines = pane.log_view.lines
            if not lines or not lines[-1].startswith("paced "):
                return 0
            return int(lines[-1].split()[1]) + 1

        parsed_before, dropped_before = tailer.lines_read, tailer.dropped
        probe = LagProbe(app)
        keys = KeyProbe(app)
        stale_ms: list[float] = []
        t0 = time.perf_counter()
        writer = threading.Thread(target=write_paced)
        writer.start()
        while writer.is_alive():
            stale_ms.append(max(written[0] - shown_index(), 0) / paced_rate * 1000)
            keys.press()
            await asyncio.sleep(0.03)
        writer_s = time.perf_counter() - t0
        while shown_index() < total and time.perf_counter() - t0 < paced_seconds + 30:
            await pilot.pause(0.005)
        catch_up_ms = (time.perf_counter() - t0 - writer_s) * 1000
        lag = probe.stop()
        out.update({
            "paced_target_lines_per_s": paced_rate,
            "paced_written_lines_per_s": total / writer_s,
            "paced_final_line_shown": float(shown_index() == total),
            "paced_lines_parsed": tailer.lines_read - parsed_before,
            "paced_lines_not_drawn": tailer.dropped - dropped_before,
            "paced_catch_up_after_writer_ms": catch_up_ms,
            "paced_staleness_p50_ms": pct(stale_ms, 0.5),
            "paced_staleness_max_ms": max(stale_ms, default=0),
            "paced_keys": len(keys.samples),
            "paced_key_p50_ms": pct(keys.samples, 0.5),
            "paced_key_max_ms": max(keys.samples, default=0),
            "paced_lag_p50_ms": lag["p50_ms"],
            "paced_lag_max_ms": lag["max_ms"],
        })
    return out


# ---------------------------------------------------------------- 10k jobs


def populate_jobs(n: int, running: int) -> None:
    from core.control.store import Store

    now = time.time()
    docs = []
    for i in range(n):
        live = i >= n - running
        created = now - (n - i) * 5
        docs.append({
            "id": f"j{i:07d}", "kind": "idea_run", "name": f"vanilla_w2s demo-math s{i % 50}",
            "state": "running" if live else ("failed" if i % 17 == 0 else "succeeded"),
            "executor": "local", "gpus": [], "created": created, "started": created + 1,
            "finished": None if live else created + 4, "exit_code": None if live else 0,
            "history": [{"state": "queued", "time": created, "reason": "submitted"}],
            "run_dir": "", "meta": {}, "progress": 0.1 if live else None,
        })
    table = Store().table("jobs")
    for i in range(0, n, 1000):
        table.insert_many(docs[i : i + 1000])


async def bench_refresh(n_jobs: int, running: int, refreshes: int) -> dict[str, float]:
    from core.control.store import Store
    from tui import data
    from tui.widgets.jobs_pane import JobsPane
    from tui.widgets.keyed_table import KeyedTable

    t = time.perf_counter()
    populate_jobs(n_jobs, running)
    populate_s = time.perf_counter() - t
    loads = []
    for _ in range(10):
        t = time.perf_counter()
        feed = data.load_jobs(200)
        loads.append(time.perf_counter() - t)
    table = Store().table("jobs")
    live_ids = [j["id"] for j in table.hot()]

    clock = [time.time()]
    app = make_app(poll_interval=None, clock=lambda: clock[0])
    out: dict[str, float] = {"populate_s": populate_s, "load_jobs_p50_ms": pct(loads, 0.5) * 1000,
                             "rows_shown": len(feed.items), "jobs_total": feed.total}
    async with app.run_test(size=(160, 48)) as pilot:
        pane = app.query_one(JobsPane)
        while "jobs" not in app.polls:
            await pilot.pause(0.01)
        await pilot.pause(0.1)
        applies, frames, cells = [], [], []
        for r in range(refreshes):
            # what changes between two polls: elapsed ticks, progress moves, a few jobs finish
            clock[0] += 1.0
            for k, job_id in enumerate(live_ids[:5]):
                table.update(job_id, {"progress": min(1.0, 0.1 + 0.02 * r + k * 0.01)})
            feed = data.load_jobs(200)
            t = time.perf_counter()
            stats = pane.apply_feed(feed, clock[0])
            applies.append(time.perf_counter() - t)
            cells.append(stats.cells_updated)
            t = time.perf_counter()
            await pilot.pause(0)
            frames.append(time.perf_counter() - t)
        out.update({
            "apply_p50_ms": pct(applies, 0.5) * 1000, "apply_p99_ms": pct(applies, 0.99) * 1000,
            "frame_p50_ms": pct(frames, 0.5) * 1000, "frame_p99_ms": pct(frames, 0.99) * 1000,
            "cells_updated_per_refresh": statistics.median(cells),
        })

        # the naive way, for comparison: rebuild a table with every job
        all_jobs = table.all()
        naive = KeyedTable([("id", "id", 8), ("name", "name", 16), ("state", "state", 9)], id="naive")
        await app.screen.mount(naive)
        await pilot.pause(0)
        t = time.perf_counter()
        for job in all_jobs:
            naive.add_row(job["id"], job["name"], job["state"], key=job["id"])
        await pilot.pause(0)
        out["naive_add_all_rows_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for job in all_jobs[:1000]:
            naive.update_cell(job["id"], "state", "running")
        await pilot.pause(0)
        out["naive_update_1000_cells_s"] = time.perf_counter() - t
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000, help="lines in the log burst")
    parser.add_argument("--paced-rate", type=int, default=60_000, help="lines/s of the steady producer")
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--refreshes", type=int, default=40)
    parser.add_argument("--tmux", action="store_true", help="also time a real start in tmux (120x40)")
    args = parser.parse_args()

    ws = Path(tempfile.mkdtemp(prefix="w2s-tui-bench-"))
    os.environ["W2S_WORKSPACE"] = str(ws)
    os.environ["W2S_TUI_NO_SERVICE"] = "1"
    try:
        t = time.perf_counter()
        import tui.app  # noqa: F401  (import cost is part of a start)

        print(f"import tui.app: {time.perf_counter() - t:.2f} s")
        fp = asyncio.run(bench_first_paint())
        print("first paint (headless 160x48): " + ", ".join(f"{k} {v:.2f}" for k, v in fp.items()))
        if args.tmux:
            real = bench_tmux_first_paint(ws)
            print(f"first paint (w2s-tui in tmux 120x40, process start to four titles): "
                  f"{'n/a' if real is None else f'{real:.2f} s'}")
        base = asyncio.run(bench_log_widget_baseline(min(args.lines, 100_000)))
        print(f"log baseline (Log.write_lines, 1000-line chunks, refresh each): {base:,.0f} lines/s")
        ingest = asyncio.run(bench_log_ingest(args.lines, args.paced_rate, args.paced_seconds))
        print("log pane: " + ", ".join(f"{k} {v:,.1f}" for k, v in ingest.items()))
        refresh = asyncio.run(bench_refresh(args.jobs, 50, args.refreshes))
        print(f"refresh with {args.jobs} jobs: " + ", ".join(f"{k} {v:,.2f}" for k, v in refresh.items()))
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
