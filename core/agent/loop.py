"""The research agent's loop: model turn -> tool calls -> results -> next turn, within budgets.

The transcript is written before the loop acts on anything, so it is the source of truth: a
restarted loop replays it and carries on. A tool call that had begun but recorded no result when
the loop died is recorded as interrupted and never run twice (its sandbox died with the loop; what
it started may be half done), and the calls after it in that turn are skipped; calls of a turn
where nothing had begun yet still run. Budgets come from the trusted store (the spec) and are
checked between turns against usage summed from the transcript; neither is reachable from the
agent's sandbox. State changes go to an ``on_update`` callback (the agents table in production)
and to the transcript.

Long runs: when a prompt nears the model's context window, or the API refuses one as too long,
old turns are folded into a summary note (:mod:`core.agent.compaction`, recorded as a ``compact``
event that replay re-applies). When the evaluation budget is spent the agent is told so and gets
``WRAP_UP_TURNS`` more turns to share findings and finish (a ``wrap_up`` event). When the run
stops, a short research log is written beside the transcript (:mod:`core.agent.report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.agent import compaction
from core.agent import tools as agent_tools
from core.agent.budgets import WRAP_UP_TURNS, Budgets, Usage, exhausted
from core.agent.client import FatalAPIError, ModelCaller, PromptTooLong, RetriesExhausted
from core.agent.prices import Price, add_usage, price_for
from core.agent.prompt import NOTES_FILE, SYSTEM_PROMPT, first_message
from core.agent.report import write_report
from core.agent.tools.context import StopRequested
from core.agent.tools.jobs import jobs_overview
from core.agent.transcript import TRANSCRIPT_NAME, Replay, Transcript, replay, result_block
from core.common.atomic import atomic_write_json
from core.sandbox.base import Sandbox

__all__ = ["AgentLoop", "AgentSpec", "StopRequested"]

MAX_NUDGES = 2
NUDGE_TEXT = (
    "(No tool was called. Continue the research with your tools, or call `finish` with a summary "
    "if you are done.)"
)
STATE_RUNNING = "running"
STATE_WAITING = "waiting (rate limited)"
INTERRUPTED_TEXT = ("interrupted: the agent was stopped while this call ran, so it was not run again "
                    "and its effects may be partial; check them before retrying")
SKIPPED_TEXT = "not run: an earlier call of this turn was interrupted"
DEFAULT_CONTEXT_TOKENS = 200_000  # the Claude models' standard window
COMPACT_AT = 0.75  # compact before the next call once a prompt used this share of the window


@dataclass
class AgentSpec:
    """Everything fixed at launch; stored in the agents table and the transcript's start event."""

    agent_id: str
    job_id: str
    idea_name: str
    direction: str
    budgets: Budgets
    model: str
    max_tokens: int
    run_dir: Path
    folder: Path
    context_tokens: int = DEFAULT_CONTEXT_TOKENS

    @property
    def transcript_path(self) -> Path:
        return self.run_dir / TRANSCRIPT_NAME


def block_to_dict(block: Any) -> dict[str, Any]:
    """An SDK content block as the plain dict the API accepts back in ``messages``."""
    data = block.model_dump(mode="json", exclude_none=True) if hasattr(block, "model_dump") else dict(block)
    kind = str(data.get("type"))
    keep = {"text": ("type", "text"), "tool_use": ("type", "id", "name", "input")}.get(kind)
    # thinking blocks (and anything newer) go back exactly as they came: they carry signatures
    return {k: data[k] for k in keep if k in data} if keep else data


