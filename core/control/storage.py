"""A TinyDB storage that is safe across processes: orjson, atomic replace, reload on change.

Why not TinyDB's JSONStorage: it rewrites the file in place (a crash leaves half a file), never
notices other processes' writes, and its stdlib json is slow. Here every write goes to a temp file
in the same folder, is fsynced and renamed over the old one, so a reader (or a writer killed with
``kill -9``) only ever sees a whole file. Each write stamps the file with a strictly increasing
``mtime_ns``, so ``(inode, mtime_ns, size)`` of the open file identifies one generation exactly and a
reader reloads exactly when someone else wrote. Writers serialize through :class:`FileLock`.

Damage (a file cut to 0 bytes or in half, garbage, JSON of the wrong shape, a deleted file) is
detected on read, never taken for "empty": each write also keeps ``<file>.prev`` (the previous
generation, a hard link of the old inode: free) and ``<file>.bak`` (a copy of the new one), both
stamped with a generation number ``_gen``. A damaged file is set aside as ``<file>.damaged-<time>``
and the newest good copy takes its place; without one, :class:`StoreDamaged` is raised and nothing
is written, so a loss is never made permanent. Each recovery is said once, in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage

from core.common.errors import UserError

SCHEMA_VERSION = 1
SCHEMA_KEY = "_schema"
GEN_KEY = "_gen"  # generation number: picks the newest good copy when recovering

log = logging.getLogger("w2s.store")
_NOTICED: set[str] = set()
_NOTICED_GUARD = threading.Lock()


def notice(message: str) -> None:
    """Say a recovery once per process, in one line: to the log when logging is set up (service),
    else on stderr as ``w2s: warning: ...`` (CLI)."""
    with _NOTICED_GUARD:
        if message in _NOTICED:
            return
        _NOTICED.add(message)
    if logging.getLogger().handlers or log.handlers:
        log.warning("%s", message)
    else:
        print(f"w2s: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building many small containers (JSON parsing): at 10k job
    documents it otherwise runs several full collections and triples the time. Thread-safe
    enough: whoever found it enabled re-enables it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class StoreError(UserError):
    """The store file cannot be used (damaged beyond recovery, or written by a newer w2s).

    A :class:`UserError`, so the CLI prints it as one line; the API answers 503 with it."""


class StoreDamaged(StoreError):
    """A store file is damaged and no good copy of it exists; nothing was overwritten."""

    def __init__(self, path: Path, reason: str):
        super().__init__(
            f"{path} is damaged ({reason}) and has no good earlier copy (.bak/.prev); "
            "nothing was overwritten: restore it from a backup or move it aside"
        )
        self.path = path
        self.reason = reason


class _Damage(Exception):
    """Internal: these bytes are not a whole store file."""


_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.RLock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(str(path), threading.RLock())


_LOCALS: dict[str, threading.local] = {}


class FileLock:
    """An exclusive ``flock`` on a lock file, plus an in-process lock so threads queue cheaply.

    Re-entrant within one thread, across every FileLock of the same path (a nested ``with`` does
    not re-lock), released by the kernel when the holder dies, so a killed writer never leaves the
    store locked.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tlock = _thread_lock(self.path)
        with _THREAD_LOCKS_GUARD:
            self._local = _LOCALS.setdefault(str(self.path), threading.local())

    def __enter__(self) -> FileLock:
        self._tlock.acquire()
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                self._tlock.release()
                raise
            self._local.fd = fd
        self._local.depth = depth + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            fd = self._local.fd
            self._local.fd = None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._tlock.release()


