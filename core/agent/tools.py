"""The agent's tools: JSON schemas for the model and the code that runs them.

Everything a tool touches is checked here, on the trusted side. File tools resolve every path
(symlinks included) and refuse anything outside the agent's own idea folder; the shell runs in that
folder with secrets scrubbed from its environment, a timeout and an output cap; job tools only see
jobs this agent launched; evaluations go to the referee with the run token and count against the
loop's own evaluation budget as well as the referee's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.agent.budgets import Budgets, Usage
from core.common.errors import UserError
from core.common.job_types import TERMINAL_STATES
from core.common.workspace import paths

OUTPUT_CAP = 20_000  # characters of any tool result the model sees
SHELL_TIMEOUT_DEFAULT = 120
SHELL_TIMEOUT_MAX = 900
WRITE_CAP = 1_000_000
JOB_WAIT_MAX = 600
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
SECRET_PREFIXES = ("ANTHROPIC_", "AWS_", "RUNPOD_", "OPENAI_", "HF_TOKEN", "WANDB_API")


class ToolError(Exception):
    """A refused or failed tool call; its message goes back to the model as an error result."""


@dataclass
class ToolContext:
    """What the tools may reach: one agent's folder, its jobs, its run token, its budgets."""

    agent_id: str
    idea_name: str
    folder: Path
    run_dir: Path
    budgets: Budgets
    usage: Usage
    service_url: str | None = None
    run_token: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    deadline: Callable[[], float] | None = None  # seconds of wall budget left
    sleep: Callable[[float], None] = time.sleep


@dataclass
class ToolOutcome:
    text: str
    is_error: bool = False
    evaluation: bool = False  # a scored referee call (counts against the evaluation budget)
    finish: str | None = None  # the agent's final summary
    stop: str | None = None  # the loop must stop (reason)


# ----------------------------------------------------------------------------- paths


def resolve_inside(ctx: ToolContext, rel: str, *, must_exist: bool = False) -> Path:
    """The real path of ``rel`` inside the agent's folder, or ToolError. Symlinks are followed
    before the check, so a link pointing at ``../../labeled_data`` is refused like the path itself."""
    if not isinstance(rel, str) or not rel.strip():
        raise ToolError("path is required")
    if "\x00" in rel:
        raise ToolError("path contains a NUL byte")
    root = Path(os.path.realpath(ctx.folder))
    candidate = Path(rel)
    target = Path(os.path.realpath(candidate if candidate.is_absolute() else root / candidate))
    if target != root and root not in target.parents:
        raise ToolError(f"refused: {rel!r} resolves outside your folder ideas/{ctx.idea_name}/")
    if must_exist and not target.exists():
        raise ToolError(f"{rel}: no such file or folder")
    return target


def _rel(ctx: ToolContext, path: Path) -> str:
    root = Path(os.path.realpath(ctx.folder))
    return str(path.relative_to(root)) if path != root else "."


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail of long output (errors usually sit at the end)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"


# ----------------------------------------------------------------------------- file tools


def list_files(ctx: ToolContext, path: str = ".", recursive: bool = True) -> str:
    target = resolve_inside(ctx, path, must_exist=True)
    if target.is_file():
        return f"{_rel(ctx, target)}  {target.stat().st_size} bytes"
    lines = []
    walker = sorted(target.rglob("*")) if recursive else sorted(target.iterdir())
    for item in walker:
        if "__pycache__" in item.parts or item.name.endswith(".pyc"):
            continue
        if item.is_symlink():
            lines.append(f"{item.relative_to(target)}  (symlink, not followed)")
            continue
        kind = "/" if item.is_dir() else f"  {item.stat().st_size} bytes"
        lines.append(f"{item.relative_to(target)}{kind}")
        if len(lines) >= 500:
            lines.append("[... more entries cut ...]")
            break
    return "\n".join(lines) or "(empty)"


def read_file(ctx: ToolContext, path: str, start_line: int = 1, max_lines: int = 400) -> str:
    target = resolve_inside(ctx, path, must_exist=True)
    if not target.is_file():
        raise ToolError(f"{path}: not a file")
    text = target.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    start = max(1, int(start_line))
    chunk = lines[start - 1 : start - 1 + max(1, int(max_lines))]
    body = "\n".join(f"{start + i:5d}  {line}" for i, line in enumerate(chunk))
    more = len(lines) - (start - 1 + len(chunk))
    if more > 0:
        body += f"\n[... {more} more lines; read again with start_line={start + len(chunk)}]"
    return body or "(empty file)"


