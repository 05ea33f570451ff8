"""Run tokens: the credential a job shows the referee. Only a sha256 hash is ever stored.

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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_run_token(store: Store, run_id: str, budget: int) -> str:
    """Return a fresh raw token for ``run_id`` (shown once: pass it to the job's environment only)."""
    if budget < 0:
        raise ValueError("evaluation budget must be >= 0")
    token = "w2s-run-" + secrets.token_urlsafe(24)
    digest = hash_token(token)
    table = store.table(TABLE)
    if table.get(run_id) is not None:

        def rotate(doc: dict[str, Any]) -> None:
            doc["token_hash"] = digest
            doc["remaining"] = min(int(doc.get("remaining", budget)), int(budget))
            doc["rotated"] = time.time()
            doc.pop("revoked", None)

        table.update(run_id, rotate)
    else:
        table.insert(
            {
                "id": run_id,
                "run_id": run_id,
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
    """Atomically take one evaluation from the budget; False (nothing changed) when none is left."""
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
