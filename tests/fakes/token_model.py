"""How the Messages API stand-in counts tokens, serves the prompt cache and enforces a context window.

Close enough to the real API for the loop's context management and cost accounting to be tested
against it, with every rule written down:

- A request is a sequence of blocks, in the order the API caches them: each tool definition, each
  system block, then every content block of every message (a string is one text block). A
  block costs ``ceil(len(canonical JSON) / 4)`` tokens (``cache_control`` left out); an image
  costs ``width * height / 750`` tokens (read from its PNG header), as the API documents.
- A block carrying ``cache_control`` is a breakpoint. A read looks for the longest prefix already
  written that ends at a breakpoint or at one of the 20 block boundaries before it; writes store the
  prefix at every breakpoint of at least ``min_cache_tokens``. Usage then says
  ``cache_read_input_tokens`` (the hit), ``cache_creation_input_tokens`` (from the hit to the last
  breakpoint) and ``input_tokens`` (after the last breakpoint). Entries live ``ttl_s`` seconds on
  the model's clock, refreshed by each hit.
- A prompt larger than ``context_window`` tokens is refused like the API refuses it: HTTP 400,
  ``invalid_request_error``, ``prompt is too long: N tokens > M maximum``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOOKBACK_BLOCKS = 20
IMAGE_TOKENS_PER_PIXEL = 1 / 750


def png_size(data_b64: str) -> tuple[int, int] | None:
    """(width, height) from a base64 PNG's IHDR chunk, or None when it is not a PNG."""
    try:
        head = base64.b64decode(data_b64[:64] + "=" * (-len(data_b64[:64]) % 4))
    except ValueError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def block_tokens(block: Any) -> int:
    """Tokens one block costs (images by their pixel count, nested images inside tool results too)."""
    clean = _without_cache_control(block)
    images = 0
    text_part = clean
    if isinstance(clean, dict):
        inner = clean.get("content")
        if clean.get("type") == "image":
            size = png_size(str((clean.get("source") or {}).get("data", "")))
            return max(1, math.ceil(size[0] * size[1] * IMAGE_TOKENS_PER_PIXEL)) if size else 1600
        if isinstance(inner, list):
            kept = []
            for part in inner:
                if isinstance(part, dict) and part.get("type") == "image":
                    images += block_tokens(part)
                else:
                    kept.append(part)
            text_part = {**clean, "content": kept}
    return images + math.ceil(len(json.dumps(text_part, sort_keys=True, ensure_ascii=False)) / 4)


def request_blocks(body: dict[str, Any]) -> list[tuple[Any, bool]]:
    """``(block, is_breakpoint)`` in cache order: tools, system, then the messages' content blocks."""
    out: list[tuple[Any, bool]] = []
    for tool in body.get("tools") or []:
        out.append(({"tool": tool}, "cache_control" in tool))
    system = body.get("system")
    if isinstance(system, str):  # a string is one text block, as the API reads it
        out.append(({"system": {"type": "text", "text": system}}, False))
    elif isinstance(system, list):
        out.extend(({"system": b}, isinstance(b, dict) and "cache_control" in b) for b in system)
    for message in body.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        for b in blocks:
            out.append(({"role": role, "block": b}, isinstance(b, dict) and "cache_control" in b))
    return out


def count_tokens(body: dict[str, Any]) -> int:
    return sum(block_tokens(b) for b, _ in request_blocks(body))


@dataclass
class TokenModel:
    """The stand-in's counter, cache and window; one per server (the cache is shared by requests)."""

    context_window: int | None = None
    caching: bool = True
    min_cache_tokens: int = 1024
    ttl_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    cache: dict[str, float] = field(default_factory=dict)  # prefix hash -> expiry

    def too_long(self, body: dict[str, Any]) -> str | None:
        """The API's error message when the prompt does not fit the window, else None."""
        total = count_tokens(body)
        if self.context_window is not None and total > self.context_window:
            return f"prompt is too long: {total} tokens > {self.context_window} maximum"
        return None

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        """The input side of ``usage`` for this request (and the cache updated by it)."""
        blocks = request_blocks(body)
        cum: list[int] = []
        keys: list[str] = []
        digest = hashlib.sha256()
        total = 0
        for block, _ in blocks:
            total += block_tokens(block)
            cum.append(total)
            digest.update(json.dumps(_without_cache_control(block), sort_keys=True).encode())
            keys.append(digest.copy().hexdigest())
        marks = [i for i, (_, bp) in enumerate(blocks) if bp] if self.caching else []
        if not marks:
            return {"input_tokens": total, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        now = self.clock()
        self.cache = {k: t for k, t in self.cache.items() if t > now}
        hit = -1
        for mark in marks:
            for j in range(mark, max(-1, mark - LOOKBACK_BLOCKS - 1), -1):
                if keys[j] in self.cache:
                    hit = max(hit, j)
                    break
        read = cum[hit] if hit >= 0 else 0
        if hit >= 0:
            self.cache[keys[hit]] = now + self.ttl_s
        last = marks[-1]
        written = 0
        for mark in marks:
            if cum[mark] >= self.min_cache_tokens and mark > hit:
                self.cache[keys[mark]] = now + self.ttl_s
                written = cum[mark] - read
        if written == 0 and last > hit:  # nothing long enough to cache: the whole prefix is plain input
            return {"input_tokens": total - read, "cache_read_input_tokens": read, "cache_creation_input_tokens": 0}
        upto = max(hit, last)
        return {"input_tokens": total - cum[upto], "cache_read_input_tokens": read,
                "cache_creation_input_tokens": written}


def output_tokens(content: list[dict[str, Any]]) -> int:
    return max(1, sum(block_tokens(b) for b in content))
