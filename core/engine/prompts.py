"""Prompt formats of the reference sandbox, tokenised with truncation *inside* the prompt text.

preference: ``Question: {prompt}\\nAnswer A: {first}\\nAnswer B: {second}\\nLabel:`` -> tokens A / B
binary:     ``Question: {question}\\nAnswer: {choice}\\nLabel:``                  -> tokens False / True

The label tokens carry no leading space (``Label:A``), as in the reference. Base causal LMs get
``[BOS] + prompt`` (BOS only when the tokenizer has one); encoders get their tokenizer's specials.

Rows are never dropped: when a row is longer than the budget, its variable fields (the question,
the answers) lose tokens from their middle, the longest first, while the fixed text — above all the
``Label:`` cue at the end — is always kept whole. Chat models get the prompt wrapped in their chat
template as one user turn, with the assistant turn opened, so the label is the next token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.data.datasets import Format

LABEL_WORDS: dict[str, tuple[str, str]] = {"preference": ("A", "B"), "binary": ("False", "True")}
_SENTINEL = "\u2063W2S_PROMPT\u2063"
# A row holding this field is a raw text, not a dataset row: its prompt is ``{text}\nLabel:`` (the
# trusted weak-judge service, ``core.run.judge_service``, classifies texts an idea wrote). Dataset rows
# never carry it (the service builds these rows itself), so no existing prompt changes.
RAW_TEXT_FIELD = "w2s_raw_text"
MIN_FIELD_TOKENS = 4  # a truncated field keeps at least this many tokens


def prompt_segments(row: dict[str, Any], fmt: Format) -> list[tuple[str, bool]]:
    """(text, truncatable) pieces whose concatenation is the prompt; whitespace rides with fields."""
    if RAW_TEXT_FIELD in row:
        return [(str(row[RAW_TEXT_FIELD]), True), ("\nLabel:", False)]
    if fmt == "preference":
        return [
            ("Question:", False), (" " + str(row["prompt"]), True),
            ("\nAnswer A:", False), (" " + str(row["first"]), True),
            ("\nAnswer B:", False), (" " + str(row["second"]), True),
            ("\nLabel:", False),
        ]
    if fmt == "binary":
        return [
            ("Question:", False), (" " + str(row["question"]), True),
            ("\nAnswer:", False), (" " + str(row["choice"]), True),
            ("\nLabel:", False),
        ]
    raise ValueError(f"unknown format {fmt!r}")


def format_prompt(row: dict[str, Any], fmt: Format) -> str:
    """The untruncated prompt text of one row."""
    return "".join(text for text, _ in prompt_segments(row, fmt))


def _special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Special tokens the tokenizer adds before / after a text (e.g. [CLS] / [SEP], or BOS)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return list(full[:i]), list(full[i + len(plain) :])
    return [], []


def label_token_ids(tokenizer: Any, fmt: Format, chat: bool = False) -> tuple[int, int]:
    """Ids of the two label tokens: the first token of each label word written *without* a leading
    space, for base and chat models alike, as the reference picks them
    (``tokenizer.encode(word, add_special_tokens=False)[0]`` with its ``A``/``B`` and ``False``/``True``)
    and trains them right after ``Label:`` (base) or the opened assistant turn (chat). ``chat`` is
    kept for callers; it no longer changes the choice."""
    ids = []
    for word in LABEL_WORDS[fmt]:
        enc = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not enc:
            raise ValueError(f"label word {word!r} encodes to no token")
        ids.append(int(enc[0]))
    if ids[0] == ids[1]:
        raise ValueError(f"label words {LABEL_WORDS[fmt]} map to the same token id {ids[0]}")
    return ids[0], ids[1]


def causal_prefix(tokenizer: Any) -> list[int]:
    """What a base causal LM's prompt starts with: its BOS token when the tokenizer has one, nothing
    otherwise, whatever the tokenizer would add by itself (the reference builds ``[BOS] + prompt``
    from unspecial encodings; a BERT-style tokenizer's [CLS] is not a causal LM's BOS)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return [int(bos)] if bos is not None else []


