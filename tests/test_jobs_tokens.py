"""Run tokens: hash-only storage, budget accounting that survives retries and concurrency, and the
scope (run, idea, dataset, budget pool) the scheduler binds from the job record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.control.jobs import submit_job
from core.control.scheduler import Scheduler, token_scope
from core.control.store import Store
from core.control.tokens import (
    agent_pool,
    consume_evaluation,
    hash_token,
    issue_run_token,
    resolve_token,
    revoke_run_tokens,
)
from tests.conftest import REPO, drive_scheduler


def test_issue_resolve_consume_rotate_revoke(tmp_path):
    store = Store(tmp_path)
    token = issue_run_token(store, "run1", 2)
    assert token.encode() not in (tmp_path / "tokens.json").read_bytes()
    record = resolve_token(store, token)
    assert record["run_id"] == "run1" and record["token_hash"] == hash_token(token)
    assert resolve_token(store, "w2s-run-forged") is None and resolve_token(store, "") is None
    assert consume_evaluation(store, record["token_hash"]) is True
    # a retry rotates the token; the budget is not refilled and the old token stops working
    fresh = issue_run_token(store, "run1", 2)
    assert resolve_token(store, token) is None
    assert consume_evaluation(store, record["token_hash"]) is False
    new_hash = resolve_token(store, fresh)["token_hash"]
    assert consume_evaluation(store, new_hash) is True
    assert consume_evaluation(store, new_hash) is False
    doc = store.table("tokens").get("run1")
    assert (doc["budget"], doc["remaining"], doc["used"]) == (2, 0, 2)
    revoke_run_tokens(store, "run1")
    assert resolve_token(store, fresh) is None
    assert store.table("tokens").hot() == []  # revoked tokens leave the hot file
    assert consume_evaluation(store, "") is False


CONSUMER = """
import sys
from pathlib import Path
from core.control.store import Store
from core.control.tokens import consume_evaluation
store = Store(Path(sys.argv[1]))
print(sum(consume_evaluation(store, sys.argv[2]) for _ in range(40)))
"""


def test_concurrent_consumers_never_exceed_the_budget(tmp_path):
    store = Store(tmp_path)
    digest = hash_token(issue_run_token(store, "runX", 50))
    procs = [subprocess.Popen([sys.executable, "-c", CONSUMER, str(tmp_path), digest], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    granted = sum(int(p.communicate(timeout=120)[0]) for p in procs)
    assert granted == 50
    assert store.table("tokens").get("runX")["remaining"] == 0


def test_scope_binds_run_idea_dataset_and_budget(tmp_path):
    """A token names what it may be scored as; a re-issue never raises the budget."""
    store = Store(tmp_path)
    issue_run_token(store, "runS", 5, idea="idea_a", dataset="tiny")
    doc = store.table("tokens").get("runS")
    assert (doc["job_id"], doc["idea"], doc["dataset"], doc["pool"], doc["budget"]) == ("runS", "idea_a", "tiny",
                                                                                        "runS", 5)
    issue_run_token(store, "runS", 50, idea="idea_a", dataset="tiny")
    assert store.table("tokens").get("runS")["budget"] == 5
    with pytest.raises(ValueError):
        issue_run_token(store, "runS", True)


def test_scheduler_issues_the_scope_from_the_job_record(workspace):
    """The scheduler binds idea/dataset from meta (dataset from meta.config when meta has none),
    the budget from eval_budget, and an agent's runs to the agent's pool of max_evals."""
    store = Store()
    store.table("agents").insert({"id": "ag1", "budgets": {"max_evals": 3}})
    plain = submit_job("idea_run", ["true"], eval_budget=7,
                       meta={"idea": "idea_a", "config": {"data_dir": "data/tiny/"}})
    agent_run = submit_job("idea_run", ["true"], eval_budget=10_000,
                           meta={"idea": "agent_ag1", "dataset": "tiny", "agent_id": "ag1"})
    stray = submit_job("idea_run", ["true"], meta={"idea": "x", "dataset": "tiny", "agent_id": "nobody"})
    assert token_scope(store, plain) == {"idea": "idea_a", "dataset": "tiny", "budget": 7, "pool": None}
    assert token_scope(store, agent_run) == {"idea": "agent_ag1", "dataset": "tiny", "budget": 3,
                                             "pool": agent_pool("ag1")}
    assert token_scope(store, stray)["budget"] == 0  # an unknown agent's run gets nothing
    job = submit_job("test", ["bash", "-c", 'printf %s "${W2S_RUN_TOKEN:0:8}" > "$W2S_RUN_DIR/t"'],
                     meta={"idea": "idea_b", "dataset": "tiny", "agent_id": "ag1"})
    (done,) = drive_scheduler(Scheduler(gpus=[], poll_interval=0.05), [job["id"]])
    assert done["state"] == "succeeded"
    assert (Path(done["run_dir"]) / "t").read_text() == "w2s-run-"
    record = store.table("tokens").get(job["id"])
    assert (record["idea"], record["dataset"], record["pool"], record["budget"]) == ("idea_b", "tiny",
                                                                                     "agent:ag1", 3)


def test_submit_job_checks_the_budget(workspace):
    for bad in (-1, True, 10_001, "5"):
        with pytest.raises(ValueError, match="eval_budget"):
            submit_job("test", ["true"], eval_budget=bad)
    assert submit_job("test", ["true"], eval_budget=0)["eval_budget"] == 0
