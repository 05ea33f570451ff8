"""Bad run configurations are refused at every entry (CLI, TUI, web API, agent tool) before a job is
queued, each with one line naming the field; a huge log offset is a 400, not a 500."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from core.agent.budgets import Budgets, Usage
from core.agent.tools import ToolContext, run_tool
from core.common.errors import UserError
from core.control.jobs import list_jobs
from core.run.ideas import packaged_ideas_dir
from tests.conftest import make_dataset, run_cli
from tui import data

IDEA = "agent_t"


@pytest.fixture
def ws(workspace: Path) -> Path:
    make_dataset(workspace, "tiny")
    folder = workspace / "ideas" / IDEA
    folder.mkdir(parents=True)
    shutil.copy(packaged_ideas_dir() / "vanilla_w2s" / "run.py", folder / "run.py")
    return workspace


@pytest.mark.parametrize(("flags", "says"), [
    (["--lr", "-1"], "--lr: must be > 0"),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--epochs", "0"], "--epochs: must be >= 1"),
    (["--batch-size", "0"], "--batch-size: must be >= 1"),
    (["--train-size", "0"], "--train-size: must be >= 1"),
    (["--data-dir", "../../etc"], "--data-dir: ../../etc: must be a dataset folder under"),
    (["--data-dir", "labeled_data/tiny"], "--data-dir: labeled_data/tiny: runs read the label-free view"),
])
def test_cli_run_refuses_at_once(ws: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str) -> None:
    start = time.monotonic()
    assert run_cli("run", "--idea", IDEA, "--data-dir", "data/tiny", "--local", *flags) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("w2s: error: ") and says in err, err
    assert time.monotonic() - start < 5 and list_jobs() == [] and not (ws / "runs").exists()


def test_tui_options_refuse_bad_values(ws: Path) -> None:
    with pytest.raises(UserError, match="lr: must be > 0"):
        data.submit_runs(IDEA, "tiny", [42], "local", "--lr -1")
    with pytest.raises(UserError, match="epochs: must be >= 1"):
        data.submit_runs(IDEA, "tiny", [42], "local", "--epochs 0")
    assert list_jobs() == []


def test_agent_tool_refuses_bad_config(ws: Path) -> None:
    ctx = ToolContext(agent_id="t", idea_name=IDEA, folder=ws / "ideas" / IDEA, run_dir=ws / "runs" / "j",
                      budgets=Budgets(max_evals=1), usage=Usage())
    for config, says in (({"epochs": -5}, "epochs: must be >= 1"), ({"lr": "abc"}, "lr: expected a number"),
                         ({"batch_size": 0}, "batch_size: must be >= 1")):
        out = run_tool(ctx, "run_idea", {"seeds": [42], "data_dir": "data/tiny", "config": config},
                       tool_use_id=f"u{says[:3]}")
        assert out.is_error and says in out.text, out.text
    assert list_jobs() == []


def test_api_refuses_bad_configs_with_the_field_name(ws: Path) -> None:
    from web.app import create_app

    client = create_app(dashboard=False).test_client()
    auth = {"Authorization": f"Bearer {(ws / '.w2s' / 'operator_token').read_text().strip()}"}
    cases = [
        ({"epochs": -5}, "config.epochs"), ({"lr": "abc"}, "config.lr"), ({"lr": 0}, "config.lr"),
        ({"mystery": 1}, "config.mystery"), ({"data_dir": "../../etc"}, "config.data_dir"),
        ({"data_dir": "labeled_data/tiny"}, "config.data_dir"), ({"data_dir": "data/nothing"}, "config.data_dir"),
        ({"batch_size": "8"}, "config.batch_size"), ({"train_size": 0}, "config.train_size"),
        ({"extra": "x"}, "config.extra"), ({"lr_schedule": "exponential"}, "config.lr_schedule"),
    ]
    for config, field_name in cases:
        resp = client.post("/api/jobs", json={"idea": IDEA, "config": {"data_dir": "data/tiny", **config}},
                           headers=auth)
        assert resp.status_code == 400, (config, resp.get_data(as_text=True))
        assert f"field '{field_name}'" in resp.get_json()["error"], resp.get_json()
    assert list_jobs() == []
    ok = client.post("/api/jobs", json={"idea": IDEA, "config": {"data_dir": "data/tiny", "epochs": 1,
                                                                    "extra": {"conf_low": 0.3}}}, headers=auth)
    assert ok.status_code == 201, ok.get_data(as_text=True)
    job_id = ok.get_json()["id"]
    for offset in (str(10**20), "9" * 5000, "-1", "abc"):
        resp = client.get(f"/api/jobs/{job_id}/log?offset={offset}", headers=auth)
        assert resp.status_code == 400, (offset[:20], resp.status_code)
        assert "query 'offset'" in resp.get_json()["error"]
    assert client.get(f"/api/jobs/{job_id}/log?offset=0", headers=auth).status_code == 200