def _fit(lengths: list[int], budget: int) -> list[int]:
    """Water-filling: the largest per-field cap so that the capped lengths sum to <= budget."""
    if sum(lengths) <= budget:
        return list(lengths)
    order = sorted(lengths)
    remaining, left = budget, len(order)
    cap = 0
    for n in order:
        share = remaining // left
        if n <= share:
            remaining -= n
            left -= 1
            continue
        cap = share
        break
    out = [min(n, cap) for n in lengths]
    spare = budget - sum(out)  # hand the rounding remainder to the longest fields
    for i in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        if spare <= 0:
            break
        if out[i] < lengths[i]:
            out[i] += 1
            spare -= 1
    return out


def _cut_middle(ids: list[int], keep: int) -> list[int]:
    """Keep the first and last halves of a field (the question's start, the last turn's end)."""
    if keep >= len(ids):
        return ids
    head = (keep + 1) // 2
    tail = keep - head
    return ids[:head] + (ids[len(ids) - tail :] if tail else [])


@dataclass
class PromptEncoder:
    """Turns rows into token id lists of at most ``max_len`` tokens, label cue last."""

    tokenizer: Any
    fmt: Format
    max_len: int
    causal: bool
    use_chat_template: bool = False
    # (text, truncatable) pieces of one row's prompt; None: the training prompt of ``fmt``
    # (``prompt_segments``). Claim scoring (``core.engine.claims``) passes its own templates here.
    segmenter: Callable[[dict[str, Any]], list[tuple[str, bool]]] | None = None

    def __post_init__(self) -> None:
        pre, post = _special_affixes(self.tokenizer)
        if self.causal:
            pre = causal_prefix(self.tokenizer)
            post = []  # the label is predicted right after the cue: nothing may follow it
        self.chat_pre: list[int] = []
        self.chat_post: list[int] = []
        if self.use_chat_template:
            rendered = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": _SENTINEL}], tokenize=False, add_generation_prompt=True
            )
            before, after = rendered.split(_SENTINEL, 1)
            enc = self.tokenizer([before, after], add_special_tokens=False)["input_ids"]
            self.chat_pre, self.chat_post = list(enc[0]), list(enc[1])
            pre = []  # the rendered template carries its own BOS when the model wants one
        self.pre, self.post = pre, post

    def encode_many(self, rows: list[dict[str, Any]]) -> list[list[int]]:
        """Token ids per row, truncated inside the variable fields to fit ``max_len``."""
        if not rows:
            return []
        segs = [self.segmenter(r) if self.segmenter else prompt_segments(r, self.fmt) for r in rows]
        flat = [text for s in segs for text, _ in s]
        enc = self.tokenizer(flat, add_special_tokens=False)["input_ids"]
        out: list[list[int]] = []
        pos = 0
        wrap = len(self.pre) + len(self.chat_pre) + len(self.chat_post) + len(self.post)
        for s in segs:
            pieces = [list(enc[pos + i]) for i in range(len(s))]
            pos += len(s)
            var = [i for i, (_, trunc) in enumerate(s) if trunc]
            fixed = sum(len(pieces[i]) for i in range(len(s)) if i not in var)
            budget = self.max_len - wrap - fixed
            if budget < MIN_FIELD_TOKENS * len(var):
                raise ValueError(
                    f"max_ctx {self.max_len} is too small for the {self.fmt} prompt "
                    f"(needs at least {wrap + fixed + MIN_FIELD_TOKENS * len(var)} tokens)"
                )
            keep = _fit([len(pieces[i]) for i in var], budget)
            for i, k in zip(var, keep, strict=True):
                pieces[i] = _cut_middle(pieces[i], k)
            body = [t for p in pieces for t in p]
            out.append(self.pre + self.chat_pre + body + self.chat_post + self.post)
        return out
