"""The weak-judge channel through the Docker sandbox: a container (as the operator's uid, or nobody
when the operator is root) writes its requests into its output folder and reads the runner's replies
from a read-only bind mount. Needs the real engine (``tests.docker_engine``: skip here, fail in CI)."""

from __future__ import annotations

import json
from pathlib import Path

from core.app.seed_job import run_seed
from core.run.runner import REPLIES_DIR
from core.sandbox.docker import DockerSandbox
from tests.test_weak_judge import demo_math_cut

pytest_plugins = ["tests.docker_engine"]  # the engine, image and workspace fixtures

IDEA = '''
from core.common.errors import UserError
from core.run import experiment


def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    tl = experiment.load_train_label_free(cfg)
    judge = experiment.train_weak_judge(cfg, {r["id"]: r["choice"] for r in tl})
    probs = judge.predict({r["id"] + "#c": r["choice"] for r in data.test})
    try:
        judge.predict({tl[0]["id"]: "x"})
        refusal = None
    except UserError as exc:
        refusal = str(exc)
    return {"test_predictions": {r["id"]: probs[r["id"] + "#c"] for r in data.test}, "refusal": refusal}
'''


def test_the_judge_channel_works_in_a_container(docker_ws: Path) -> None:
    cfg = demo_math_cut(docker_ws)
    folder = docker_ws / "ideas" / "judged_docker"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(IDEA)
    run_dir = docker_ws / "runs" / "jd-1"
    lines: list[str] = []
    result = run_seed("judged_docker", cfg, log=lines.append, run_id="jd-1", run_dir=run_dir, sandbox=DockerSandbox())
    notes = json.loads((run_dir / "idea_out" / "idea_output.json").read_text())
    assert "is a train_label row" in notes["refusal"]
    preds = json.loads((run_dir / "idea_out" / "predictions.json").read_text())
    assert len(preds) == 8 and all(0.0 <= p <= 1.0 for p in preds.values())
    assert result["judge_calls"] == {"judges": 1, "texts": 8, "requests": 3, "refused": 1}
    assert len(list((run_dir / REPLIES_DIR).glob("reply-*.json"))) == 3
    assert any("running idea judged_docker in the sandbox (docker" in ln for ln in lines)
