"""The validator's hot tables, compiled and in Python: the same answers from both."""

from __future__ import annotations

import pickle
import random
import shutil
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.datasets import speedups
from bot.datasets.tokens import TokenCounter
from bot.datasets.validate import ValidationOptions, _scan_in_parallel, validate_path
from bot.datasets.validator import Scanner


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("o200k_base")


@pytest.fixture(params=["compiled", "python"])
def implementation(request: pytest.FixtureRequest) -> Any:
    """The C extension's module, or this module's Python twins under the same names."""
    if request.param == "python":
        return type("Twins", (), {"WordCache": speedups.PythonWordCache, "LineDigests": speedups.PythonLineDigests})
    if not speedups.compiled():
        pytest.skip("the C extension was not built here (no C compiler when the project was installed)")
    from bot.datasets import _speedups

    return _speedups


def word_cache(implementation: Any, count_piece: Callable[[str], int], **sizes: int) -> Any:
    defaults = {"limit": 64, "max_piece_bytes": 12, "text_limit": 4, "text_chars": 200}
    return implementation.WordCache(count_piece, **(defaults | sizes))


def recording(counter: TokenCounter) -> tuple[list[str], Callable[[str], int]]:
    """A tokenizer that notes every piece it is asked to count."""
    calls: list[str] = []

    def tokenizer(piece: str) -> int:
        calls.append(piece)
        return counter(piece)

    return calls, tokenizer


def test_the_extension_is_built_wherever_a_compiler_is() -> None:
    """setuptools skips the optional extension quietly when the build fails; with a compiler here, it must not have."""
    compiler = sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        pytest.skip(f"no C compiler ({compiler}) on this machine")
    assert speedups.compiled(), "bot/datasets/_speedups.c did not build: run `./dev` again and read uv's build output"


def test_word_counts_are_exact_and_the_table_stays_bounded(implementation: Any, counter: TokenCounter) -> None:
    """Sixty thousand distinct words through a table of 64: every count exact, never over the limit."""
    cache = word_cache(implementation, counter)
    for index in range(2_000):
        text = " ".join(f"w{index * 30 + offset} the of" for offset in range(30))
        assert cache.count(text) == counter(text), text
        assert len(cache) <= 64


def test_only_pieces_never_seen_go_to_the_tokenizer(implementation: Any, counter: TokenCounter) -> None:
    calls, tokenizer = recording(counter)
    cache = word_cache(implementation, tokenizer, text_chars=1)  # no text is short enough to keep whole
    assert cache.count("alpha beta gamma") == counter("alpha beta gamma")
    assert calls == ["alpha", " beta", " gamma"]
    assert cache.count("alpha beta gamma") == counter("alpha beta gamma")
    assert cache.count("gamma beta") == counter("gamma beta")
    assert calls[3:] == ["gamma"], "only the piece never seen before, a first word without its space, is asked"
    long_word = "x" * 13
    assert cache.count(f"a {long_word} {long_word}") == counter(f"a {long_word} {long_word}")
    assert calls[4:] == ["a", f" {long_word}", f" {long_word}"], "pieces over max_piece_bytes are never kept"


def test_a_recurring_text_is_kept_whole_from_its_second_time(implementation: Any, counter: TokenCounter) -> None:
    calls, tokenizer = recording(counter)
    cache = word_cache(implementation, tokenizer, limit=1)  # the word table forgets at every new piece
    prompt = "You are a terse assistant"
    counts = [cache.count(prompt) for _ in range(4)]
    assert counts == [counter(prompt)] * 4
    assert len(calls) == 2 * 5, "counted word by word twice, then answered whole"
    too_long = "y " * 101
    assert [cache.count(too_long) for _ in range(3)] == [counter(too_long)] * 3
    # Pieces "y", " y" (100 times) and " y ": three misses a time with a one-piece table, never zero.
    assert len(calls) == 10 + 3 * 3, "a text over text_chars is never kept whole"


