"""A TinyDB storage that is safe across processes: orjson, atomic replace, reload on change.

Why not TinyDB's JSONStorage: it rewrites the file in place (a crash leaves half a file), never
notices other processes' writes, and its stdlib json is slow. Here every write goes to a temp file
in the same folder, is fsynced and renamed over the old one, so a reader (or a writer killed with
``kill -9``) only ever sees a whole file. Each write stamps the file with a strictly increasing
``mtime_ns``, so ``(inode, mtime_ns, size)`` of the open file identifies one generation exactly and a
reader reloads exactly when someone else wrote. Writers serialize through :class:`FileLock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage

SCHEMA_VERSION = 1
SCHEMA_KEY = "_schema"


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


class StoreError(RuntimeError):
    """The store file cannot be used (corrupt, or written by a newer w2s)."""


_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.RLock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(str(path), threading.RLock())


class FileLock:
    """An exclusive ``flock`` on a lock file, plus an in-process lock so threads queue cheaply.

    Re-entrant within one thread (a nested ``with`` does not re-lock), released by the kernel when
    the holder dies, so a killed writer never leaves the store locked.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tlock = _thread_lock(self.path)
        self._local = threading.local()

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
    """One JSON file holding ``{"_schema": N, "<table>": {"<id>": doc}}``.

    ``read`` returns a cached dict while the file is unchanged; callers that mutate it must write
    it back (TinyDB does) or call :meth:`invalidate`. Writes must happen under the table's
    :class:`FileLock`; this class does not lock by itself.
    """

    def __init__(self, path: Path | str, **_: Any):
        self.path = Path(path)
        self._key: tuple[int, int, int] | None = None
        self._data: dict[str, Any] | None = None
        self._cleaned = False

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._key, self._data = None, None
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
        data = self._parse(raw)
        self._key, self._data = key, data
        return data

    def _parse(self, raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            with no_gc():
                data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise StoreError(f"{self.path}: top level must be an object")
        version = data.pop(SCHEMA_KEY, SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema {version} is newer than this w2s understands ({SCHEMA_VERSION})"
            )
        return data

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

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._cleaned:
            self._remove_stale_temps()
        payload = orjson.dumps({SCHEMA_KEY: SCHEMA_VERSION, **data})
        try:
            prev_mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            prev_mtime = 0
        stamp = max(time.time_ns(), prev_mtime + 1)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.utime(fd, ns=(stamp, stamp))
            st = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            # No directory fsync: it only adds durability of the rename across power loss (the old,
            # whole generation survives instead), and it doubles the cost of every write.
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._key, self._data = (st.st_ino, st.st_mtime_ns, st.st_size), data

    def _remove_stale_temps(self) -> None:
        """Temp files left by a writer that was killed mid-write (we hold the lock, so none is live)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        self._cleaned = True

    def close(self) -> None:
        pass