def write_file(ctx: ToolContext, path: str, content: str) -> str:
    if not isinstance(content, str):
        raise ToolError("content must be a string")
    if len(content) > WRITE_CAP:
        raise ToolError(f"content too large ({len(content)} > {WRITE_CAP} characters)")
    target = resolve_inside(ctx, path)
    if target.is_dir():
        raise ToolError(f"{path}: is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return f"wrote {_rel(ctx, target)} ({len(content)} characters)"


def edit_file(ctx: ToolContext, path: str, old_text: str, new_text: str, replace_all: bool = False) -> str:
    target = resolve_inside(ctx, path, must_exist=True)
    if not target.is_file():
        raise ToolError(f"{path}: not a file")
    text = target.read_text(encoding="utf-8")
    count = text.count(old_text) if old_text else 0
    if count == 0:
        raise ToolError(f"{path}: old_text not found (read the file and copy the text exactly)")
    if count > 1 and not replace_all:
        raise ToolError(f"{path}: old_text occurs {count} times; add context or set replace_all")
    text = text.replace(old_text, new_text) if replace_all else text.replace(old_text, new_text, 1)
    target.write_text(text, encoding="utf-8")
    return f"edited {_rel(ctx, target)} ({count if replace_all else 1} replacement(s))"


def start_from_template(ctx: ToolContext) -> str:
    """Copy TEMPLATE into the agent's folder (once)."""
    from core.common.errors import UserError
    from core.run.ideas import new_idea

    if (ctx.folder / "run.py").exists():
        raise ToolError(f"ideas/{ctx.idea_name}/run.py already exists; edit it instead")
    if ctx.folder.exists():
        if any(ctx.folder.iterdir()):
            raise ToolError(f"ideas/{ctx.idea_name}/ is not empty; TEMPLATE not copied")
        ctx.folder.rmdir()
    try:
        dest = new_idea(ctx.idea_name)
    except UserError as exc:
        raise ToolError(str(exc)) from None
    files = ", ".join(sorted(p.name for p in dest.iterdir() if p.name != "__pycache__"))
    return f"copied TEMPLATE into ideas/{ctx.idea_name}/ ({files}); read run.py next"


# ----------------------------------------------------------------------------- shell


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment minus anything that looks like a secret."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not SECRET_NAME.search(k) and not k.startswith(SECRET_PREFIXES)
    }
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_shell(ctx: ToolContext, command: str, timeout_s: int = SHELL_TIMEOUT_DEFAULT) -> str:
    if not isinstance(command, str) or not command.strip():
        raise ToolError("command is required")
    if "labeled_data" in command:
        raise ToolError("refused: labels live on the referee's side; read only data/ and your own folder")
    timeout = max(1, min(int(timeout_s), SHELL_TIMEOUT_MAX))
    ctx.folder.mkdir(parents=True, exist_ok=True)
    env = scrubbed_env({"W2S_DATA": str(paths().data), **ctx.extra_env})
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ctx.folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, _ = proc.communicate()
        status = f"killed after {timeout}s timeout"
    except BaseException:  # the loop is being stopped: leave no shell behind
        _kill_group(proc.pid)
        raise
    text = out.decode("utf-8", errors="replace")
    return cap(f"[{status}]\n{text}")


# ----------------------------------------------------------------------------- jobs


def _own_job(ctx: ToolContext, job_id: str) -> dict[str, Any]:
    from core.control.jobs import get_job

    job = get_job(str(job_id))
    if not job or (job.get("meta") or {}).get("agent_id") != ctx.agent_id:
        raise ToolError(f"no job {job_id!r} launched by you")
    return job


def _blanked_secrets() -> dict[str, str]:
    """Jobs inherit the service's environment; an idea job runs agent-written code, so every
    secret-looking variable visible here is overridden with an empty value for it (the scheduler
    still gives the job its own run token)."""
    return {k: "" for k in os.environ if (SECRET_NAME.search(k) or k.startswith(SECRET_PREFIXES))
            and k != "W2S_RUN_TOKEN"}