@pytest.mark.parametrize(
    "text",
    [
        "ends with a space ",
        "two  spaces",
        "    indented code\n        deeper",
        "a \u00a0no-break space",
        "a \u3000ideographic space",
        "tab \tafter",
        "line \n break",
        " starts with a space",
        "",
    ],
)
def test_whitespace_runs_stay_inside_one_piece(implementation: Any, counter: TokenCounter, text: str) -> None:
    """Only a space followed by a non-whitespace character is a cut; runs of whitespace are counted in one piece."""
    cache = word_cache(implementation, counter, max_piece_bytes=64)
    assert [cache.count(text) for _ in range(3)] == [counter(text)] * 3


def test_a_text_without_utf8_form_is_left_to_the_caller(implementation: Any, counter: TokenCounter) -> None:
    assert word_cache(implementation, counter).count("\ud800 lone") is None
    assert counter.count("\ud800 lone") == counter("\ud800 lone") > 0


def test_tokenizer_failures_pass_through_and_bad_sizes_are_refused(implementation: Any) -> None:
    def broken(piece: str) -> int:
        raise RuntimeError(f"cannot count {piece!r}")

    with pytest.raises(RuntimeError, match="cannot count ' b'"):
        word_cache(implementation, lambda piece: 1 if piece == "a" else broken(piece)).count("a b")
    with pytest.raises(ValueError, match="negative"):
        word_cache(implementation, lambda piece: -1).count("a")
    for sizes in (
        {"limit": 0},
        {"max_piece_bytes": 0},
        {"limit": 2**21},
        {"max_piece_bytes": 5_000},
        {"text_limit": 0},
    ):
        with pytest.raises(ValueError, match="WordCache needs"):
            word_cache(implementation, len, **sizes)
    with pytest.raises(TypeError):
        word_cache(implementation, len).count(b"bytes")


def test_line_digests_remember_the_first_line_and_grow(implementation: Any) -> None:
    digests = implementation.LineDigests()
    rng = random.Random(4)
    keys = [rng.getrandbits(64) for _ in range(20_000)] + [0]
    for line, key in enumerate(keys, start=1):
        assert digests.first_or_add(key, line) == line
    assert len(digests) == len(keys)
    for line, key in enumerate(keys, start=1):
        assert digests.first_or_add(key, line + 50_000) == line


def test_absorbing_a_later_range_names_each_repeat_by_its_earliest_line(implementation: Any) -> None:
    earlier, later = implementation.LineDigests(), implementation.LineDigests()
    for line, key in enumerate([11, 12, 13], start=1):
        earlier.first_or_add(key, line)
    for line, key in enumerate([20, 12, 21, 11], start=1):
        later.first_or_add(key, line)
    assert earlier.absorb(later, 3) == [(5, 2), (7, 1)]
    assert len(earlier) == 5
    assert earlier.first_or_add(21, 99) == 6


def test_line_digests_travel_through_a_pipe(implementation: Any) -> None:
    """A worker's table reaches the parent pickled; it must arrive whole."""
    digests = implementation.LineDigests()
    for line in range(1, 10_001):
        digests.first_or_add(line * 7_919, line)
    arrived = pickle.loads(pickle.dumps(digests))
    assert len(arrived) == 10_000
    assert arrived.first_or_add(7_919 * 5_000, 1) == 5_000
    assert implementation.LineDigests().absorb(arrived, 0) == []


def test_the_python_twins_give_the_validator_the_same_reports(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a machine without a C compiler gets: the whole validator on the twins, report for report."""
    names = ["toy_chat_fine_tuning.jsonl", "drone_training.2024-06-13.jsonl", "orca_dpo_pairs_validation.jsonl"]
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_bytes((shared_data / names[1]).read_bytes() * 2)  # every line repeated, across the ranges
    paths = [shared_data / name for name in names] + [doubled]
    options = ValidationOptions(model="gpt-4o-mini-2024-07-18")

    def validate_everything() -> list[Any]:
        reports: list[Any] = [validate_path(path, options).to_json() for path in paths]
        scanner = Scanner(counter=TokenCounter("o200k_base"), example_token_limit=65_536)
        parallel = _scan_in_parallel(doubled, doubled.stat().st_size, scanner, 3)
        return [*reports, parallel.errors, parallel.warnings, parallel.per_format]

    compiled = validate_everything()
    monkeypatch.setattr(speedups, "compiled", lambda: False)
    assert isinstance(TokenCounter("o200k_base")._cache, speedups.PythonWordCache)
    assert validate_everything() == compiled
