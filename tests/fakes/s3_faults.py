"""A fault-injecting HTTP proxy in front of a real S3 API (moto in server mode).

Why: an S3 upload failure must be produced for real, at the HTTP level, for both sides of a RunPod
run (the trusted side's boto3 uploads and the pod's pre-signed PUTs). Everything is forwarded
unchanged to the S3 server behind it, except requests matching a rule, which get an S3-style
``503 SlowDown`` error. Rules match a method and a substring of the path (``/in/``, ``predictions.json``)
and fire ``times`` times (-1: until cleared). Every request is recorded (method, path, status, time).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
ERROR_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
              b"<Message>injected fault (test)</Message></Error>")


@dataclass
class Rule:
    method: str
    path_contains: str
    times: int  # -1: every time


class FaultyS3Proxy:
    """``url`` forwards to ``target`` (``http://host:port``) except where a rule says to fail."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target_host, self.target_port = parts.hostname or "127.0.0.1", int(parts.port or 80)
        self.rules: list[Rule] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._should_fail(self.command, self.path):
                    proxy._record(self.command, self.path, 503)
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(ERROR_BODY)))
                    self.end_headers()
                    self.wfile.write(ERROR_BODY)
                    return
                conn = http.client.HTTPConnection(proxy.target_host, proxy.target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                proxy._record(self.command, self.path, response.status)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultyS3Proxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path_contains: str, times: int = -1) -> None:
        with self.lock:
            self.rules.append(Rule(method.upper(), path_contains, times))

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def failed(self, path_contains: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["status"] == 503 and path_contains in r["path"]]

    def _should_fail(self, method: str, path: str) -> bool:
        with self.lock:
            for rule in self.rules:
                if rule.method == method and rule.path_contains in path.split("?", 1)[0] and rule.times != 0:
                    if rule.times > 0:
                        rule.times -= 1
                    return True
        return False

    def _record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append({"method": method, "path": path.split("?", 1)[0], "status": status,
                                  "time": time.time()})
