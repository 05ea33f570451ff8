"""Follow a growing log file from a thread and hand the UI batches of whole lines.

Why: a job can print far more lines per second than a terminal can draw. The reader thread appends
to a bounded pending buffer; the UI drains it at most once per refresh and writes one batch. When the
producer outruns the UI, the oldest pending lines are dropped (and counted) so memory and paint cost
stay bounded and input never stalls. No Textual here: the pane runs :meth:`Tailer.run` in a thread worker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class Tailer:
    """Reads ``read(offset) -> (bytes, new_offset)`` until :meth:`stop`; whole lines go to a bounded buffer."""

    def __init__(
        self,
        read: Callable[[int], tuple[bytes, int]],
        max_pending: int = 5000,
        interval: float = 0.05,
    ) -> None:
        self._read = read
        self._interval = interval
        self._pending: deque[str] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._partial = b""
        self._stopped = threading.Event()
        self.offset = 0
        self.lines_read = 0
        self.dropped = 0
        self.skipped_bytes = 0
        self.wake: Callable[[], None] | None = None  # called when the buffer goes from empty to non-empty

    def stop(self) -> None:
        self._stopped.set()

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def poll_once(self) -> int:
        """Read what is new; returns the number of complete lines added.

        ``read`` may skip ahead when the file ran far past us (it returns an offset further on than
        ``offset + len(data)``): the skipped bytes are counted and the torn first line is dropped.
        """
        old = self.offset
        data, self.offset = self._read(old)
        if not data:
            return 0
        start = self.offset - len(data)
        if start > old:
            self.skipped_bytes += start - old
            self._partial = b""
            cut = data.find(b"\n")
            data = data[cut + 1 :] if cut >= 0 else b""
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return 0
        self._partial = data[cut + 1 :]
        lines = data[:cut].decode("utf-8", "replace").split("\n")
        lines = [line.rstrip("\r") for line in lines]
        with self._lock:
            was_empty = not self._pending
            overflow = len(self._pending) + len(lines) - (self._pending.maxlen or 0)
            if overflow > 0:
                self.dropped += overflow
            self._pending.extend(lines)
        self.lines_read += len(lines)
        if was_empty and self.wake is not None:
            self.wake()
        return len(lines)

    def run(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Poll until stopped or ``cancelled()``; sleeps only when nothing new arrived."""
        while not self._stopped.is_set() and not cancelled():
            if self.poll_once() == 0:
                self._stopped.wait(self._interval)

    def drain(self) -> list[str]:
        """Everything pending since the last drain, in order (one batch for one paint)."""
        with self._lock:
            lines = list(self._pending)
            self._pending.clear()
        return lines

    def flush_partial(self) -> list[str]:
        """The unterminated last line, once the job has finished writing."""
        if not self._partial:
            return []
        text, self._partial = self._partial.decode("utf-8", "replace"), b""
        return [text]
