"""The plot tool: training curves or per-subset accuracy as an image the model can look at.

``kind="curve"`` reads the numbers that follow a word (``loss`` by default) in the logs of the
agent's runs; ``kind="subsets"`` charts the per-subset public accuracy of the evaluations the
agent already got from the referee (read from its own transcript: no new evaluation is spent).
The tool answers with a PNG (:mod:`core.agent.png`) as an image block and the same numbers in text.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from core.agent.png import PALETTE, bar_chart, line_chart
from core.agent.tools.context import ToolContext, ToolError, ToolOutcome
from core.agent.tools.jobs import _run_dir, own_job, own_jobs
from core.agent.transcript import iter_events

MAX_SERIES = len(PALETTE)
LOG_TAIL_BYTES = 400_000
MAX_POINTS = 2000
NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_/ -]{0,40}")


def _log_numbers(path: Path, metric: str) -> list[float]:
    """The numbers that follow ``metric`` (``loss 0.41``, ``loss=0.41``, ``loss: 0.41``) in a log."""
    if not path.is_file():
        return []
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - LOG_TAIL_BYTES))
        text = fh.read().decode("utf-8", errors="replace")
    pattern = re.compile(re.escape(metric) + r"\s*[=:]?\s*" + NUMBER)
    values = [float(m.group(1)) for m in pattern.finditer(text)]
    return [v for v in values if math.isfinite(v)][-MAX_POINTS:]


def _curves(ctx: ToolContext, job_ids: list[str], metric: str) -> ToolOutcome:
    if not WORD.fullmatch(metric):
        raise ToolError("metric must be a word or short phrase, like loss or val_acc")
    jobs = [own_job(ctx, j) for j in job_ids] if job_ids else own_jobs(ctx)[-MAX_SERIES:]
    series: list[list[float]] = []
    lines: list[str] = []
    for job in jobs[:MAX_SERIES]:
        values = _log_numbers(_run_dir(job) / "stdout.log", metric)
        if not values:
            lines.append(f"job {job['id']}: no '{metric}' numbers in its log")
            continue
        color = PALETTE[len(series) % len(PALETTE)][0]
        series.append(values)
        shown = ", ".join(f"{v:.4g}" for v in values[-8:])
        lines.append(f"{color}: job {job['id']} ({len(values)} points, last: {shown})")
    if not series:
        raise ToolError("nothing to plot: " + "; ".join(lines or ["you have no runs yet"]))
    return ToolOutcome(f"{metric} by log line (x: n-th value in the log)\n" + "\n".join(lines),
                       images=[line_chart(series)])


def _evaluations(path: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """(label, referee answer) for every successful evaluate call in the transcript, in order."""
    if path is None or not path.is_file():
        return []
    calls: dict[str, dict[str, Any]] = {}
    out = []
    for ev in iter_events(path):
        if ev.get("type") == "tool_call" and ev.get("name") == "evaluate":
            calls[str(ev.get("id"))] = ev.get("input") or {}
        elif ev.get("type") == "tool_result" and ev.get("evaluation") and str(ev.get("id")) in calls:
            ask = calls[str(ev["id"])]
            try:
                answer = json.loads(str(ev.get("content") or "").split("\n(evaluations left")[0])
            except json.JSONDecodeError:
                continue
            label = f"job {ask['job_id']}" if ask.get("job_id") and not ask.get("predictions_file") else \
                str(ask.get("predictions_file") or "?")
            out.append((label, answer))
    return out


def _subsets(ctx: ToolContext, job_ids: list[str]) -> ToolOutcome:
    evals = _evaluations(ctx.transcript)
    if job_ids:
        wanted = {f"job {j}" for j in job_ids}
        evals = [e for e in evals if e[0] in wanted]
    evals = evals[-MAX_SERIES:]
    if not evals:
        raise ToolError("no evaluations to plot yet: evaluate a run first (the plot spends none)")
    names = sorted({name for _, answer in evals for name in (answer.get("per_subset") or {})}) or ["all"]
    groups = []
    for name in names:
        row = []
        for _, answer in evals:
            block = (answer.get("per_subset") or {}).get(name) if name != "all" else answer
            value = (block or {}).get("accuracy")
            row.append(float(value) if isinstance(value, int | float) else float("nan"))
        groups.append(row)
    lines = [f"{PALETTE[k][0]}: {label} (accuracy {answer.get('accuracy')}, PGR {answer.get('pgr')})"
             for k, (label, answer) in enumerate(evals)]
    table = [f"{name}: " + ", ".join("-" if math.isnan(v) else f"{v:.2f}" for v in row)
             for name, row in zip(names, groups, strict=True)]
    text = ("public accuracy per subset (groups, left to right: " + ", ".join(names) + ")\n" + "\n".join(lines)
            + "\n" + "\n".join(table))
    return ToolOutcome(text, images=[bar_chart(groups)])


def plot(ctx: ToolContext, kind: str = "curve", job_ids: list[str] | None = None, metric: str = "loss"
         ) -> ToolOutcome:
    """A chart as an image: ``curve`` (``metric`` values from run logs) or ``subsets`` (accuracy
    per subset from evaluations already made)."""
    if kind == "curve":
        return _curves(ctx, [str(j) for j in job_ids or []], str(metric or "loss"))
    if kind == "subsets":
        return _subsets(ctx, [str(j) for j in job_ids or []])
    raise ToolError("kind must be 'curve' or 'subsets'")
