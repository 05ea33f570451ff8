"""The idea's side of the weak-judge channel (untrusted: runs inside the sandbox).

Why a channel at all: some methods (critic) need a *weak judge*, a weak-size model trained on
``train_label`` ground truth. Ideas never read labels, so the trusted runner trains the judge
(:mod:`core.run.judge_service`) on texts the idea supplies and hands back only predictions.

The channel is two folders and no network:

- requests: the idea writes ``<$W2S_JUDGE_REQUESTS>/req-<token>.json`` atomically (a temp file in the
  same folder, then ``rename``), inside its one writable output folder;
- replies: the runner answers with ``<$W2S_JUDGE_REPLIES>/reply-<token>.json``, written atomically into
  a folder mounted read-only into the sandbox.

A request is ``{"op": "train", "texts": {train_label key: text}}`` (key ``<id>`` or ``<id>#<suffix>``) or
``{"op": "predict", "judge": id, "texts": {key: text}}``; a reply is ``{"ok": true, "judge": id}``,
``{"ok": true, "probs": {key: P(class 1)}, "texts_left": n}`` or ``{"ok": false, "error": one line}``.
The client waits for its reply (``timeout_s``) and raises :class:`UserError` with the reply's line.

Where the runner cannot share folders with the sandbox (the runpod sandbox: a pod on another
machine), it sets ``$W2S_JUDGE_OFF`` instead, and the client fails at once with that line rather
than waiting for a reply that can never come. Called directly (no ``$W2S_IDEA_INPUTS``), the SDK
passes requests to an in-process service instead (``core.run.experiment.train_weak_judge``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.common.errors import UserError

REQUESTS_ENV = "W2S_JUDGE_REQUESTS"  # the idea's request folder (inside its writable output folder)
REPLIES_ENV = "W2S_JUDGE_REPLIES"  # the runner's reply folder (read-only inside the sandbox)
OFF_ENV = "W2S_JUDGE_OFF"  # set instead of the two above where the channel cannot work: the reason
REQUESTS_DIR = "judge"  # the request folder's name inside the output folder
REQUEST_RE = re.compile(r"^req-([A-Za-z0-9_-]{1,64})\.json$")
RUNPOD_OFF = "the weak judge service is not available in the runpod sandbox"
DEFAULT_TIMEOUT_S = 3600.0  # a judge on a large weak model trains for minutes; the run's own limit still applies

Transport = Callable[[dict[str, Any]], dict[str, Any]]
_counter = itertools.count(1)


def reply_name(token: str) -> str:
    return f"reply-{token}.json"


def _check_reply(reply: Any) -> dict[str, Any]:
    """The reply as a dict; ``UserError`` with its one line when it says no (or is unreadable)."""
    if not isinstance(reply, dict):
        raise UserError("weak judge: the service's reply is not a JSON object")
    if reply.get("ok") is not True:
        raise UserError(f"weak judge: {str(reply.get('error') or 'request refused')[:500]}")
    return reply


class FileTransport:
    """Requests and replies through the two folders the runner set up for this run."""

    def __init__(self, requests: Path, replies: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.requests, self.replies, self.timeout_s = requests, replies, timeout_s

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        token = f"{os.getpid()}-{next(_counter)}-{secrets.token_hex(4)}"
        self.requests.mkdir(parents=True, exist_ok=True)
        data = json.dumps(request, ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".req-{token}.", suffix=".tmp", dir=self.requests)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.rename(tmp, self.requests / f"req-{token}.json")  # the runner sees whole files only
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        path = self.replies / reply_name(token)
        deadline = time.monotonic() + self.timeout_s
        wait = 0.01
        while not path.exists():
            if time.monotonic() > deadline:
                raise UserError(
                    f"weak judge: no reply to request {token} within {self.timeout_s:g} s (the runner's "
                    "judge service did not answer: is the idea running under `w2s run`?)"
                )
            time.sleep(wait)
            wait = min(0.2, wait * 1.5)
        try:
            reply: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return reply
        except (OSError, ValueError) as exc:
            raise UserError(f"weak judge: reply {path.name} unreadable ({exc})") from None


def sandbox_transport(timeout_s: float = DEFAULT_TIMEOUT_S) -> Transport:
    """The transport inside a run: the folders from the environment, or a one-line failure."""
    off = os.environ.get(OFF_ENV)
    if off:
        raise UserError(f"weak judge: {off}")
    requests, replies = os.environ.get(REQUESTS_ENV), os.environ.get(REPLIES_ENV)
    if not requests or not replies:
        raise UserError("weak judge: this run has no judge channel ($W2S_JUDGE_REQUESTS/$W2S_JUDGE_REPLIES unset)")
    return FileTransport(Path(requests), Path(replies), timeout_s)


def _texts(texts: Mapping[str, str], what: str) -> dict[str, str]:
    if not isinstance(texts, Mapping) or not texts:
        raise UserError(f"weak judge: {what} needs a non-empty {{id: text}} mapping")
    out = {}
    for key, text in texts.items():
        if not isinstance(key, str) or not isinstance(text, str):
            raise UserError(f"weak judge: {what}: keys and texts must be strings (got {type(key).__name__}: "
                            f"{type(text).__name__})")
        out[key] = text
    return out


class WeakJudge:
    """A judge the trusted side trained for this run; only its id lives here, never the model."""

    def __init__(self, judge_id: str, transport: Transport) -> None:
        self.id, self._transport = judge_id, transport
        self.texts_left: int | None = None

    def predict(self, texts: Mapping[str, str]) -> dict[str, float]:
        """``{key: text}`` -> ``{key: P(class 1)}``; a key is a train_unlabel or test id of this run,
        optionally followed by ``#<suffix>`` (several texts per row)."""
        reply = _check_reply(self._transport({"op": "predict", "judge": self.id, "texts": _texts(texts, "predict")}))
        probs = reply.get("probs")
        if not isinstance(probs, dict):
            raise UserError("weak judge: the predict reply has no probabilities")
        left = reply.get("texts_left")
        self.texts_left = int(left) if isinstance(left, int) else None
        return {str(k): float(v) for k, v in probs.items()}


def train(texts: Mapping[str, str], transport: Transport) -> WeakJudge:
    """Ask the service to train a judge on ``{key: text}`` (key ``<train_label id>`` or
    ``<train_label id>#<suffix>``: a row may come with a few texts); the judge's handle."""
    reply = _check_reply(transport({"op": "train", "texts": _texts(texts, "train")}))
    judge = reply.get("judge")
    if not isinstance(judge, str):
        raise UserError("weak judge: the train reply names no judge")
    return WeakJudge(judge, transport)
