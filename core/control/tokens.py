"""Run tokens: the credential a job shows the referee. Only a sha256 hash is ever stored.

A token carries its *scope*, bound on the trusted side when the scheduler issues it from the job's
recorded meta: the run (job id), the idea, the dataset and the evaluation budget. The referee takes
idea and dataset from this record, never from a request, so a run can only be scored as itself.

Budgets are counted per *pool* (``pool``: the key the referee's ledger counts charges under). A
run's pool is its own run id; every run an agent launches shares the agent's pool
(``agent:<agent id>``), whose size is the agent's ``max_evals`` as the operator set it.

One token document per run, whose id is the run id: re-issuing (a retry) rotates the hash and
carries the remaining evaluation budget over, so a job cannot refill its budget by failing and
being retried. Revoked tokens (finished runs) move to the tokens archive, so looking a live token
up scans only the live ones.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from core.control.store import Store

TABLE = "tokens"
AGENT_POOL_PREFIX = "agent:"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def agent_pool(agent_id: str) -> str:
    """The pool key every evaluation of an agent and of its runs is charged to."""
    return AGENT_POOL_PREFIX + str(agent_id)


def pool_of(record: dict[str, Any]) -> str:
    """The key a token's evaluations are charged under (its own run id unless it shares a pool)."""
    return str(record.get("pool") or record.get("run_id") or record.get("id") or "unknown")


def issue_run_token(
    store: Store,
    run_id: str,
    budget: int,
    *,
    idea: str | None = None,
    dataset: str | None = None,
    pool: str | None = None,
) -> str:
    """Return a fresh raw token for ``run_id`` (shown once: pass it to the job's environment only).

    ``idea``/``dataset`` bind what the token may be scored as (None: not bound, e.g. an agent's own
    token, which may evaluate on any dataset but never make a final submission); ``pool`` names a
    shared budget (see the module docstring). The scope is re-bound on every issue, from the same
    trusted job record.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError("evaluation budget must be an integer >= 0")
    token = "w2s-run-" + secrets.token_urlsafe(24)
    digest = hash_token(token)
    scope = {"job_id": run_id, "idea": idea, "dataset": dataset, "pool": pool or run_id}
    table = store.table(TABLE)
    if table.get(run_id) is not None:

        def rotate(doc: dict[str, Any]) -> None:
            doc.update(scope)
            doc["token_hash"] = digest
            doc["budget"] = min(int(doc.get("budget", budget)), int(budget))  # a re-issue never raises it
            doc["remaining"] = min(int(doc.get("remaining", budget)), int(budget))
            doc["rotated"] = time.time()
            doc.pop("revoked", None)

        table.update(run_id, rotate)
    else:
        table.insert(
            {
                "id": run_id,
                "run_id": run_id,
                **scope,
                "token_hash": digest,
                "budget": int(budget),
                "remaining": int(budget),
                "used": 0,
                "created": time.time(),
            }
        )
    return token


def resolve_token(store: Store, token: str) -> dict[str, Any] | None:
    """The token document for a raw token, or None (unknown or rotated away)."""
    if not token:
        return None
    digest = hash_token(token)
    found = store.table(TABLE).search(
        lambda doc: secrets.compare_digest(doc.get("token_hash", ""), digest), hot_only=True
    )
    return found[0] if found else None


def consume_evaluation(store: Store, token_hash: str) -> bool:
    """Atomically take one evaluation from the budget; False (nothing changed) when none is left.

    (The referee charges through ``core.referee.ledger``, per pool; this per-token counter is the
    simple form for callers without a ledger.)
    """
    table = store.table(TABLE)
    if not token_hash:
        return False
    found = table.search(lambda doc: doc.get("token_hash") == token_hash, hot_only=True)
    if not found:
        return False
    granted = False

    def take(doc: dict[str, Any]) -> None:
        nonlocal granted
        granted = False
        if doc.get("token_hash") == token_hash and int(doc.get("remaining", 0)) > 0:
            doc["remaining"] = int(doc["remaining"]) - 1
            doc["used"] = int(doc.get("used", 0)) + 1
            doc["last_used"] = time.time()
            granted = True

    table.update(found[0]["id"], take)
    return granted


def revoke_run_tokens(store: Store, run_id: str) -> None:
    """Invalidate the run's token (the budget record stays for the audit trail)."""
    table = store.table(TABLE)
    doc = table.get(run_id)
    if doc is not None and doc.get("token_hash"):
        table.update(run_id, {"token_hash": "", "revoked": time.time()})