def usage_to_dict(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    data = usage.model_dump(mode="json") if hasattr(usage, "model_dump") else dict(usage)
    return {k: int(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class AgentLoop:
    """Runs (or resumes) one agent until it finishes, a budget is spent, or it is stopped."""

    def __init__(
        self,
        spec: AgentSpec,
        caller: ModelCaller,
        *,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        stop_check: Callable[[], bool] | None = None,
        service_url: str | None = None,
        run_token: str | None = None,
        price: Price | None = None,
        clock: Callable[[], float] = time.monotonic,
        sandbox: Sandbox | None = None,
        compact_history: bool = True,
    ):
        self.spec = spec
        self.caller = caller
        self.on_update = on_update or (lambda changes: None)
        self.stop_check = stop_check or (lambda: False)
        self.price = price or price_for(spec.model)
        self.clock = clock
        self.transcript = Transcript(spec.transcript_path)
        self.usage = Usage()
        self.window = spec.context_tokens
        self.prompt_tokens = 0  # what the last prompt cost, cached or not (the context in use)
        self.keep_level = 0  # index into compaction.KEEP_SHARES for the next compaction
        self.compactions = 0
        self.compact_history = compact_history  # off only to measure what compaction saves
        self.wrap_up: dict[str, Any] | None = None
        self._base_elapsed = 0.0
        self._t0 = clock()
        self.ctx = agent_tools.ToolContext(
            agent_id=spec.agent_id,
            idea_name=spec.idea_name,
            folder=spec.folder,
            run_dir=spec.run_dir,
            budgets=spec.budgets,
            usage=self.usage,
            service_url=service_url,
            run_token=run_token,
            deadline=lambda: spec.budgets.max_wall_s - self.elapsed(),
            sandbox=sandbox,
            stop_check=self.stop_check,
            transcript=spec.transcript_path,
        )
        caller.on_wait = self._on_wait
        caller.on_recovered = self._on_recovered

    # ------------------------------------------------------------------ bookkeeping

    def elapsed(self) -> float:
        return self._base_elapsed + (self.clock() - self._t0)

    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        self.usage.elapsed_s = self.elapsed()
        return self.transcript.append({**event, "elapsed_s": round(self.usage.elapsed_s, 3)})

    def set_state(self, state: str, reason: str = "") -> None:
        self.emit({"type": "state", "state": state, "reason": reason})
        self.on_update({"state": state, "usage": self.usage.to_dict(),
                        "cost_usd": round(self.usage.cost_usd, 6)})

    def _on_wait(self, kind: str, seconds: float, attempt: int, error: str) -> None:
        self.emit({"type": "api_retry", "kind": kind, "attempt": attempt, "wait_s": round(seconds, 3),
                   "error": error})
        state = STATE_WAITING if kind == "rate_limited" else "waiting (network error)"
        self.set_state(state, error)

    def _on_recovered(self) -> None:
        self.set_state(STATE_RUNNING, "API answered again")

    def _progress(self) -> None:
        b, u = self.spec.budgets, self.usage
        frac = max(u.cost_usd / b.max_usd, u.turns / b.max_turns, u.elapsed_s / b.max_wall_s)
        msg = (f"turn {u.turns}/{b.max_turns}, ${u.cost_usd:.4f} of ${b.max_usd:.2f}, "
               f"evals {u.evals}/{b.max_evals}")
        try:
            atomic_write_json(self.spec.run_dir / "progress.json", {"progress": round(min(frac, 1.0), 4),
                                                                    "message": msg}, indent=None)
        except OSError:
            pass

    # ------------------------------------------------------------------ tool calls

    def run_call(self, call: dict[str, Any], turn: int) -> agent_tools.ToolOutcome:
        """Record the call, run it, record its result (before anyone acts on it)."""
        self.emit({"type": "tool_call", "turn": turn, "id": call["id"], "name": call["name"],
                   "input": call.get("input") or {}})
        start = time.monotonic()
        outcome = agent_tools.run_tool(self.ctx, call["name"], call.get("input") or {}, call["id"])
        inline, full = self.transcript.store_tool_output(call["id"], outcome.text)
        images = self.transcript.store_images(call["id"], outcome.images)
        if outcome.evaluation:
            self.usage.evals += 1
        self.emit({
            "type": "tool_result",
            "turn": turn,
            "id": call["id"],
            "name": call["name"],
            "content": inline,
            "full_path": full,
            "truncated": full is not None,
            "is_error": outcome.is_error,
            "evaluation": outcome.evaluation,
            "seconds": round(time.monotonic() - start, 3),
            **({"images": images} if images else {}),
        })
        if outcome.wrap_up and self.wrap_up is None:
            self.wrap_up = self.emit({"type": "wrap_up", "turn": turn, "reason": outcome.wrap_up,
                                      "turns": WRAP_UP_TURNS})
        if outcome.evaluation:  # the rest of the usage changes with turns, and is shown after each turn
            self.on_update({"usage": self.usage.to_dict()})
        return outcome

    def interrupt_calls(self, rep: Replay, turn: int) -> dict[str, dict[str, Any]]:
        """Results for the open turn on resume: the recorded ones, plus an ``interrupted`` result for
        the call that was running when the loop died and a skip for every later one. Only calls of
        a turn where nothing was interrupted are still run by :meth:`run_calls`."""
        done = dict(rep.open_results)
        began = {c["id"] for c in rep.interrupted_calls}
        cut = False
        for call in rep.pending_calls:
            if call["id"] not in began and not cut:
                continue
            if cut:
                text = SKIPPED_TEXT
            else:
                note = agent_tools.interrupted_note(self.ctx, call["name"], call["id"])
                text = INTERRUPTED_TEXT + (f"\n{note}" if note else "")
            self.emit({"type": "tool_result", "turn": turn, "id": call["id"], "name": call["name"],
                       "content": text, "is_error": True, "interrupted": not cut, "skipped": cut})
            done[call["id"]] = result_block(call["id"], text, True)
            cut = True
        return done

    def run_calls(
        self, calls: list[dict[str, Any]], turn: int, done: dict[str, dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """Run the calls without a recorded result; return the turn's result blocks in call order,
        plus a finish summary and a stop reason if a tool asked for either."""
        finish = stop = None
        blocks = []
        for call in calls:
            if call["id"] in done:
                blocks.append(done[call["id"]])
                if call["name"] == "finish" and not done[call["id"]].get("is_error"):
                    finish = str((call.get("input") or {}).get("summary") or "")
                continue
            if finish is not None or stop is not None:
                text = "not run: the run is ending"
                self.emit({"type": "tool_result", "turn": turn, "id": call["id"], "name": call["name"],
                           "content": text, "is_error": True, "skipped": True})
                blocks.append(result_block(call["id"], text, True))
                continue
            outcome = self.run_call(call, turn)
            blocks.append(result_block(call["id"], outcome.text, outcome.is_error, outcome.images))
            finish = outcome.finish if outcome.finish is not None else finish
            stop = outcome.stop or stop
        return blocks, finish, stop

    # ------------------------------------------------------------------ context

    def _notes(self) -> str:
        """The agent's NOTES.md, if it is a plain file of its folder (carried into every summary)."""
        try:
            path = agent_tools.resolve_inside(self.ctx, NOTES_FILE)
            return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        except (agent_tools.ToolError, OSError):
            return ""

    def compact(self, messages: list[dict[str, Any]], reason: str) -> list[dict[str, Any]] | None:
        """Fold old turns into a note (keeping fewer turns each time a prompt is still too long);
        None when nothing is left to fold."""
        try:
            jobs = jobs_overview(self.ctx)
        except Exception as exc:  # noqa: BLE001 - the note is still useful without the job list
            jobs = f"(job list unavailable: {type(exc).__name__})"
        history_chars = self.window // 10 * compaction.CHARS_PER_TOKEN  # the note stays a small share
        for level in range(self.keep_level, len(compaction.KEEP_SHARES)):
            keep = int(compaction.KEEP_SHARES[level] * self.window)
            done = compaction.compact(messages, keep, notes=self._notes(), jobs=jobs, history_chars=history_chars)
            if done is None:
                continue
            folded, record = done
            self.emit({"type": "compact", "turn": self.usage.turns, "reason": reason, "keep_tokens": keep,
                       "dropped_turns": record.dropped_turns, "kept_messages": record.kept_messages,
                       "prompt_tokens": self.prompt_tokens, "window": self.window, "summary": record.summary})
            self.keep_level = level + 1
            self.prompt_tokens = 0
            self.compactions += 1
            self.on_update({"compactions": self.compactions})
            return folded
        return None

    # ------------------------------------------------------------------ the loop

    def stop(self, state: str, reason: str, summary: str | None = None) -> str:
        """Write the research log (shown in the transcript too, so every viewer has it), then
        record the stop: the last event of a run."""
        self.usage.elapsed_s = self.elapsed()
        ending = {"state": state, "reason": reason, "summary": summary, "usage": self.usage.to_dict()}
        report = None
        try:
            report, text = write_report(self.spec.run_dir, self.spec.agent_id, ending)
            self.emit({"type": "report", "path": report.name, "text": text})
        except Exception as exc:  # noqa: BLE001 - the log is a courtesy; the stop is what matters
            self.emit({"type": "note", "text": f"research log not written: {type(exc).__name__}: {exc}"})
        self.emit({"type": "stop", **ending, "usage": self.usage.to_dict()})
        self.on_update({
            "report_path": str(report) if report else None,
            "state": state,
            "stop_reason": reason,
            "summary": summary,
            "usage": self.usage.to_dict(),
            "cost_usd": round(self.usage.cost_usd, 6),
            "finished": time.time(),
        })
        self._progress()
        return reason

    def run(self) -> str:
        """Run to the end; returns the stop reason (also recorded in the transcript and table)."""
        rep = replay(self.spec.transcript_path)
        if rep.stopped:
            return str(rep.stopped.get("reason"))
        self._base_elapsed = rep.elapsed_s
        self._t0 = self.clock()
        self.usage.turns, self.usage.cost_usd, self.usage.tokens = rep.turns, rep.cost_usd, rep.tokens
        self.usage.evals = rep.evals
        self.wrap_up = rep.wrap_up
        self.compactions = rep.compactions
        messages = rep.messages
        nudges = rep.nudges
        try:
            if rep.started is None:
                self.emit({
                    "type": "start",
                    "agent_id": self.spec.agent_id,
                    "job_id": self.spec.job_id,
                    "idea": self.spec.idea_name,
                    "model": self.spec.model,
                    "max_tokens": self.spec.max_tokens,
                    "budgets": self.spec.budgets.to_dict(),
                    "direction": self.spec.direction,
                    "price_usd_per_mtok": {"input": self.price.input, "output": self.price.output},
                    "context_tokens": self.window,
                    "sandbox": self.ctx.sandbox.name if self.ctx.sandbox else "default",
                })
                s = self.spec
                text = first_message(s.direction, s.idea_name, s.budgets, s.folder)
                self.emit({"type": "user", "content": text})
                messages = [{"role": "user", "content": text}]
            else:
                pending = [c["id"] for c in rep.pending_calls]
                cut = [c["id"] for c in rep.interrupted_calls]
                self.emit({"type": "resume", "turn": rep.turns, "pending_calls": pending,
                           "interrupted_calls": cut})
            self.set_state(STATE_RUNNING, "resumed" if rep.started else "started")
            if rep.open_calls:
                done = self.interrupt_calls(rep, rep.turns)
                blocks, finish, stop = self.run_calls(rep.open_calls, rep.turns, done)
                messages.append({"role": "user", "content": blocks})
                if finish is not None:
                    return self.stop("finished", "finished", finish)
                if stop:
                    return self.stop("stopped", stop)
            return self._turns(messages, nudges)
        except StopRequested:
            return self.stop("stopped", "stopped by user")
        except FatalAPIError as exc:
            return self.stop("failed", f"api: {exc}")
        except RetriesExhausted as exc:
            return self.stop("failed", f"api: {exc}")

    def _turns(self, messages: list[dict[str, Any]], nudges: int) -> str:
        budgets = self.spec.budgets
        while True:
            if self.stop_check():
                raise StopRequested
            self.usage.elapsed_s = self.elapsed()
            reason = exhausted(budgets, self.usage)
            if reason:
                return self.stop("stopped", reason)
            if self.wrap_up and self.usage.turns >= int(self.wrap_up["turn"]) + int(self.wrap_up["turns"]):
                return self.stop("stopped", str(self.wrap_up["reason"]))
            if self.compact_history and self.prompt_tokens > COMPACT_AT * self.window:
                messages = self.compact(messages, f"the last prompt used {self.prompt_tokens} of "
                                                  f"{self.window} tokens") or messages
            try:
                response = self.caller.create(SYSTEM_PROMPT, messages, agent_tools.tool_schemas())
            except PromptTooLong as exc:
                if exc.maximum:
                    self.window = min(self.window, exc.maximum)
                folded = self.compact(messages, str(exc)) if self.compact_history else None
                if folded is None:
                    return self.stop("failed", f"api: {exc} (nothing left to compact)")
                messages = folded
                continue
            self.keep_level = 0
            content = [block_to_dict(b) for b in response.content]
            if not content:  # the API refuses an empty assistant message when it is sent back
                content = [{"type": "text", "text": "(empty response)"}]
            usage = usage_to_dict(getattr(response, "usage", None))
            self.prompt_tokens = sum(usage.get(k, 0) for k in ("input_tokens", "cache_read_input_tokens",
                                                                "cache_creation_input_tokens"))
            cost = self.price.cost(usage)
            self.usage.turns += 1
            self.usage.cost_usd += cost
            self.usage.tokens = add_usage(self.usage.tokens, usage)
            turn = self.usage.turns
            self.emit({
                "type": "assistant",
                "turn": turn,
                "content": content,
                "stop_reason": getattr(response, "stop_reason", None),
                "usage": usage,
                "cost_usd": round(cost, 8),
                "total_cost_usd": round(self.usage.cost_usd, 8),
            })
            self.on_update({"usage": self.usage.to_dict(), "cost_usd": round(self.usage.cost_usd, 6)})
            self._progress()
            messages.append({"role": "assistant", "content": content})
            if self.usage.cost_usd >= budgets.max_usd:
                return self.stop("stopped", exhausted(budgets, self.usage) or "budget_usd")
            calls = [b for b in content if b.get("type") == "tool_use"]
            if not calls:
                if nudges >= MAX_NUDGES:
                    return self.stop("stopped", "no_tool_use: the model stopped calling tools")
                nudges += 1
                self.emit({"type": "user", "content": NUDGE_TEXT, "nudge": True})
                messages.append({"role": "user", "content": NUDGE_TEXT})
                continue
            nudges = 0
            blocks, finish, stop = self.run_calls(calls, turn, {})
            messages.append({"role": "user", "content": blocks})
            if finish is not None:
                return self.stop("finished", "finished", finish)
            if stop:
                return self.stop("stopped", stop)
