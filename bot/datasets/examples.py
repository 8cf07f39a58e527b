"""The one reader of stored JSONL: a dataset's lines, its examples and prompts, and the keys that tell them apart.

Files were validated when they were shared, but a stored copy is read again long after (evaluation,
golden sets, the flywheel), so every reader here skips a line it cannot use instead of failing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.evaluation.metrics import normalize

CONVERSATION_ROLES = ("system", "user", "assistant")
# A golden set records at most this many prompts of a dataset.
MAX_PROMPTS = 2000


@dataclass(frozen=True)
class Example:
    """A conversation ending with a question, and the answer the dataset expects to it."""

    messages: list[dict[str, str]]
    expected: str

    @property
    def question(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def stored_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Each line of a stored dataset that is a JSON object, in order."""
    with path.open("rb") as stream:
        for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                yield line


def text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text, in order
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return "".join(t for t in texts if isinstance(t, str)) or None
    return None


def _conversation(messages: Any) -> list[dict[str, str]]:
    """The system, user and assistant messages with text, as plain ``{"role", "content"}`` pairs."""
    cleaned = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") not in CONVERSATION_ROLES:
            continue
        content = text_of(message.get("content"))
        if content is not None:
            cleaned.append({"role": str(message["role"]), "content": content})
    return cleaned


def _last_answer(messages: list[Any]) -> int | None:
    return max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), default=None
    )


def example_of(line: Any, fmt: str) -> Example | None:
    """A line's conversation up to its last assistant turn, and that turn as the expected answer."""
    if not isinstance(line, dict):
        return None
    if fmt == "preference":
        messages = (line.get("input") or {}).get("messages") or []
        preferred = line.get("preferred_output") or []
        answer = preferred[0] if isinstance(preferred, list) and preferred else None
    else:
        messages = line.get("messages") or []
        if not isinstance(messages, list) or (last := _last_answer(messages)) is None:
            return None
        messages, answer = messages[:last], messages[last]
    expected = text_of(answer.get("content")) if isinstance(answer, dict) else None
    cleaned = _conversation(messages)
    if not expected or not cleaned or cleaned[-1]["role"] != "user":
        return None
    return Example(cleaned, expected)


def prompt_of(line: dict[str, Any], fmt: str) -> list[dict[str, str]] | None:
    """What a model is asked for this line: its messages up to the last answer (preference: the input)."""
    if fmt == "preference":
        messages = (line.get("input") or {}).get("messages") or []
    else:
        messages = line.get("messages") or []
        if isinstance(messages, list) and (last := _last_answer(messages)) is not None:
            messages = messages[:last]
    cleaned = _conversation(messages)
    return cleaned if cleaned and cleaned[-1]["role"] == "user" else None


def load_examples(path: Path, fmt: str, *, limit: int) -> tuple[list[Example], int]:
    """The first ``limit`` usable examples of a stored dataset, and how many usable ones it has in all."""
    examples: list[Example] = []
    usable = 0
    for line in stored_lines(path):
        example = example_of(line, fmt)
        if example is None:
            continue
        usable += 1
        if len(examples) < limit:
            examples.append(example)
    return examples, usable


def prompts_of(path: Path, fmt: str) -> list[list[dict[str, str]]]:
    """The prompt of each usable line, at most MAX_PROMPTS."""
    prompts = []
    for line in stored_lines(path):
        prompt = prompt_of(line, fmt)
        if prompt is not None:
            prompts.append(prompt)
            if len(prompts) >= MAX_PROMPTS:
                break
    return prompts


def prompt_key(messages: list[dict[str, str]]) -> str:
    """The same conversation, whatever its spacing or letter case, gives the same key."""
    normalized = [(m["role"], normalize(m["content"])) for m in messages]
    return hashlib.sha256(json.dumps(normalized, ensure_ascii=False).encode()).hexdigest()


def overlap_with(path: Path, fmt: str, examples: list[Example]) -> int:
    """How many of ``examples`` ask a conversation the training file also has."""
    wanted = {prompt_key(example.messages) for example in examples}
    seen: set[str] = set()
    for line in stored_lines(path):
        example = example_of(line, fmt)
        if example is not None and (key := prompt_key(example.messages)) in wanted:
            seen.add(key)
    return sum(prompt_key(example.messages) in seen for example in examples)


def example_key(example: dict[str, Any]) -> str:
    """The same example, whatever its spacing or letter case, gives the same key."""

    def flat(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(str(m.get("role")), normalize(str(m.get("content") or ""))) for m in messages]

    if "messages" in example:
        shape: Any = flat(example["messages"])
    else:
        shape = [
            flat(example["input"]["messages"]),
            flat(example["preferred_output"]),
            flat(example["non_preferred_output"]),
        ]
    return hashlib.sha256(json.dumps(shape, ensure_ascii=False).encode()).hexdigest()


def existing_keys(path: Path) -> set[str]:
    """The keys of every example a stored dataset holds already."""
    keys = set()
    for line in stored_lines(path):
        if "messages" in line or "input" in line:
            try:
                keys.add(example_key(line))
            except (KeyError, TypeError, AttributeError):
                continue
    return keys
