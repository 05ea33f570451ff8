"""``w2s-tui``: the keyboard-driven control center (Agents, Jobs, GPU, Leaderboard).

Every blocking call (store, NVML, leaderboard, submitting) runs in a thread worker that posts a
message back; the UI thread only diffs small row lists into keyed tables. Jobs run under the control
service, so quitting the TUI (``q``) never stops them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual.app import App, ComposeResult
from textual.containers import Container
from textual.message import Message
from textual.widgets import Footer, Input, Static

from core.common.errors import UserError
from core.common.workspace import WORKSPACE_ENV, paths
from tui import data, keymap
from tui.commands import W2SCommands
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.launch_agent import AgentRequest, LaunchAgentScreen
from tui.screens.launch_run import LaunchRunScreen, RunRequest
from tui.widgets.agents_pane import AgentsPane
from tui.widgets.gpu_pane import GpuPane
from tui.widgets.jobs_pane import LIVE_STATES, JobsPane
from tui.widgets.leaderboard_pane import LeaderboardPane

PANES = ("agents", "jobs", "gpu", "leaderboard")
PANE_TITLES = {"agents": "Agents", "jobs": "Jobs", "gpu": "GPU", "leaderboard": "Leaderboard"}
# below this (or NARROW_HEIGHT rows) one pane shows at a time, switched by number keys: four panes in
# 100x30 left Jobs two table rows
NARROW_WIDTH = 120
NARROW_HEIGHT = 36
ZOOMABLE = {"jobs": "the log", "agents": "the transcript"}  # what z keeps on screen when one pane shows
FINISHED_TEXT = {"succeeded": "succeeded", "failed": "failed", "cancelled": "was cancelled"}


class Polled(Message):
    """A thread worker finished one poll of one source."""

    def __init__(self, source: str, result: Any) -> None:
        super().__init__()
        self.source = source
        self.result = result


class Done(Message):
    """A thread worker finished an action (submit, cancel...): say how it went."""

    def __init__(self, text: str, error: bool = False, refresh: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.refresh = refresh


class W2SApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "w2s control center"
    BINDINGS = keymap.bindings()
    COMMANDS = App.COMMANDS | {W2SCommands}

    def __init__(
        self,
        readonly: bool = False,
        start_service: bool = True,
        poll_interval: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        keys: dict[str, str] | None = None,
        max_jobs: int = 200,
        demo_cache: bool = True,
        port: int | None = None,
    ) -> None:
        super().__init__()
        if readonly:  # no launch/cancel keys in the footer of a shared screen (they only say "read-only")
            mutating = {a.id for a in keymap.ACTIONS if a.mutating}
            for key, found in self._bindings.key_to_bindings.items():
                self._bindings.key_to_bindings[key] = [
                    dataclasses.replace(b, show=False) if b.id in mutating else b for b in found
                ]
        self.port = port  # where a service this TUI starts listens (None: 8000 when free)
        self.readonly = readonly
        self.start_service = start_service and not os.environ.get(data.NO_SERVICE_ENV)
        self.poll_interval = poll_interval
        self.clock = clock
        self.user_keymap = dict(keys or {})
        self.keys = keymap.resolved_keys(self.user_keymap)
        self.max_jobs = max_jobs
        self.demo_cache = demo_cache
        self.active_pane = "jobs"
        self.zoomed = False  # wide screens: one pane instead of four
        self.zoomed_detail = False  # narrow screens (one pane already): the log or transcript only
        self.service: dict[str, Any] = {"running": False, "url": None, "note": "checking…"}
        self._inflight: set[str] = set()
        self._job_states: dict[str, str] = {}
        self._agent_states: dict[str, str] = {}
        self._ticks = 0
        self.polls: dict[str, int] = {}
        self.main_screen: Any = None
        self.last_run: dict[str, str] = {"idea": "vanilla_w2s", "dataset": "demo-math"}

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static("", id="topbar")
        with Container(id="panes"):
            yield AgentsPane(id="agents", classes="pane")
            yield JobsPane(id="jobs", classes="pane")
            yield GpuPane(id="gpu", classes="pane")
            yield LeaderboardPane(id="leaderboard", classes="pane")
        yield Footer()

    def on_mount(self) -> None:
        # App.query_one searches only the active screen; a dialog on top would hide these, so keep them.
        self.main_screen = self.screen
        self.agents_pane = self.query_one(AgentsPane)
        self.jobs_pane = self.query_one(JobsPane)
        self.gpu_pane = self.query_one(GpuPane)
        self.leaderboard_pane = self.query_one(LeaderboardPane)
        self.topbar = self.query_one("#topbar", Static)
        self.pane_widgets = {
            "agents": self.agents_pane, "jobs": self.jobs_pane, "gpu": self.gpu_pane,
            "leaderboard": self.leaderboard_pane,
        }
        if self.user_keymap:
            self.set_keymap(self.user_keymap)
        self._layout_for(self.size.width, self.size.height)
        self.show_pane(self.active_pane)
        self._run_thread("startup", self._startup)
        self.poll_all()
        if self.poll_interval:
            self.set_interval(self.poll_interval, self._tick)

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width, event.size.height)

    def is_narrow(self, width: int | None = None, height: int | None = None) -> bool:
        width = self.size.width if width is None else width
        height = self.size.height if height is None else height
        return width < NARROW_WIDTH or height < NARROW_HEIGHT

    def _layout_for(self, width: int, height: int) -> None:
        if self.main_screen is None:
            return
        single = self.zoomed or self.is_narrow(width, height)
        self.main_screen.query_one("#panes").set_class(single, "-single")
        for pane in PANES:  # the detail-only zoom (z on a narrow screen) is for the pane it was asked on
            detail = self.zoomed_detail and pane == self.active_pane and self.is_narrow(width, height)
            self.pane_widgets[pane].set_class(detail and pane in ZOOMABLE, "-zoom-detail")
        self._draw_topbar()

    def show_pane(self, name: str) -> None:
        self.active_pane = name
        for pane in PANES:
            self.pane_widgets[pane].set_class(pane == name, "-active")
        target = self.pane_widgets[name]
        self._layout_for(self.size.width, self.size.height)
        focusable = [w for w in target.query("*") if w.can_focus and w.display and not isinstance(w, Input)]
        if focusable:
            focusable[0].focus()
        self._draw_topbar()

    def on_descendant_focus(self, event: Any) -> None:
        node = event.widget
        while node is not None and getattr(node, "id", None) not in PANES:
            node = node.parent
        if node is not None and node.id != self.active_pane:
            self.active_pane = node.id
            for pane in PANES:
                self.pane_widgets[pane].set_class(pane == node.id, "-active")
            self._draw_topbar()

    def _draw_topbar(self) -> None:
        tabs = []
        for i, pane in enumerate(PANES, start=1):  # each tab is a link: a click shows its pane
            label = f"{i} {PANE_TITLES[pane]}"
            link = f"@click=app.show_pane('{pane}')"
            tabs.append(f"[reverse b {link}] {label} [/]" if pane == self.active_pane else f"[{link}] {label} [/]")
        svc = self.service
        if svc.get("running"):
            state = f"[green]service[/] {escape(str(svc.get('url') or ''))}"
        else:
            state = f"[yellow]service off[/] [dim]{escape(str(svc.get('note') or ''))}[/]"
        mode = " [b red]READ-ONLY[/]" if self.readonly else ""
        self.topbar.update("".join(tabs) + f"  {state}{mode}  [dim]? help[/]")

    # ------------------------------------------------------------ polling (thread workers)

    def _run_thread(self, source: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in a thread worker unless the previous poll of ``source`` is still going."""
        if source in self._inflight:
            return
        self._inflight.add(source)

        def job() -> None:
            try:
                result = fn()
            except Exception as exc:  # shown in the pane, never a crash
                result = data.Feed(False, note=f"{source}: {exc}")
            self.post_message(Polled(source, result))

        self.run_worker(job, thread=True, group=f"poll-{source}", exit_on_error=False)

    def _startup(self) -> dict[str, Any]:
        status = data.ensure_service(self.port) if self.start_service and not self.readonly else data.service_status()
        if self.demo_cache:
            data.ensure_demo_cache()
        return status

    def _tick(self) -> None:
        self._ticks += 1
        self._run_thread("jobs", partial(data.load_jobs, self.max_jobs))
        self._run_thread("agents", data.load_agents)
        self._run_thread("gpu", data.load_gpus)
        if self._ticks % 5 == 0:
            self._run_thread("leaderboard", data.load_leaderboard)
            self._run_thread("service", data.service_status)

    def poll_all(self) -> None:
        self._run_thread("jobs", partial(data.load_jobs, self.max_jobs))
        self._run_thread("agents", data.load_agents)
        self._run_thread("gpu", data.load_gpus)
        self._run_thread("leaderboard", data.load_leaderboard)

    def on_polled(self, message: Polled) -> None:
        self._inflight.discard(message.source)
        if not self.is_running or not self.jobs_pane.is_attached:
            return  # a late answer while quitting
        self.polls[message.source] = self.polls.get(message.source, 0) + 1
        result = message.result
        if message.source in ("startup", "service"):
            if isinstance(result, dict):
                self.service = result
                self._draw_topbar()
            if message.source == "startup":
                self._run_thread("leaderboard", data.load_leaderboard)
            return
        if message.source == "jobs":
            self.jobs_pane.apply_feed(result, self.clock())
            self._watch_finishes(result)
        elif message.source == "agents":
            self.agents_pane.apply_feed(result)
            self._watch_agents(result)
        elif message.source == "gpu":
            self.gpu_pane.apply_feed(result)
        elif message.source == "leaderboard":
            self.leaderboard_pane.apply_feed(result)

    def _watch_finishes(self, feed: data.Feed) -> None:
        """Say when a job this TUI saw running ends (a failure rings the bell); a job that just
        succeeded has a new leaderboard row: fetch it now, not in five seconds."""
        if not feed.available:
            return
        finished = False
        for job in feed.items:
            job_id, state = str(job.get("id")), str(job.get("state"))
            before = self._job_states.get(job_id)
            if before is not None and before != state and state in FINISHED_TEXT and before in LIVE_STATES:
                finished = finished or state == "succeeded"
                self._announce_job(job, state)
            self._job_states[job_id] = state
        if finished:
            self._run_thread("leaderboard", data.load_leaderboard)

    def _announce_job(self, job: dict[str, Any], state: str) -> None:
        name = job.get("name") or job.get("kind") or ""
        code = job.get("exit_code")
        why = f" (exit {code})" if state == "failed" and code is not None else ""
        self.notify(f"Job {job.get('id')} {FINISHED_TEXT[state]}{why}: {name}",
                    severity="error" if state == "failed" else "information", timeout=8 if state == "failed" else 5)
        if state == "failed":
            self.bell()

    def _watch_agents(self, feed: data.Feed) -> None:
        """Say when an agent stops, with its reason (a spent budget says which)."""
        if not feed.available:
            return
        for agent in feed.items:
            agent_id, state = str(agent.get("id")), str(agent.get("state"))
            before = self._agent_states.get(agent_id)
            self._agent_states[agent_id] = state
            if before is None or before == state or state in ("running", "waiting (rate limited)", "queued"):
                continue
            reason = agent.get("stop_reason")
            self.notify(f"Agent {agent_id} {state}" + (f": {reason}" if reason else ""),
                        severity="error" if state == "failed" else "information", timeout=8)
            if state == "failed":
                self.bell()

    # ------------------------------------------------------------ actions: panes, search, help

    def action_show_pane(self, name: str) -> None:
        self.show_pane(name)

    def action_toggle_zoom(self) -> None:
        """Wide: one pane fills the screen, or all four. Narrow (one pane already): the log or the
        transcript fills the pane, or the table comes back."""
        if not self.is_narrow():
            self.zoomed = not self.zoomed
        elif self.active_pane in ZOOMABLE or self.zoomed_detail:
            self.zoomed_detail = not self.zoomed_detail
        else:
            self.notify("One pane at a time already (1-4 switch); z zooms the Jobs log or the Agents transcript.",
                        timeout=4)
            return
        self._layout_for(self.size.width, self.size.height)

    def action_search(self) -> None:
        pane = self.pane_widgets[self.active_pane]
        if hasattr(pane, "open_search"):
            pane.open_search()
        else:
            self.notify("Nothing to search in this pane: / works in Agents, Jobs and Leaderboard.")

    def action_close_search(self) -> None:
        pane = self.pane_widgets[self.active_pane]
        if hasattr(pane, "close_search"):
            pane.close_search()

    def action_toggle_follow(self) -> None:
        following = self.jobs_pane.toggle_follow()
        self.notify("log: following" if following else "log: paused (f to follow)", timeout=2)

    def action_next_dataset(self) -> None:
        self.leaderboard_pane.next_dataset()

    def action_cycle_sort(self) -> None:
        self.leaderboard_pane.cycle_sort()

    def action_reverse_sort(self) -> None:
        self.leaderboard_pane.reverse_sort()

    def action_toggle_wrap(self) -> None:
        wrapped = self.jobs_pane.toggle_wrap()
        self.notify("log: long lines wrap" if wrapped else "log: unwrapped (←/→ scroll it when focused)", timeout=2)

    def action_toggle_expand(self) -> None:
        expanded = self.agents_pane.toggle_expand()
        self.notify("transcript: tool results in full" if expanded else "transcript: tool results folded", timeout=2)

    def action_refresh_now(self) -> None:
        self.poll_all()
        self._run_thread("service", data.service_status)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.keys, self.readonly))

    def action_open_dashboard(self) -> None:
        svc = self.service
        url = svc.get("url") if svc.get("running") else None
        if not url:
            self.notify("The control service is not running, so there is no dashboard yet "
                        "(w2s serve --detach --dashboard).", severity="warning")
            return
        if not svc.get("dashboard"):
            self.notify(f"The running service (pid {svc.get('pid')}, {url}) serves the API only, no dashboard "
                        "pages. Restart it with them: w2s serve --stop; w2s serve --detach --dashboard "
                        "(jobs keep running).", severity="warning", timeout=12)
            return
        self.copy_to_clipboard(str(url))
        self.notify(f"Dashboard: {url}/ (copied to the clipboard)")

    # ------------------------------------------------------------ actions: launching and stopping

    def _refuse_readonly(self) -> bool:
        if self.readonly:
            self.notify("Read-only mode: launching, cancelling and stopping are off.", severity="warning")
        return self.readonly

    def _in_thread(self, fn: Callable[[], Done]) -> None:
        def job() -> None:
            try:
                done = fn()
            except UserError as exc:
                done = Done(str(exc), error=True)
            except Exception as exc:
                done = Done(f"{type(exc).__name__}: {exc}", error=True)
            self.post_message(done)

        self.run_worker(job, thread=True, group="actions", exit_on_error=False)

    def on_done(self, message: Done) -> None:
        self.notify(message.text, severity="error" if message.error else "information",
                    timeout=8 if message.error else 4)
        self.poll_all()

    def _in_background(self, fn: Callable[[], None]) -> None:
        """Gather a dialog's choices off the UI thread; only a failure is reported."""

        def job() -> None:
            try:
                fn()
            except Exception as exc:
                self.post_message(Done(f"{type(exc).__name__}: {exc}", error=True))

        self.run_worker(job, thread=True, group="actions", exit_on_error=False)

    def action_launch_run(self) -> None:
        if self._refuse_readonly():
            return

        def choices() -> None:
            ideas, datasets, executors = data.list_ideas(), data.list_datasets(), data.executors()
            self.call_from_thread(self._open_launch_run, ideas, datasets, executors)

        self._in_background(choices)

    def _open_launch_run(self, ideas: list[str], datasets: list[str], executors: list[str]) -> None:
        self.push_screen(LaunchRunScreen(ideas, datasets, executors, **self.last_run), self._submit_run)

    def _submit_run(self, req: RunRequest | None) -> None:
        if req is None:
            return
        # the next dialog starts from this one
        self.last_run = {"idea": req.idea, "dataset": req.dataset, "options": req.options,
                         "seeds": ",".join(map(str, req.seeds))}
        # the first submit resolves the config with the model registry (loads torch: seconds)
        self.notify(f"Submitting {req.idea} on {req.dataset}, seeds {self.last_run['seeds']}…", timeout=3)

        def submit() -> Done:
            if self.start_service:
                data.ensure_service(self.port)
            ids = data.submit_runs(req.idea, req.dataset, req.seeds, req.executor, req.options)
            return Done(f"Submitted {len(ids)} job(s): {req.idea} on {req.dataset}, seeds "
                        f"{','.join(map(str, req.seeds))}")

        self._in_thread(submit)

    def action_launch_agent(self) -> None:
        if self._refuse_readonly():
            return
        problem = data.api_key_problem()
        if problem:
            self.notify(f"Cannot launch an agent: {problem}", severity="error", timeout=10)
            return

        def choices() -> None:
            directions, executors = data.idea_directions(), data.executors()
            self.call_from_thread(
                self.push_screen, LaunchAgentScreen(directions, executors), self._submit_agent
            )

        self._in_background(choices)

    def _submit_agent(self, req: AgentRequest | None) -> None:
        if req is None:
            return

        def submit() -> Done:
            if self.start_service:
                data.ensure_service(self.port)
            agent = data.launch_agent(req.direction, req.executor, req.budgets, start_service=self.start_service)
            return Done(f"Agent {agent.get('id', '')} launched: {req.direction.splitlines()[0][:60]}")

        self._in_thread(submit)

    def action_cancel_job(self) -> None:
        self._confirm_job_action(
            "Cancel", LIVE_STATES, data.cancel_job, "Cancelling",
            lambda job_id, state: f"Job {job_id} {FINISHED_TEXT.get(state, 'is ' + str(state))} already: "
                                  "nothing to cancel.",
        )

    def action_retry_job(self) -> None:
        self._confirm_job_action(
            "Retry", ("failed", "cancelled"), data.retry_job, "Retrying",
            lambda job_id, state: f"Job {job_id} is {state}: only failed or cancelled jobs can be retried.",
        )

    def _confirm_job_action(self, verb: str, allowed_states, act, doing: str, refusal) -> None:
        """Ask before acting on the selected job; the action itself runs in a thread worker."""
        if self._refuse_readonly():
            return
        job = self.jobs_pane.selected_job
        if job is None:
            self.notify("Select a job in the Jobs pane first (2, then arrows).", severity="warning")
            return
        job_id = str(job.get("id"))
        if str(job.get("state")) not in allowed_states:
            self.notify(refusal(job_id, job.get("state")), severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._in_thread(lambda: (act(job_id), Done(f"{doing} job {job_id}"))[1])

        self.push_screen(ConfirmScreen(f"{verb} job {job_id} ({job.get('name') or job.get('kind')})?"), confirmed)

    def action_stop_agent(self) -> None:
        if self._refuse_readonly():
            return
        agent = self.agents_pane.selected_agent
        if agent is None:
            self.notify("Select an agent in the Agents pane first (1, then arrows).", severity="warning")
            return
        agent_id = str(agent.get("id"))

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._in_thread(lambda: (data.stop_agent(agent_id), Done(f"Stopping agent {agent_id}"))[1])

        self.push_screen(ConfirmScreen(f"Stop agent {agent_id}?"), confirmed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="w2s-tui", description="The w2s control center (keyboard-driven).",
                                     allow_abbrev=False)
    parser.add_argument("--readonly", action="store_true", help="no launching or cancelling (screen sharing)")
    parser.add_argument("--no-service", action="store_true",
                        help=f"do not start the control service (also: {data.NO_SERVICE_ENV}=1)")
    parser.add_argument("--workspace", type=Path, help=f"workspace folder (default: {WORKSPACE_ENV} or cwd)")
    parser.add_argument("--keymap", type=Path, help="keymap file (default: .w2s/keymap.toml, ~/.config/w2s/)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between refreshes (default 1)")
    parser.add_argument("--port", type=int, default=None,
                        help="port of the control service (API + dashboard) the TUI starts when none runs "
                             "(default 8000 when free, else any free port; 0: any free port)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.workspace is not None:
        if not args.workspace.is_dir():
            print(f"w2s-tui: error: --workspace: {args.workspace} is not a folder", file=sys.stderr)
            return 2
        os.environ[WORKSPACE_ENV] = str(args.workspace.resolve())
    try:
        if args.keymap is not None and not args.keymap.is_file():
            raise UserError(f"--keymap: {args.keymap} does not exist")
        if args.keymap is not None:  # a file asked for by name: its mistake stops the start
            keys = keymap.load_keymap(args.keymap)
        else:  # the discovered file: one line saying why it is not used, then the default keys
            keys, problem = keymap.load_keymap_or_defaults()
            if problem:
                print(f"w2s-tui: warning: {problem}", file=sys.stderr)
        if args.poll <= 0:
            raise UserError("--poll: must be positive")
        if args.port is not None and not 0 <= args.port <= 65535:
            raise UserError(f"--port: {args.port} is not a port number (0-65535)")
    except UserError as exc:
        print(f"w2s-tui: error: {exc}", file=sys.stderr)
        return 2
    paths()  # resolve the workspace once before the UI starts
    app = W2SApp(readonly=args.readonly, start_service=not args.no_service, poll_interval=args.poll, keys=keys,
                 port=args.port)
    app.run()
    # Everything the TUI changes is already on disk (jobs belong to the service), and the interpreter's
    # own teardown took 2 s after q once a submit had loaded torch: leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(app.return_code or 0)


if __name__ == "__main__":
    sys.exit(main())
