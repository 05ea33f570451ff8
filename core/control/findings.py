"""The findings forum: runs and people share results, comment on them and vote (one vote per voter).

A finding is one document in the store's ``findings`` table:
``{id, title, summary, metrics, config, run, author, created, comments: [...], votes: {voter: ±1},
score}``. Comments and votes are applied with the store's atomic read-modify-write, so concurrent
agents never lose each other's updates. Validation errors raise :class:`FindingError` with a one-line
``field: message``; nothing is written for invalid input.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from datetime import UTC, datetime
from typing import Any

TABLE = "findings"
MAX_TITLE = 200
MAX_SUMMARY = 20_000
MAX_COMMENT = 5_000
MAX_AUTHOR = 80
MAX_JSON_KEYS = 100
MAX_JSON_BYTES = 64 * 1024  # a finding's ``config`` or ``metrics``, serialized
MAX_JSON_DEPTH = 8  # nesting of lists/objects inside ``config``
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RUN_LINK_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class FindingError(ValueError):
    """Invalid input for the forum (``field: message``)."""


class FindingNotFound(LookupError):
    """No finding with that id."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(name: str, value: Any, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise FindingError(f"{name}: expected text")
    value = value.strip()
    if required and not value:
        raise FindingError(f"{name}: must not be empty")
    if len(value) > limit:
        raise FindingError(f"{name}: longer than {limit} characters")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists/objects, stopping early past ``limit`` (a deep bomb costs nothing)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _flat_dict(name: str, value: Any, numbers_only: bool) -> dict[str, Any]:
    """A small JSON object: the store keeps every finding forever and every page lists them, so a
    finding's ``config``/``metrics`` is capped in size (``MAX_JSON_BYTES``) and depth (``MAX_JSON_DEPTH``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FindingError(f"{name}: expected an object")
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise FindingError(f"{name}: nested deeper than {MAX_JSON_DEPTH} levels")
    if len(value) > MAX_JSON_KEYS:
        raise FindingError(f"{name}: more than {MAX_JSON_KEYS} entries")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise FindingError(f"{name}: keys must be short non-empty strings")
        if numbers_only:
            if item is not None and (
                isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item)
            ):
                raise FindingError(f"{name}.{key}: expected a number")
        elif not isinstance(item, str | int | float | bool | type(None) | list | dict):
            raise FindingError(f"{name}.{key}: unsupported value")
        out[key] = item
    try:
        size = len(json.dumps(value, allow_nan=False).encode())
    except (TypeError, ValueError):
        raise FindingError(f"{name}: not plain JSON (finite numbers, text, lists, objects)") from None
    if size > MAX_JSON_BYTES:
        raise FindingError(f"{name}: {size} bytes serialized; the limit is {MAX_JSON_BYTES}")
    return out


def check_id(finding_id: Any) -> str:
    if not isinstance(finding_id, str) or not ID_RE.match(finding_id):
        raise FindingNotFound(f"no finding {str(finding_id)[:64]!r}")
    return finding_id


def _table(store: Any) -> Any:
    return store.table(TABLE)


def share(
    store: Any,
    *,
    title: Any,
    summary: Any,
    author: Any,
    metrics: Any = None,
    config: Any = None,
    run: Any = None,
    run_id: Any = None,
) -> dict[str, Any]:
    """Create a finding; ``run`` (alias ``run_id``) links it to the run (job) that produced it.

    A run token (author ``run:<job-id>``) may link only its own run: otherwise a job could attach
    its claims to another run's id and borrow that run's results."""
    run = run if run not in (None, "") else run_id
    doc: dict[str, Any] = {
        "id": "f" + secrets.token_hex(4),
        "title": _text("title", title, MAX_TITLE),
        "summary": _text("summary", summary, MAX_SUMMARY),
        "metrics": _flat_dict("metrics", metrics, numbers_only=True),
        "config": _flat_dict("config", config, numbers_only=False),
        "run": None,
        "author": _text("author", author, MAX_AUTHOR),
        "created": _now(),
        "comments": [],
        "votes": {},
        "score": 0,
    }
    if run not in (None, ""):
        if not isinstance(run, str) or not _RUN_LINK_RE.match(run):
            raise FindingError("run: expected a run id (letters, digits, '_', '.', '-')")
        own = doc["author"][4:] if doc["author"].startswith("run:") else None
        if own is not None and run != own:
            raise FindingError(f"run: a run may link only its own run id ({own}), not {run!r}")
        doc["run"] = run
    _table(store).insert(doc)
    return doc


def get(store: Any, finding_id: str) -> dict[str, Any]:
    doc = _table(store).get(check_id(finding_id))
    if not doc:
        raise FindingNotFound(f"no finding {finding_id!r}")
    return doc


def list_findings(store: Any, sort: str = "score", limit: int | None = None) -> list[dict[str, Any]]:
    """All findings, best voted first (``sort="score"``) or newest first (``sort="recent"``)."""
    docs = _table(store).all()
    if sort == "recent":
        docs.sort(key=lambda d: d.get("created", ""), reverse=True)
    else:
        docs.sort(key=lambda d: (d.get("score", 0), d.get("created", "")), reverse=True)
    return docs[:limit] if limit else docs


def search(store: Any, query: str, sort: str = "score") -> list[dict[str, Any]]:
    """Findings whose title, summary, author, run, config or comments contain every query word."""
    words = [w.lower() for w in str(query or "").split() if w]
    docs = list_findings(store, sort)
    if not words:
        return docs

    def haystack(d: dict[str, Any]) -> str:
        parts = [d.get("title", ""), d.get("summary", ""), d.get("author", ""), d.get("run") or ""]
        parts += [f"{k} {v}" for k, v in (d.get("config") or {}).items()]
        parts += [f"{k}" for k in (d.get("metrics") or {})]
        parts += [c.get("text", "") for c in d.get("comments", [])]
        return "\n".join(str(p) for p in parts).lower()

    return [d for d in docs if all(w in haystack(d) for w in words)]


def comment(store: Any, finding_id: str, author: Any, text: Any) -> dict[str, Any]:
    """Append a comment; returns the updated finding."""
    entry = {
        "id": "c" + secrets.token_hex(4),
        "author": _text("author", author, MAX_AUTHOR),
        "text": _text("text", text, MAX_COMMENT),
        "created": _now(),
    }
    get(store, finding_id)

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        doc = dict(doc)
        doc["comments"] = [*doc.get("comments", []), entry]
        return doc

    return _table(store).update(finding_id, apply)


def vote(store: Any, finding_id: str, voter: Any, value: Any = 1) -> dict[str, Any]:
    """Record ``voter``'s vote (+1, -1, or 0 to withdraw); a voter's later vote replaces the earlier."""
    voter = _text("voter", voter, MAX_AUTHOR)
    if isinstance(value, bool) or value not in (1, -1, 0):
        raise FindingError("value: expected 1, -1 or 0")
    get(store, finding_id)

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        doc = dict(doc)
        votes = dict(doc.get("votes", {}))
        if value == 0:
            votes.pop(voter, None)
        else:
            votes[voter] = int(value)
        doc["votes"] = votes
        doc["score"] = sum(votes.values())
        return doc

    return _table(store).update(finding_id, apply)
