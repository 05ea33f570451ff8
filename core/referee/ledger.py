"""The referee's ledger: budget charges and the audit log, written together by group commit.

Each evaluation call becomes one document in the store's ``evaluations`` table (run, time, status,
n, what the run was told). A call that passed validation asks to be *charged*; it is granted while
the run has charged fewer calls than its budget, counted per run id in that same table, so a
retried job (same run, rotated token) never gets its budget back. The table is the ledger: the
charge and its audit record are one write, and a call is answered only after that write is on disk.

Why group commit: every store write rewrites and fsyncs a file, which costs milliseconds. Calls
that arrive while one batch is being written wait and go out together in the next single write,
so throughput grows with concurrency while every answer stays durable. Batches are written under a
file lock (``.w2s/referee.lock``), and the per-run counts are re-read whenever another process has
written the table, so the budget holds across processes too.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.control.storage import FileLock

TABLE = "evaluations"
CHARGED = "charged"


def charge_key(doc: dict[str, Any]) -> str:
    """What a charge counts against: the budget pool when the record names one, else its run."""
    return str(doc.get("pool") or doc.get("run_id"))


@dataclass
class Entry:
    """One pending record; ``budget`` set means "charge it if the run has budget left"."""

    doc: dict[str, Any]
    budget: int | None = None
    granted: bool = False
    charged_after: int = 0
    doc_id: str | None = None
    error: BaseException | None = None
    done: bool = False
    run_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.run_id = charge_key(self.doc)


class Ledger:
    """Group-committing writer for one store (one per store root per process)."""

    def __init__(self, store: Any):
        self.store = store
        self.table = store.table(TABLE)
        self.root = Path(store.root)
        self._lock = FileLock(self.root / "referee.lock")
        self._cv = threading.Condition()
        self._pending: list[Entry] = []
        self._flushing = False
        self._counts: Counter[str] = Counter()
        self._seen: tuple[tuple[str, int, int, int], ...] | None = None

    def _stamp(self) -> tuple[tuple[str, int, int, int], ...]:
        """Identity of every file of the table (hot file and archive segments)."""
        out = []
        for name in sorted(os.listdir(self.root)):
            if name.startswith(TABLE) and name.endswith(".json"):
                try:
                    st = os.stat(self.root / name)
                except FileNotFoundError:
                    continue
                out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _recount(self) -> None:
        counts: Counter[str] = Counter()
        for doc in self.table.all():
            if doc.get(CHARGED):
                counts[charge_key(doc)] += 1
        self._counts = counts

    def charged(self, run_id: str) -> int:
        """How many calls of this run (or pool) were charged (fresh from disk if someone else wrote)."""
        with self._lock:
            if self._stamp() != self._seen:
                self._recount()
                self._seen = self._stamp()
            return self._counts[run_id]

    def _flush(self, batch: list[Entry]) -> None:
        with self._lock:
            if self._stamp() != self._seen:
                self._recount()
            docs = []
            for entry in batch:
                if entry.budget is not None:
                    entry.granted = self._counts[entry.run_id] < entry.budget
                    if entry.granted:
                        self._counts[entry.run_id] += 1
                    entry.doc[CHARGED] = entry.granted
                    if not entry.granted:  # the run learns nothing: keep no result, say why
                        entry.doc.pop("result", None)
                        entry.doc.update(status=429, error="evaluation budget spent")
                    entry.charged_after = self._counts[entry.run_id]
                docs.append(entry.doc)
            try:
                ids = self.table.insert_many(docs)
            except BaseException:
                self._seen = None  # counts may now be wrong: re-read next time
                raise
            self._seen = self._stamp()
        for entry, doc_id in zip(batch, ids, strict=True):
            entry.doc_id = doc_id

    def write(self, entry: Entry) -> Entry:
        """Queue ``entry`` and return once it is on disk (its ``granted`` decided)."""
        with self._cv:
            self._pending.append(entry)
            while not entry.done:
                if self._flushing:
                    self._cv.wait()
                    continue
                self._flushing = True
                batch, self._pending = self._pending, []
                self._cv.release()
                error: BaseException | None = None
                try:
                    self._flush(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to every caller in the batch
                    error = exc
                finally:
                    self._cv.acquire()
                    for item in batch:
                        item.error = error
                        item.done = True
                    self._flushing = False
                    self._cv.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry


_LEDGERS: dict[int, Ledger] = {}
_GUARD = threading.Lock()


def ledger_for(store: Any) -> Ledger:
    """The ledger of this store object (ledgers of one root in one process agree via the file)."""
    ledger = _LEDGERS.get(id(store))
    if ledger is not None and ledger.store is store:
        return ledger
    with _GUARD:
        ledger = _LEDGERS.get(id(store))
        if ledger is None or ledger.store is not store:
            ledger = Ledger(store)
            _LEDGERS[id(store)] = ledger
        return ledger
