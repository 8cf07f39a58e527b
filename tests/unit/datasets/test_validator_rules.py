"""A golden test per error and warning code, the line rules, and properties no input may break."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.datasets.report import Report
from bot.datasets.speedups import PythonWordCache
from bot.datasets.tokens import TokenCounter
from bot.datasets.validate import ValidationOptions, _scan_in_parallel, validate_path
from bot.datasets.validator import Scanner, iter_lines

SYSTEM = {"role": "system", "content": "You are terse."}


def chat(user: str = "Hi", answer: str = "Hello.", **extra: Any) -> dict[str, Any]:
    return {"messages": [SYSTEM, {"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}


def filler(count: int = 10) -> list[dict[str, Any]]:
    return [chat(f"Question {index}?", f"Answer {index}.") for index in range(count)]


def validate(tmp_path: Path, lines: list[Any], *, raw: bytes | None = None, **options: Any) -> Report:
    path = tmp_path / "data.jsonl"
    if raw is None:
        raw = b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)
    path.write_bytes(raw)
    return validate_path(path, ValidationOptions(model=options.pop("model", "gpt-4o-mini"), **options))


def first(report: Report, code: str) -> tuple[int | None, str]:
    issue = next(issue for issue in report.errors + report.warnings if issue.code == code)
    return issue.line, issue.message


ERROR_CASES: list[tuple[str, Any, int | None]] = [
    ("invalid_utf8", b'{"messages": "\xff\xfe"}', 3),
    ("invalid_json", b'{"messages": [', 3),
    ("not_an_object", [1, 2], 3),
    ("mixed_formats", {"prompt": "a", "completion": "b"}, 3),
    ("missing_messages_list", {"messages": []}, 3),
    ("message_not_object", {"messages": ["hi", {"role": "assistant", "content": "x"}]}, 3),
    ("message_missing_key", {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}, 3),
    (
        "message_missing_key",
        {"messages": [{"role": "tool", "content": "42"}, {"role": "assistant", "content": "x"}]},
        3,
    ),
    (
        "message_unrecognized_key",
        {"messages": [{"role": "user", "content": "hi", "mood": "ok"}, {"role": "assistant", "content": "x"}]},
        3,
    ),
    ("unrecognized_role", {"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "x"}]}, 3),
    ("missing_content", {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}, 3),
    ("missing_content", {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]}, 3),
    ("invalid_content", {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]}, 3),
    (
        "invalid_content",
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}, {"role": "assistant", "content": "x"}]},
        3,
    ),
    ("example_missing_assistant_message", {"messages": [{"role": "user", "content": "hi"}]}, 3),
    (
        "invalid_weight",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": True}]},
        3,
    ),
    (
        "invalid_weight",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": "1"}]},
        3,
    ),
    (
        "invalid_weight",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0.5}]},
        3,
    ),
    (
        "invalid_tool_call",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
                },
            ]
        },
        3,
    ),
]


@pytest.mark.parametrize(("code", "line", "line_number"), ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_each_chat_error_code_is_reported_at_its_line(
    tmp_path: Path, code: str, line: Any, line_number: int | None
) -> None:
    lines = [*filler(2), line, *filler(10)]
    report = validate(tmp_path, lines)
    assert not report.valid
    assert code in report.error_counts, report.error_counts
    assert first(report, code)[0] == line_number
    assert first(report, code)[1].endswith(".")


def preference(**overrides: Any) -> dict[str, Any]:
    example: dict[str, Any] = {
        "input": {"messages": [{"role": "user", "content": "Which is better?"}]},
        "preferred_output": [{"role": "assistant", "content": "This one."}],
        "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
    }
    example.update(overrides)
    return {key: value for key, value in example.items() if value is not None}


@pytest.mark.parametrize(
    ("code", "bad"),
    [
        ("missing_input", preference(input={"messages": []})),
        ("missing_preferred_output", preference(preferred_output=None)),
        ("missing_non_preferred_output", preference(non_preferred_output=None)),
        ("invalid_preference_output", preference(preferred_output=[{"role": "assistant", "content": "a"}] * 2)),
        ("invalid_preference_output", preference(non_preferred_output=[{"role": "user", "content": "a"}])),
    ],
)
def test_preference_error_codes(tmp_path: Path, code: str, bad: dict[str, Any]) -> None:
    report = validate(tmp_path, [preference() for _ in range(10)] + [bad])
    assert report.format == "preference"
    assert first(report, code)[0] == 11


@pytest.mark.parametrize(
    ("code", "bad"), [("missing_prompt", {"completion": "b"}), ("missing_completion", {"prompt": "a"})]
)
def test_prompt_completion_error_codes(tmp_path: Path, code: str, bad: dict[str, Any]) -> None:
    good = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(10)]
    report = validate(tmp_path, [*good, bad], model="davinci-002")
    assert report.format == "prompt_completion"
    assert first(report, code)[0] == 11
    assert "unsupported_format" not in report.error_counts


def test_file_level_errors(tmp_path: Path) -> None:
    assert validate(tmp_path, [], raw=b"").error_counts == {"empty_file": 1}
    assert validate(tmp_path, [], raw=b"\n  \n\t\n").error_counts == {"empty_file": 1}
    few = validate(tmp_path, filler(9))
    assert few.error_counts == {"too_few_examples": 1} and first(few, "too_few_examples")[0] is None
    prompt_completion = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(10)]
    assert validate(tmp_path, prompt_completion).error_counts == {"unsupported_format": 1}
    too_big = validate(tmp_path, filler(10), max_bytes=100)
    assert too_big.error_counts == {"file_too_large": 1}


def test_warning_codes(tmp_path: Path) -> None:
    no_system = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo."}]}
    zero = {"messages": [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "No.", "weight": 0}]}
    double = {
        "messages": [
            {"role": "user", "content": "Land"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "land", "arguments": json.dumps("{}")}}
                ],
            },
        ]
    }
    lines: list[Any] = [*filler(10), no_system, filler(1)[0], zero, double]
    raw = b"".join(json.dumps(line).encode() + b"\n" for line in lines[:5]) + b"   \n"
    raw += b"".join(json.dumps(line).encode() + b"\n" for line in lines[5:])
    report = validate(tmp_path, [], raw=raw)
    assert report.valid, report.error_counts
    assert first(report, "blank_line")[0] == 6
    assert first(report, "duplicate_example") == (13, "This example is an exact copy of line 1.")
    assert first(report, "all_weights_zero")[0] == 14
    assert first(report, "tool_arguments_not_object")[0] == 15
    inconsistent = first(report, "inconsistent_system_message")
    assert inconsistent[0] is None and "11 of 14 examples have a system message and 3 do not" in inconsistent[1]
    long = validate(tmp_path, [*filler(10), chat("word " * 20_000)], model="gpt-3.5-turbo-0613")
    assert first(long, "example_too_long")[0] == 11


def test_reports_list_five_lines_per_code_but_count_them_all(tmp_path: Path) -> None:
    report = validate(tmp_path, [], raw=b"nope\n" * 12)
    assert report.error_counts == {"invalid_json": 12}
    assert [issue.line for issue in report.errors] == [1, 2, 3, 4, 5]


def test_line_rules(tmp_path: Path) -> None:
    """\\n splits lines; \\r\\n is fine; U+2028/U+2029/U+0085 inside strings are not breaks; BOM accepted."""
    separators = chat("one\u2028two\u2029three\u0085four")
    lines = [json.dumps(line, ensure_ascii=False).encode() for line in [separators, *filler(10)]]
    raw = b"\xef\xbb\xbf" + b"\r\n".join(lines)  # no final newline
    report = validate(tmp_path, [], raw=raw)
    assert report.valid, report.errors
    assert report.examples == 11
    trailing = validate(tmp_path, [], raw=b"\n".join(lines) + b"\n")
    assert trailing.examples == 11 and "blank_line" not in trailing.warning_counts


def test_majority_format_wins_and_a_tie_goes_to_the_first_line(tmp_path: Path) -> None:
    prompt_completion = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(5)]
    tie = validate(tmp_path, [*filler(5), *prompt_completion])
    assert tie.format == "chat" and tie.error_counts["mixed_formats"] == 5
    flipped = validate(tmp_path, [*prompt_completion, *filler(5)])
    assert flipped.format == "prompt_completion"
    unknown_object = validate(tmp_path, [*filler(10), {"text": "hello"}])
    assert first(unknown_object, "missing_messages_list")[0] == 11


def test_image_parts_are_valid_and_noted(tmp_path: Path) -> None:
    image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ],
            },
            {"role": "assistant", "content": "A cat."},
        ]
    }
    report = validate(tmp_path, [*filler(10), image])
    assert report.valid
    assert any("Images add no text tokens" in note for note in report.notes)


def test_cost_is_unknown_without_a_price(tmp_path: Path) -> None:
    report = validate(tmp_path, filler(10), model="my-own-model")
    assert report.billing.estimated_cost_usd is None
    priced = validate(tmp_path, filler(10), model="my-own-model", prices={"my-own-model": 2.0})
    assert priced.billing.estimated_cost_usd == round(priced.billing.billed_tokens / 1e6 * 2.0, 4)


def test_parallel_scan_merges_into_the_same_report_as_one_process(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "drone_training.2024-06-13.jsonl").read_bytes().splitlines()
    # Repeats across ranges (the first lines again) and inside the last range (its own last line twice),
    # and errors on both sides of every cut: each range numbers its lines from 1 and the merge renumbers.
    mixed = [
        *lines[:40],
        b"not json",
        b"",
        b'{"prompt": "x", "completion": "y"}',
        *lines[40:],
        *lines[:3],
        b"[1]",
        lines[-2],
        b"",
        lines[-2],
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(mixed) + b"\n")
    scanner = Scanner(counter=TokenCounter("o200k_base"), example_token_limit=65_536)
    with path.open("rb") as stream:
        sequential = scanner.scan(iter_lines(stream))
    for workers in (2, 3, 7):
        parallel = _scan_in_parallel(path, path.stat().st_size, scanner, workers)
        assert (parallel.physical_lines, parallel.examples) == (sequential.physical_lines, sequential.examples)
        assert parallel.errors == sequential.errors
        assert parallel.warnings == sequential.warnings, workers
        assert parallel.per_format == sequential.per_format


def test_token_counts_match_tiktoken_fed_the_same_files(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bpe-openai is the counter; tiktoken, OpenAI's reference, must agree on real data."""
    import gzip
    import hashlib
    import importlib.util

    import tiktoken

    spec = importlib.util.find_spec("bpe_openai")
    assert spec is not None and spec.origin is not None
    data_dir = Path(spec.origin).parent / "data"

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for encoding in ("o200k_base", "cl100k_base"):
        url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
        data = gzip.decompress((data_dir / f"{encoding}.tiktoken.gz").read_bytes())
        (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
        reference = tiktoken.get_encoding(encoding)
        counter = TokenCounter(encoding)
        texts = {"", "a\u2028b", "🙂 ZWJ 👩‍👩‍👧", "<|endoftext|>", " " * 5000}
        for name in ("toy_chat_fine_tuning.jsonl", "orca_dpo_pairs_validation.jsonl"):
            for line in (shared_data / name).read_text().splitlines():
                texts.update(str(value) for value in json.loads(line).values())
        for text in texts:
            assert counter.count(text) == len(reference.encode_ordinary(text)), text[:60]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=2000)
    | st.lists(
        st.sampled_from(
            [
                b"{",
                b"}",
                b'"messages"',
                b":",
                b"[",
                b"]",
                b",",
                b'{"role":"user","content":"x"}',
                b"\n",
                b"\r\n",
                b"\xef\xbb\xbf",
                b"\xff",
                b"null",
                b"1",
            ]
        ),
        max_size=60,
    ).map(b"".join)
)
def test_no_byte_input_makes_the_validator_raise(tmp_path: Path, data: bytes) -> None:
    report = validate(tmp_path, [], raw=data)
    assert report.examples >= 0
    assert report.valid == (not report.error_counts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "messages",
                        "role",
                        "content",
                        "weight",
                        "tool_calls",
                        "input",
                        "preferred_output",
                        "prompt",
                        "name",
                        "function",
                        "arguments",
                        "type",
                    ]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_no_json_shape_makes_the_validator_raise(tmp_path: Path, value: Any) -> None:
    report = validate(tmp_path, [value] * 3)
    assert report.examples == 3


@pytest.fixture(scope="module")
def counters() -> dict[str, TokenCounter]:
    return {encoding: TokenCounter(encoding) for encoding in ("o200k_base", "cl100k_base")}


PIECES = [
    " ", "  ", "\n", "\t", "\r\n", " \n", "a", "B", "word", "The", "don't", "'s", "'", "é", "ß", "e\u0301", "東京",
    "1", "23", "4567", ".", ",", "!", "?", "-", "/", "_", "\u00a0", "\u2028", "\u3000", "\x1c", "🙂",
    "👩\u200d💻", "<|endoftext|>",
]  # fmt: skip


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join) | st.text(max_size=120))
def test_counting_word_by_word_equals_counting_the_whole_text(counters: dict[str, TokenCounter], text: str) -> None:
    """Cut before each space that precedes a non-whitespace character, a text's pieces add up to its count."""
    for counter in counters.values():
        whole = counter(text)
        assert counter.count(text) == whole, repr(text)
        assert counter.count(text) == whole, "and again, from the caches"
        twin = PythonWordCache(counter, limit=64, max_piece_bytes=48, text_limit=8, text_chars=1_000)
        assert twin.count(text) in (whole, None), "the Python twin"
