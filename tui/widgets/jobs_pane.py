"""The Jobs pane: the queue as a keyed table and the selected job's live log tail."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from core.common.job_types import LIVE_STATES
from tui import data
from tui.format import attempt_elapsed, duration, eta, gpus_cell, progress_cell, to_epoch
from tui.tailer import Tailer
from tui.widgets.keyed_table import Flex, KeyedTable, SyncStats
from tui.widgets.log_view import LogView

STATE_STYLE = {
    "queued": "[dim]queued[/]",
    "starting": "[cyan]starting[/]",
    "running": "[bold cyan]running[/]",
    "retrying": "[yellow]retrying[/]",
    "succeeded": "[green]succeeded[/]",
    "failed": "[bold red]failed[/]",
    "cancelled": "[magenta]cancelled[/]",
}
DRAIN_INTERVAL = 1 / 30  # seconds between log writes while lines pour in (about one per frame)
JOB_COLUMNS = [  # most telling first: a narrow pane cuts from the right (cells are padded by one each side)
    ("state", "state", 9),
    ("name", "name", Flex(16, cut="middle")),  # as wide as the names need; cut in the middle (the seed stays)
    ("elapsed", "elapsed", 7),
    ("progress", "progress", 11),
    ("gpu", "gpu", 3),
    ("executor", "exec", 5),
    ("id", "id", 8),
]


def job_cells(job: dict[str, Any], now: float) -> tuple[str, ...]:
    state = str(job.get("state", "?"))
    name = job.get("name") or job.get("kind") or ""
    return (
        STATE_STYLE.get(state, escape(state)),
        str(name),  # plain text: a flex column escapes it after cutting
        attempt_elapsed(job, now),
        progress_cell(job.get("progress")),
        escape(gpus_cell(job.get("gpus"))),
        escape(str(job.get("executor", ""))),
        escape(str(job.get("id", ""))),
    )


class JobsPane(Vertical):
    """Queue table on top, log tail below. The app feeds it job lists; it tails the selected job itself."""

    class LogBatch(Message):
        """The tailer thread has lines waiting (posted once per empty -> non-empty transition)."""

    def __init__(self, max_log_lines: int = 5000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Jobs"
        self.max_log_lines = max_log_lines
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tailed_job: str | None = None
        self._tailer: Tailer | None = None
        self.last_sync = SyncStats()
        self.now = 0.0
        self._last_drain = 0.0
        self._drain_scheduled = False

    def compose(self) -> ComposeResult:
        yield Static("loading jobs…", id="jobs-summary", classes="pane-note")
        yield KeyedTable(JOB_COLUMNS, id="jobs-table")
        yield Static("", id="job-detail", classes="pane-note")
        yield Static("", id="log-status", classes="pane-note")
        yield Input(placeholder="filter the log as you type (enter: done, esc: clear)", id="log-search",
                    classes="hidden")
        yield LogView(max_lines=self.max_log_lines, id="job-log")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#jobs-table", KeyedTable)

    @property
    def log_view(self) -> LogView:
        return self.query_one("#job-log", LogView)

    @property
    def selected_job(self) -> dict[str, Any] | None:
        key = self.table.selected_key
        return self.jobs.get(key) if key else None

    def apply_feed(self, feed: data.Feed, now: float) -> SyncStats:
        summary = self.query_one("#jobs-summary", Static)
        if not feed.available:
            summary.update(escape(feed.note))
            return SyncStats()
        self.jobs = {str(j.get("id")): j for j in feed.items}
        counts = feed.extra.get("counts", {})
        if feed.total == 0:
            readonly = getattr(self.app, "readonly", False)
            summary.update("No jobs yet." if readonly else
                           "No jobs yet. Press [b]r[/] to launch a run (idea, dataset, seeds).")
        else:
            order = ["running", "starting", "retrying", "queued", "failed", "cancelled", "succeeded"]
            parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
            parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in order]
            summary.update(escape(" · ".join(parts)))
        rows = [(str(j.get("id")), job_cells(j, now)) for j in feed.items]
        self.last_sync = self.table.sync(rows)
        self.now = now
        if self.tailed_job is None and rows:
            self.follow_job(self.table.selected_key or rows[0][0])
        self._update_log_status()
        self._update_detail()
        return self.last_sync

    def _update_detail(self) -> None:
        """The selected job's attempt, live progress message (the loss while it trains) and ETA."""
        self.query_one("#job-detail", Static).update(escape(job_detail(self.jobs.get(self.tailed_job or ""), self.now)))

    # ------------------------------------------------------------ log tail

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "jobs-table" and event.row_key.value:
            self.follow_job(event.row_key.value)

    def follow_job(self, job_id: str) -> None:
        if job_id == self.tailed_job:
            return
        if self._tailer is not None:
            self._tailer.stop()
        self.tailed_job = job_id
        self._update_detail()
        self.log_view.reset()
        tailer = Tailer(lambda offset: data.read_log_bytes(job_id, offset), max_pending=self.max_log_lines)
        tailer.wake = lambda: self.post_message(self.LogBatch())
        self._tailer = tailer
        self._tail(tailer)
        self._update_log_status()

    @work(thread=True, group="log-tail", exclusive=True, exit_on_error=False)
    def _tail(self, tailer: Tailer) -> None:
        worker = get_current_worker()
        tailer.run(lambda: worker.is_cancelled)

    def on_jobs_pane_log_batch(self, _: LogBatch) -> None:
        """Drain at most once per frame budget: a fast producer gets one write per refresh, not one per read."""
        wait = self._last_drain + DRAIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self.drain_log()
        elif not self._drain_scheduled:
            self._drain_scheduled = True
            self.set_timer(wait, self._scheduled_drain)

    def _scheduled_drain(self) -> None:
        self._drain_scheduled = False
        self.drain_log()

    def drain_log(self) -> int:
        """Move everything the tailer has into the view as one write; returns the line count."""
        tailer = self._tailer
        if tailer is None:
            return 0
        self._last_drain = time.monotonic()
        lines = tailer.drain()
        job = self.jobs.get(self.tailed_job or "")
        if job is not None and str(job.get("state")) not in LIVE_STATES:
            lines += tailer.flush_partial()
        self.log_view.add_lines(lines)
        if lines:
            self._update_log_status()
        return len(lines)

    def stop_tail(self) -> None:
        if self._tailer is not None:
            self._tailer.stop()

    def on_unmount(self) -> None:
        self.stop_tail()

    def toggle_follow(self) -> bool:
        view = self.log_view
        view.set_following(not view.following)
        self._update_log_status()
        return view.following

    def open_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.remove_class("hidden")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-search":
            self.log_view.set_filter(event.value)
            self._update_log_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "log-search":
            return
        self.log_view.set_filter(event.value)
        self._update_log_status()
        self.table.focus()

    def toggle_wrap(self) -> bool:
        view = self.log_view
        view.set_wrap(not view.wrap)
        self._update_log_status()
        return view.wrap

    def close_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.value = ""
        box.add_class("hidden")
        self.log_view.set_filter("")
        self._update_log_status()
        self.table.focus()

    def _update_log_status(self) -> None:
        status = self.query_one("#log-status", Static)
        if self.tailed_job is None:
            status.update("log: select a job")
            return
        view = self.log_view
        mode = "following" if view.following else f"paused ({view.unseen} new, f: follow)"
        text = f"log {self.tailed_job} · {mode} · {'wrapped' if view.wrap else 'unwrapped (←/→ scroll)'}"
        if view.filter_text:
            n = len(view.lines)
            text += f" · filter {view.filter_text!r}: {n} line{'' if n == 1 else 's'} (/ to change)"
        if self._tailer is not None and (self._tailer.dropped or self._tailer.skipped_bytes):
            skipped = f"{self._tailer.dropped} lines" if self._tailer.dropped else ""
            if self._tailer.skipped_bytes:
                skipped += (" + " if skipped else "") + f"{self._tailer.skipped_bytes / 1e6:.1f} MB"
            text += f" · skipped {skipped} of fast output (full log: runs/{self.tailed_job}/stdout.log)"
        status.update(escape(text))


def job_detail(job: dict[str, Any] | None, now: float) -> str:
    """``b2c3d4e5 · attempt 2 · 42% · ETA ~6m41s · transfer: train epoch 1/1 loss 0.6021``."""
    if job is None:
        return ""
    parts = [str(job.get("id", ""))]
    attempt = int(job.get("attempt") or 0)
    if attempt > 1:
        parts.append(f"attempt {attempt}")
    state = str(job.get("state", ""))
    created = to_epoch(job.get("created"))
    if state == "queued" and created is not None:
        parts.append(f"queued for {duration(now - created)}")
    if job.get("progress") is not None and state in LIVE_STATES:
        parts.append(f"{float(job['progress']) * 100:.0f}%")
    left = eta(job, now)
    if left is not None:
        parts.append(f"ETA ~{duration(left)}")
    message = job.get("progress_message")
    if message and state in LIVE_STATES:
        parts.append(str(message))
    elif state not in LIVE_STATES and job.get("exit_code") is not None:
        parts.append(f"{state}, exit {job['exit_code']}")
    if isinstance(job.get("cost_usd"), int | float):  # a RunPod job: what its pods cost so far
        parts.append(f"${float(job['cost_usd']):.4f} on pods")
    return " · ".join(parts)
