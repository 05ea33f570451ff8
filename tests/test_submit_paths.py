"""One submit path: the same idea, dataset and seeds launched from the CLI, the TUI, the web API and
an agent tool record the same job kind, the same resolved config and the same runner command."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.agent.budgets import Budgets, Usage
from core.agent.tools import ToolContext, run_tool
from core.common.errors import UserError
from core.common.job_types import IDEA_RUN_KIND
from core.control.jobs import list_jobs
from core.run.ideas import packaged_ideas_dir
from tests.conftest import make_dataset, run_cli
from tui import data

IDEA = "agent_t"  # an agent's idea folder, so the agent tool can launch it too
SEEDS = [42, 43]
FLAGS = ["--epochs", "1", "--train-size", "12", "--conf-low", "0.3"]
CONFIG = {"epochs": 1, "train_size": 12, "conf_low": 0.3}


@pytest.fixture
def ws(workspace: Path) -> Path:
    make_dataset(workspace, "tiny")
    folder = workspace / "ideas" / IDEA
    folder.mkdir(parents=True)
    # an idea that declares conf_low (DEFAULTS): front ends refuse parameters no idea declares
    shutil.copy(packaged_ideas_dir() / "train_only_on_confident_labels" / "run.py", folder / "run.py")
    return workspace


def fake_service(ws: Path) -> None:
    """A live service as ``w2s run`` discovers it (service.json naming a running pid): this process."""
    (ws / ".w2s").mkdir(exist_ok=True)
    (ws / ".w2s" / "service.json").write_text(json.dumps({"pid": os.getpid()}))


def new_jobs(seen: set[str]) -> list[dict[str, Any]]:
    """Jobs submitted since ``seen`` (which is updated), by seed."""
    fresh = [j for j in list_jobs() if j["id"] not in seen]
    seen.update(j["id"] for j in fresh)
    return sorted(fresh, key=lambda j: j["meta"]["seed"])


def command(job: dict[str, Any]) -> list[str]:
    return json.loads((Path(job["run_dir"]) / "command.json").read_text())["command"]


def test_cli_tui_api_and_agent_tool_submit_the_same_jobs(ws: Path) -> None:
    from web.app import create_app

    seen: set[str] = set()
    by_path: dict[str, list[dict[str, Any]]] = {}

    fake_service(ws)
    assert run_cli("run", "--idea", IDEA, "--seeds", "42-43", "--data-dir", "data/tiny", "--no-wait", "--json",
                   *FLAGS) == 0
    by_path["cli"] = new_jobs(seen)

    ids = data.submit_runs(IDEA, "tiny", data.parse_seeds("42-43"), "local", " ".join(FLAGS))
    by_path["tui"] = new_jobs(seen)
    assert sorted(ids) == sorted(j["id"] for j in by_path["tui"])

    client = create_app(dashboard=False).test_client()
    operator = (ws / ".w2s" / "operator_token").read_text().strip()
    for seed in SEEDS:
        api_config = {"data_dir": "data/tiny", "seed": seed, "epochs": 1, "train_size": 12,
                      "extra": {"conf_low": 0.3}}  # the API refuses unknown keys: idea parameters go in extra
        made = client.post("/api/jobs", json={"idea": IDEA, "config": api_config},
                           headers={"Authorization": f"Bearer {operator}"})
        assert made.status_code == 201, made.get_data(as_text=True)
    by_path["api"] = new_jobs(seen)

    ctx = ToolContext(agent_id="t", idea_name=IDEA, folder=ws / "ideas" / IDEA, run_dir=ws / "runs" / "j",
                      budgets=Budgets(max_evals=1), usage=Usage())
    out = run_tool(ctx, "run_idea", {"seeds": SEEDS, "data_dir": "data/tiny", "config": CONFIG}, tool_use_id="u1")
    assert not out.is_error, out.text
    by_path["agent"] = new_jobs(seen)

    reference = by_path["cli"]
    assert [j["meta"]["seed"] for j in reference] == SEEDS
    assert reference[0]["meta"]["config"]["epochs"] == 1
    assert reference[0]["meta"]["config"]["extra"] == {"conf_low": 0.3}
    for path, jobs in by_path.items():
        assert [j["kind"] for j in jobs] == [IDEA_RUN_KIND] * len(SEEDS), path
        assert [j["meta"]["seed"] for j in jobs] == SEEDS, path
        assert [j["meta"]["source"] for j in jobs] == [path] * len(SEEDS), path
        assert [j["meta"]["config"] for j in jobs] == [r["meta"]["config"] for r in reference], path
        assert [command(j) for j in jobs] == [command(r) for r in reference], path
        assert [j["gpus_requested"] for j in jobs] == [r["gpus_requested"] for r in reference], path


def test_every_path_refuses_a_repeated_seed(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_service(ws)
    assert run_cli("run", "--idea", IDEA, "--seeds", "42,42", "--data-dir", "data/tiny", "--no-wait") == 1
    assert "listed twice" in capsys.readouterr().err
    with pytest.raises(UserError, match="listed twice"):
        data.parse_seeds("42-43,43")
    ctx = ToolContext(agent_id="t", idea_name=IDEA, folder=ws / "ideas" / IDEA, run_dir=ws / "runs" / "j",
                      budgets=Budgets(max_evals=1), usage=Usage())
    out = run_tool(ctx, "run_idea", {"seeds": [42, 42], "data_dir": "data/tiny"}, tool_use_id="u2")
    assert out.is_error and "twice" in out.text
    assert list_jobs() == []