def run_idea(
    ctx: ToolContext,
    seeds: list[int] | None = None,
    data_dir: str = "data/demo-math",
    config: dict[str, Any] | None = None,
    tool_use_id: str = "",
) -> str:
    """One job per seed running ``python -m core.run.runner`` on the agent's idea. Idempotent per tool
    call: a resumed call finds the jobs it already submitted instead of submitting twice."""
    from core.common.config import RunConfig
    from core.control.jobs import list_jobs
    from core.control.submit import submit_idea_runs

    if not (ctx.folder / "run.py").is_file():
        raise ToolError(f"ideas/{ctx.idea_name}/run.py does not exist yet (start_from_template first)")
    seeds = [int(s) for s in (seeds or [42])]
    if not seeds or len(seeds) > 10:
        raise ToolError("give 1 to 10 seeds")
    data_dir = str(data_dir).rstrip("/")
    if "labeled_data" in data_dir or not data_dir.startswith("data/"):
        raise ToolError("data_dir must be a label-free dataset under data/ (for example data/demo-math)")
    if not (paths().root / data_dir).is_dir():
        raise ToolError(f"{data_dir}: no such dataset")
    config = dict(config or {})
    for banned in ("data_dir", "seed"):
        config.pop(banned, None)
    try:
        base = RunConfig.from_dict({**config, "data_dir": data_dir})
    except TypeError as exc:
        raise ToolError(f"bad config: {exc}") from None
    existing = {
        (j.get("meta") or {}).get("seed"): j
        for j in list_jobs()
        if (j.get("meta") or {}).get("agent_id") == ctx.agent_id
        and (j.get("meta") or {}).get("tool_use_id") == tool_use_id
        and tool_use_id
    }
    missing = [s for s in seeds if s not in existing]
    if len(set(seeds)) != len(seeds):
        raise ToolError("a seed is listed twice")
    if missing:
        try:
            for job in submit_idea_runs(  # the one submit path every front end uses
                ctx.idea_name, base, missing, source="agent", env=_blanked_secrets(),
                meta={"agent_id": ctx.agent_id, "tool_use_id": tool_use_id},
            ):
                existing[job["meta"]["seed"]] = job
        except UserError as exc:
            raise ToolError(str(exc)) from None
    lines = [f"seed {seed}: job {existing[seed]['id']} ({existing[seed].get('state')})" for seed in seeds]
    return "\n".join(lines) + "\npoll with job_status(job_id, wait_s=...); read output with job_log"


def _summary(job: dict[str, Any]) -> str:
    parts = [f"job {job['id']}: {job.get('state')}"]
    if job.get("exit_code") is not None:
        parts.append(f"exit code {job['exit_code']}")
    if job.get("progress") is not None:
        parts.append(f"progress {float(job['progress']):.0%}")
    text = ", ".join(parts)
    run_dir = Path(job.get("run_dir") or paths().runs / job["id"])
    result = run_dir / "result.json"
    if job.get("state") in TERMINAL_STATES and result.is_file():
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = None
        if isinstance(data, dict):
            data.pop("test_predictions", None)
            text += "\nresult: " + json.dumps(data, default=str)[:4000]
    return text


def job_status(ctx: ToolContext, job_id: str, wait_s: float = 0) -> str:
    """State of one of the agent's jobs, optionally waiting (up to 10 min) for it to end."""
    from core.control.jobs import get_job

    job = _own_job(ctx, job_id)
    wait = max(0.0, min(float(wait_s or 0), JOB_WAIT_MAX))
    if ctx.deadline is not None:
        wait = min(wait, max(0.0, ctx.deadline()))
    end = time.monotonic() + wait
    while job.get("state") not in TERMINAL_STATES and time.monotonic() < end:
        ctx.sleep(min(1.0, max(0.05, end - time.monotonic())))
        job = get_job(job["id"]) or job
    return _summary(job)


def job_log(ctx: ToolContext, job_id: str, tail_chars: int = 4000) -> str:
    from core.control.jobs import read_log

    job = _own_job(ctx, job_id)
    tail = max(200, min(int(tail_chars), OUTPUT_CAP))
    log = Path(job.get("run_dir") or paths().runs / job["id"]) / "stdout.log"
    if log.is_file():
        size = log.stat().st_size
        with open(log, "rb") as fh:
            fh.seek(max(0, size - tail))
            text = fh.read().decode("utf-8", errors="replace")
    else:
        text, _ = read_log(job["id"], 0)
        text = text[-tail:]
    return f"[job {job['id']} {job.get('state')}, last {len(text)} characters]\n{text}"


