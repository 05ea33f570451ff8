"""The tool table: one declaration per tool, from which the model's schemas, the name list and the
dispatch table are all derived, so they cannot drift apart.

A tool is its handler plus a description for the model. The name is the handler's name; the JSON
schema of its input comes from the handler's signature (a parameter without a default is required;
the type hint gives the JSON type). ``ctx`` and ``tool_use_id`` are filled in here, never by the model.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union, get_args, get_origin, get_type_hints

from core.agent.tools.context import ToolContext, ToolError, ToolOutcome, cap
from core.agent.tools.files import edit_file, list_files, read_file, start_from_template, write_file
from core.agent.tools.forum import list_findings, read_idea_md, share_finding
from core.agent.tools.jobs import JOB_WAIT_MAX, MAX_IN_FLIGHT, job_log, job_status, jobs_of_call, run_idea
from core.agent.tools.plot import plot
from core.agent.tools.referee import evaluate, leaderboard
from core.agent.tools.shell import SHELL_TIMEOUT_DEFAULT, SHELL_TIMEOUT_MAX, run_shell
from core.agent.tools.wait import WAIT_DEFAULT_S, WAIT_MAX_S, wait

INJECTED = frozenset({"tool_use_id"})  # handler parameters run_tool fills in; not in the schema
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def json_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a handler parameter's type hint (``X | None`` is X: optional comes from
    the default, not the type)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            return json_type(inner[0])
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is list:
        return {"type": "array", "items": json_type(get_args(hint)[0])}
    if hint is dict or origin is dict:
        return {"type": "object"}
    raise TypeError(f"no JSON schema type for {hint!r}")


def finish(ctx: ToolContext, summary: str) -> ToolOutcome:
    """End the run; the loop records the summary and stops."""
    text = str(summary or "").strip()
    if not text:
        return ToolOutcome("finish needs a summary", is_error=True)
    return ToolOutcome("finished", finish=text)


@dataclass(frozen=True)
class Tool:
    """One tool as declared: its handler and what the model is told about it. ``lenient`` tools
    take their arguments by name (unknown ones ignored, missing ones None) instead of refusing."""

    handler: Callable[..., str | ToolOutcome]
    description: str
    lenient: bool = False

    @property
    def name(self) -> str:
        return self.handler.__name__

    @cached_property
    def params(self) -> dict[str, inspect.Parameter]:
        """The handler's parameters the model fills in, in signature order."""
        listed = list(inspect.signature(self.handler).parameters.values())[1:]  # after ctx
        return {p.name: p for p in listed if p.name not in INJECTED}

    @property
    def required(self) -> list[str]:
        return [name for name, p in self.params.items() if p.default is inspect.Parameter.empty]

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The tool as the Messages API takes it."""
        hints = get_type_hints(self.handler)
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": {
                "type": "object",
                "properties": {name: json_type(hints[name]) for name in self.params},
                "required": self.required,
                "additionalProperties": False,
            },
        }

    def call(self, ctx: ToolContext, args: dict[str, Any], tool_use_id: str) -> str | ToolOutcome:
        if self.lenient:
            kwargs = {name: args.get(name) for name in self.params}
        else:
            unknown = sorted(set(args) - set(self.params))
            if unknown:
                raise ToolError(f"{self.name}: unknown argument(s) {', '.join(unknown)}")
            kwargs = dict(args)
        if "tool_use_id" in inspect.signature(self.handler).parameters:
            kwargs["tool_use_id"] = tool_use_id
        return self.handler(ctx, **kwargs)


TOOLS: tuple[Tool, ...] = (
    Tool(list_files, "List files in your idea folder (paths are relative to it), the label-free data/ folder "
         "(by its absolute path, $W2S_DATA in the shell) or the read-only library: @core (the idea SDK and "
         "engine), @ideas (packaged ideas), @workspace (every idea of this workspace, other agents' too), "
         "@findings (shared findings)."),
    Tool(read_file, "Read a text file, with line numbers: from your idea folder, data/, or the library "
         "(@core/run/experiment.py, @ideas/vanilla_w2s/run.py, @findings/<id>, ...)."),
    Tool(write_file, "Create or overwrite a file in your idea folder."),
    Tool(edit_file, "Replace old_text by new_text in a file of your folder (old_text must match exactly)."),
    Tool(start_from_template, "Copy the TEMPLATE idea into your (empty) idea folder: run.py and README.md."),
    Tool(run_shell, "Run a bash command in your idea folder, inside a sandbox: it sees your folder "
         "(writable), the label-free data ($W2S_DATA) and the library code (read-only), a private /tmp, "
         f"no network (timeout_s default {SHELL_TIMEOUT_DEFAULT}, max {SHELL_TIMEOUT_MAX}; output capped). "
         "`python` is the project's interpreter."),
    Tool(run_idea, "Launch your idea as jobs, one per seed: each builds the cached baselines, runs your "
         "run.py in a sandbox on data_dir and has the referee score its predictions. config holds RunConfig fields and your idea's "
         "own parameters (for example {\"epochs\": 1, \"train_size\": 200}). Runs of several calls go in "
         f"parallel (at most {MAX_IN_FLIGHT} of yours queued or running); the scheduler decides when each starts."),
    Tool(job_status, f"State of one of your jobs; wait_s (max {JOB_WAIT_MAX}) waits for it to finish. To wait "
         "longer, use wait."),
    Tool(wait, "Sleep until one of your runs finishes (job_ids, default: all of yours in flight; until='all' "
         "waits for every one) or another "
         f"researcher shares a finding (findings=true), at most timeout_s (default {WAIT_DEFAULT_S:.0f}, max "
         f"{WAIT_MAX_S:.0f}, and never past your wall budget). Costs one turn however long it waits: use it "
         "instead of polling."),
    Tool(job_log, "The last tail_chars characters of one of your jobs' output."),
    Tool(evaluate, "Ask the referee to score test predictions: job_id alone scores the predictions that "
         "run of yours wrote; or predictions_file, a JSON file in your folder ({row_id: P(class 1)}), with "
         "job_id naming the run whose baselines PGR uses. Returns the rounded public accuracy and PGR; "
         "spends one evaluation from your budget."),
    Tool(plot, "A chart as an image: kind='curve' plots the numbers after `metric` (default loss) in your "
         "runs' logs (job_ids, default your latest runs); kind='subsets' plots per-subset public accuracy of "
         "evaluations you already made (spends no evaluation)."),
    Tool(leaderboard, "The PGR leaderboard (optionally for one dataset)."),
    Tool(share_finding, "Share a finding with the other researchers: what you tried, the numbers (every "
         "seed), what you conclude. job_ids: the runs that back it."),
    Tool(list_findings, "Read findings shared so far, optionally matching a search query."),
    Tool(read_idea_md, "Read Idea.md, the menu of research directions (or one numbered direction)."),
    # the run's end is never refused on a technicality: a missing summary gets a plain answer
    Tool(finish, "End your research run with a summary of what you did and found (every seed).", lenient=True),
)

TOOLS_BY_NAME: dict[str, Tool] = {tool.name: tool for tool in TOOLS}  # the dispatch table
if len(TOOLS_BY_NAME) != len(TOOLS):
    raise RuntimeError("two agent tools share a name")


def tool_names() -> list[str]:
    return [tool.name for tool in TOOLS]


def tool_schemas() -> list[dict[str, Any]]:
    """What the model is offered on every turn, in declaration order."""
    return [tool.schema for tool in TOOLS]


def run_tool(ctx: ToolContext, name: str, args: dict[str, Any], tool_use_id: str = "") -> ToolOutcome:
    """Run one tool call; every failure becomes an error result the model can read."""
    if not isinstance(args, dict):
        return ToolOutcome("tool input must be a JSON object", is_error=True)
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        return ToolOutcome(f"unknown tool {name!r}; tools: {', '.join(tool_names())}", is_error=True)
    try:
        out = tool.call(ctx, args, tool_use_id)
    except ToolError as exc:
        return ToolOutcome(str(exc), is_error=True)
    except TypeError as exc:
        return ToolOutcome(f"{name}: bad arguments ({exc})", is_error=True)
    except Exception as exc:  # a tool crash must not kill the loop; the model sees one line
        return ToolOutcome(f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)
    if isinstance(out, ToolOutcome):
        out.text = cap(out.text)
        return out
    return ToolOutcome(cap(str(out)))


def interrupted_note(ctx: ToolContext, name: str, tool_use_id: str) -> str:
    """What the model should know about a call that was cut off (resume never re-runs it): the
    jobs an interrupted run_idea had already submitted, so it polls them instead of launching twice."""
    if name != "run_idea":
        return ""
    try:
        jobs = jobs_of_call(ctx, tool_use_id)
    except Exception:  # noqa: BLE001 - a note, never a reason for resume to fail
        return ""
    if not jobs:
        return "it had submitted no job"
    listed = ", ".join(f"seed {(j.get('meta') or {}).get('seed')}: job {j['id']} ({j.get('state')})"
                       for j in jobs)
    return f"jobs it had submitted: {listed}"
