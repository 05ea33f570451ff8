"""Run tokens: hash-only storage, budget accounting that survives retries and concurrency."""

from __future__ import annotations

import subprocess
import sys

from core.control.store import Store
from core.control.tokens import (
    consume_evaluation,
    hash_token,
    issue_run_token,
    resolve_token,
    revoke_run_tokens,
)
from tests.conftest import REPO


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