# ----------------------------------------------------------------------------- referee


def _load_predictions(ctx: ToolContext, predictions_file: str) -> tuple[list[str], list[float]]:
    target = resolve_inside(ctx, predictions_file, must_exist=True)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"{predictions_file}: not JSON ({exc})") from None
    if isinstance(data, dict) and "test_predictions" in data:
        data = data["test_predictions"]
    if isinstance(data, dict) and "ids" in data and "predictions" in data:
        return [str(i) for i in data["ids"]], list(data["predictions"])
    if isinstance(data, dict):
        return [str(k) for k in data], list(data.values())
    raise ToolError(f"{predictions_file}: expected {{id: P(class 1)}} or {{ids: [...], predictions: [...]}}")


def _measure_against(ctx: ToolContext, job_id: str) -> None:
    """The referee measures PGR against the baselines of the token's own job config
    (``meta.config``); point it at the config of the run that made these predictions."""
    from core.control.store import Store

    config = (_own_job(ctx, job_id).get("meta") or {}).get("config")
    agent_job = ctx.run_dir.name
    if not isinstance(config, dict) or agent_job == job_id:
        return

    def apply(job: dict[str, Any]) -> None:
        job.setdefault("meta", {})["config"] = config

    Store().table("jobs").update(agent_job, apply)


