"""A scripted research episode of 200+ turns for the Messages API stand-in: parallel runs, long waits,
context overflow, image tool results, a finding and a finish. ``tests/test_agent_episode.py`` runs it
as an acceptance test; ``bench/agent_episode.py`` prices it with caching and compaction on and off.

The agent writes a trivial idea (constant predictions, a few ``loss`` log lines, validation numbers
from ``core.run.validation``, an optional sleep standing for a long training), so every run takes
seconds while the loop, the job system, the scheduler and the referee are all real.

Time: each request advances a simulated clock by ``TURN_S``, and a request that answers a ``wait``
by ``WAIT_S`` more (the GPU run it stands for). The stand-in's prompt cache expires on that clock,
and ``agent_hours`` is its final reading: the figure per agent-hour is on this clock.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.fakes.anthropic_server import text, tool_use, turn

TURN_S = 60.0  # a turn's model and tool time, as the bench counts it
WAIT_S = 1800.0  # what a wait stands for: a 30-minute GPU run
TOTAL_TURNS = 202
SECOND_BATCH = 100
BASE = {"weak_model": "demo-weak", "strong_model": "demo-strong", "epochs": 1, "batch_size": 8, "max_ctx": 64,
        "lr": 0.001}
SEEDS = [42, 43, 44]
DATASET = "demo-math"

RUN_PY = '''"""Episode idea: constant predictions (no training), loss lines, validation numbers."""

import time

from core.run import experiment, validation

DEFAULTS = {"bias": 0.6, "sleep_s": 0.0}


def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    weak_p1 = experiment.weak_soft_labels(cfg, data.train_ids)
    _, _, val, val_p1 = validation.split(data.train, weak_p1)
    bias = float(cfg.extra.get("bias", 0.6))
    for step in range(5):
        experiment.log(f"step {step}: loss {1.0 / (step + 1) + bias / 10:.4f}")
    time.sleep(float(cfg.extra.get("sleep_s", 0.0)))
    return {"test_predictions": {row["id"]: bias for row in data.test},
            "validation": validation.scores(val_p1, [bias] * len(val))}
'''
BIG = "".join(f"observation {i}: " + "the student tracks the teacher on this slice; " * 2 + "\n" for i in range(60))


class Episode:
    """The script (``Episode()(index, request)``), with the job ids it has seen and the clock."""

    def __init__(self) -> None:
        self.jobs: dict[str, list[str]] = {}  # batch name -> job ids, in seed order
        self.clock = 0.0
        self.waits = 0

    # ---------------------------------------------------------------- helpers
    def _ids(self, request: dict[str, Any], call_id: str) -> list[str]:
        for block in request["messages"][-1]["content"]:
            if isinstance(block, dict) and block.get("tool_use_id") == call_id:
                content = block.get("content")
                body = content if isinstance(content, str) else " ".join(
                    str(c.get("text", "")) for c in content or [] if isinstance(c, dict))
                return re.findall(r"seed \d+: job ([0-9a-f]{8})", body)
        return []

    def _tick(self, request: dict[str, Any]) -> None:
        self.clock += TURN_S
        msgs = request.get("messages") or []
        last = msgs[-2] if len(msgs) >= 2 else {}
        if last.get("role") == "assistant" and any(
                b.get("type") == "tool_use" and b.get("name") == "wait" for b in last.get("content") or []):
            self.clock += WAIT_S
            self.waits += 1

    @property
    def agent_hours(self) -> float:
        return self.clock / 3600

    # ---------------------------------------------------------------- the turns
    def __call__(self, i: int, request: dict[str, Any]) -> dict[str, Any]:
        self._tick(request)
        return turn(*self.blocks(i, request), input_tokens=None)

    def blocks(self, i: int, request: dict[str, Any]) -> list[dict[str, Any]]:
        if i == 0:
            return [text("Starting from TEMPLATE, with notes."), tool_use("c0a", "start_from_template"),
                    tool_use("c0b", "write_file", {"path": "NOTES.md", "content": "# Notes\nplan: constant-bias probe\n"})]
        if i == 1:
            return [tool_use("c1a", "write_file", {"path": "run.py", "content": RUN_PY}),
                    tool_use("c1b", "write_file", {"path": "observations.txt", "content": BIG})]
        if i == 2:
            return [tool_use("c2a", "read_file", {"path": "@core/run/validation.py", "max_lines": 40}),
                    tool_use("c2b", "list_files", {"path": "@findings"})]
        if i == 3:
            variant = {**BASE, "bias": 0.35, "sleep_s": 4}
            return [text("Three seeds and a variant, in parallel."),
                    tool_use("c3a", "run_idea", {"seeds": SEEDS, "data_dir": f"data/{DATASET}", "config": BASE}),
                    tool_use("c3b", "run_idea", {"seeds": [42], "data_dir": f"data/{DATASET}", "config": variant})]
        if i == 4:
            self.jobs["base"], self.jobs["variant"] = self._ids(request, "c3a"), self._ids(request, "c3b")
            return [tool_use("c4", "wait", {"until": "all", "timeout_s": 3600, "findings": False})]
        if i == 5:
            runs = self.jobs["base"] + self.jobs["variant"]
            return [tool_use(f"c5_{k}", "job_status", {"job_id": j}) for k, j in enumerate(runs)]
        if i == 6:
            return [tool_use("c6", "evaluate", {"dataset": DATASET, "job_id": self.jobs["base"][0]})]
        if i == 7:
            return [tool_use("c7", "evaluate", {"dataset": DATASET, "job_id": self.jobs["variant"][0]})]
        if i == 8:
            runs = [self.jobs["base"][0], self.jobs["variant"][0]]
            return [tool_use("c8a", "plot", {"kind": "subsets"}),
                    tool_use("c8b", "plot", {"kind": "curve", "job_ids": runs, "metric": "loss"})]
        if i == SECOND_BATCH:
            second = {**BASE, "bias": 0.7, "sleep_s": 2}
            return [text("A second variant on two seeds."),
                    tool_use(f"c{i}", "run_idea", {"seeds": [43, 44], "data_dir": f"data/{DATASET}", "config": second})]
        if i == SECOND_BATCH + 1:
            self.jobs["second"] = self._ids(request, f"c{i - 1}")
            return [tool_use(f"c{i}", "wait", {"job_ids": self.jobs["second"], "until": "all", "timeout_s": 7200})]
        if i == SECOND_BATCH + 2:
            return [tool_use(f"c{i}", "evaluate", {"dataset": DATASET, "job_id": self.jobs["second"][0]})]
        if i == TOTAL_TURNS - 2:
            runs = self.jobs["base"] + self.jobs["variant"] + self.jobs["second"]
            return [tool_use(f"c{i}", "share_finding", {
                "title": "Constant-bias probe on demo-math",
                "summary": "Constant predictions at 0.6 (seeds 42-44), 0.35 (seed 42) and 0.7 (seeds 43, 44): "
                           "all runs reported in the research log; a floor to beat, nothing more.",
                "metrics": {"seeds": 6}, "job_ids": runs})]
        if i >= TOTAL_TURNS - 1:
            return [tool_use(f"c{i}", "finish", {"summary": f"{i + 1} turns: six runs, three evaluations, one finding"})]
        return self.filler(i)

    def filler(self, i: int) -> list[dict[str, Any]]:
        """The long middle: reading, note-taking, reading the library (the context grows)."""
        kind = i % 4
        if kind == 0:
            return [text(f"Turn {i}: rereading my observations."),
                    tool_use(f"c{i}", "read_file", {"path": "observations.txt"})]
        if kind == 1:
            return [tool_use(f"c{i}", "edit_file", {"path": "NOTES.md", "old_text": "# Notes\n",
                                                    "new_text": f"# Notes\n- turn {i}: still consistent\n"})]
        if kind == 2:
            return [tool_use(f"c{i}", "read_file", {"path": "@core/run/experiment.py", "start_line": 1 + (i % 7) * 20,
                                                    "max_lines": 60})]
        return [text(f"Turn {i}: listing my folder."), tool_use(f"c{i}", "list_files", {})]


def prepare(workspace: Path) -> None:
    """The demo dataset (small) and fake baselines for every seed the episode runs."""
    from core.common.config import RunConfig
    from core.data.demo import generate_all
    from core.run.resolve import prepare_config
    from tests.tiny_w2s import fake_baselines

    generate_all(workspace, sizes={"train_label": 16, "train_unlabel": 40, "test": 40}, datasets=(DATASET,))
    cfg = prepare_config(RunConfig.from_dict({"data_dir": f"data/{DATASET}", **BASE}))
    fake_baselines(workspace, cfg, SEEDS)
