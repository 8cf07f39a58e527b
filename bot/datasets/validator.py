"""The streaming JSONL validator: one pass, line by line, never the whole file in memory.

Every line is checked against the format it looks like (chat, preference, prompt-completion);
the file's format is decided at the end by majority, so a scan keeps per-format tallies that can be
merged. That also lets a large file be split into byte ranges scanned by separate processes
(``bot.datasets.parallel``) whose results merge into the same report as a single scan.

Rules that could be read two ways are written in the issue "Datasets" and followed here: lines
split on ``\\n`` only, a whitespace-only line is blank, a UTF-8 BOM is accepted, the report lists
the first five lines per code and counts them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from bot.datasets.speedups import LineDigests, new_line_digests
from bot.datasets.tokens import TokenCounter

FORMATS = ("chat", "preference", "prompt_completion")
LISTED_PER_CODE = 5
MAX_LINE_BYTES = 16 * 1024 * 1024
BOM = b"\xef\xbb\xbf"

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}
CONTENT_PART_TYPES = ("text", "image_url")


@dataclass
class Tally:
    """How often a code occurred, and the first lines (with their sentence) where it did."""

    count: int = 0
    first: list[tuple[int | None, str]] = field(default_factory=list)

    def add(self, line: int | None, message: str) -> None:
        self.count += 1
        if len(self.first) < LISTED_PER_CODE:
            self.first.append((line, message))

    def merge(self, other: Tally, offset: int = 0) -> None:
        """Add ``other``'s occurrences, its line numbers moved down by ``offset``."""
        self.count += other.count
        moved = [(line if line is None else line + offset, message) for line, message in other.first]
        self.first = sorted(self.first + moved, key=lambda item: item[0] or 0)[:LISTED_PER_CODE]


def _merge_tallies(mine: dict[str, Tally], theirs: dict[str, Tally], offset: int) -> None:
    for code, tally in theirs.items():
        mine.setdefault(code, Tally()).merge(tally, offset)


@dataclass
class FormatStats:
    """Everything learned about the lines that look like one format."""

    lines: Tally = field(default_factory=Tally)
    errors: dict[str, Tally] = field(default_factory=dict)
    warnings: dict[str, Tally] = field(default_factory=dict)
    tokens: Counter[int] = field(default_factory=Counter)
    with_system: int = 0
    without_system: int = 0
    system_prompts: Counter[str] = field(default_factory=Counter)
    has_images: bool = False

    def error(self, line: int, code: str, message: str) -> None:
        self.errors.setdefault(code, Tally()).add(line, message)

    def warning(self, line: int, code: str, message: str) -> None:
        self.warnings.setdefault(code, Tally()).add(line, message)

    def merge(self, other: FormatStats, offset: int) -> None:
        self.lines.merge(other.lines, offset)
        _merge_tallies(self.errors, other.errors, offset)
        _merge_tallies(self.warnings, other.warnings, offset)
        self.tokens.update(other.tokens)
        self.with_system += other.with_system
        self.without_system += other.without_system
        self.system_prompts.update(other.system_prompts)
        self.has_images = self.has_images or other.has_images


