"""The state store: TinyDB tables under ``<workspace>/.w2s/``, safe for many processes at once.

Why this shape: the service, the TUI, CLI verbs and job processes all read and write the same
state. Each table is its own file (``<table>.json``) with its own lock (``<table>.lock``), so a
write to ``jobs`` never waits on or rewrites ``findings``. Every write is a locked
read-modify-write of the freshest file followed by an atomic replace
(:mod:`core.control.storage`), so concurrent writers never lose each other's updates and a killed
writer never leaves half a file. Finished jobs move to archive segments
(``jobs.archive-NNNN.json``, 1000 jobs each) so the hot file that every state change rewrites stays small however long the history grows, and finishing
a job rewrites one segment, not the whole history.

A damaged file is detected and restored from its last good generation by the storage; for jobs,
what no generation holds is rebuilt from the run folders (``runs/<id>/command.json`` and
``exit_status``), so a damaged store loses no job that was ever submitted.

Documents are plain JSON dicts keyed by a short string ``"id"``; callers always get copies.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
from tinydb import TinyDB
from tinydb.table import Document
from tinydb.table import Table as _TinyTable

from core.common.job_types import DEFAULT_EVAL_BUDGET, TERMINAL_STATES
from core.common.workspace import paths
from core.control.storage import (
    SCHEMA_VERSION,
    AtomicJSONStorage,
    FileLock,
    StoreDamaged,
    StoreError,
    no_gc,
    notice,
)

__all__ = ["Store", "Table", "StoreError", "StoreDamaged", "SCHEMA_VERSION", "TABLES", "default_store", "new_id"]

TABLES = ("jobs", "agents", "evaluations", "findings", "tokens", "ideas")

# Tables whose finished documents live in a second, rarely written file.
ARCHIVE_RULES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "jobs": lambda doc: doc.get("state") in TERMINAL_STATES,
    "evaluations": lambda doc: True,  # an append-only audit log: each write touches one segment
    "tokens": lambda doc: not doc.get("token_hash"),  # revoked run tokens
}

ARCHIVE_SEGMENT_DOCS = 1000  # a finished job's move rewrites one segment, not the whole history
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
REV = "_rev"
REBUILT = "rebuilt"  # marks a job document rebuilt from its run folder after store damage


def new_id() -> str:
    """A short random id (8 hex digits): easy to type, unique enough per table (checked on insert)."""
    return secrets.token_hex(4)


def _copy(obj: Any) -> Any:
    """A deep, JSON-normalized copy: callers can never mutate the cache, and non-JSON fails early."""
    with no_gc():
        return orjson.loads(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS))


class _StrTable(_TinyTable):
    """TinyDB table keyed by our string ids instead of TinyDB's integers.

    TinyDB lets a table choose its ``document_id_class`` but annotates every id as ``int``: the
    few calls that hand it our ``str`` ids (here and in :func:`_document`) carry the type ignores.
    """

    document_id_class = str  # type: ignore[assignment]  # TinyDB annotates it as type[int]

    def _get_next_id(self) -> str:  # only reached by a bare insert, which we never do
        return new_id()

    def remove_ids(self, doc_ids: list[str]) -> None:
        self.remove(doc_ids=doc_ids)  # type: ignore[arg-type]  # str ids, see the class docstring

    def update_id(self, fn: Callable[[MutableMapping[str, Any]], None], doc_id: str) -> None:
        self.update(fn, doc_ids=[doc_id])  # type: ignore[list-item]  # str ids, see the class docstring


def _document(value: Mapping[str, Any], doc_id: str) -> Document:
    """A TinyDB document under our string id."""
    return Document(value, doc_id=doc_id)  # type: ignore[arg-type]  # str ids, see _StrTable


class _DB(TinyDB):
    table_class = _StrTable


class Table:
    """One named table: ``insert``, ``get``, ``update``, ``all``, ``search``, ``remove``."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.root = root
        self._lock = FileLock(root / f"{name}.lock")
        self._mem = threading.RLock()
        self._archive_rule = ARCHIVE_RULES.get(name)
        self._hot = self._open(root / f"{name}.json")
        self._segments: dict[str, _StrTable] = {}
        self._repaired = False
        # Jobs can be rebuilt from their run folders; only in a workspace (``<ws>/.w2s`` + ``<ws>/runs``).
        self._runs = root.parent / "runs" if name == "jobs" and root.name == ".w2s" else None

    # -- internals ---------------------------------------------------------------------------
    def _open(self, path: Path) -> _StrTable:
        # _DB.table_class makes every table it opens a _StrTable
        db = _DB(path, storage=AtomicJSONStorage, lock_path=self.root / f"{self.name}.lock")
        return cast(_StrTable, db.table(self.name, cache_size=0))

    def _archive_parts(self) -> list[_StrTable]:
        """Archive segments, oldest first (other processes may have started new ones)."""
        if self._archive_rule is None:
            return []
        found = sorted({p.name for p in self.root.glob(f"{self.name}.archive-*.json")} | {
            p.name.rsplit(".", 1)[0]  # a segment whose file was deleted: its .bak/.prev restore it
            for pattern in ("bak", "prev") for p in self.root.glob(f"{self.name}.archive-*.json.{pattern}")
        })
        for seg in found:
            if seg not in self._segments:
                self._segments[seg] = self._open(self.root / seg)
        return [self._segments[seg] for seg in found]

    def _parts(self) -> list[_StrTable]:
        return [self._hot, *self._archive_parts()]

    def _raw(self, parts: list[_StrTable] | None = None) -> list[Mapping[str, Mapping[str, Any]]]:
        parts = parts if parts is not None else self._parts()
        out: list[Mapping[str, Mapping[str, Any]]] = []
        rebuild = False
        for part in parts:
            storage = cast(AtomicJSONStorage, part.storage)
            try:
                out.append(part._read_table())
            except StoreDamaged as exc:
                if self._runs is None:
                    raise
                with self._lock, self._mem:  # jobs: start the file anew and rebuild it from runs/
                    aside = storage.set_aside(exc.reason)
                    kept = f", kept as {aside.name}" if aside else ""
                    notice(f"{storage.path} was damaged ({exc.reason}{kept}) with no good copy; "
                           f"rebuilding its jobs from {self._runs}")
                    out.append(part._read_table())
            if storage.recovered is not None:
                storage.recovered = None
                rebuild = self._runs is not None
        if rebuild:  # a restored generation can miss the newest jobs: their run folders have them
            with self._lock, self._mem:
                self._rebuild_from_runs()
            return self._raw(parts)
        return out

    def _rebuild_from_runs(self) -> None:
        """Add a document for every run folder the table does not know (after store damage).

        State from ``exit_status`` when the job finished; a job that had started but left no exit
        status is marked failed (its outcome is unknown; retry it); one that never started is
        queued again. ``meta`` lived only in the store and cannot be recovered.
        """
        if self._runs is None or not self._runs.is_dir():
            return
        parts = self._parts()
        known = {doc_id for raw in self._raw(parts) for doc_id in raw}
        added = 0
        for run_dir in sorted(self._runs.iterdir()):
            if run_dir.name in known:
                continue
            try:
                spec = orjson.loads((run_dir / "command.json").read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if not isinstance(spec, dict):
                continue
            doc = self._rebuilt_job(run_dir, spec)
            self._target(doc).insert(_document(doc, run_dir.name))
            added += 1
        if added:
            notice(f"rebuilt {added} job(s) from their run folders in {self._runs} "
                   "(their meta could not be recovered)")

    @staticmethod
    def _rebuilt_job(run_dir: Path, spec: Mapping[str, Any]) -> dict[str, Any]:
        now = time.time()
        try:
            status = orjson.loads((run_dir / "exit_status").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            status = None
        status = status if isinstance(status, dict) else None
        started = status is not None or (run_dir / "pids.json").exists()
        if status is not None:
            code = status.get("exit_code")
            state, reason = ("succeeded" if code == 0 else "failed"), f"exit code {code}"
        elif started:
            state, code, reason = "failed", None, "it had started; its outcome is unknown (retry it)"
        else:
            state, code, reason = "queued", None, "it had not started: queued again"
        created = spec.get("created") if isinstance(spec.get("created"), (int, float)) else now
        return {
            "id": run_dir.name, "kind": str(spec.get("kind") or "run"),
            "name": str(spec.get("name") or spec.get("kind") or "run"), "state": state,
            "executor": str(spec.get("executor") or "local"), "gpus": [],
            "gpus_requested": spec.get("gpus") if isinstance(spec.get("gpus"), int) else 0,
            "created": created, "started": None,
            "finished": (status or {}).get("finished") if status is not None else (now if state == "failed" else None),
            "exit_code": code,
            "history": [{"state": state, "time": now, "reason": f"rebuilt from its run folder after store damage: {reason}"}],
            "run_dir": str(run_dir), "meta": {}, "progress": None,
            "attempt": int(status.get("attempt") or 0) if status is not None else 0,
            "max_retries": 0, "retry_at": None, "eval_budget": DEFAULT_EVAL_BUDGET, "handle": None,
            "cancel_requested": False, REBUILT: True, REV: 1,
        }

    def _locate(self, doc_id: str) -> tuple[_StrTable | None, Mapping[str, Any] | None]:
        """Where a document lives; after a crash mid-move it can be in two files: the higher rev wins."""
        best: tuple[_StrTable | None, Mapping[str, Any] | None] = (None, None)
        parts = self._parts()
        for part, raw in zip(parts, self._raw(parts), strict=True):
            doc = raw.get(doc_id)
            if doc is not None and (best[1] is None or doc.get(REV, 0) > best[1].get(REV, 0)):
                best = (part, doc)
        return best

    def _target(self, doc: Mapping[str, Any], current: _StrTable | None = None) -> _StrTable:
        """Hot file, or (for a finished document) its archive segment / the newest one with room."""
        if self._archive_rule is None or not self._archive_rule(doc):
            return self._hot
        segments = self._archive_parts()
        if current is not None and current is not self._hot:
            return current
        if segments and len(segments[-1]._read_table()) < ARCHIVE_SEGMENT_DOCS:
            return segments[-1]
        return self._open_segment(len(segments))

    def _open_segment(self, index: int) -> _StrTable:
        """A new segment after the existing ones (reused while this write has not created it yet)."""
        seg = f"{self.name}.archive-{index:04d}.json"
        while (self.root / seg).exists():  # never overwrite an existing segment
            index += 1
            seg = f"{self.name}.archive-{index:04d}.json"
        if seg not in self._segments:
            self._segments[seg] = self._open(self.root / seg)
        return self._segments[seg]

    def _write(self, fn: Callable[[], Any]) -> Any:
        with self._lock, self._mem:
            try:
                if not self._repaired:
                    self._repair()
                return fn()
            except BaseException:
                for part in [self._hot, *self._segments.values()]:
                    cast(AtomicJSONStorage, part.storage).invalidate()
                raise

    def _repair(self) -> None:
        """Drop stale copies of documents that a killed writer left in two files while moving them."""
        parts = self._parts()
        if len(parts) > 1:
            best: dict[str, tuple[int, int]] = {}
            for i, raw in enumerate(self._raw(parts)):
                for doc_id, doc in raw.items():
                    rev = int(doc.get(REV, 0))
                    if doc_id not in best or rev > best[doc_id][1]:
                        best[doc_id] = (i, rev)
            for i, raw in enumerate(self._raw(parts)):
                stale = [doc_id for doc_id in raw if best[doc_id][0] != i]
                if stale:
                    parts[i].remove_ids(stale)
        self._repaired = True

    @staticmethod
    def _replace(part: _StrTable, doc_id: str, doc: dict[str, Any]) -> None:
        def perform(current: MutableMapping[str, Any]) -> None:
            current.clear()
            current.update(doc)

        part.update_id(perform, doc_id)

    # -- public API --------------------------------------------------------------------------
    def insert(self, doc: Mapping[str, Any]) -> str:
        """Add a document; generates a short unique ``id`` when it has none. Returns the id."""
        new = _copy(dict(doc))
        given = new.get("id")
        if given is not None and not isinstance(given, str):
            raise ValueError(f"{self.name}: id must be a string, got {given!r}")

        def op() -> str:
            doc_id = given or new_id()
            if given:  # a rebuilt stand-in for this very document (its submit raced a recovery) yields
                part, found = self._locate(doc_id)
                if part is not None and found is not None and found.get(REBUILT):
                    part.remove_ids([doc_id])
            while self._locate(doc_id)[1] is not None:
                if given:
                    raise ValueError(f"{self.name}: a document with id {doc_id!r} already exists")
                doc_id = new_id()
            new["id"] = doc_id
            new[REV] = 1
            self._target(new).insert(_document(new, doc_id))
            return doc_id

        return self._write(op)

    def insert_many(self, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Add several documents in one locked write (one fsync); ids as in :meth:`insert`.

        For append-heavy tables (the referee's audit log) whose writers batch their records.
        """
        news = [_copy(dict(d)) for d in docs]
        if any(n.get("id") is not None and not isinstance(n.get("id"), str) for n in news):
            raise ValueError(f"{self.name}: ids must be strings")

        def op() -> list[str]:
            ids: list[str] = []
            batches: dict[int, tuple[_StrTable, list[Document]]] = {}
            for new in news:
                given = new.get("id")
                doc_id = given or new_id()
                while self._locate(doc_id)[1] is not None or doc_id in ids:
                    if given:
                        raise ValueError(f"{self.name}: a document with id {doc_id!r} already exists")
                    doc_id = new_id()
                new["id"] = doc_id
                new[REV] = 1
                target = self._target(new)
                batches.setdefault(id(target), (target, []))[1].append(_document(new, doc_id))
                ids.append(doc_id)
            for target, documents in batches.values():
                target.insert_multiple(documents)
            return ids

        return self._write(op) if news else []

    def get(self, doc_id: str) -> dict[str, Any] | None:
        with self._mem:
            doc = self._locate(str(doc_id))[1]
            return None if doc is None else _copy(doc)

    def update(
        self, doc_id: str, changes: Mapping[str, Any] | Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """Atomic read-modify-write across processes; returns the new document.

        ``changes`` is a dict merged into the document, or a function that gets a private copy of
        the freshest document and mutates it (returning None) or returns a replacement. Raises
        KeyError when there is no such document; any exception from the function aborts the write.
        """
        doc_id = str(doc_id)

        def op() -> dict[str, Any]:
            part, current = self._locate(doc_id)
            if part is None or current is None:
                raise KeyError(f"{self.name}: no document with id {doc_id!r}")
            new = _copy(current)
            if callable(changes):
                returned = changes(new)
                if returned is not None:
                    new = dict(returned)
            else:
                new.update(changes)
            new = _copy(new)
            new["id"] = doc_id
            new[REV] = int(current.get(REV, 0)) + 1
            target = self._target(new, part)
            if target is part:
                self._replace(part, doc_id, new)
            else:  # move: write the new home first, so a crash leaves a duplicate, never a loss
                if doc_id in target._read_table():  # a stale copy from someone's crash mid-move
                    self._replace(target, doc_id, new)
                else:
                    target.insert(_document(new, doc_id))
                part.remove_ids([doc_id])
            return _copy(new)

        return self._write(op)

    def all(self) -> list[dict[str, Any]]:
        """Every document (archived, oldest segment first, then hot), as copies."""
        with self._mem:
            merged: dict[str, Mapping[str, Any]] = {}
            raws = self._raw()
            for raw in [*raws[1:], raws[0]]:
                for doc_id, doc in raw.items():
                    seen = merged.get(doc_id)
                    if seen is None or doc.get(REV, 0) > seen.get(REV, 0):
                        merged[doc_id] = doc
            return _copy(list(merged.values()))

    def recent(self, n: int) -> list[dict[str, Any]]:
        """Hot documents plus the most recently archived ones, until at least ``n`` (a cheap "newest")."""
        with self._mem:
            parts = self._parts()
            picked: dict[str, Mapping[str, Any]] = {}
            for raw in self._raw([parts[0], *reversed(parts[1:])]):
                for doc_id, doc in raw.items():
                    seen = picked.get(doc_id)
                    if seen is None or doc.get(REV, 0) > seen.get(REV, 0):
                        picked[doc_id] = doc
                if len(picked) >= n:
                    break
            return _copy(list(picked.values()))

    def search(self, pred: Callable[[Mapping[str, Any]], bool], *, hot_only: bool = False) -> list[dict[str, Any]]:
        """Copies of the documents ``pred`` accepts. ``pred`` sees the cached documents and must
        not modify them; only matches are copied, so a search over a long history stays cheap."""
        with self._mem:
            parts = [self._hot] if hot_only else self._parts()
            merged: dict[str, Mapping[str, Any]] = {}
            raws = self._raw(parts)
            for raw in [*raws[1:], raws[0]]:
                for doc_id, doc in raw.items():
                    seen = merged.get(doc_id)
                    if seen is None or doc.get(REV, 0) > seen.get(REV, 0):
                        merged[doc_id] = doc
            return _copy([doc for doc in merged.values() if pred(doc)])

    def hot(self) -> list[dict[str, Any]]:
        """Only the documents that are not archived (for jobs: the unfinished ones). Cheap."""
        with self._mem:
            return _copy(list(self._raw([self._hot])[0].values()))

    def remove(self, doc_id: str) -> bool:
        """Delete a document; True when it existed."""
        doc_id = str(doc_id)

        def op() -> bool:
            found = False
            parts = self._parts()
            for part, raw in zip(parts, self._raw(parts), strict=True):
                if doc_id in raw:
                    part.remove_ids([doc_id])
                    found = True
            return found

        return self._write(op)

    def __len__(self) -> int:
        with self._mem:
            return len({doc_id for raw in self._raw() for doc_id in raw})


class Store:
    """All tables of one workspace. Cheap to create; share one per process where convenient."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else paths().state
        self._tables: dict[str, Table] = {}
        self._guard = threading.Lock()

    def table(self, name: str) -> Table:
        if not _NAME_RE.match(name):
            raise ValueError(f"bad table name {name!r}")
        with self._guard:
            if name not in self._tables:
                self.root.mkdir(parents=True, exist_ok=True)
                self._tables[name] = Table(self.root, name)
            return self._tables[name]


_DEFAULT: dict[Path, Store] = {}
_DEFAULT_GUARD = threading.Lock()


def default_store() -> Store:
    """The process-wide Store of the current workspace: its caches survive between calls, so
    repeated ``get_job``/``list_jobs`` calls re-read only files that changed."""
    root = paths().state
    with _DEFAULT_GUARD:
        if root not in _DEFAULT:
            _DEFAULT[root] = Store(root)
        return _DEFAULT[root]