class AtomicJSONStorage(Storage):
    """One JSON file holding ``{"_schema": N, "_gen": G, "<table>": {"<id>": doc}}``.

    ``read`` returns a cached dict while the file is unchanged; callers that mutate it must write
    it back (TinyDB does) or call :meth:`invalidate`. Writes must happen under the table's
    :class:`FileLock` (``lock_path``); this class takes it itself only to recover a damaged file.
    """

    def __init__(self, path: Path | str, lock_path: Path | str | None = None, **_: Any):
        self.path = Path(path)
        self.lock = FileLock(Path(lock_path) if lock_path else self.path.with_suffix(".lock"))
        self.bak = self.path.with_name(self.path.name + ".bak")
        self.prev = self.path.with_name(self.path.name + ".prev")
        self._key: tuple[int, int, int] | None = None
        self._data: dict[str, Any] | None = None
        self._gen = 0
        self._cleaned = False
        self.recovered: str | None = None  # set when a damaged file was restored (the Table reads it)

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self.bak.exists() or self.prev.exists():  # we wrote it once: gone means damage
                return self._recover("the file is missing")
            self._key, self._data, self._gen = None, None, 0
            return None
        try:
            st = os.fstat(fd)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self._key and self._data is not None:
                return self._data
            with os.fdopen(fd, "rb", closefd=False) as fh:
                raw = fh.read()
        finally:
            os.close(fd)
        try:
            data, gen = self._parse(raw, self.path)
        except _Damage as exc:
            return self._recover(str(exc))
        self._key, self._data, self._gen = key, data, gen
        return data

    @staticmethod
    def _parse(raw: bytes, path: Path) -> tuple[dict[str, Any], int]:
        """The tables and generation in ``raw``; :class:`_Damage` when it is not a whole store
        file (we never write an empty one), :class:`StoreError` when a newer w2s wrote it."""
        if not raw.strip():
            raise _Damage("0 bytes" if not raw else "blank")
        try:
            with no_gc():
                data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Damage(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _Damage(f"top level is a JSON {type(data).__name__}, not an object")
        version = data.pop(SCHEMA_KEY, SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: store schema {version} is newer than this w2s understands ({SCHEMA_VERSION})"
            )
        gen = data.pop(GEN_KEY, 0)
        if not isinstance(gen, int):
            raise _Damage(f"generation {gen!r} is not an integer")
        for name, table in data.items():
            if not isinstance(table, dict):
                raise _Damage(f"table {name!r} is a JSON {type(table).__name__}, not an object")
            for doc_id, doc in table.items():
                if type(doc) is not dict:
                    raise _Damage(f"document {name}/{doc_id} is a JSON {type(doc).__name__}, not an object")
        return data, gen

    def _recover(self, reason: str) -> dict[str, Any]:
        """Under the lock: put the newest good copy (``.bak``/``.prev``) in place of the damaged
        file, which is kept beside it; without a good copy raise and touch nothing."""
        with self.lock:
            try:  # someone may have recovered it while we waited for the lock
                data, gen = self._parse(self.path.read_bytes(), self.path)
            except (FileNotFoundError, _Damage):
                pass
            else:
                self.invalidate()
                self._gen = gen
                return data
            best: tuple[dict[str, Any], int, Path] | None = None
            for cand in (self.bak, self.prev):
                try:
                    data, gen = self._parse(cand.read_bytes(), cand)
                except (OSError, _Damage):
                    continue
                if best is None or gen > best[1]:
                    best = (data, gen, cand)
            if best is None:
                raise StoreDamaged(self.path, reason)
            data, gen, source = best
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            try:
                os.rename(self.path, aside)
                kept = f"; the damaged file is kept as {aside.name}"
            except FileNotFoundError:
                kept = ""
            self._gen = gen
            self._write(data, keep_prev=False)
            self.recovered = reason
            notice(f"{self.path} was damaged ({reason}); restored generation {gen} from {source.name}{kept}")
            return data

    def set_aside(self, why: str) -> Path | None:
        """Move a damaged file that has no good copy aside and start this file empty (for a table
        whose owner can rebuild it from elsewhere, as jobs from ``runs/``). Returns the new name."""
        with self.lock:
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            try:
                os.rename(self.path, aside)
            except FileNotFoundError:
                aside = None  # type: ignore[assignment]
            for stale in (self.bak, self.prev):  # damaged too, or they would have been used
                if stale.exists():
                    os.rename(stale, stale.with_name(f"{stale.name}.damaged-{os.getpid()}"))
            self._gen = 0
            self._write({}, keep_prev=False)
            self.recovered = why
            return aside

    def invalidate(self) -> None:
        """Forget the cache (after a failed write left it modified in memory)."""
        self._key, self._data = None, None

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: dict[str, Any]) -> None:
        try:
            self._write(data)
        except BaseException:
            self.invalidate()
            raise

    def _write(self, data: dict[str, Any], keep_prev: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._cleaned:
            self._remove_stale_temps()
        gen = self._gen + 1
        payload = orjson.dumps({SCHEMA_KEY: SCHEMA_VERSION, GEN_KEY: gen, **data})
        try:
            prev_mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            prev_mtime = 0
            keep_prev = False
        stamp = max(time.time_ns(), prev_mtime + 1)
        suffix = f"{os.getpid()}.{threading.get_ident()}.tmp"
        tmp = self.path.with_name(f".{self.path.name}.{suffix}")
        st = self._put(tmp, payload, fsync=True, stamp=stamp)
        try:
            if keep_prev:
                # The generation being replaced (read whole under this lock) becomes .prev: a hard
                # link of its inode, so it costs no copy and damage to the new file cannot reach it.
                prev_tmp = self.path.with_name(f".{self.path.name}.prev.{suffix}")
                prev_tmp.unlink(missing_ok=True)
                os.link(self.path, prev_tmp)
                os.replace(prev_tmp, self.prev)
                # rename() between two links of one inode does nothing and leaves the source: that
                # happens when a writer was killed after linking .prev but before replacing the file.
                prev_tmp.unlink(missing_ok=True)
            # No directory fsync: it only adds durability of the rename across power loss (the old,
            # whole generation survives instead), and it doubles the cost of every write.
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._key, self._data, self._gen = (st.st_ino, st.st_mtime_ns, st.st_size), data, gen
        # A second copy of this generation, for when the file itself is damaged in place. No fsync:
        # the main file is durable; a torn .bak after power loss is detected and .prev used instead.
        bak_tmp = self.path.with_name(f".{self.path.name}.bak.{suffix}")
        self._put(bak_tmp, payload, fsync=False, stamp=stamp)
        os.replace(bak_tmp, self.bak)

    @staticmethod
    def _put(tmp: Path, payload: bytes, *, fsync: bool, stamp: int) -> os.stat_result:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
            os.utime(fd, ns=(stamp, stamp))
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return st

    def _remove_stale_temps(self) -> None:
        """Temp files left by a writer that was killed mid-write (we hold the lock, so none is live)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        self._cleaned = True

    def close(self) -> None:
        pass
