"""Serve an app with waitress on a background thread (tests and the benchmark use real HTTP).

``w2s serve`` runs waitress in the foreground itself; this helper exists so tests and
``bench/referee_bench.py`` exercise the same WSGI server on a free port (``port=0``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from waitress.server import create_server


@dataclass
class BackgroundServer:
    server: Any
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        """Close every socket from inside the server's own loop (closing them from this thread races
        its ``select``), let the loop end, then stop the worker threads."""
        from waitress import wasyncore

        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown()


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> BackgroundServer:
    """Start waitress for ``app`` on ``host:port`` (0 = any free port); returns its base URL."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" under load
    server = create_server(app, host=host, port=port, threads=threads, ident="w2s")
    thread = threading.Thread(target=server.run, name="w2s-waitress", daemon=True)
    thread.start()
    return BackgroundServer(server, thread, f"http://{host}:{server.effective_port}")