def evaluate(ctx: ToolContext, dataset: str, predictions_file: str, job_id: str | None = None) -> ToolOutcome:
    """Score predictions on ``test`` through the referee; spends one evaluation."""
    import httpx

    if ctx.usage.evals >= ctx.budgets.max_evals:
        return ToolOutcome(
            f"evaluation budget spent ({ctx.usage.evals}/{ctx.budgets.max_evals}); share findings and finish",
            is_error=True,
            stop=f"max_evals: {ctx.usage.evals} of {ctx.budgets.max_evals} evaluations used",
        )
    ids, preds = _load_predictions(ctx, predictions_file)
    if not ctx.service_url or not ctx.run_token:
        raise ToolError("no referee configured for this run (W2S_SERVICE_URL / W2S_RUN_TOKEN missing)")
    if job_id:
        _measure_against(ctx, job_id)
    body = {"dataset": dataset, "split": "test", "ids": ids, "predictions": preds}
    try:
        resp = httpx.post(
            ctx.service_url.rstrip("/") + "/api/evaluate",
            json=body,
            headers={"Authorization": f"Bearer {ctx.run_token}"},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        raise ToolError(f"referee unreachable: {exc}") from None
    try:
        payload = resp.json()
    except ValueError:
        payload = {"text": resp.text[:2000]}
    if resp.status_code == 429:
        return ToolOutcome(
            f"referee: evaluation budget spent ({json.dumps(payload)})",
            is_error=True,
            stop="max_evals: the referee's evaluation budget is spent",
        )
    if resp.status_code != 200:
        raise ToolError(f"referee answered HTTP {resp.status_code}: {json.dumps(payload)[:2000]}")
    left = ctx.budgets.max_evals - ctx.usage.evals - 1
    return ToolOutcome(json.dumps(payload, default=str) + f"\n(evaluations left in your budget: {left})",
                       evaluation=True)


# ----------------------------------------------------------------------------- leaderboard, findings


def leaderboard(ctx: ToolContext, dataset: str | None = None, limit: int = 30) -> str:
    from core.results.leaderboard import leaderboard_rows

    rows = leaderboard_rows(dataset or None)
    keep = ("dataset", "idea", "n_seeds", "pgr_mean", "pgr_sem", "transfer_acc", "weak_acc", "strong_acc",
            "source")
    out = [{k: r.get(k) for k in keep} for r in rows[: max(1, min(int(limit), 200))]]
    return json.dumps(out, default=str, indent=0) if out else "(no leaderboard rows yet)"


def share_finding(
    ctx: ToolContext,
    title: str,
    summary: str,
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> str:
    """Post to the forum through the service with the run token (the service names the author
    ``run:<job id>``); without a service, write it directly as ``agent:<id>``."""
    import httpx

    from core.control import findings
    from core.control.store import Store

    if not str(title).strip() or not str(summary).strip():
        raise ToolError("title and summary are required")
    if job_id:
        _own_job(ctx, job_id)
    payload = {"title": str(title)[:200], "summary": str(summary)[:20_000], "metrics": metrics or {},
               "config": config or {}, "run": job_id or ctx.run_dir.name}
    if ctx.service_url and ctx.run_token:
        try:
            resp = httpx.post(ctx.service_url.rstrip("/") + "/api/findings", json=payload,
                              headers={"Authorization": f"Bearer {ctx.run_token}"}, timeout=60)
        except httpx.HTTPError as exc:
            raise ToolError(f"forum unreachable: {exc}") from None
        if resp.status_code not in (200, 201):
            raise ToolError(f"forum answered HTTP {resp.status_code}: {resp.text[:1000]}")
        doc = resp.json()
    else:
        try:
            doc = findings.share(Store(), **payload, author=f"agent:{ctx.agent_id}")
        except ValueError as exc:
            raise ToolError(str(exc)) from None
    return f"shared finding {doc.get('id')}: {title}"


def list_findings(ctx: ToolContext, query: str | None = None, limit: int = 20) -> str:
    from core.control import findings
    from core.control.store import Store

    store = Store()
    rows = findings.search(store, query) if query else findings.list_findings(store)
    rows = rows[: max(1, min(int(limit), 100))]
    keep = ("id", "title", "summary", "metrics", "author", "votes", "run", "created")
    out = [{k: r.get(k) for k in keep if k in r} for r in rows]
    return cap(json.dumps(out, default=str, indent=0)) if out else "(no findings yet)"


# ----------------------------------------------------------------------------- Idea.md, finish


def idea_md_path() -> Path:
    """The workspace's own Idea.md if it has one, else the packaged menu."""
    local = paths().root / "Idea.md"
    if local.is_file():
        return local
    return Path(__file__).resolve().parent.parent.parent / "Idea.md"


def idea_md_sections(text: str) -> list[tuple[str, str]]:
    """``(title, body)`` for each ``## N. Title`` section, in order."""
    parts = re.split(r"^## +", text, flags=re.MULTILINE)
    out = []
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        out.append((re.sub(r"^\d+\.\s*", "", title.strip()), body.strip()))
    return out


def read_idea_md(ctx: ToolContext, number: int | None = None) -> str:
    from core.run.idea_md import idea_md_path, idea_md_sections

    path = idea_md_path()
    if not path.is_file():
        raise ToolError("Idea.md is missing")
    text = path.read_text(encoding="utf-8")
    if number is None:
        return cap(text)
    sections = idea_md_sections(text)
    if not 1 <= int(number) <= len(sections):
        raise ToolError(f"Idea.md has directions 1..{len(sections)}")
    title, body = sections[int(number) - 1]
    return f"{number}. {title}\n\n{body}"


# ----------------------------------------------------------------------------- registry


def _schema(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [], "additionalProperties": False}


_S = {"type": "string"}
_I = {"type": "integer"}

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "name": "list_files",
        "description": "List files in your idea folder (paths are relative to it).",
        "input_schema": _schema({"path": _S, "recursive": {"type": "boolean"}}),
    },
    {
        "name": "read_file",
        "description": "Read a text file from your idea folder, with line numbers.",
        "input_schema": _schema({"path": _S, "start_line": _I, "max_lines": _I}, ["path"]),
    },
    {
        "name": "write_file",
        "description": "Create or overwrite a file in your idea folder.",
        "input_schema": _schema({"path": _S, "content": _S}, ["path", "content"]),
    },
    {
        "name": "edit_file",
        "description": "Replace old_text by new_text in a file of your folder (old_text must match exactly).",
        "input_schema": _schema(
            {"path": _S, "old_text": _S, "new_text": _S, "replace_all": {"type": "boolean"}},
            ["path", "old_text", "new_text"],
        ),
    },
    {
        "name": "start_from_template",
        "description": "Copy the TEMPLATE idea into your (empty) idea folder: run.py and README.md.",
        "input_schema": _schema({}),
    },
    {
        "name": "run_shell",
        "description": "Run a bash command in your idea folder (no secrets in its environment; "
        "timeout_s default 120, max 900; output capped). `python` is the project's interpreter.",
        "input_schema": _schema({"command": _S, "timeout_s": _I}, ["command"]),
    },
    {
        "name": "run_idea",
        "description": "Launch your idea as jobs, one per seed: python -m core.run.runner trains it on data_dir "
        "(builds cached baselines first) and scores it. config holds RunConfig fields and your idea's "
        "own parameters (for example {\"epochs\": 1, \"train_size\": 200}).",
        "input_schema": _schema(
            {"seeds": {"type": "array", "items": _I}, "data_dir": _S, "config": {"type": "object"}}
        ),
    },
    {
        "name": "job_status",
        "description": "State of one of your jobs; wait_s (max 600) waits for it to finish.",
        "input_schema": _schema({"job_id": _S, "wait_s": {"type": "number"}}, ["job_id"]),
    },
    {
        "name": "job_log",
        "description": "The last tail_chars characters of one of your jobs' output.",
        "input_schema": _schema({"job_id": _S, "tail_chars": _I}, ["job_id"]),
    },
    {
        "name": "evaluate",
        "description": "Ask the referee to score test predictions (a JSON file in your folder: "
        "{row_id: P(class 1)}). job_id names the run that made them, so PGR uses that run's baselines. "
        "Returns accuracy and PGR; spends one evaluation from your budget.",
        "input_schema": _schema({"dataset": _S, "predictions_file": _S, "job_id": _S},
                                ["dataset", "predictions_file"]),
    },
    {
        "name": "leaderboard",
        "description": "The PGR leaderboard (optionally for one dataset).",
        "input_schema": _schema({"dataset": _S, "limit": _I}),
    },
    {
        "name": "share_finding",
        "description": "Share a finding with the other researchers: what you tried, the numbers (every "
        "seed), what you conclude. job_id links the run.",
        "input_schema": _schema(
            {"title": _S, "summary": _S, "metrics": {"type": "object"}, "config": {"type": "object"},
             "job_id": _S},
            ["title", "summary"],
        ),
    },
    {
        "name": "list_findings",
        "description": "Read findings shared so far, optionally matching a search query.",
        "input_schema": _schema({"query": _S, "limit": _I}),
    },
    {
        "name": "read_idea_md",
        "description": "Read Idea.md, the menu of research directions (or one numbered direction).",
        "input_schema": _schema({"number": _I}),
    },
    {
        "name": "finish",
        "description": "End your research run with a summary of what you did and found (every seed).",
        "input_schema": _schema({"summary": _S}, ["summary"]),
    },
]