@dataclass
class Scan:
    """The mergeable result of scanning some lines of a file."""

    physical_lines: int = 0
    examples: int = 0
    first_format: str | None = None
    per_format: dict[str, FormatStats] = field(default_factory=dict)
    unknown_objects: Tally = field(default_factory=Tally)
    errors: dict[str, Tally] = field(default_factory=dict)
    warnings: dict[str, Tally] = field(default_factory=dict)
    seen: LineDigests = field(default_factory=new_line_digests)
    # Whether the first example line is a lone "{" or "[" that does not parse: pretty-printed JSON.
    opens_pretty_printed: bool | None = None
    # Listed duplicate line → the line it copies, so that merge can renumber their sentences.
    copies: dict[int, int] = field(default_factory=dict)

    def error(self, line: int, code: str, message: str) -> None:
        self.errors.setdefault(code, Tally()).add(line, message)

    def warning(self, line: int, code: str, message: str) -> None:
        self.warnings.setdefault(code, Tally()).add(line, message)

    def stats(self, fmt: str) -> FormatStats:
        stats = self.per_format.get(fmt)
        if stats is None:
            stats = self.per_format[fmt] = FormatStats()
        return stats

    def duplicate(self, line: int, first: int) -> None:
        tally = self.warnings.setdefault("duplicate_example", Tally())
        if len(tally.first) < LISTED_PER_CODE:
            self.copies[line] = first
        tally.add(line, _duplicate_message(first))

    def merge(self, later: Scan) -> None:
        """Add the scan of the lines that follow this one's.

        ``later`` numbered its lines from 1, so that a range of a file can be scanned before anyone
        has counted the lines in front of it; its numbers move down by this scan's line count here.
        """
        offset = self.physical_lines
        self.physical_lines += later.physical_lines
        self.examples += later.examples
        self.first_format = self.first_format or later.first_format
        if self.opens_pretty_printed is None:
            self.opens_pretty_printed = later.opens_pretty_printed
        for fmt, stats in later.per_format.items():
            self.stats(fmt).merge(stats, offset)
        self.unknown_objects.merge(later.unknown_objects, offset)
        copies = later.warnings.get("duplicate_example")
        if copies is not None:
            copies.first = [
                (line, _duplicate_message(later.copies[line] + offset)) for line, _ in copies.first if line is not None
            ]
        _merge_tallies(self.errors, later.errors, offset)
        _merge_tallies(self.warnings, later.warnings, offset)
        repeats = Tally()
        for line, first in self.seen.absorb(later.seen, offset):
            repeats.add(line, _duplicate_message(first))
        if repeats.count:
            self.warnings.setdefault("duplicate_example", Tally()).merge(repeats)


def _duplicate_message(first_line: int) -> str:
    return f"This example is an exact copy of line {first_line}."


def iter_lines(stream: BinaryIO, *, first_line_of_file: bool = True) -> Iterator[bytes | None]:
    """Physical lines split on ``\\n`` only, without their ending; ``None`` for a line over the size cap."""
    first = first_line_of_file
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of the oversized line without holding it
                rest = stream.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            first = False
            yield None
            continue
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if first and line.startswith(BOM):
            line = line[3:]
        first = False
        yield line


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(raw: bytes) -> tuple[Any, str | None, str | None]:
    """(object, error code, sentence). orjson first; the standard library explains its failures."""
    with contextlib.suppress(orjson.JSONDecodeError):
        return orjson.loads(raw), None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, "invalid_utf8", f"The line is not valid UTF-8 (byte {error.start + 1} cannot be decoded)."
    try:
        return json.loads(text, parse_constant=_reject_constant), None, None
    except RecursionError:
        return None, "invalid_json", "The line nests arrays or objects deeper than a JSON reader allows."
    except ValueError as error:
        if isinstance(error, json.JSONDecodeError):
            return None, "invalid_json", f"The line is not valid JSON: {error.msg} (column {error.colno})."
        return None, "invalid_json", f"The line is not valid JSON: {error}."


def line_format(obj: dict[str, Any]) -> str | None:
    if "messages" in obj:
        return "chat"
    if "input" in obj or "preferred_output" in obj or "non_preferred_output" in obj:
        return "preference"
    if "prompt" in obj or "completion" in obj:
        return "prompt_completion"
    return None


