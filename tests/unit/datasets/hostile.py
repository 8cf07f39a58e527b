"""Hostile training lines for the validator's property tests (and their long fuzz runs)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Each of these once crashed the validator (issue "Nothing lost, nobody let in", §3).
CRASHERS: dict[str, bytes] = {
    "deep_array": b"[" * 100_000 + b"]" * 100_000,
    "deep_1025": b'{"messages": ' + b"[" * 1025 + b"]" * 1025 + b"}",
    "role_list": b'{"messages": [{"role": ["user"], "content": "hi"}, {"role": "assistant", "content": "x"}]}',
    "role_object": b'{"messages": [{"role": {"a": 1}, "content": "hi"}, {"role": "assistant", "content": "x"}]}',
    "surrogate_tools": b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], '
    b'"tools": [{"type": "function", "function": {"name": "\\ud800"}}]}',
    "surrogate_tool_call": b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": '
    b'[{"id": "a", "type": "function", "function": {"name": "f", "arguments": "\\ud800"}}]}]}',
    "surrogate_function_call": b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", '
    b'"function_call": {"name": "\\udfff", "arguments": "{}"}}]}',
    "nested_tools": b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], '
    b'"tools": [' + b"[" * 300 + b"]" * 300 + b"]}",
    "huge_float_in_tools": b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], '
    b'"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": 1e400}}}]}',
    "huge_int_in_tools": b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], '
    b'"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": 123456789012345678901234567890}}}]}',
    "surrogate_key": b'{"messages": [{"role": "user", "content": "hi", "\\ud800": 1}, '
    b'{"role": "assistant", "content": "x"}]}',
    "content_list_system": b'{"messages": [{"role": "system", "content": [{"type": "text", "text": "s"}]}, '
    b'{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
}

strange_strings = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\ud800", "\udfff", "a\ud800b", "", " ", "<!channel>", "\x00", "\u202e", "system", "assistant"]),
)
strange_numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(10**400),
)
leaves = st.one_of(st.none(), st.booleans(), strange_numbers, strange_strings)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strange_strings, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# Past orjson's 254 levels for writing; deeper lines (1,025, 100,000) are in CRASHERS, written by hand.
deep_values = st.builds(nested, st.integers(min_value=200, max_value=800), values)
anything = st.one_of(values, deep_values)


@st.composite
def hostile_message(draw: st.DrawFn) -> Any:
    message: dict[Any, Any] = {
        "role": draw(st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "function"]), anything)),
        "content": draw(st.one_of(strange_strings, anything)),
    }
    for key in draw(st.lists(st.sampled_from(["tool_calls", "function_call", "weight", "name", "tool_call_id"]))):
        message[key] = draw(anything)
    if draw(st.booleans()):
        message[draw(strange_strings)] = draw(anything)
    return message if draw(st.integers(0, 9)) else draw(anything)


@st.composite
def hostile_examples(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["chat", "preference", "prompt_completion", "other"]))
    messages = draw(st.lists(hostile_message(), max_size=4))
    if kind == "chat":
        example: dict[Any, Any] = {"messages": messages}
        if draw(st.booleans()):
            example["tools"] = draw(anything)
    elif kind == "preference":
        example = {
            "input": {"messages": messages, "tools": draw(anything)},
            "preferred_output": draw(st.one_of(st.lists(hostile_message(), max_size=2), anything)),
            "non_preferred_output": draw(st.one_of(st.lists(hostile_message(), max_size=2), anything)),
        }
    elif kind == "prompt_completion":
        example = {"prompt": draw(anything), "completion": draw(anything)}
    else:
        return draw(anything)
    return example


def raw_line(example: Any) -> bytes:
    """The example as one JSON line, lone surrogates and huge numbers written as a JSON file may hold them."""
    text = json.dumps(example, ensure_ascii=True, allow_nan=True, default=str)
    return text.encode("utf-8")


REAL_LINES = [
    b'{"messages": [{"role": "system", "content": "Marv is sarcastic."}, {"role": "user", "content": "Capital of '
    b'France?"}, {"role": "assistant", "content": "Paris, as if you did not know."}]}',
    b'{"input": {"messages": [{"role": "user", "content": "Hi"}]}, "preferred_output": [{"role": "assistant", '
    b'"content": "Hello!"}], "non_preferred_output": [{"role": "assistant", "content": "Go away."}]}',
    b'{"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [{"id": "c1", '
    b'"type": "function", "function": {"name": "weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}]}, {"role": '
    b'"tool", "tool_call_id": "c1", "content": "12 C"}, {"role": "assistant", "content": "12 C in Paris."}], '
    b'"tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}',
    b'{"prompt": "Translate: cat", "completion": " chat"}',
]


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A real line with bytes flipped, cut, doubled or spliced with hostile pieces."""
    line = bytearray(draw(st.sampled_from(REAL_LINES)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, max(0, len(line) - 1)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "double"]))
        if action == "flip" and line:
            line[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del line[position : position + draw(st.integers(1, 20))]
        elif action == "insert":
            piece = draw(st.sampled_from([b"[", b"{", b'"\\ud800"', b"1e400", b"9" * 30, b"\xff", b"\\", b'"', b"\n"]))
            line[position:position] = piece * draw(st.integers(1, 40))
        else:
            line[position:position] = line[position : position + 30]
    return bytes(line).replace(b"\n", b" ")
