"""The Messages API stand-in's token model: the cache rules and the window the agent tests rely on."""

from __future__ import annotations

from core.agent.client import with_cache_breakpoints
from tests.fakes.anthropic_server import compacted_turns, turn_index
from tests.fakes.token_model import TokenModel, count_tokens

MARK = {"type": "ephemeral"}
TOOLS = [{"name": "t", "input_schema": {}}]


def conversation(n_turns: int) -> list[dict]:
    messages = [{"role": "user", "content": "brief " * 600}]
    for i in range(n_turns):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"turn {i} " * 50}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"result {i} " * 50}]})
    return messages


def body(n_turns: int, marks: bool = True) -> dict:
    messages = conversation(n_turns)
    system, msgs = with_cache_breakpoints("system " * 300, messages) if marks else ("system " * 300, messages)
    return {"system": system, "messages": msgs, "tools": TOOLS}


def test_cache_reads_writes_and_expiry() -> None:
    now = [0.0]
    model = TokenModel(clock=lambda: now[0], ttl_s=300)
    first = model.usage(body(1))
    assert first["cache_read_input_tokens"] == 0 and first["cache_creation_input_tokens"] == count_tokens(body(1))
    second = model.usage(body(2))  # the previous prompt is read, the new turn written
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_read_input_tokens"] + second["cache_creation_input_tokens"] == count_tokens(body(2))
    assert second["input_tokens"] == 0
    now[0] += 301  # entries live five minutes: after a long wait the whole prompt is written again
    third = model.usage(body(3))
    assert third["cache_read_input_tokens"] == 0 and third["cache_creation_input_tokens"] == count_tokens(body(3))
    plain = TokenModel().usage(body(2, marks=False))  # no breakpoints: nothing cached
    assert plain == {"input_tokens": count_tokens(body(2, marks=False)), "cache_read_input_tokens": 0,
                     "cache_creation_input_tokens": 0}
    # a string and the one text block it stands for are the same prefix (as the API reads them)
    assert count_tokens({"messages": [{"role": "user", "content": "x"}]}) == \
        count_tokens({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})


def test_lookback_is_twenty_blocks_and_the_stable_turn_mark_bridges_it() -> None:
    plain = conversation(1)
    system, first = with_cache_breakpoints("system " * 300, plain)
    earlier = {"tools": TOOLS, "system": system, "messages": first}
    many = [{"type": "text", "text": f"part {k} " * 20} for k in range(25)]  # a turn of 25 blocks
    later = [*plain, {"role": "assistant", "content": [{"type": "text", "text": "next"}]},
             {"role": "user", "content": many}]
    # marks on the system and the newest block only: the 20-block lookback misses the cached turn
    only_newest = [*later[:-1], {"role": "user", "content": [*many[:-1], {**many[-1], "cache_control": MARK}]}]
    model = TokenModel()
    model.usage(earlier)
    read = model.usage({"tools": TOOLS, "system": system, "messages": only_newest})["cache_read_input_tokens"]
    assert read == 0  # (the system alone is under the 1024-token minimum, so it was never written)
    # the mark on the last stable turn (what with_cache_breakpoints adds) bridges it
    model = TokenModel()
    model.usage(earlier)
    _, marked = with_cache_breakpoints("system " * 300, later)
    assert model.usage({"tools": TOOLS, "system": system, "messages": marked})["cache_read_input_tokens"] == \
        count_tokens(earlier)


def test_window_and_turn_index() -> None:
    model = TokenModel(context_window=1000)
    message = model.too_long(body(3))
    assert message is not None and message.startswith("prompt is too long: ") and message.endswith(" > 1000 maximum")
    assert TokenModel(context_window=10**6).too_long(body(3)) is None
    compacted = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "brief"},
        {"type": "text", "text": "[context compacted: the first 37 turns are summarized below]"}]},
        {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}
    assert compacted_turns(compacted) == 37 and turn_index(compacted) == 38
    assert turn_index(body(3, marks=False)) == 3