class Scanner:
    """Scans lines into a ``Scan``; one instance per process (it owns the token counter's cache)."""

    def __init__(self, *, counter: TokenCounter, example_token_limit: int) -> None:
        self.counter = counter
        self.limit = example_token_limit
        # 3 tokens of message overhead plus the role itself, for the roles of plain text messages.
        self._simple_roles = {role: 3 + counter.count(role) for role in ("system", "user", "assistant")}

    def scan(self, lines: Iterator[bytes | None]) -> Scan:
        """Scan ``lines``, numbered from 1 (Scan.merge renumbers the scan of a later range)."""
        scan = Scan()
        number = 0
        for raw in lines:
            number += 1
            scan.physical_lines += 1
            if raw is None:
                scan.examples += 1
                scan.error(
                    number,
                    "invalid_json",
                    f"The line is longer than {MAX_LINE_BYTES // 1024 // 1024} MB; "
                    "each example must be one JSON object on one line.",
                )
                continue
            if not raw.strip():
                scan.warning(number, "blank_line", "The line is blank; it is skipped.")
                continue
            scan.examples += 1
            obj, code, message = _parse(raw)
            if scan.opens_pretty_printed is None:
                scan.opens_pretty_printed = code is not None and raw.strip() in (b"{", b"[")
            if code is not None:
                scan.error(number, code, message or "")
                continue
            if not isinstance(obj, dict):
                kind = "a list" if isinstance(obj, list) else f"a JSON {type(obj).__name__}"
                scan.error(number, "not_an_object", f"The line is {kind}, not a JSON object.")
                continue
            digest = int.from_bytes(hashlib.blake2b(raw.strip(), digest_size=8).digest(), "little")
            first = scan.seen.first_or_add(digest, number)
            if first != number:
                scan.duplicate(number, first)
            fmt = line_format(obj)
            if fmt is None:
                keys = ", ".join(sorted(obj)[:5]) or "no keys"
                scan.unknown_objects.add(number, f"The object has none of the keys of a training example ({keys}).")
                continue
            if scan.first_format is None:
                scan.first_format = fmt
            stats = scan.stats(fmt)
            stats.lines.add(number, "")
            if fmt == "chat":
                tokens = self._chat(obj, number, stats)
            elif fmt == "preference":
                tokens = self._preference(obj, number, stats)
            else:
                tokens = self._prompt_completion(obj, number, stats)
            stats.tokens[tokens] += 1
            if tokens > self.limit:
                stats.warning(
                    number,
                    "example_too_long",
                    f"The example has {tokens:,} tokens, over the model's {self.limit:,}-token limit; "
                    "it will be truncated.",
                )
        return scan

    # --- counting ---

    def _json_tokens(self, value: Any, number: int, stats: FormatStats) -> int:
        try:
            return self.counter.count(orjson.dumps(value).decode())
        except TypeError as error:  # orjson refuses what no API reads: lone surrogates, >64-bit numbers, >254 levels
            stats.error(number, "unreadable_value", f"The example holds a value the API cannot read ({error}).")
        try:
            return self.counter.count(json.dumps(value, ensure_ascii=True))
        except (RecursionError, ValueError):
            return 0

    def _message_tokens(self, message: dict[str, Any], number: int, stats: FormatStats) -> int:
        """The cookbook's rule: 3 per message, every value encoded (role included), +1 for a name."""
        tokens = 3
        count = self.counter.count
        for key, value in message.items():
            if isinstance(value, str):
                tokens += count(value)
                if key == "name":
                    tokens += 1
            elif key == "content" and isinstance(value, list):
                for part in value:
                    if isinstance(part, dict):
                        if part.get("type") == "text" and isinstance(part.get("text"), str):
                            tokens += count(part["text"])
                        elif part.get("type") == "image_url":
                            stats.has_images = True
            elif key in ("tool_calls", "function_call") and value is not None:
                tokens += self._json_tokens(value, number, stats)
        return tokens

    # --- formats ---

    def _check_messages(
        self, messages: list[Any], number: int, stats: FormatStats, *, need_assistant: bool
    ) -> tuple[int, bool, bool]:
        """Check each message; return (tokens, has an assistant message, every assistant weight is 0)."""
        tokens = 0
        assistants = 0
        zero_weights = 0
        count = self.counter.count
        simple_roles = self._simple_roles
        for index, message in enumerate(messages, start=1):
            # Fast path for the shape nearly every message has: {"role": …, "content": "…"}.
            if type(message) is dict and len(message) == 2:
                role = message.get("role")
                content = message.get("content")
                if type(role) is str and role in simple_roles and type(content) is str and content:
                    tokens += simple_roles[role] + count(content)
                    if role == "assistant":
                        assistants += 1
                    continue
            if not isinstance(message, dict):
                stats.error(number, "message_not_object", f"Message {index} is not a JSON object.")
                continue
            tokens += self._message_tokens(message, number, stats)
            role = message.get("role")
            if role is None:
                stats.error(number, "message_missing_key", f'Message {index} has no "role".')
                continue
            if not isinstance(role, str) or role not in ROLES:
                shown = repr(role) if isinstance(role, str) else f"a JSON {type(role).__name__}"
                stats.error(
                    number,
                    "unrecognized_role",
                    f"Message {index} has role {shown[:60]}; roles are system, user, assistant, tool and function.",
                )
                continue
            unknown = sorted(set(message) - MESSAGE_KEYS[role])
            if unknown:
                if "weight" in unknown and role != "assistant":
                    stats.error(
                        number,
                        "invalid_weight",
                        f'Message {index} ({role}) has a "weight"; only assistant messages can be weighted.',
                    )
                    unknown.remove("weight")
                if unknown:
                    stats.error(
                        number,
                        "message_unrecognized_key",
                        f"Message {index} ({role}) has unrecognized key(s): {', '.join(unknown)}.",
                    )
            if role == "tool" and "tool_call_id" not in message:
                stats.error(number, "message_missing_key", f'Message {index} (tool) has no "tool_call_id".')
            if role == "assistant":
                assistants += 1
                zero_weights += self._check_assistant(message, index, number, stats)
            self._check_content(message, role, index, number, stats)
        if need_assistant and not assistants:
            stats.error(number, "example_missing_assistant_message", "The example has no assistant message to learn.")
        return tokens, assistants > 0, assistants > 0 and zero_weights == assistants

    def _check_assistant(self, message: dict[str, Any], index: int, number: int, stats: FormatStats) -> int:
        weight = message.get("weight", 1)
        if type(weight) is not int or weight not in (0, 1):
            stats.error(number, "invalid_weight", f"Message {index} has weight {weight!r}; it must be 0 or 1.")
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            self._check_tool_calls(tool_calls, index, number, stats)
        function_call = message.get("function_call")
        if function_call is not None and not (
            isinstance(function_call, dict)
            and isinstance(function_call.get("name"), str)
            and isinstance(function_call.get("arguments"), str)
        ):
            stats.error(
                number, "invalid_tool_call", f"Message {index} has a function_call without a name and string arguments."
            )
        return 1 if weight == 0 and type(weight) is int else 0

    def _check_tool_calls(self, tool_calls: Any, index: int, number: int, stats: FormatStats) -> None:
        if not isinstance(tool_calls, list) or not tool_calls:
            stats.error(number, "invalid_tool_call", f"Message {index} has tool_calls that are not a non-empty list.")
            return
        for position, call in enumerate(tool_calls, start=1):
            function = call.get("function") if isinstance(call, dict) else None
            if not (
                isinstance(call, dict)
                and isinstance(call.get("id"), str)
                and call.get("type") == "function"
                and isinstance(function, dict)
                and isinstance(function.get("name"), str)
                and isinstance(function.get("arguments"), str)
            ):
                stats.error(
                    number,
                    "invalid_tool_call",
                    f'Tool call {position} of message {index} must be {{id, type: "function", '
                    "function: {name, arguments}}} with arguments as a string.",
                )
                continue
            arguments = function["arguments"]
            try:
                decoded = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                decoded = None
            if not isinstance(decoded, dict):
                what = "a JSON string (double-encoded?)" if isinstance(decoded, str) else "not a JSON object"
                stats.warning(
                    number,
                    "tool_arguments_not_object",
                    f"The arguments of tool call {position} in message {index} ({function['name']}) are {what}.",
                )

    def _check_content(self, message: dict[str, Any], role: str, index: int, number: int, stats: FormatStats) -> None:
        content = message.get("content")
        optional = role == "assistant" and (message.get("tool_calls") or message.get("function_call"))
        if content is None or content == "" or content == []:
            if not optional:
                stats.error(number, "missing_content", f"Message {index} ({role}) has no content.")
            return
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            stats.error(
                number, "invalid_content", f"Message {index} has content that is neither text nor a list of parts."
            )
            return
        for position, part in enumerate(content, start=1):
            kind = part.get("type") if isinstance(part, dict) else None
            valid = (kind == "text" and isinstance(part.get("text"), str)) or (
                kind == "image_url"
                and isinstance(part.get("image_url"), dict)
                and isinstance(part["image_url"].get("url"), str)
            )
            if not valid:
                stats.error(
                    number,
                    "invalid_content",
                    f'Part {position} of message {index} must be {{type: "text", text}} or '
                    '{type: "image_url", image_url: {url}}.',
                )
                return

    def _system_presence(self, messages: list[Any], stats: FormatStats) -> None:
        system = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "system"), None)
        if system is None:
            stats.without_system += 1
        else:
            stats.with_system += 1
            prompts = stats.system_prompts
            # Bounded: the common prompt shows up early; a file of all-different prompts has none to find.
            if isinstance(system, str) and len(system) <= 4000 and (system in prompts or len(prompts) < 64):
                prompts[system] += 1

    def _chat(self, obj: dict[str, Any], number: int, stats: FormatStats) -> int:
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            stats.error(number, "missing_messages_list", 'The example has no non-empty "messages" list.')
            return 0
        tokens, _, all_zero = self._check_messages(messages, number, stats, need_assistant=True)
        for key in ("tools", "functions"):
            if obj.get(key):
                tokens += self._json_tokens(obj[key], number, stats)
        if all_zero:
            stats.warning(
                number, "all_weights_zero", "Every assistant message has weight 0, so this example teaches nothing."
            )
        self._system_presence(messages, stats)
        return tokens + 3

    def _preference(self, obj: dict[str, Any], number: int, stats: FormatStats) -> int:
        tokens = 0
        source = obj.get("input")
        messages = source.get("messages") if isinstance(source, dict) else None
        if not isinstance(messages, list) or not messages:
            stats.error(number, "missing_input", 'The example has no "input" object with a non-empty "messages" list.')
            messages = []
        else:
            message_tokens, _, _ = self._check_messages(messages, number, stats, need_assistant=False)
            tokens += message_tokens
            if isinstance(source, dict) and source.get("tools"):
                tokens += self._json_tokens(source["tools"], number, stats)
            self._system_presence(messages, stats)
        for key, missing in (
            ("preferred_output", "missing_preferred_output"),
            ("non_preferred_output", "missing_non_preferred_output"),
        ):
            output = obj.get(key)
            if output is None:
                stats.error(number, missing, f'The example has no "{key}".')
                continue
            if not (
                isinstance(output, list)
                and len(output) == 1
                and isinstance(output[0], dict)
                and output[0].get("role") == "assistant"
                and (
                    (isinstance(output[0].get("content"), str) and output[0]["content"]) or output[0].get("tool_calls")
                )
            ):
                stats.error(
                    number,
                    "invalid_preference_output",
                    f'"{key}" must be a list of exactly one assistant message with content.',
                )
                continue
            tokens += self._message_tokens(output[0], number, stats)
        return tokens + 3

    def _prompt_completion(self, obj: dict[str, Any], number: int, stats: FormatStats) -> int:
        tokens = 0
        for key, missing in (("prompt", "missing_prompt"), ("completion", "missing_completion")):
            value = obj.get(key)
            if not isinstance(value, str) or (key == "completion" and not value):
                stats.error(number, missing, f'The example has no text "{key}".')
            else:
                tokens += self.counter.count(value)
        return tokens