_FUNCS: dict[str, Callable[..., Any]] = {
    "list_files": list_files,
    "read_file": read_file,
    "write_file": write_file,
    "edit_file": edit_file,
    "start_from_template": start_from_template,
    "run_shell": run_shell,
    "run_idea": run_idea,
    "job_status": job_status,
    "job_log": job_log,
    "evaluate": evaluate,
    "leaderboard": leaderboard,
    "share_finding": share_finding,
    "list_findings": list_findings,
    "read_idea_md": read_idea_md,
}


def tool_names() -> list[str]:
    return [spec["name"] for spec in TOOL_SPECS]


def run_tool(ctx: ToolContext, name: str, args: dict[str, Any], tool_use_id: str = "") -> ToolOutcome:
    """Run one tool call; every failure becomes an error result the model can read."""
    if not isinstance(args, dict):
        return ToolOutcome("tool input must be a JSON object", is_error=True)
    if name == "finish":
        summary = str(args.get("summary") or "").strip()
        if not summary:
            return ToolOutcome("finish needs a summary", is_error=True)
        return ToolOutcome("finished", finish=summary)
    func = _FUNCS.get(name)
    if func is None:
        return ToolOutcome(f"unknown tool {name!r}; tools: {', '.join(tool_names())}", is_error=True)
    allowed = set(next(s for s in TOOL_SPECS if s["name"] == name)["input_schema"]["properties"])
    unknown = sorted(set(args) - allowed)
    if unknown:
        return ToolOutcome(f"{name}: unknown argument(s) {', '.join(unknown)}", is_error=True)
    kwargs = dict(args)
    if name == "run_idea":
        kwargs["tool_use_id"] = tool_use_id
    try:
        out = func(ctx, **kwargs)
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
