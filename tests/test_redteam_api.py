"""Red team, the service side of the trust boundary: what a run token can and cannot do over HTTP.

The real Flask app over real HTTP (waitress on a free port), real jobs submitted through the one
submit path, and real run tokens issued by the scheduler from each job's record
(``core.control.scheduler.issue_job_token``, what ``_child_env`` hands a job). Each test names the
old behaviour it guards against; each failed on the previous main.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.common.config import RunConfig
from core.common.job_types import Job
from core.control.jobs import get_job, list_jobs, submit_job
from core.control.scheduler import Scheduler, issue_job_token
from core.control.store import Store
from core.control.submit import submit_idea_runs
from core.data import holdout
from core.results.cache import result_path
from tests.test_referee import DATASET, gold, scored_dataset

OTHER_DATASET = "tiny2"
VICTIM, ATTACKER = "vanilla_w2s", "train_only_on_confident_labels"


@pytest.fixture
def service(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    from web.app import create_app
    from web.server import serve_in_thread

    monkeypatch.setenv("W2S_GPUS", "")  # jobs record the CPU config on any test box
    rows = scored_dataset(workspace)
    scored_dataset(workspace, OTHER_DATASET, seed=1)
    srv = serve_in_thread(create_app(dashboard=False), threads=4)
    operator = (workspace / ".w2s" / "operator_token").read_text().strip()
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield {"client": client, "store": Store(), "rows": rows, "ws": workspace, "operator": operator,
               "url": srv.url}
    srv.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def launch(idea: str, seed: int = 42, dataset: str = DATASET, **kwargs: Any) -> Job:
    """One idea run queued through the one submit path (never started: its token is what matters)."""
    (job,) = submit_idea_runs(idea, RunConfig(data_dir=f"data/{dataset}"), [seed], source="cli", gpus=0,
                              **kwargs)
    return job


def token_for(job: Job) -> str:
    """The run token the scheduler gives this job at launch, scoped from the job's record."""
    return issue_job_token(Store(), get_job(job["id"]) or job)


def all_ids() -> list[str]:
    return list(holdout.layout(DATASET).ids)


def evaluate(client: httpx.Client, token: str, **body: Any) -> httpx.Response:
    """One evaluation call naming the token's own dataset (as an honest caller may)."""
    payload = {"dataset": DATASET, "predictions": [0] * len(all_ids()), **body}
    return client.post("/api/evaluate", json=payload, headers=auth(token))


def seed_file(answer: dict[str, Any]) -> Path:
    """The seed result a final submission wrote (named by the referee's answer)."""
    return result_path(DATASET, answer["idea_name"], answer["hyperparam_config_key"], answer["seed"])


def test_cross_idea_submit_is_refused_and_the_other_row_untouched(service):
    # Old behaviour: /api/submit took "idea" from the body, so any run token overwrote another
    # idea's seed_42.json with its own numbers (vanilla_w2s mean PGR 0.337 -> -0.717).
    c, truth = service["client"], gold(service["rows"])
    victim, attacker = launch(VICTIM), launch(ATTACKER)
    ids = all_ids()
    honest = c.post("/api/submit", json={"dataset": DATASET, "ids": ids, "predictions": [truth[i] for i in ids]},
                    headers=auth(token_for(victim)))
    assert honest.status_code == 200, honest.text
    row = seed_file(honest.json())
    before = row.read_bytes()

    bad_token = token_for(attacker)
    wrong = [1 - truth[i] for i in ids]
    for body in ({"idea": VICTIM, "dataset": DATASET}, {"idea": VICTIM}, {"dataset": OTHER_DATASET}):
        refused = c.post("/api/submit", json={**body, "ids": ids, "predictions": wrong}, headers=auth(bad_token))
        assert refused.status_code == 403, refused.text
        assert "bound to" in refused.json()["error"]
    assert row.read_bytes() == before  # the victim's row is untouched
    own = c.post("/api/submit", json={"dataset": DATASET, "ids": ids, "predictions": wrong},
                 headers=auth(bad_token))
    assert own.status_code == 200 and own.json()["idea_name"] == ATTACKER  # scored as itself only
    assert row.read_bytes() == before


def test_cross_dataset_evaluate_is_refused_and_costs_nothing(service):
    # Old behaviour: /api/evaluate scored whatever dataset the body named, so one run's token (and
    # budget) read accuracies on any dataset the server holds.
    c, store = service["client"], service["store"]
    job = launch(VICTIM, eval_budget=2)
    token = token_for(job)
    other_n = len(holdout.layout(OTHER_DATASET).ids)
    other = c.post("/api/evaluate", json={"dataset": OTHER_DATASET, "predictions": [0] * other_n},
                   headers=auth(token))
    assert other.status_code == 403 and "bound to dataset 'tiny'" in other.json()["error"]
    assert evaluate(c, token, idea=ATTACKER).status_code == 403  # naming another idea: refused too
    first = c.post("/api/evaluate", json={"predictions": [0] * len(all_ids())}, headers=auth(token))
    # no dataset named: the token's
    assert first.status_code == 200 and first.json()["dataset"] == DATASET
    assert first.json()["budget_left"] == 1  # the refused calls cost nothing
    audit = store.table("evaluations").search(lambda d: d.get("run_id") == job["id"])
    assert sorted(d["status"] for d in audit) == [200, 403, 403]


