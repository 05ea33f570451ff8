"""A local stand-in for the Anthropic Messages API that replays scripted turns.

It speaks enough of ``POST /v1/messages`` for the real ``anthropic`` SDK: assistant messages with
text and ``tool_use`` blocks, ``usage`` blocks, and error responses (429 with ``retry-after-ms``,
529 overloaded, 401 for a wrong key). A turn is chosen by how many assistant messages the request
already holds, so a client that crashes and resumes gets the same turn again — the server keeps no
conversation state of its own. A script is a list of turns or a function ``(index, request) ->
turn``; a turn is ``{"content": [...], "usage": {...}, "stop_reason": ...}``. ``errors`` maps a
turn index to the error responses to send (once each) before answering it; ``hold`` holds the
request for a turn index until :meth:`release` (to kill a client midway).

With ``tokens`` (a :class:`~tests.fakes.token_model.TokenModel`) it also counts tokens, serves the
prompt cache and refuses prompts over its context window the way the real API does; a turn made
with ``turn(..., input_tokens=None)`` then gets its usage from that model. A client that compacted
its history says so in its first message (``[context compacted: the first N turns ...``), and the
turn index counts those N turns too.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.token_model import TokenModel, output_tokens

Turn = dict[str, Any]
Script = list[Turn] | Callable[[int, dict[str, Any]], Turn]

ERROR_TYPES = {429: "rate_limit_error", 529: "overloaded_error", 500: "api_error",
               401: "authentication_error", 400: "invalid_request_error"}
COMPACTED = re.compile(r"\[context compacted: the first (\d+) turns")


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool_use(call_id: str, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": args or {}}


def turn(*blocks: dict[str, Any], input_tokens: int | None = 1000, output_tokens: int = 100) -> Turn:
    """One scripted reply; ``input_tokens=None`` lets the server's token model fill in the usage."""
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    usage = None if input_tokens is None else {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return {"content": list(blocks), "usage": usage, "stop_reason": stop}


def compacted_turns(body: dict[str, Any]) -> int:
    """How many earlier turns the client says its first message summarizes (0 when none)."""
    msgs = body.get("messages") or []
    if not msgs:
        return 0
    content = msgs[0].get("content")
    texts = [content] if isinstance(content, str) else [str(b.get("text", "")) for b in content or []
                                                          if isinstance(b, dict)]
    found = COMPACTED.search("\n".join(texts))
    return int(found.group(1)) if found else 0


def turn_index(body: dict[str, Any]) -> int:
    """The turn a request asks for: its assistant messages plus the turns compacted away."""
    return compacted_turns(body) + sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def tool_results(request: dict[str, Any]) -> dict[str, str]:
    """``{tool_use_id: result text}`` of the last user message in a request."""
    msgs = request.get("messages") or []
    if not msgs or not isinstance(msgs[-1].get("content"), list):
        return {}
    out = {}
    for block in msgs[-1]["content"]:
        if block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
            out[block["tool_use_id"]] = str(content)
    return out


class FakeAnthropic:
    """Start with :meth:`start` (returns the base URL for ``ANTHROPIC_BASE_URL``), stop with :meth:`stop`."""

    def __init__(
        self,
        script: Script,
        api_key: str = "sk-test-key",
        errors: dict[int, list[tuple[int, dict[str, str]]]] | None = None,
        hold: set[int] | None = None,
        tokens: TokenModel | None = None,
    ):
        self.script = script
        self.tokens = tokens
        self.usages: list[dict[str, int]] = []  # the usage block of every 200 answer, in order
        self.api_key = api_key
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        self.hold = set(hold or ())
        self.held = threading.Event()  # set when a held request arrived
        self._release = threading.Event()
        self.requests: list[dict[str, Any]] = []  # every request body, errors included
        self.responses: list[tuple[int, int]] = []  # (turn index, HTTP status)
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def release(self) -> None:
        self._release.set()

    # ---------------------------------------------------------------- protocol
    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.send_header("request-id", f"req_fake_{len(self.requests)}")
            for k, v in (headers or {}).items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, handler: BaseHTTPRequestHandler, status: int,
               headers: dict[str, str] | None = None, message: str | None = None) -> None:
        kind = ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message or f"fake {kind}"}}
        self._send(handler, status, body, headers)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        if handler.path.split("?")[0] != "/v1/messages":
            self._send(handler, 404, {"type": "error", "error": {"type": "not_found_error", "message": "no"}})
            return
        index = turn_index(body)
        with self.lock:
            self.requests.append(body)
        bearer = (handler.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        if self.api_key not in (handler.headers.get("x-api-key"), bearer):
            with self.lock:
                self.responses.append((index, 401))
            self._error(handler, 401)
            return
        with self.lock:
            queued = self.errors.get(index) or []
            error = queued.pop(0) if queued else None
            held = error is None and index in self.hold
            if held:
                self.hold.discard(index)
        if error is not None:
            status, headers = error
            with self.lock:
                self.responses.append((index, status))
            self._error(handler, status, headers)
            return
        too_long = self.tokens.too_long(body) if self.tokens else None
        if too_long:
            with self.lock:
                self.responses.append((index, 400))
            self._error(handler, 400, message=too_long)
            return
        if held:
            self.held.set()
            self._release.wait(timeout=120)
        script = self.script
        step = script(index, body) if callable(script) else script[min(index, len(script) - 1)]
        usage = step.get("usage")
        if usage is None:
            with self.lock:
                usage = (self.tokens or TokenModel(caching=False)).usage(body)
            usage["output_tokens"] = output_tokens(step["content"])
        with self.lock:
            self.responses.append((index, 200))
            self.usages.append(dict(usage))
        self._send(handler, 200, {
            "id": f"msg_fake_{index}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": step["content"],
            "stop_reason": step.get("stop_reason", "end_turn"),
            "stop_sequence": None,
            "usage": usage,
        })
