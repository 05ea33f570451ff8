"""Calls to the Messages API with our own retry policy.

The SDK's built-in retries are switched off (``max_retries=0``) so that every wait is visible: the
loop is told before it sleeps and shows ``waiting (rate limited)``. Rate limits and overload (429,
529) back off with capped, jittered delays that honour ``retry-after``; network errors and 5xx are
retried a few times; a rejected key (401/403) fails at once with a message naming the variable.
A prompt over the model's context window is :class:`PromptTooLong`, which the loop answers by
compacting its history.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic

from core.agent.prices import API_KEY_ENV, BASE_URL_ENV

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "FatalAPIError", "ModelCaller", "PromptTooLong", "RetriesExhausted",
           "RetryPolicy", "make_client"]
RATE_LIMITED = "rate_limited"
NETWORK = "network"


class FatalAPIError(Exception):
    """An API failure that retrying cannot fix (bad key, bad request)."""


class PromptTooLong(FatalAPIError):
    """HTTP 400 ``prompt is too long``: the request does not fit the model's context window.
    ``tokens`` and ``maximum`` are the API's numbers when it gave them."""

    def __init__(self, message: str, tokens: int | None = None, maximum: int | None = None):
        super().__init__(message)
        self.tokens = tokens
        self.maximum = maximum


TOO_LONG = re.compile(r"prompt is too long(?::\s*(\d+)\s*tokens\s*>\s*(\d+))?", re.IGNORECASE)


def prompt_too_long(exc: BaseException) -> PromptTooLong | None:
    """The error as :class:`PromptTooLong` when it is the API's context-window refusal."""
    if not isinstance(exc, anthropic.BadRequestError):
        return None
    found = TOO_LONG.search(describe(exc))
    if not found:
        return None
    tokens, maximum = (int(g) if g else None for g in found.groups())
    return PromptTooLong(describe(exc), tokens, maximum)


class RetriesExhausted(Exception):
    """Transient failures went on past the retry cap."""


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 60.0
    max_rate_limit_retries: int = 20
    max_network_retries: int = 5


def make_client(
    api_key: str | None = None, base_url: str | None = None, timeout_s: float = 600.0
) -> anthropic.Anthropic:
    """An SDK client from explicit values or the environment (``ANTHROPIC_BASE_URL`` honoured)."""
    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise FatalAPIError(f"{API_KEY_ENV} is not set: export it before launching an agent")
    url = base_url or os.environ.get(BASE_URL_ENV) or None
    return anthropic.Anthropic(api_key=key, base_url=url, max_retries=0, timeout=timeout_s)


def classify(exc: BaseException) -> str:
    """``rate_limited``, ``network`` (retry with a cap) or ``fatal``."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        err_type = getattr(exc, "type", None)
        if status in (429, 529) or err_type in ("rate_limit_error", "overloaded_error"):
            return RATE_LIMITED
        if status in (408, 500, 502, 503, 504):
            return NETWORK
        return "fatal"
    if isinstance(exc, anthropic.APIConnectionError | anthropic.APITimeoutError):
        return NETWORK
    return "fatal"


def retry_after_s(exc: BaseException) -> float | None:
    """Server-suggested wait from ``retry-after-ms`` or ``retry-after`` (seconds) headers."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def backoff_s(policy: RetryPolicy, attempt: int, suggested: float | None, rng: random.Random) -> float:
    """Capped exponential backoff with jitter; a server hint wins but is capped too."""
    if suggested is not None:
        return min(policy.cap_s, suggested * (1.0 + 0.1 * rng.random()))
    ceiling = min(policy.cap_s, policy.base_s * (2**attempt))
    return ceiling * (0.5 + 0.5 * rng.random())


def describe(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        msg = getattr(exc, "api_message", None) or str(exc)
        return f"HTTP {exc.status_code}: {msg}"
    return f"{type(exc).__name__}: {exc}"


def _marked(message: dict[str, Any], mark: dict[str, str]) -> dict[str, Any]:
    """A copy of ``message`` with ``cache_control`` on its last content block."""
    out = dict(message)
    content = out.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if isinstance(content, list) and content and isinstance(content[-1], dict):
        out["content"] = [*content[:-1], {**content[-1], "cache_control": mark}]
    return out


def with_cache_breakpoints(
    system: str, messages: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Copies of system and messages with ``cache_control`` breakpoints (the transcript keeps the
    plain versions). Three of the API's four: the system text (the tools come before it, so it
    caches both), the newest message (written now, read by the next turn) and the message that was
    newest one turn ago (the last stable turn: already written, so it is read even when this turn
    added more than the API's 20-block lookback, as a turn of many parallel tool calls does)."""
    mark = {"type": "ephemeral"}
    system_blocks = [{"type": "text", "text": system, "cache_control": mark}]
    if not messages:
        return system_blocks, messages
    out = list(messages)
    out[-1] = _marked(out[-1], mark)
    if len(out) >= 3:
        out[-3] = _marked(out[-3], mark)
    return system_blocks, out


class ModelCaller:
    """One ``messages.create`` with retries. ``on_wait(kind, seconds, attempt, error)`` runs before
    each sleep and ``on_recovered()`` after a success that followed a wait."""

    def __init__(
        self,
        client: Any,
        model: str,
        max_tokens: int,
        policy: RetryPolicy | None = None,
        on_wait: Callable[[str, float, int, str], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        caching: bool = True,
    ):
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.policy = policy or RetryPolicy()
        self.on_wait = on_wait
        self.on_recovered = on_recovered
        self.sleep = sleep
        self.rng = random.Random(seed)
        self.caching = caching  # off only to measure what caching saves (bench/agent_episode.py)

    def create(self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        """One model turn. The request carries cache breakpoints (:func:`with_cache_breakpoints`),
        so each turn re-reads the conversation from the prompt cache (0.1x price)."""
        if self.caching:
            system_blocks, messages = with_cache_breakpoints(system, messages)
        else:
            system_blocks = [{"type": "text", "text": system}]
        rate_tries = 0
        net_tries = 0
        waited = False
        while True:
            try:
                response = self.client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=system_blocks,
                    messages=messages,
                    tools=tools,
                )
            except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
                raise FatalAPIError(
                    f"the Anthropic API rejected {API_KEY_ENV} ({describe(exc)}); check the key"
                ) from exc
            except anthropic.APIError as exc:
                too_long = prompt_too_long(exc)
                if too_long is not None:
                    raise too_long from exc
                kind = classify(exc)
                if kind == "fatal":
                    raise FatalAPIError(describe(exc)) from exc
                if kind == RATE_LIMITED:
                    rate_tries += 1
                    attempt, cap = rate_tries, self.policy.max_rate_limit_retries
                else:
                    net_tries += 1
                    attempt, cap = net_tries, self.policy.max_network_retries
                if attempt > cap:
                    raise RetriesExhausted(f"{kind}: gave up after {cap} retries ({describe(exc)})") from exc
                wait = backoff_s(self.policy, attempt - 1, retry_after_s(exc), self.rng)
                if self.on_wait:
                    self.on_wait(kind, wait, attempt, describe(exc))
                waited = True
                self.sleep(wait)
                continue
            if waited and self.on_recovered:
                self.on_recovered()
            return response