def test_run_token_cannot_launch_cancel_retry_or_start_agents(service, monkeypatch):
    # Old behaviour: these endpoints answered a run token with the generic 401 "operator token
    # required" (the hole was a job calling core.control.jobs in-process, which the sandbox closes);
    # now a known run token gets an explicit 403 and nothing changes.
    c, op = service["client"], service["operator"]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-real")
    victim = launch(VICTIM)
    token = token_for(launch(ATTACKER))
    before = {j["id"]: j["state"] for j in list_jobs()}
    attempts = [
        ("/api/jobs", {"idea": ATTACKER, "config": {"data_dir": "data/tiny"}, "eval_budget": 10_000}),
        ("/api/agents", {"direction": "raise my budget", "max_evals": 10_000}),
        (f"/api/jobs/{victim['id']}/cancel", {}),
        (f"/api/jobs/{victim['id']}/retry", {}),
    ]
    for path, body in attempts:
        resp = c.post(path, json=body, headers=auth(token))
        assert resp.status_code == 403, (path, resp.text)
        assert "operator action" in resp.json()["error"]
    assert {j["id"]: j["state"] for j in list_jobs()} == before
    assert c.get("/api/agents").json()["agents"] == []
    made = c.post("/api/agents", json={"direction": "try entropy", "max_evals": 2}, headers=auth(op))
    assert made.status_code == 201  # the operator still can
    stop = c.post(f"/api/agents/{made.json()['id']}/stop", headers=auth(token))
    assert stop.status_code == 403


def test_agent_run_cannot_get_more_than_the_agents_budget(service, monkeypatch):
    # Old behaviour: a run_idea job got its own token with the job's eval_budget (20 by default,
    # 10,000 when a job queued it in-process with eval_budget=10000), outside the agent's max_evals.
    c, op = service["client"], service["operator"]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-real")
    agent = c.post("/api/agents", json={"direction": "try entropy", "max_evals": 2}, headers=auth(op)).json()
    greedy = submit_job("idea_run", ["true"], eval_budget=10_000,
                        meta={"idea": agent["idea"], "dataset": DATASET, "agent_id": agent["id"]})
    token = token_for(greedy)
    assert [evaluate(c, token).status_code for _ in range(3)] == [200, 200, 429]
    retried = token_for(greedy)  # a retry rotates the token; the pool is not refilled
    spent = evaluate(c, retried)
    assert spent.status_code == 429 and "shared pool" in spent.json()["error"]


def test_two_runs_of_one_agent_share_one_pool(service, monkeypatch):
    # Old behaviour: each run of an agent had its own fresh 20-evaluation token, so an agent with
    # max_evals=3 got 3 + 20 per run it launched.
    c, op = service["client"], service["operator"]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-real")
    agent = c.post("/api/agents", json={"direction": "try entropy", "max_evals": 3}, headers=auth(op)).json()
    meta = {"agent_id": agent["id"], "tool_use_id": "toolu_1"}  # what the agent's run_idea records
    run_a, run_b = submit_idea_runs(VICTIM, RunConfig(data_dir=f"data/{DATASET}"), [42, 43], source="agent",
                                    gpus=0, meta=meta)
    agent_token = token_for(get_job(agent["job_id"]) or {})
    a, b = token_for(run_a), token_for(run_b)
    assert evaluate(c, a).json()["budget_left"] == 2
    assert evaluate(c, b).json()["budget_left"] == 1
    assert evaluate(c, agent_token).json()["budget_left"] == 0
    for token in (a, b, agent_token):
        resp = evaluate(c, token)
        assert resp.status_code == 429, resp.text


def test_runs_need_no_operator_token(service):
    # Old behaviour: a run could only submit by naming its idea and dataset in the body (a bare
    # submission was refused 400 "field 'dataset'"), which is what let it name someone else's.
    # Now the run token alone carries the scope, and the operator token is neither in a job's
    # environment nor needed: the run scores and submits with the file gone.
    c, ws, truth = service["client"], service["ws"], gold(service["rows"])
    operator_file = ws / ".w2s" / "operator_token"
    job = get_job(launch(VICTIM)["id"])
    assert job is not None
    env = Scheduler(Store(), gpus=[], service_url=service["url"])._child_env(job)
    assert service["operator"] not in "\n".join(f"{k}={v}" for k, v in env.items())
    assert not any(str(operator_file) in v for v in env.values())
    os.unlink(operator_file)
    token = env["W2S_RUN_TOKEN"]
    bare = c.post("/api/evaluate", json={"predictions": [0] * len(all_ids())}, headers=auth(token))
    assert bare.status_code == 200
    ids = all_ids()
    final = c.post("/api/submit", json={"ids": ids, "predictions": [truth[i] for i in ids]}, headers=auth(token))
    assert final.status_code == 200 and final.json()["idea_name"] == VICTIM, final.text
    assert c.post(f"/api/jobs/{job['id']}/cancel", headers=auth(service["operator"])).status_code == 401
